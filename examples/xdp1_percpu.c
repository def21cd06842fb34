/* xdp1_percpu.c: count packets by IP protocol in per-CPU counters, then drop them.
 *
 * Shows: the pattern of the kernel's samples/bpf xdp1 program (written anew here): a
 * BPF_MAP_TYPE_PERCPU_ARRAY, whose value each CPU owns, so a plain increment needs no atomic;
 * parsing through up to two VLAN tags; IPv4 protocol and IPv6 next-header numbers as keys.
 *
 * Verdicts: every frame -> XDP_DROP (it is a packet counter, like xdp1). Counter index: the
 * IPv4 protocol or IPv6 next header (UDP 17, TCP 6, ICMP 1, ICMPv6 58...), 0 for other
 * EtherTypes (ARP) and for frames too short to hold their IP header.
 * Packets (examples/pcap/xdp1_percpu.pcap): IPv4 UDP/TCP/ICMP, IPv6 UDP/ICMPv6, single- and
 * double-tagged IPv4, ARP, a truncated IPv4 header.
 */
#include <bpfnic.h>
#include <bpfnic/net.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);   /* IP protocol number */
	__type(value, __u64); /* packets, per CPU */
} rxcnt SEC(".maps");

static __always_inline __u32 ipv4_protocol(void *l3, void *data_end)
{
	struct iphdr *ip = l3;

	if ((void *)(ip + 1) > data_end)
		return 0;
	return ip->protocol;
}

static __always_inline __u32 ipv6_next_header(void *l3, void *data_end)
{
	struct ipv6hdr *ip6 = l3;

	if ((void *)(ip6 + 1) > data_end)
		return 0;
	return ip6->nexthdr;
}

SEC("xdp")
int xdp1_percpu(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *l3 = (void *)(eth + 1);
	__u16 proto;
	__u32 protocol = 0;
	__u64 *packets;

	if (l3 > data_end)
		return XDP_DROP;
	proto = eth->h_proto;

	/* Two tags at most (an outer S-tag or C-tag and one inner tag), written out as xdp1 does. */
	if (eth_type_is_vlan(proto)) {
		struct vlan_hdr *tag = l3;

		if ((void *)(tag + 1) > data_end)
			return XDP_DROP;
		proto = tag->h_vlan_encapsulated_proto;
		l3 = tag + 1;
	}
	if (eth_type_is_vlan(proto)) {
		struct vlan_hdr *tag = l3;

		if ((void *)(tag + 1) > data_end)
			return XDP_DROP;
		proto = tag->h_vlan_encapsulated_proto;
		l3 = tag + 1;
	}

	if (proto == bpf_htons(ETH_P_IP))
		protocol = ipv4_protocol(l3, data_end);
	else if (proto == bpf_htons(ETH_P_IPV6))
		protocol = ipv6_next_header(l3, data_end);

	packets = bpf_map_lookup_elem(&rxcnt, &protocol);
	if (packets)
		*packets += 1;
	return XDP_DROP;
}

char _license[] SEC("license") = "Dual BSD/GPL";
