// bpfnic: mcpu=v4
/* xdp_atomic.c: atomic read-modify-write operations on map values shared by all CPUs.
 *
 * Shows: the BPF atomic operations as the compiler emits them from the __sync builtins, in
 * 64-bit and 32-bit widths: fetch-and-add (BPF_ADD | BPF_FETCH; from v3 on clang uses the
 * fetching form even when the old value is unused), fetch-and-or/and/xor, exchange (BPF_XCHG)
 * and compare-and-exchange (BPF_CMPXCHG, old value in r0), on an array value and on a hash
 * value created on first sight. It is built with -mcpu=v4 (line 1 says so), which also brings
 * instructions only v4 has: a sign-extending load from the packet (ldsx), signed division
 * (sdiv) and the unconditional byte swap (bswap).
 *
 * Verdicts: frames of at most 128 octets -> XDP_PASS, longer ones -> XDP_DROP, after the
 * statistics are updated; a frame shorter than an Ethernet header -> XDP_DROP.
 * Packets (examples/pcap/xdp_atomic.pcap): IPv4 UDP/TCP/ICMP of several sizes, IPv6, ARP;
 * the maps afterwards are the thing to compare.
 */
#include <bpfnic.h>
#include <bpfnic/net.h>

#define SMALL_FRAME_LIMIT 128

struct frame_stats {
	__u64 packets;           /* fetch-and-add, old value used */
	__u64 bytes;             /* fetch-and-add, old value unused */
	__u64 ethertypes_seen;   /* fetch-and-or of a bit per EtherType class */
	__u64 and_mask;          /* fetch-and-and: the bits every frame's length has */
	__u64 xor_of_lengths;    /* fetch-and-xor */
	__u64 last_length;       /* exchange */
	__u64 first_length;      /* compare-and-exchange from 0, so only the first frame sets it */
	__s64 mean_length_delta; /* signed: (this length - previous length) / packets */
	__u32 packets32;         /* 32-bit fetch-and-add */
	__u32 last_first_byte32; /* 32-bit exchange */
	__s32 first_byte_signed; /* a sign-extended packet byte */
	__u32 cmpxchg_failures32;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct frame_stats);
} stats SEC(".maps");

/* Octets per EtherType, created on the first frame of a type. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);   /* EtherType, host byte order */
	__type(value, __u64); /* octets */
} bytes_by_ethertype SEC(".maps");

static __always_inline __u64 ethertype_class_bit(__u16 ethertype)
{
	switch (ethertype) {
	case ETH_P_IP:
		return 1 << 0;
	case ETH_P_IPV6:
		return 1 << 1;
	case ETH_P_ARP:
		return 1 << 2;
	default:
		return 1 << 3;
	}
}

SEC("xdp")
int xdp_atomic(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct frame_stats *s;
	__u64 zero_octets = 0;
	__u64 length, previous_packets, previous_length;
	__u32 key = 0, ethertype, first_byte;
	__s8 signed_first_byte;
	__u64 *octets;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	length = data_end - data;
	ethertype = bpf_ntohs(eth->h_proto);
	first_byte = ((__u8 *)data)[0];
	signed_first_byte = *(volatile __s8 *)data;

	s = bpf_map_lookup_elem(&stats, &key);
	if (!s)
		return XDP_ABORTED;

	previous_packets = __sync_fetch_and_add(&s->packets, 1);
	__sync_fetch_and_add(&s->bytes, length);
	__sync_fetch_and_or(&s->ethertypes_seen, ethertype_class_bit(ethertype));
	__sync_fetch_and_xor(&s->xor_of_lengths, length);
	previous_length = __sync_lock_test_and_set(&s->last_length, length);
	/* The frame that finds first_length still 0 is the first: it seeds and_mask. */
	if (__sync_val_compare_and_swap(&s->first_length, 0, length) == 0)
		__sync_lock_test_and_set(&s->and_mask, length);
	else
		__sync_fetch_and_and(&s->and_mask, length);
	if (previous_packets > 0) {
		__s64 delta = (__s64)length - (__s64)previous_length;

		/* Signed division: v4 only (sdiv); clang refuses it for v1..v3. */
		s->mean_length_delta = delta / (__s64)(previous_packets + 1);
	}

	__sync_fetch_and_add(&s->packets32, 1);
	__sync_lock_test_and_set(&s->last_first_byte32, first_byte);
	s->first_byte_signed = signed_first_byte; /* loaded with ldsx under v4 */
	if (__sync_val_compare_and_swap(&s->packets32, 0, 1) != 0)
		__sync_fetch_and_add(&s->cmpxchg_failures32, 1);

	octets = bpf_map_lookup_elem(&bytes_by_ethertype, &ethertype);
	if (!octets) {
		/* Two CPUs may race to create it: BPF_NOEXIST lets only one win, both then add. */
		bpf_map_update_elem(&bytes_by_ethertype, &ethertype, &zero_octets, BPF_NOEXIST);
		octets = bpf_map_lookup_elem(&bytes_by_ethertype, &ethertype);
		if (!octets)
			return XDP_ABORTED;
	}
	__sync_fetch_and_add(octets, length);

	return length <= SMALL_FRAME_LIMIT ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "Dual BSD/GPL";
