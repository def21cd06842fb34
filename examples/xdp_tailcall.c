/* xdp_tailcall.c: a two-stage program chained with bpf_tail_call through a program array.
 *
 * Shows: a BPF_MAP_TYPE_PROG_ARRAY whose slots hold programs (filled by the loader: slot 0 is
 * the program in section "xdp/stage2", see examples/xdp_tailcall.maps.json), a tail call from
 * SEC("xdp") that replaces the running program and never returns when it succeeds, and the
 * fall-through path when the slot is empty.
 *
 * Verdicts: stage 1 (SEC "xdp"): non-IPv4 -> XDP_PASS; IPv4 -> jump to stage 2, or XDP_DROP when
 * slot 0 is empty. Stage 2 (SEC "xdp/stage2"): IPv4 UDP -> XDP_DROP, other IPv4 -> XDP_PASS,
 * truncated IPv4 -> XDP_DROP. Both stages count the packets they see in `stage_packets`.
 * Packets (examples/pcap/xdp_tailcall.pcap): IPv4 UDP, TCP and ICMP, a truncated IPv4 header,
 * IPv6, ARP.
 */
#include <bpfnic.h>
#include <bpfnic/net.h>

enum stage {
	STAGE_PARSE = 0,
	STAGE_FILTER = 1,
};

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32)); /* program file descriptors, written by the loader */
} jmp_table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);   /* enum stage */
	__type(value, __u64); /* packets the stage has seen */
} stage_packets SEC(".maps");

static __always_inline void count_stage(__u32 stage)
{
	__u64 *packets = bpf_map_lookup_elem(&stage_packets, &stage);

	if (packets)
		__sync_fetch_and_add(packets, 1);
}

SEC("xdp")
int xdp_stage1(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	count_stage(STAGE_PARSE);
	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;

	bpf_tail_call(ctx, &jmp_table, 0);
	/* Reached only when slot 0 holds no program. */
	return XDP_DROP;
}

SEC("xdp/stage2")
int xdp_stage2(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;

	count_stage(STAGE_FILTER);
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return XDP_DROP;
	if (ip->protocol == IPPROTO_UDP)
		return XDP_DROP;
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
