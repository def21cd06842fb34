/* bpf/bpf_helpers.h: stands in for libbpf's <bpf/bpf_helpers.h>
 *   (SEC, __uint/__type/__array, helpers, bpf_printk),
 * so programs written against it build for bpfnic unchanged, with no kernel or libbpf headers.
 * The definitions are this project's own, in <bpfnic.h>. */
#include <bpfnic.h>
