/* xdp_drop.c: the smallest XDP program: every frame gets XDP_DROP.
 *
 * Shows: a program section, the license section, and a verdict with no packet access.
 * Packets: any (examples/pcap/xdp_drop.pcap has IPv4, IPv6, ARP, a full-size frame and a bare
 * 14-octet Ethernet header): expect XDP_DROP for all of them.
 */
#include <bpfnic.h>

SEC("xdp")
int xdp_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char _license[] SEC("license") = "Dual BSD/GPL";
