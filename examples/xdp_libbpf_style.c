/* xdp_libbpf_style.c: a program written the way libbpf-based projects write them.
 *
 * Shows: that the usual includes (<linux/bpf.h>, <linux/if_ether.h>, <linux/ip.h>, <linux/in.h>,
 * <linux/udp.h>, <bpf/bpf_helpers.h>, <bpf/bpf_endian.h>) resolve to bpfnic's own stand-in
 * headers, with a program-local struct vlan_hdr as such programs define it, the LICENSE
 * spelling, an LRU hash map, __uint/__type map definitions, bpf_printk and the bpf_ntohs family.
 *
 * Verdicts: UDP to port 7 (echo) over IPv4, possibly behind one VLAN tag -> XDP_DROP, logged
 * with bpf_printk; everything else -> XDP_PASS. Every frame is counted per EtherType (the
 * innermost one) in `ethertype_packets`.
 * Packets (examples/pcap/xdp_libbpf_style.pcap): UDP to port 7 and to port 53, tagged UDP to
 * port 7, TCP to port 7, a truncated UDP header, IPv6, ARP.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ECHO_PORT 7

/* Not in the UAPI headers, so programs define it themselves. */
struct vlan_hdr {
	__be16 h_vlan_TCI;
	__be16 h_vlan_encapsulated_proto;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32);
	__type(key, __u16);   /* EtherType, host byte order */
	__type(value, __u64); /* packets */
} ethertype_packets SEC(".maps");

static __always_inline void count_ethertype(__u16 ethertype)
{
	__u64 one = 1, *packets;

	packets = bpf_map_lookup_elem(&ethertype_packets, &ethertype);
	if (packets)
		__sync_fetch_and_add(packets, 1);
	else
		bpf_map_update_elem(&ethertype_packets, &ethertype, &one, BPF_NOEXIST);
}

SEC("xdp")
int xdp_prog(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	void *cursor = eth + 1;
	struct iphdr *iph;
	struct udphdr *udph;
	__u16 h_proto;

	if (cursor > data_end)
		return XDP_PASS;
	h_proto = eth->h_proto;
	if (h_proto == bpf_htons(ETH_P_8021Q) || h_proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *vhdr = cursor;

		if ((void *)(vhdr + 1) > data_end)
			return XDP_PASS;
		h_proto = vhdr->h_vlan_encapsulated_proto;
		cursor = vhdr + 1;
	}
	count_ethertype(bpf_ntohs(h_proto));
	if (h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;

	iph = cursor;
	if ((void *)(iph + 1) > data_end || iph->protocol != IPPROTO_UDP)
		return XDP_PASS;
	udph = (void *)iph + iph->ihl * 4;
	if ((void *)(udph + 1) > data_end)
		return XDP_PASS;
	if (udph->dest == bpf_htons(ECHO_PORT)) {
		bpf_printk("xdp_libbpf_style: drop UDP echo from %x", bpf_ntohl(iph->saddr));
		return XDP_DROP;
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
