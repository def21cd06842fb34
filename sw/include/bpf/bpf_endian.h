/* bpf/bpf_endian.h: stands in for libbpf's <bpf/bpf_endian.h>
 *   (bpf_htons, bpf_ntohs, bpf_htonl, bpf_ntohl, 64-bit forms),
 * so programs written against it build for bpfnic unchanged, with no kernel or libbpf headers.
 * The definitions are this project's own, in <bpfnic.h>. */
#include <bpfnic.h>
