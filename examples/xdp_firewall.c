/* xdp_firewall.c: a stateless IPv4 firewall keyed by (source address, destination port, protocol).
 *
 * Shows: Ethernet/IPv4/UDP/TCP parsing with a bounds check before every header (IPv4 options
 * included, so the transport header sits at a variable offset), a hash map used as a set of
 * blocked keys with a hit counter per rule, and per-verdict counters in an array map.
 *
 * Verdicts: a key found in `blocked` -> XDP_DROP; a truncated or malformed IPv4 packet
 * -> XDP_DROP; everything else, including non-IPv4 (ARP, IPv6) -> XDP_PASS. Non-UDP/TCP protocols
 * (ICMP...) and later fragments are matched with destination port 0, so a rule with port 0
 * blocks a whole protocol from a source.
 * Packets (examples/pcap/xdp_firewall.pcap): UDP and TCP from blocked and allowed sources and
 * ports, ICMP from a source whose ICMP is blocked, IPv4 with options, a later fragment,
 * truncated IPv4 and TCP headers, IPv6, ARP. Maps: examples/xdp_firewall.maps.json.
 */
#include <bpfnic.h>
#include <bpfnic/net.h>

/* The rule key as it sits in memory: address and port in network byte order. */
struct firewall_key {
	__be32 saddr;
	__be16 dport;
	__u8 protocol;
	__u8 pad; /* always zero, so equal keys are equal bytes */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct firewall_key);
	__type(value, __u64); /* packets this rule has dropped */
} blocked SEC(".maps");

/* Packets per verdict, indexed by enum xdp_action. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XDP_REDIRECT + 1);
	__type(key, __u32);
	__type(value, __u64);
} verdict_counters SEC(".maps");

static __always_inline int count_verdict(__u32 action)
{
	__u64 *packets = bpf_map_lookup_elem(&verdict_counters, &action);

	if (packets)
		__sync_fetch_and_add(packets, 1);
	return action;
}

SEC("xdp")
int xdp_firewall(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct firewall_key key = {};
	struct iphdr *ip;
	void *transport;
	__u64 *rule_hits;

	if ((void *)(eth + 1) > data_end)
		return count_verdict(XDP_DROP);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return count_verdict(XDP_PASS);

	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return count_verdict(XDP_DROP);
	if (ip->version != 4 || ip->ihl < 5)
		return count_verdict(XDP_DROP);

	key.saddr = ip->saddr;
	key.protocol = ip->protocol;

	/* ihl is 4 bits wide, so the verifier knows this offset is at most 60. */
	transport = (void *)ip + ip->ihl * 4;
	if (transport > data_end)
		return count_verdict(XDP_DROP);

	if (!ipv4_is_later_fragment(ip)) {
		if (ip->protocol == IPPROTO_TCP) {
			struct tcphdr *tcp = transport;

			if ((void *)(tcp + 1) > data_end)
				return count_verdict(XDP_DROP);
			key.dport = tcp->dest;
		} else if (ip->protocol == IPPROTO_UDP) {
			struct udphdr *udp = transport;

			if ((void *)(udp + 1) > data_end)
				return count_verdict(XDP_DROP);
			key.dport = udp->dest;
		}
	}

	rule_hits = bpf_map_lookup_elem(&blocked, &key);
	if (rule_hits) {
		__sync_fetch_and_add(rule_hits, 1);
		return count_verdict(XDP_DROP);
	}
	return count_verdict(XDP_PASS);
}

char _license[] SEC("license") = "Dual BSD/GPL";
