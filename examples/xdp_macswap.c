/* xdp_macswap.c: reflect every frame to the port it came from with the MAC addresses swapped.
 *
 * Shows: packet pointers from the context, the bounds check the verifier demands before any
 * packet access, writes into the packet, and XDP_TX.
 * Packets: any Ethernet frame (IPv4, IPv6, ARP): expect XDP_TX with h_dest and h_source
 * exchanged and the rest unchanged. A frame shorter than an Ethernet header gets XDP_DROP
 * (the kernel's test run refuses frames under 14 octets, so the pcap has none).
 */
#include <bpfnic.h>
#include <bpfnic/net.h>

SEC("xdp")
int xdp_macswap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	unsigned char original_dest[ETH_ALEN];

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;

	__builtin_memcpy(original_dest, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, original_dest, ETH_ALEN);
	return XDP_TX;
}

char _license[] SEC("license") = "Dual BSD/GPL";
