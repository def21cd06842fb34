/* xdp_vlan.c: parse and strip up to four stacked VLAN tags (802.1Q C-tags, 802.1ad S-tags).
 *
 * Shows: a real bounded loop (unrolling disabled, so the object holds a backward jump that the
 * verifier must prove terminates), a packet cursor advanced by a variable amount, shrinking
 * the packet at the front with a positive bpf_xdp_adjust_head, and per-VLAN counters in an
 * array map indexed by the outermost VLAN ID.
 *
 * Verdicts: untagged -> XDP_PASS, unchanged; 1..4 tags -> XDP_PASS with all tags removed (the
 * MAC addresses move up, the EtherType becomes the innermost one) and the outermost VID
 * counted; a fifth tag or a tag cut short -> XDP_DROP.
 * Packets (examples/pcap/xdp_vlan.pcap): untagged IPv4, one, two (QinQ), three, four and five
 * tags, a truncated tag, tagged IPv6 and ARP.
 */
#include <bpfnic.h>
#include <bpfnic/net.h>

#define MAX_VLAN_DEPTH 4

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VLAN_VID_MASK + 1);
	__type(key, __u32);   /* outermost VLAN ID */
	__type(value, __u64); /* packets */
} vlan_packets SEC(".maps");

SEC("xdp")
int xdp_vlan(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct vlan_hdr *tag;
	unsigned char macs[2 * ETH_ALEN];
	__be16 inner_proto;
	__u32 outer_vid = 0;
	__u64 *packets;
	int depth;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	inner_proto = eth->h_proto;
	tag = (void *)(eth + 1);

#pragma clang loop unroll(disable)
	for (depth = 0; depth < MAX_VLAN_DEPTH; depth++) {
		if (!eth_type_is_vlan(inner_proto))
			break;
		if ((void *)(tag + 1) > data_end)
			return XDP_DROP;
		if (depth == 0)
			outer_vid = bpf_ntohs(tag->h_vlan_TCI) & VLAN_VID_MASK;
		inner_proto = tag->h_vlan_encapsulated_proto;
		tag++;
	}
	if (eth_type_is_vlan(inner_proto))
		return XDP_DROP; /* more tags than MAX_VLAN_DEPTH */
	if (depth == 0)
		return XDP_PASS;

	packets = bpf_map_lookup_elem(&vlan_packets, &outer_vid);
	if (packets)
		__sync_fetch_and_add(packets, 1);

	/* Keep the addresses, drop the tags: the new frame starts depth * 4 octets later. */
	__builtin_memcpy(macs, eth, sizeof(macs));
	if (bpf_xdp_adjust_head(ctx, depth * VLAN_HLEN))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(eth, macs, sizeof(macs));
	eth->h_proto = inner_proto;
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
