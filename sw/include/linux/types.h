/* linux/types.h: stands in for the kernel UAPI <linux/types.h>
 *   (__u8.. __u64, __be16, __be32, __sum16, __wsum),
 * so programs written against it build for bpfnic unchanged, with no kernel or libbpf headers.
 * The definitions are this project's own, in <bpfnic/uapi.h>. */
#include <bpfnic/uapi.h>
