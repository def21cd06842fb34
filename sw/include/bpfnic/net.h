/* bpfnic/net.h: packet headers and checksum arithmetic for bpfnic's XDP programs.
 *
 * The UAPI-named headers of <bpfnic/proto.h> (Ethernet, IPv4, IPv6, UDP, TCP, ICMP), plus what
 * the UAPI headers leave to each program: the 802.1Q tag, the IPv4 fragment bits, and the
 * Internet checksum arithmetic (folding a wide sum, the incremental update of one word).
 *
 * Ref: IEEE 802.1Q clause 9.6 (VLAN tag: PCP, DEI, VID); RFC 791 section 3.1 (flags, fragment
 *      offset, header checksum); RFC 1071 section 2 (the one's-complement sum, its folding and
 *      byte-order independence);
 *      RFC 1624 section 3 (incremental update: HC' = ~(~HC + ~m + m')). Written for this project.
 */
#ifndef BPFNIC_NET_H
#define BPFNIC_NET_H

#include <bpfnic.h>
#include <bpfnic/proto.h>

/* ---- IEEE 802.1Q tag: sits between the source MAC and the EtherType ------------------------ */

#define VLAN_HLEN 4
#define VLAN_VID_MASK 0x0fff   /* VLAN identifier */
#define VLAN_DEI_MASK 0x1000   /* drop eligible indicator */
#define VLAN_PRIO_MASK 0xe000  /* priority code point */
#define VLAN_PRIO_SHIFT 13

struct vlan_hdr {
	__be16 h_vlan_TCI;                /* PCP(3) DEI(1) VID(12) */
	__be16 h_vlan_encapsulated_proto; /* the EtherType that follows the tag */
};

/* True for the EtherTypes that announce another tag rather than a payload. */
static __always_inline bool eth_type_is_vlan(__be16 h_proto)
{
	return h_proto == bpf_htons(ETH_P_8021Q) || h_proto == bpf_htons(ETH_P_8021AD) ||
	       h_proto == bpf_htons(ETH_P_QINQ1);
}

/* ---- IPv4 fragment field (RFC 791 section 3.1) -------------------------------------------- */

#define IP_CE 0x8000     /* reserved bit, must be zero */
#define IP_DF 0x4000     /* don't fragment */
#define IP_MF 0x2000     /* more fragments */
#define IP_OFFSET 0x1fff /* fragment offset, in 8-octet units */

/* A later fragment carries no transport header; the first one has offset 0. */
static __always_inline bool ipv4_is_later_fragment(const struct iphdr *ip)
{
	return (ip->frag_off & bpf_htons(IP_OFFSET)) != 0;
}

/* ---- Internet checksum (RFC 1071, RFC 1624) ---------------------------------------------- */

/* Fold a wide sum of 16-bit words to 16 bits with end-around carries and complement it: the
 * checksum field value. Each fold may carry once more, hence the repeats. Words summed in
 * memory order give the field in memory order (RFC 1071 section 2(B)), so no swaps are needed. */
static __always_inline __sum16 ip_csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__sum16)~sum;
}

/* RFC 1624 eqn. 3: after a 16-bit word of the covered data changes from old to new, the
 * checksum becomes ~(~HC + ~old + new). Summing in 32 bits and folding keeps the end-around
 * carries; eqn. 3 avoids the wrong -0 result of RFC 1141's form (RFC 1624 section 3). */
static __always_inline void ip_csum_replace16(__sum16 *check, __be16 old_word, __be16 new_word)
{
	__u32 sum = (__u16)~*check;

	sum += (__u16)~old_word;
	sum += new_word;
	*check = ip_csum_fold(sum);
}

#endif /* BPFNIC_NET_H */
