/* xdp_router.c: an IPv4 router: longest-prefix match, TTL decrement, MAC rewrite, redirect.
 *
 * Shows: an LPM trie keyed by (prefix length, address), the TTL decrement with the header
 * checksum updated incrementally (RFC 1624 eqn. 3, see ip_csum_replace16 in <bpfnic/net.h>),
 * rewriting both MAC addresses, and bpf_redirect_map into a devmap of egress ports.
 *
 * Verdicts: a routed packet -> XDP_REDIRECT to its egress port (XDP_DROP if that port is not
 * in `egress_ports`); no route, TTL <= 1 (the host answers with ICMP time exceeded) and
 * non-IPv4 (ARP, IPv6) -> XDP_PASS; truncated or malformed IPv4 -> XDP_DROP.
 * Packets (examples/pcap/xdp_router.pcap): destinations matching a /8, a more specific /24
 * and a /32 route, one with no route, TTL 1 and TTL 0, a truncated IPv4 header, IPv6, ARP.
 * Maps: examples/xdp_router.maps.json (routes, and egress ports as ifindex 1 so the kernel's
 * devmap accepts them).
 */
#include <bpfnic.h>
#include <bpfnic/net.h>

struct route_key {
	__u32 prefixlen; /* host byte order: the LPM trie reads it as a number */
	__be32 daddr;    /* network byte order: the trie matches it bit by bit from the first octet */
};

struct route {
	unsigned char next_hop_mac[ETH_ALEN]; /* the new destination MAC */
	unsigned char egress_mac[ETH_ALEN];   /* the egress port's own MAC, the new source */
	__u32 egress_port;                    /* key into egress_ports */
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 256);
	__type(key, struct route_key);
	__type(value, struct route);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* the kernel requires it for LPM tries */
} routes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32); /* ifindex of the egress device */
} egress_ports SEC(".maps");

SEC("xdp")
int xdp_router(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct route_key key;
	struct route *route;
	struct iphdr *ip;
	__be16 old_ttl_word;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;

	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return XDP_DROP;
	if (ip->version != 4 || ip->ihl < 5)
		return XDP_DROP;

	key.prefixlen = 32;
	key.daddr = ip->daddr;
	route = bpf_map_lookup_elem(&routes, &key);
	if (!route)
		return XDP_PASS;
	/* A packet that would leave with TTL 0 is the host's to answer (RFC 1812 section 5.3.1). */
	if (ip->ttl <= 1)
		return XDP_PASS;

	/* TTL and protocol share one 16-bit word of the checksummed header. */
	old_ttl_word = *(__be16 *)&ip->ttl;
	ip->ttl--;
	ip_csum_replace16(&ip->check, old_ttl_word, *(__be16 *)&ip->ttl);

	__builtin_memcpy(eth->h_dest, route->next_hop_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, route->egress_mac, ETH_ALEN);
	/* The low bits of flags are the verdict when the port is missing from the devmap. */
	return bpf_redirect_map(&egress_ports, route->egress_port, XDP_DROP);
}

char _license[] SEC("license") = "Dual BSD/GPL";
