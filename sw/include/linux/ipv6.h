/* linux/ipv6.h: stands in for the kernel UAPI <linux/ipv6.h> (struct ipv6hdr),
 * so programs written against it build for bpfnic unchanged, with no kernel or libbpf headers.
 * The definitions are this project's own, in <bpfnic/proto.h>. */
#include <bpfnic/proto.h>
