/* bpfnic.h: everything an XDP program in C needs to build for bpfnic, with no kernel headers.
 *
 * Self-contained within this include folder: the kernel ABI (fixed-width types, struct xdp_md,
 * enum xdp_action, map types and flags, helper ids) comes from <bpfnic/uapi.h>; this file adds
 * what libbpf's <bpf/bpf_helpers.h> and <bpf/bpf_endian.h> give a program: SEC(), the BTF
 * map-definition macros, helper declarations bound to their ids, bpf_printk, byte-order
 * conversions and the inlining attributes.
 *
 * Ref: Linux UAPI include/uapi/linux/bpf.h (helper signatures and ids);
 *      kernel Documentation/bpf/btf.rst (maps described by BTF in the ".maps" section);
 *      libbpf's conventions for SEC names and __uint/__type/__array map definitions.
 * Written for this project; the numbers are the kernel ABI.
 *
 * Packet headers (Ethernet, VLAN, IPv4, IPv6, UDP, TCP, ICMP) live in <bpfnic/net.h>.
 */
#ifndef BPFNIC_H
#define BPFNIC_H

#if !defined(__bpf__)
#error "bpfnic.h is for the BPF target: compile with -target bpfel (bpfnic compile does)"
#endif

#include <bpfnic/uapi.h>

#ifndef NULL
#define NULL ((void *)0)
#endif

#ifndef __bool_true_false_are_defined
#define bool _Bool
#define true 1
#define false 0
#define __bool_true_false_are_defined 1
#endif

/* ---- Sections and map definitions in libbpf's style -------------------------------------- */

/* Put a program, map or the license into the ELF section a loader looks for. */
#ifndef SEC
#define SEC(name) __attribute__((section(name), used))
#endif

/* BTF map definitions: a map in section ".maps" is a struct whose members carry the map's
 * parameters in their types (an int in an array bound, a key/value type behind a pointer), so
 * clang writes them to .BTF and the .maps section itself holds only zeros. */
#define __uint(name, val) int (*name)[val]
#define __type(name, val) __typeof__(val) *name
#define __array(name, val) __typeof__(val) *name[]
#define ___bpfnic_concat(a, b) a##b
#define ___bpfnic_concat_expanded(a, b) ___bpfnic_concat(a, b)
/* A 64-bit parameter (map_extra) needs an enum: array bounds cannot carry it. */
#define __ulong(name, val) enum { ___bpfnic_concat_expanded(__bpfnic_unique_, __COUNTER__) = (val) } name

/* ---- Attributes ---------------------------------------------------------------------------- */

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#ifndef __noinline
#define __noinline __attribute__((noinline))
#endif
#ifndef __weak
#define __weak __attribute__((weak))
#endif
#ifndef __hidden
#define __hidden __attribute__((visibility("hidden")))
#endif
#ifndef __section
#define __section(name) SEC(name)
#endif
#ifndef likely
#define likely(x) __builtin_expect(!!(x), 1)
#endif
#ifndef unlikely
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif
#ifndef offsetof
#define offsetof(type, member) __builtin_offsetof(type, member)
#endif
#ifndef ARRAY_SIZE
#define ARRAY_SIZE(array) (sizeof(array) / sizeof((array)[0]))
#endif

/* Keep the compiler from merging or hoisting a value the verifier must see checked. */
#ifndef barrier_var
#define barrier_var(var) __asm__ __volatile__("" : "+r"(var))
#endif

/* ---- Helpers: calling one of these pointers compiles to `call <id>` ----------------------- */

/* Maps */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)BPF_FUNC_map_update_elem;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_delete_elem;
static long (*bpf_map_push_elem)(void *map, const void *value, __u64 flags) = (void *)BPF_FUNC_map_push_elem;
static long (*bpf_map_pop_elem)(void *map, void *value) = (void *)BPF_FUNC_map_pop_elem;
static long (*bpf_map_peek_elem)(void *map, void *value) = (void *)BPF_FUNC_map_peek_elem;
static long (*bpf_for_each_map_elem)(void *map, void *callback_fn, void *callback_ctx, __u64 flags) = (void *)BPF_FUNC_for_each_map_elem;
static void *(*bpf_map_lookup_percpu_elem)(void *map, const void *key, __u32 cpu) = (void *)BPF_FUNC_map_lookup_percpu_elem;

/* Time, randomness, CPU */
static __u64 (*bpf_ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;
static __u64 (*bpf_ktime_get_boot_ns)(void) = (void *)BPF_FUNC_ktime_get_boot_ns;
static __u64 (*bpf_ktime_get_coarse_ns)(void) = (void *)BPF_FUNC_ktime_get_coarse_ns;
static __u64 (*bpf_ktime_get_tai_ns)(void) = (void *)BPF_FUNC_ktime_get_tai_ns;
static __u64 (*bpf_jiffies64)(void) = (void *)BPF_FUNC_jiffies64;
static __u32 (*bpf_get_prandom_u32)(void) = (void *)BPF_FUNC_get_prandom_u32;
static __u32 (*bpf_get_smp_processor_id)(void) = (void *)BPF_FUNC_get_smp_processor_id;
static long (*bpf_get_numa_node_id)(void) = (void *)BPF_FUNC_get_numa_node_id;

/* Tracing output */
static long (*bpf_trace_printk)(const char *fmt, __u32 fmt_size, ...) = (void *)BPF_FUNC_trace_printk;
static long (*bpf_snprintf)(char *str, __u32 str_size, const char *fmt, __u64 *data, __u32 data_len) = (void *)BPF_FUNC_snprintf;

/* Control flow */
static long (*bpf_tail_call)(void *ctx, void *prog_array_map, __u32 index) = (void *)BPF_FUNC_tail_call;
static long (*bpf_loop)(__u32 nr_loops, void *callback_fn, void *callback_ctx, __u64 flags) = (void *)BPF_FUNC_loop;

/* Forwarding */
static long (*bpf_redirect)(__u32 ifindex, __u64 flags) = (void *)BPF_FUNC_redirect;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)BPF_FUNC_redirect_map;
static long (*bpf_fib_lookup)(void *ctx, struct bpf_fib_lookup *params, int plen, __u32 flags) = (void *)BPF_FUNC_fib_lookup;
static long (*bpf_check_mtu)(void *ctx, __u32 ifindex, __u32 *mtu_len, __s32 len_diff, __u64 flags) = (void *)BPF_FUNC_check_mtu;

/* Packet geometry: grow (negative delta) or shrink the headroom, metadata area, or tail */
static long (*bpf_xdp_adjust_head)(struct xdp_md *xdp_md, int delta) = (void *)BPF_FUNC_xdp_adjust_head;
static long (*bpf_xdp_adjust_meta)(struct xdp_md *xdp_md, int delta) = (void *)BPF_FUNC_xdp_adjust_meta;
static long (*bpf_xdp_adjust_tail)(struct xdp_md *xdp_md, int delta) = (void *)BPF_FUNC_xdp_adjust_tail;
static __u64 (*bpf_xdp_get_buff_len)(struct xdp_md *xdp_md) = (void *)BPF_FUNC_xdp_get_buff_len;
static long (*bpf_xdp_load_bytes)(struct xdp_md *xdp_md, __u32 offset, void *buf, __u32 len) = (void *)BPF_FUNC_xdp_load_bytes;
static long (*bpf_xdp_store_bytes)(struct xdp_md *xdp_md, __u32 offset, void *buf, __u32 len) = (void *)BPF_FUNC_xdp_store_bytes;

/* Checksums: a one's-complement sum of `to` minus `from` (lengths are multiples of 4) plus seed */
static __s64 (*bpf_csum_diff)(__be32 *from, __u32 from_size, __be32 *to, __u32 to_size, __wsum seed) = (void *)BPF_FUNC_csum_diff;

/* Event output */
static long (*bpf_perf_event_output)(void *ctx, void *map, __u64 flags, void *data, __u64 size) = (void *)BPF_FUNC_perf_event_output;
static long (*bpf_xdp_output)(void *ctx, void *map, __u64 flags, void *data, __u64 size) = (void *)BPF_FUNC_xdp_output;
static long (*bpf_ringbuf_output)(void *ringbuf, void *data, __u64 size, __u64 flags) = (void *)BPF_FUNC_ringbuf_output;
static void *(*bpf_ringbuf_reserve)(void *ringbuf, __u64 size, __u64 flags) = (void *)BPF_FUNC_ringbuf_reserve;
static void (*bpf_ringbuf_submit)(void *data, __u64 flags) = (void *)BPF_FUNC_ringbuf_submit;
static void (*bpf_ringbuf_discard)(void *data, __u64 flags) = (void *)BPF_FUNC_ringbuf_discard;
static __u64 (*bpf_ringbuf_query)(void *ringbuf, __u64 flags) = (void *)BPF_FUNC_ringbuf_query;

/* Locks on a struct bpf_spin_lock inside a map value */
static long (*bpf_spin_lock)(struct bpf_spin_lock *lock) = (void *)BPF_FUNC_spin_lock;
static long (*bpf_spin_unlock)(struct bpf_spin_lock *lock) = (void *)BPF_FUNC_spin_unlock;

/* printf-style tracing to the kernel's trace pipe (at most three arguments). The format is a
 * read-only global, so it lands in .rodata, which a loader turns into a frozen array map. */
#ifndef bpf_printk
#define bpf_printk(fmt, ...)                                                         \
	({                                                                           \
		static const char ____bpfnic_fmt[] = fmt;                            \
		bpf_trace_printk(____bpfnic_fmt, sizeof(____bpfnic_fmt), ##__VA_ARGS__); \
	})
#endif

/* ---- Byte order (the packet is big-endian; bpfel is little-endian) ----------------------- */

/* __builtin_bswap* of a constant folds to a constant, so these work in case labels too. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define bpf_htons(x) ((__be16)__builtin_bswap16((__u16)(x)))
#define bpf_ntohs(x) ((__u16)__builtin_bswap16((__be16)(x)))
#define bpf_htonl(x) ((__be32)__builtin_bswap32((__u32)(x)))
#define bpf_ntohl(x) ((__u32)__builtin_bswap32((__be32)(x)))
#define bpf_cpu_to_be64(x) ((__be64)__builtin_bswap64((__u64)(x)))
#define bpf_be64_to_cpu(x) ((__u64)__builtin_bswap64((__be64)(x)))
#elif __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define bpf_htons(x) ((__be16)(x))
#define bpf_ntohs(x) ((__u16)(x))
#define bpf_htonl(x) ((__be32)(x))
#define bpf_ntohl(x) ((__u32)(x))
#define bpf_cpu_to_be64(x) ((__be64)(x))
#define bpf_be64_to_cpu(x) ((__u64)(x))
#else
#error "bpfnic.h: unknown byte order"
#endif
/* libbpf spells the constant forms separately; here they are the same macros. */
#define __bpf_constant_htons(x) bpf_htons(x)
#define __bpf_constant_ntohs(x) bpf_ntohs(x)
#define __bpf_constant_htonl(x) bpf_htonl(x)
#define __bpf_constant_ntohl(x) bpf_ntohl(x)

#endif /* BPFNIC_H */
