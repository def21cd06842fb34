/* xdp_calls.c: bpf-to-bpf calls and global data.
 *
 * Shows: subprograms kept as real calls with __attribute__((noinline)) (call instructions with
 * src_reg 1 and R_BPF_64_32 relocations into .text), packet pointers passed to a subprogram,
 * a `const volatile` configuration in .rodata that a loader may patch before loading, and
 * counters in .bss, both reached through 64-bit loads of the section's address
 * (R_BPF_64_64 relocations against .rodata and .bss).
 *
 * Verdicts: IPv4 whose header checksum is wrong -> XDP_DROP; IPv4 UDP to the configured
 * `blocked_udp_port` (9, discard) -> XDP_DROP; IPv4 with TTL below `min_ttl` (2) -> XDP_DROP;
 * other IPv4, and all non-IPv4 -> XDP_PASS; truncated IPv4 -> XDP_DROP.
 * Packets (examples/pcap/xdp_calls.pcap): good IPv4 UDP/TCP, UDP to port 9, a corrupted
 * header checksum, TTL 1, IPv4 with options, a truncated header, IPv6, ARP.
 * The .bss counters count packets seen, dropped and by reason.
 */
#include <bpfnic.h>
#include <bpfnic/net.h>

/* Configuration: read-only to the program; a loader may rewrite it before loading. */
const volatile __u16 blocked_udp_port = 9;
const volatile __u8 min_ttl = 2;

/* Counters in .bss (zero-initialised global data). */
__u64 packets_seen;
__u64 packets_dropped;
__u64 drops_by_reason[3];

enum drop_reason {
	DROP_BAD_CHECKSUM = 0,
	DROP_BLOCKED_PORT = 1,
	DROP_LOW_TTL = 2,
};

static __noinline void count(__u64 *counter)
{
	__sync_fetch_and_add(counter, 1);
}

static __noinline int drop(enum drop_reason reason)
{
	count(&packets_dropped);
	if (reason < ARRAY_SIZE(drops_by_reason))
		count(&drops_by_reason[reason]);
	return XDP_DROP;
}

/* One's-complement sum over the whole header (options too), check field included:
 * a header is intact when the folded sum is 0xffff (RFC 1071 section 1). */
static __noinline bool ipv4_checksum_ok(struct iphdr *ip, void *data_end)
{
	__u16 *word = (__u16 *)ip;
	__u32 words = ip->ihl * 2;
	__u64 sum = 0;

	for (__u32 i = 0; i < 30; i++) { /* 30 words: the 60-octet longest header */
		if (i >= words)
			break;
		if ((void *)(word + i + 1) > data_end)
			return false;
		sum += word[i];
	}
	return ip_csum_fold(sum) == 0;
}

/* The transport destination port, or 0 when the header is missing or truncated. */
static __noinline __u16 udp_destination_port(struct iphdr *ip, void *data_end)
{
	struct udphdr *udp = (void *)ip + ip->ihl * 4;

	if (ip->protocol != IPPROTO_UDP || ipv4_is_later_fragment(ip))
		return 0;
	if ((void *)(udp + 1) > data_end)
		return 0;
	return bpf_ntohs(udp->dest);
}

SEC("xdp")
int xdp_calls(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u16 udp_port;

	count(&packets_seen);
	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->ihl < 5)
		return XDP_DROP;

	if (!ipv4_checksum_ok(ip, data_end))
		return drop(DROP_BAD_CHECKSUM);
	udp_port = udp_destination_port(ip, data_end);
	if (udp_port != 0 && udp_port == blocked_udp_port)
		return drop(DROP_BLOCKED_PORT);
	if (ip->ttl < min_ttl)
		return drop(DROP_LOW_TTL);
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
