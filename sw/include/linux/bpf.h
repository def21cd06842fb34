/* linux/bpf.h: stands in for the kernel UAPI <linux/bpf.h>
 *   (struct xdp_md, enum xdp_action, map types, BPF_FUNC_* ids),
 * so programs written against it build for bpfnic unchanged, with no kernel or libbpf headers.
 * The definitions are this project's own, in <bpfnic/uapi.h>. */
#include <bpfnic/uapi.h>
