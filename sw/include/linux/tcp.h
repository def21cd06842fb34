/* linux/tcp.h: stands in for the kernel UAPI <linux/tcp.h> (struct tcphdr),
 * so programs written against it build for bpfnic unchanged, with no kernel or libbpf headers.
 * The definitions are this project's own, in <bpfnic/proto.h>. */
#include <bpfnic/proto.h>
