/* linux/udp.h: stands in for the kernel UAPI <linux/udp.h> (struct udphdr),
 * so programs written against it build for bpfnic unchanged, with no kernel or libbpf headers.
 * The definitions are this project's own, in <bpfnic/proto.h>. */
#include <bpfnic/proto.h>
