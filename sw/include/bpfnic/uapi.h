/* bpfnic/uapi.h: the kernel ABI an XDP program is written against, with no kernel headers.
 *
 * Fixed-width types, the XDP context and verdicts, map types, map and redirect flags, helper ids,
 * and the small structs some maps and helpers take.
 *
 * Ref: Linux UAPI include/uapi/linux/bpf.h (enum bpf_map_type, enum xdp_action, struct xdp_md,
 *      struct bpf_lpm_trie_key, struct bpf_devmap_val, and ___BPF_FUNC_MAPPER, where a helper's id
 *      is its position in the list); include/uapi/asm-generic/int-ll64.h (the __u8.. names).
 * The numbers are the kernel's ABI; the declarations and wording are this project's own.
 * <linux/bpf.h> and <linux/types.h> here include this file.
 */
#ifndef BPFNIC_UAPI_H
#define BPFNIC_UAPI_H

/* ---- Fixed-width types (the kernel's asm-generic/int-ll64.h names) -------------------------- */

typedef signed char __s8;
typedef unsigned char __u8;
typedef signed short __s16;
typedef unsigned short __u16;
typedef signed int __s32;
typedef unsigned int __u32;
typedef signed long long __s64;
typedef unsigned long long __u64;

/* Network-order and checksum types: plain integers; the names document intent. */
typedef __u16 __le16;
typedef __u16 __be16;
typedef __u32 __le32;
typedef __u32 __be32;
typedef __u64 __le64;
typedef __u64 __be64;
typedef __u16 __sum16;
typedef __u32 __wsum;

/* ---- The XDP context and verdicts (UAPI linux/bpf.h) ---------------------------------------- */

/* What an XDP program receives. data/data_end/data_meta are packet offsets that the kernel
 * rewrites into pointers: read them as (void *)(long)ctx->data. */
struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

enum xdp_action {
	XDP_ABORTED = 0,
	XDP_DROP = 1,
	XDP_PASS = 2,
	XDP_TX = 3,
	XDP_REDIRECT = 4,
};

enum bpf_map_type {
	BPF_MAP_TYPE_UNSPEC = 0,
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PROG_ARRAY = 3,
	BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4,
	BPF_MAP_TYPE_PERCPU_HASH = 5,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_STACK_TRACE = 7,
	BPF_MAP_TYPE_CGROUP_ARRAY = 8,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_LRU_PERCPU_HASH = 10,
	BPF_MAP_TYPE_LPM_TRIE = 11,
	BPF_MAP_TYPE_ARRAY_OF_MAPS = 12,
	BPF_MAP_TYPE_HASH_OF_MAPS = 13,
	BPF_MAP_TYPE_DEVMAP = 14,
	BPF_MAP_TYPE_SOCKMAP = 15,
	BPF_MAP_TYPE_CPUMAP = 16,
	BPF_MAP_TYPE_XSKMAP = 17,
	BPF_MAP_TYPE_SOCKHASH = 18,
	BPF_MAP_TYPE_CGROUP_STORAGE = 19,
	BPF_MAP_TYPE_REUSEPORT_SOCKARRAY = 20,
	BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE = 21,
	BPF_MAP_TYPE_QUEUE = 22,
	BPF_MAP_TYPE_STACK = 23,
	BPF_MAP_TYPE_SK_STORAGE = 24,
	BPF_MAP_TYPE_DEVMAP_HASH = 25,
	BPF_MAP_TYPE_STRUCT_OPS = 26,
	BPF_MAP_TYPE_RINGBUF = 27,
	BPF_MAP_TYPE_INODE_STORAGE = 28,
	BPF_MAP_TYPE_TASK_STORAGE = 29,
	BPF_MAP_TYPE_BLOOM_FILTER = 30,
	BPF_MAP_TYPE_USER_RINGBUF = 31,
};

/* Flags of bpf_map_update_elem. */
enum {
	BPF_ANY = 0,     /* create or update */
	BPF_NOEXIST = 1, /* create only */
	BPF_EXIST = 2,   /* update only */
	BPF_F_LOCK = 4,  /* update under the value's bpf_spin_lock */
};

/* Flags of map creation (the map_flags field of a map definition). */
enum {
	BPF_F_NO_PREALLOC = (1U << 0),
	BPF_F_NO_COMMON_LRU = (1U << 1),
	BPF_F_NUMA_NODE = (1U << 2),
	BPF_F_RDONLY = (1U << 3),
	BPF_F_WRONLY = (1U << 4),
	BPF_F_RDONLY_PROG = (1U << 7),
	BPF_F_WRONLY_PROG = (1U << 8),
	BPF_F_MMAPABLE = (1U << 10),
	BPF_F_INNER_MAP = (1U << 12),
};

/* Flags of bpf_redirect / bpf_redirect_map and of the perf-event output helpers. */
#define BPF_F_INGRESS (1ULL << 0)
#define BPF_F_BROADCAST (1ULL << 3)
#define BPF_F_EXCLUDE_INGRESS (1ULL << 4)
#define BPF_F_INDEX_MASK 0xffffffffULL
#define BPF_F_CURRENT_CPU BPF_F_INDEX_MASK

/* Key of a BPF_MAP_TYPE_LPM_TRIE: the prefix length in bits, then the address bytes. */
struct bpf_lpm_trie_key {
	__u32 prefixlen;
	__u8 data[0];
};

/* Value of a devmap entry when the map is declared with this value type. */
struct bpf_devmap_val {
	__u32 ifindex;
	union {
		int fd;
		__u32 id;
	} bpf_prog;
};

/* Helper ids used by XDP programs (the kernel numbers all helpers; these are the ones XDP may call
 * and bpfnic.h declares). A call instruction's immediate is the id. */
enum bpf_func_id {
	BPF_FUNC_unspec = 0,
	BPF_FUNC_map_lookup_elem = 1,
	BPF_FUNC_map_update_elem = 2,
	BPF_FUNC_map_delete_elem = 3,
	BPF_FUNC_ktime_get_ns = 5,
	BPF_FUNC_trace_printk = 6,
	BPF_FUNC_get_prandom_u32 = 7,
	BPF_FUNC_get_smp_processor_id = 8,
	BPF_FUNC_tail_call = 12,
	BPF_FUNC_redirect = 23,
	BPF_FUNC_perf_event_output = 25,
	BPF_FUNC_csum_diff = 28,
	BPF_FUNC_get_numa_node_id = 42,
	BPF_FUNC_xdp_adjust_head = 44,
	BPF_FUNC_redirect_map = 51,
	BPF_FUNC_xdp_adjust_meta = 54,
	BPF_FUNC_xdp_adjust_tail = 65,
	BPF_FUNC_fib_lookup = 69,
	BPF_FUNC_map_push_elem = 87,
	BPF_FUNC_map_pop_elem = 88,
	BPF_FUNC_map_peek_elem = 89,
	BPF_FUNC_spin_lock = 93,
	BPF_FUNC_spin_unlock = 94,
	BPF_FUNC_jiffies64 = 118,
	BPF_FUNC_xdp_output = 121,
	BPF_FUNC_ktime_get_boot_ns = 125,
	BPF_FUNC_ringbuf_output = 130,
	BPF_FUNC_ringbuf_reserve = 131,
	BPF_FUNC_ringbuf_submit = 132,
	BPF_FUNC_ringbuf_discard = 133,
	BPF_FUNC_ringbuf_query = 134,
	BPF_FUNC_ktime_get_coarse_ns = 160,
	BPF_FUNC_check_mtu = 163,
	BPF_FUNC_for_each_map_elem = 164,
	BPF_FUNC_snprintf = 165,
	BPF_FUNC_loop = 181,
	BPF_FUNC_xdp_get_buff_len = 188,
	BPF_FUNC_xdp_load_bytes = 189,
	BPF_FUNC_xdp_store_bytes = 190,
	BPF_FUNC_map_lookup_percpu_elem = 195,
	BPF_FUNC_ktime_get_tai_ns = 208,
};

/* Opaque types some helpers take; a program uses them only through pointers. */
struct bpf_spin_lock {
	__u32 val;
};
struct bpf_fib_lookup;

#endif /* BPFNIC_UAPI_H */
