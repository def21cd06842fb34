/* xdp_pass.c: every frame goes on to the host stack unchanged (XDP_PASS).
 *
 * Shows: the identity program; the output packet must equal the input byte for byte.
 * Packets: any (examples/pcap/xdp_pass.pcap has IPv4, IPv6, ARP, a full-size frame and a bare
 * 14-octet Ethernet header): expect XDP_PASS and unchanged data for all of them.
 */
#include <bpfnic.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
