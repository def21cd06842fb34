/* linux/if_ether.h: stands in for the kernel UAPI <linux/if_ether.h>
 *   (struct ethhdr, ETH_ALEN, ETH_HLEN, ETH_P_*),
 * so programs written against it build for bpfnic unchanged, with no kernel or libbpf headers.
 * The definitions are this project's own, in <bpfnic/proto.h>. */
#include <bpfnic/proto.h>
