/* xdp_encap.c: IP-in-IP encapsulation (RFC 2003) of IPv4 packets into a configured tunnel.
 *
 * Shows: growing the packet at the front with bpf_xdp_adjust_head(ctx, -20), re-deriving and
 * re-checking every packet pointer after the adjustment (the verifier forgets them), writing a
 * new outer IPv4 header and computing its checksum with bpf_csum_diff.
 *
 * Verdicts: IPv4 -> XDP_TX, the frame now Ethernet | outer IPv4 (protocol 4, tunnel endpoints
 * from `tunnel`, TTL 64, tos copied from the inner header) | the original IPv4 packet.
 * No tunnel configured (remote 0), non-IPv4 (ARP, IPv6) and an inner packet too long to wrap
 * -> XDP_PASS; truncated or malformed IPv4 -> XDP_DROP; no headroom to grow into -> XDP_ABORTED.
 * Packets (examples/pcap/xdp_encap.pcap): IPv4 UDP/TCP/ICMP of several sizes, a truncated IPv4
 * header, IPv6, ARP. Maps: examples/xdp_encap.maps.json (the tunnel endpoints).
 */
#include <bpfnic.h>
#include <bpfnic/net.h>

#define OUTER_TTL 64

struct tunnel {
	__be32 local;  /* outer source address */
	__be32 remote; /* outer destination address; 0 means no tunnel */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tunnel);
} tunnel SEC(".maps");

SEC("xdp")
int xdp_encap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ethhdr saved_eth;
	struct iphdr outer = {};
	struct iphdr *inner;
	struct tunnel *endpoints;
	__u32 tunnel_index = 0;
	__u32 inner_len;
	__s64 sum;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	inner = (void *)(eth + 1);
	if ((void *)(inner + 1) > data_end)
		return XDP_DROP;
	if (inner->version != 4 || inner->ihl < 5)
		return XDP_DROP;

	endpoints = bpf_map_lookup_elem(&tunnel, &tunnel_index);
	if (!endpoints || endpoints->remote == 0)
		return XDP_PASS;

	inner_len = bpf_ntohs(inner->tot_len);
	if (inner_len + sizeof(outer) > 0xffff)
		return XDP_PASS;

	outer.version = 4;
	outer.ihl = sizeof(outer) / 4;
	outer.tos = inner->tos;
	outer.tot_len = bpf_htons(inner_len + sizeof(outer));
	outer.ttl = OUTER_TTL;
	outer.protocol = IPPROTO_IPIP;
	outer.saddr = endpoints->local;
	outer.daddr = endpoints->remote;
	/* check is still 0, so the sum covers exactly the other header words. */
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&outer, sizeof(outer), 0);
	if (sum < 0)
		return XDP_ABORTED;
	outer.check = ip_csum_fold(sum);

	__builtin_memcpy(&saved_eth, eth, sizeof(saved_eth));
	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(outer)))
		return XDP_ABORTED;

	/* The old pointers are invalid now: load the new bounds and check them again. */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)eth + sizeof(*eth) + sizeof(outer) > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(eth, &saved_eth, sizeof(*eth));
	__builtin_memcpy((void *)(eth + 1), &outer, sizeof(outer));
	return XDP_TX;
}

char _license[] SEC("license") = "Dual BSD/GPL";
