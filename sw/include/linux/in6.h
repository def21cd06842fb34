/* linux/in6.h: stands in for the kernel UAPI <linux/in6.h> (struct in6_addr),
 * so programs written against it build for bpfnic unchanged, with no kernel or libbpf headers.
 * The definitions are this project's own, in <bpfnic/proto.h>. */
#include <bpfnic/proto.h>
