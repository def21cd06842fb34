/* bpfnic/proto.h: packet header layouts under the names the Linux UAPI headers give them.
 *
 * struct ethhdr, iphdr, ipv6hdr (with struct in6_addr), udphdr, tcphdr, icmphdr, and the
 * EtherType (ETH_P_*) and IP protocol (IPPROTO_*) numbers. <linux/if_ether.h>, <linux/ip.h>,
 * <linux/ipv6.h>, <linux/in.h>, <linux/in6.h>, <linux/udp.h>, <linux/tcp.h> and <linux/icmp.h>
 * here include this file, so programs written against those headers build unchanged.
 * Multi-byte fields are in network byte order: compare them with bpf_htons()/bpf_htonl().
 *
 * Ref: IEEE 802.3 clause 3.2 (MAC frame), IEEE 802.1Q clause 9.5 (tag EtherTypes);
 *      RFC 791 section 3.1 (IPv4 header), RFC 8200 section 3 (IPv6 header),
 *      RFC 768 (UDP header), RFC 9293 section 3.1 (TCP header), RFC 792 (ICMP);
 *      IANA "Protocol Numbers" and "IEEE 802 Numbers" registries; field names from the Linux
 *      UAPI headers listed above. Written for this project.
 */
#ifndef BPFNIC_PROTO_H
#define BPFNIC_PROTO_H

#include <bpfnic/uapi.h>

/* ---- Ethernet (IEEE 802.3) ---------------------------------------------------------------- */

#define ETH_ALEN 6          /* octets in a MAC address */
#define ETH_TLEN 2          /* octets in the EtherType */
#define ETH_HLEN 14         /* octets in the header: two addresses and the EtherType */
#define ETH_ZLEN 60         /* shortest frame without the FCS */
#define ETH_DATA_LEN 1500   /* largest payload */
#define ETH_FRAME_LEN 1514  /* largest frame without the FCS */
#define ETH_FCS_LEN 4

#define ETH_P_IP 0x0800     /* IPv4 */
#define ETH_P_ARP 0x0806    /* ARP */
#define ETH_P_8021Q 0x8100  /* 802.1Q VLAN tag (C-tag) */
#define ETH_P_IPV6 0x86DD   /* IPv6 */
#define ETH_P_MPLS_UC 0x8847
#define ETH_P_8021AD 0x88A8 /* 802.1ad service tag (S-tag, QinQ) */
#define ETH_P_LLDP 0x88CC
#define ETH_P_QINQ1 0x9100  /* pre-standard QinQ tag, still seen on the wire */

struct ethhdr {
	unsigned char h_dest[ETH_ALEN];
	unsigned char h_source[ETH_ALEN];
	__be16 h_proto;
} __attribute__((packed));

/* ---- IP protocol numbers (IANA) ------------------------------------------------------------ */

#define IPPROTO_IP 0
#define IPPROTO_ICMP 1
#define IPPROTO_IGMP 2
#define IPPROTO_IPIP 4      /* IPv4 in IPv4 (RFC 2003) */
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_IPV6 41
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_GRE 47
#define IPPROTO_ESP 50
#define IPPROTO_AH 51
#define IPPROTO_ICMPV6 58
#define IPPROTO_NONE 59
#define IPPROTO_DSTOPTS 60
#define IPPROTO_SCTP 132
#define IPPROTO_RAW 255

/* ---- IPv4 (RFC 791) ------------------------------------------------------------------------ */

/* Bit-fields share a byte in the order the target numbers bits: on a little-endian target
 * the first-declared field is the low nibble, which is IHL in the IPv4 first byte. */
struct iphdr {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	__u8 ihl : 4,     /* header length in 32-bit words, 5..15 */
	     version : 4; /* 4 */
#else
	__u8 version : 4,
	     ihl : 4;
#endif
	__u8 tos;
	__be16 tot_len;   /* header and payload, in octets */
	__be16 id;
	__be16 frag_off;  /* flags (reserved, DF, MF) and fragment offset in 8-octet units */
	__u8 ttl;
	__u8 protocol;
	__sum16 check;    /* one's complement of the one's-complement sum of the header */
	__be32 saddr;
	__be32 daddr;
};

/* ---- IPv6 (RFC 8200) ----------------------------------------------------------------------- */

struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__be16 u6_addr16[8];
		__be32 u6_addr32[4];
	} in6_u;
};
#define s6_addr in6_u.u6_addr8
#define s6_addr16 in6_u.u6_addr16
#define s6_addr32 in6_u.u6_addr32

struct ipv6hdr {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	__u8 priority : 4, /* high nibble of the traffic class */
	     version : 4;  /* 6 */
#else
	__u8 version : 4,
	     priority : 4;
#endif
	__u8 flow_lbl[3];  /* low nibble of the traffic class, then the 20-bit flow label */
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	struct in6_addr saddr;
	struct in6_addr daddr;
};

/* ---- UDP (RFC 768) ------------------------------------------------------------------------- */

struct udphdr {
	__be16 source;
	__be16 dest;
	__be16 len;   /* header and payload, in octets */
	__sum16 check;
};

/* ---- TCP (RFC 9293) ------------------------------------------------------------------------ */

struct tcphdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	__u16 res1 : 4,
	      doff : 4, /* header length in 32-bit words, 5..15 */
	      fin : 1,
	      syn : 1,
	      rst : 1,
	      psh : 1,
	      ack : 1,
	      urg : 1,
	      ece : 1,
	      cwr : 1;
#else
	__u16 doff : 4,
	      res1 : 4,
	      cwr : 1,
	      ece : 1,
	      urg : 1,
	      ack : 1,
	      psh : 1,
	      rst : 1,
	      syn : 1,
	      fin : 1;
#endif
	__be16 window;
	__sum16 check;
	__be16 urg_ptr;
};

/* ---- ICMP (RFC 792) ------------------------------------------------------------------------ */

#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_REDIRECT 5
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11

struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	union {
		struct {
			__be16 id;
			__be16 sequence;
		} echo;
		__be32 gateway;
		struct {
			__be16 __unused;
			__be16 mtu;
		} frag;
		__u8 reserved[4];
	} un;
};

#endif /* BPFNIC_PROTO_H */
