/* linux/in.h: stands in for the kernel UAPI <linux/in.h> (IPPROTO_*),
 * so programs written against it build for bpfnic unchanged, with no kernel or libbpf headers.
 * The definitions are this project's own, in <bpfnic/proto.h>. */
#include <bpfnic/proto.h>
