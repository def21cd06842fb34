/* linux/ip.h: stands in for the kernel UAPI <linux/ip.h> (struct iphdr),
 * so programs written against it build for bpfnic unchanged, with no kernel or libbpf headers.
 * The definitions are this project's own, in <bpfnic/proto.h>. */
#include <bpfnic/proto.h>
