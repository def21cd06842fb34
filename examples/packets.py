"""Test packets and suggested map contents for the XDP examples in this folder.

For each example `NAME.c` there is a function `NAME_packets()` returning its test frames, built
with scapy, one for each branch of the program (blocked/allowed, routed/no route/TTL expiry,
truncated headers, IPv6, ARP...), each with a description of what it exercises; and, where the
program needs map entries to do anything interesting, `NAME_maps()` returning them in the
map-init format `{"maps": {"<map name>": {"<key hex>": "<value hex>"}}}`: raw key and value
bytes in memory order (the BPF target is little-endian; packet fields stay in network order)
as lowercase hex. A program-array value names the section of the program to put in the slot.

Frames are Ethernet II without the FCS. Whole frames are padded to the 60-octet minimum as a
MAC delivers them; deliberately truncated ones are not. None is shorter than an Ethernet
header, because the kernel's BPF_PROG_TEST_RUN refuses such input.

Run `python examples/packets.py [FOLDER]` to write `FOLDER/pcap/NAME.pcap` and
`FOLDER/NAME.maps.json` (FOLDER defaults to this file's folder). Output is deterministic, so the
committed files can be checked against a fresh run.

Ref: IEEE 802.3 clause 3 (frame, minimum size), IEEE 802.1Q (VLAN tags), RFC 791 (IPv4),
RFC 8200 (IPv6), RFC 768 (UDP), RFC 9293 (TCP), RFC 792 (ICMP), RFC 826 (ARP);
the pcap file format (draft-ietf-opsawg-pcap), LINKTYPE_ETHERNET.
"""

from __future__ import annotations

import ipaddress
import json
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_Router_Alert
from scapy.layers.inet6 import IPv6, ICMPv6EchoRequest
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import Packet, Padding, Raw
from scapy.utils import wrpcap

EXAMPLES_DIR = Path(__file__).resolve().parent
ETH_MIN_FRAME = 60  # octets without the FCS (IEEE 802.3 clause 4.4.2)
ETH_HEADER = 14
IPV4_HEADER = 20

# Addresses from the documentation ranges (RFC 5737, RFC 3849) and locally administered MACs.
HOST_MAC = "02:00:00:00:00:01"
NIC_MAC = "02:00:00:00:00:02"
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
CLIENT_IP = "192.0.2.10"
SERVER_IP = "198.51.100.20"
CLIENT_IP6 = "2001:db8::10"
SERVER_IP6 = "2001:db8::20"
PCAP_EPOCH = 1_700_000_000  # fixed timestamps keep the pcaps byte-for-byte reproducible

IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP = 1, 6, 17


@dataclass(frozen=True)
class ExamplePacket:
    """One test frame and the branch of the program it exercises."""

    description: str
    packet: Packet

    @property
    def data(self) -> bytes:
        return bytes(self.packet)


# ---- frame builders ------------------------------------------------------------------------


def _padded(packet: Packet) -> Packet:
    """The frame as a MAC delivers it: at least 60 octets."""
    short_by = ETH_MIN_FRAME - len(packet)
    return packet / Padding(b"\x00" * short_by) if short_by > 0 else packet


def _truncated(packet: Packet, length: int) -> Packet:
    """The first `length` octets of a frame, dissected again (scapy keeps the raw bytes)."""
    data = bytes(packet)
    if not ETH_HEADER <= length < len(data):
        raise ValueError(f"cannot truncate a {len(data)}-octet frame to {length} octets")
    return Ether(data[:length])


def _ether(src: str = HOST_MAC, dst: str = NIC_MAC) -> Ether:
    return Ether(src=src, dst=dst)


def _ipv4(src: str = CLIENT_IP, dst: str = SERVER_IP, **fields) -> IP:
    fields.setdefault("ttl", 64)
    fields.setdefault("id", 0x1234)
    return IP(src=src, dst=dst, **fields)


def udp4(src: str = CLIENT_IP, dst: str = SERVER_IP, sport: int = 40000, dport: int = 53,
         payload: bytes = b"query", **ip_fields) -> Packet:
    return _padded(_ether() / _ipv4(src, dst, **ip_fields) / UDP(sport=sport, dport=dport) / Raw(payload))


def tcp4(src: str = CLIENT_IP, dst: str = SERVER_IP, sport: int = 40001, dport: int = 80,
         payload: bytes = b"", **ip_fields) -> Packet:
    segment = TCP(sport=sport, dport=dport, seq=1000, flags="S", window=65535)
    return _padded(_ether() / _ipv4(src, dst, **ip_fields) / segment / Raw(payload))


def icmp4(src: str = CLIENT_IP, dst: str = SERVER_IP, **ip_fields) -> Packet:
    return _padded(_ether() / _ipv4(src, dst, **ip_fields) / ICMP(type=8, id=7, seq=1) / Raw(b"ping"))


def udp6(dport: int = 53) -> Packet:
    return _padded(_ether() / IPv6(src=CLIENT_IP6, dst=SERVER_IP6, hlim=64)
                   / UDP(sport=40000, dport=dport) / Raw(b"query6"))


def icmp6() -> Packet:
    return _padded(_ether() / IPv6(src=CLIENT_IP6, dst=SERVER_IP6, hlim=64)
                   / ICMPv6EchoRequest(id=7, seq=1))


def arp_request() -> Packet:
    return _padded(
        Ether(src=HOST_MAC, dst=BROADCAST_MAC)
        / ARP(op=1, hwsrc=HOST_MAC, psrc=CLIENT_IP, hwdst="00:00:00:00:00:00", pdst=SERVER_IP)
    )


def truncated_ipv4_header() -> Packet:
    """EtherType IPv4 but only 10 octets of the 20-octet header."""
    return _truncated(udp4(), ETH_HEADER + 10)


def vlan_tagged(inner: Packet, vids: list[int]) -> Packet:
    """`inner` (an Ether frame) with 802.1Q tags inserted, outermost first; an outer tag of a
    stack of two or more is an 802.1ad S-tag, as in QinQ."""
    payload = inner.payload.copy()
    padding = payload.getlayer(Padding)
    if padding is not None:  # re-padded below, after the tags
        padding.underlayer.remove_payload()
    frame = Ether(src=inner.src, dst=inner.dst)
    tags: Packet | None = None
    for index, vid in enumerate(vids):
        tag = Dot1AD(vlan=vid) if index == 0 and len(vids) > 1 else Dot1Q(vlan=vid)
        tags = tag if tags is None else tags / tag
    return _padded(frame / tags / payload)


# ---- per-example packets and maps ------------------------------------------------------------


def _any_traffic() -> list[ExamplePacket]:
    return [
        ExamplePacket("IPv4 UDP", udp4()),
        ExamplePacket("IPv4 TCP SYN", tcp4()),
        ExamplePacket("IPv4 ICMP echo request", icmp4()),
        ExamplePacket("IPv6 UDP", udp6()),
        ExamplePacket("ARP request", arp_request()),
        ExamplePacket("full-size IPv4 UDP (1514 octets)", udp4(payload=bytes(range(256)) * 5 + bytes(192))),
        ExamplePacket("bare Ethernet header, unknown EtherType", Ether(src=HOST_MAC, dst=NIC_MAC, type=0x88B5)),
    ]


def xdp_drop_packets() -> list[ExamplePacket]:
    return _any_traffic()


def xdp_pass_packets() -> list[ExamplePacket]:
    return _any_traffic()


def xdp_macswap_packets() -> list[ExamplePacket]:
    return _any_traffic() + [
        ExamplePacket("802.1Q-tagged IPv4 UDP", vlan_tagged(udp4(), [100])),
    ]


# The firewall's rules: (source address, destination port, IP protocol); port 0 = any port.
FIREWALL_BLOCKED = [
    ("192.0.2.66", 53, IPPROTO_UDP),
    ("192.0.2.66", 22, IPPROTO_TCP),
    ("198.51.100.7", 0, IPPROTO_ICMP),
]
BLOCKED_SOURCE = "192.0.2.66"


def xdp_firewall_packets() -> list[ExamplePacket]:
    return [
        ExamplePacket("UDP from a blocked source to its blocked port 53: drop",
                      udp4(src=BLOCKED_SOURCE, dport=53)),
        ExamplePacket("UDP from the blocked source to port 123: pass", udp4(src=BLOCKED_SOURCE, dport=123)),
        ExamplePacket("UDP to port 53 from an allowed source: pass", udp4(src=CLIENT_IP, dport=53)),
        ExamplePacket("TCP from the blocked source to its blocked port 22: drop",
                      tcp4(src=BLOCKED_SOURCE, dport=22)),
        ExamplePacket("TCP from the blocked source to port 80: pass", tcp4(src=BLOCKED_SOURCE, dport=80)),
        ExamplePacket("TCP to port 53 from the source whose UDP 53 is blocked: pass",
                      tcp4(src=BLOCKED_SOURCE, dport=53)),
        ExamplePacket("ICMP from a source whose ICMP is blocked: drop", icmp4(src="198.51.100.7")),
        ExamplePacket("ICMP from another source: pass", icmp4(src=BLOCKED_SOURCE)),
        ExamplePacket("IPv4 with options (IHL 6), UDP to a blocked port: drop",
                      udp4(src=BLOCKED_SOURCE, dport=53, options=[IPOption_Router_Alert()])),
        ExamplePacket("later fragment from the blocked source (no UDP header, port 0): pass",
                      _padded(_ether() / _ipv4(BLOCKED_SOURCE, SERVER_IP, proto=IPPROTO_UDP, frag=185)
                              / Raw(b"\x00\x35" * 8))),
        ExamplePacket("truncated IPv4 header: drop", truncated_ipv4_header()),
        ExamplePacket("IPv4 header complete, TCP header cut at 10 octets: drop",
                      _truncated(tcp4(src=CLIENT_IP, dport=80), ETH_HEADER + IPV4_HEADER + 10)),
        ExamplePacket("IHL 4, less than the minimum 5: drop", udp4(ihl=4)),
        ExamplePacket("IPv6 UDP to port 53: pass", udp6()),
        ExamplePacket("ARP request: pass", arp_request()),
    ]


def xdp_firewall_maps() -> dict:
    blocked = {}
    for source, port, protocol in FIREWALL_BLOCKED:
        key = ipaddress.IPv4Address(source).packed + struct.pack("!H", port) + bytes([protocol, 0])
        blocked[key.hex()] = struct.pack("<Q", 0).hex()  # the rule's hit counter starts at 0
    return {"maps": {"blocked": blocked}}


# The router's table: prefix -> (next-hop MAC, egress port MAC, egress port index).
ROUTES = [
    ("10.0.0.0/8", "02:00:00:00:0a:01", "02:00:00:00:e0:00", 0),
    ("10.1.2.0/24", "02:00:00:00:0a:02", "02:00:00:00:e0:01", 1),
    ("10.1.2.3/32", "02:00:00:00:0a:03", "02:00:00:00:e0:02", 2),
    ("172.16.0.0/12", "02:00:00:00:0a:04", "02:00:00:00:e0:03", 3),  # port 3 is not in the devmap
]
# Egress port index -> ifindex. 1 is the loopback device, which exists everywhere, so the
# kernel's devmap accepts these entries when the program is run there for comparison.
EGRESS_PORTS = {0: 1, 1: 1, 2: 1}


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(octet, 16) for octet in mac.split(":"))


def xdp_router_packets() -> list[ExamplePacket]:
    return [
        ExamplePacket("to 10.9.9.9, the /8 route, port 0: redirect, TTL 63", udp4(dst="10.9.9.9")),
        ExamplePacket("to 10.1.2.77, the /24 route, port 1: redirect", tcp4(dst="10.1.2.77")),
        ExamplePacket("to 10.1.2.3, the /32 route, port 2: redirect", icmp4(dst="10.1.2.3")),
        ExamplePacket("to 172.16.5.5, a route to port 3 that the devmap lacks: drop", udp4(dst="172.16.5.5")),
        ExamplePacket("to 192.168.1.1, no route: pass", udp4(dst="192.168.1.1")),
        ExamplePacket("TTL 255: redirect, TTL 254", udp4(dst="10.9.9.9", ttl=255)),
        ExamplePacket("TTL 2: redirect, TTL 1", udp4(dst="10.9.9.9", ttl=2)),
        ExamplePacket("TTL 1: expires here, pass to the host", udp4(dst="10.9.9.9", ttl=1)),
        ExamplePacket("TTL 0: pass to the host", udp4(dst="10.9.9.9", ttl=0)),
        # RFC 1624's corner cases for the incremental update, found by searching the IP id:
        ExamplePacket("header checksum is 0x0000 before the TTL decrement: redirect",
                      udp4(dst="10.1.2.3", ttl=128, id=27838)),
        ExamplePacket("header checksum becomes 0x0000 after the TTL decrement: redirect",
                      udp4(dst="10.1.2.3", ttl=128, id=28094)),
        ExamplePacket("IPv4 with options to a routed address: redirect",
                      udp4(dst="10.1.2.77", options=[IPOption_Router_Alert()])),
        ExamplePacket("truncated IPv4 header: drop", truncated_ipv4_header()),
        ExamplePacket("IHL 4: drop", udp4(dst="10.9.9.9", ihl=4)),
        ExamplePacket("IPv6: pass", udp6()),
        ExamplePacket("ARP request: pass", arp_request()),
    ]


def xdp_router_maps() -> dict:
    routes = {}
    for prefix, next_hop, egress_mac, port in ROUTES:
        network = ipaddress.IPv4Network(prefix)
        key = struct.pack("<I", network.prefixlen) + network.network_address.packed
        value = _mac_bytes(next_hop) + _mac_bytes(egress_mac) + struct.pack("<I", port)
        routes[key.hex()] = value.hex()
    ports = {struct.pack("<I", port).hex(): struct.pack("<I", ifindex).hex()
             for port, ifindex in EGRESS_PORTS.items()}
    return {"maps": {"routes": routes, "egress_ports": ports}}


TUNNEL_LOCAL = "203.0.113.1"
TUNNEL_REMOTE = "203.0.113.2"


def xdp_encap_packets() -> list[ExamplePacket]:
    return [
        ExamplePacket("small IPv4 UDP: encapsulate, XDP_TX", udp4()),
        ExamplePacket("IPv4 TCP: encapsulate", tcp4(payload=b"GET / HTTP/1.1\r\n\r\n")),
        ExamplePacket("IPv4 ICMP with tos 0xb8: encapsulate, outer tos copied", icmp4(tos=0xB8)),
        ExamplePacket("1500-octet IPv4 packet: encapsulate to 1520", udp4(payload=bytes(1500 - 28))),
        ExamplePacket("inner total length 65530, too long to wrap: pass",
                      _padded(_ether() / _ipv4(len=65530, proto=IPPROTO_UDP) / Raw(bytes(8)))),
        ExamplePacket("truncated IPv4 header: drop", truncated_ipv4_header()),
        ExamplePacket("IHL 4: drop", udp4(ihl=4)),
        ExamplePacket("IPv6: pass", udp6()),
        ExamplePacket("ARP request: pass", arp_request()),
    ]


def xdp_encap_maps() -> dict:
    tunnel = ipaddress.IPv4Address(TUNNEL_LOCAL).packed + ipaddress.IPv4Address(TUNNEL_REMOTE).packed
    return {"maps": {"tunnel": {struct.pack("<I", 0).hex(): tunnel.hex()}}}


def xdp_calls_packets() -> list[ExamplePacket]:
    corrupted = udp4(dport=123)
    corrupted[IP].chksum = 0x1234
    return [
        ExamplePacket("good IPv4 UDP to port 123: pass", udp4(dport=123)),
        ExamplePacket("good IPv4 TCP: pass", tcp4()),
        ExamplePacket("UDP to the blocked port 9 (.rodata): drop", udp4(dport=9)),
        ExamplePacket("TCP to port 9 (only UDP is blocked): pass", tcp4(dport=9)),
        ExamplePacket("header checksum corrupted: drop", corrupted),
        ExamplePacket("TTL 1, below min_ttl 2: drop", udp4(dport=123, ttl=1)),
        ExamplePacket("TTL 2: pass", udp4(dport=123, ttl=2)),
        ExamplePacket("IPv4 with options, checksum over 24 octets: pass",
                      udp4(dport=123, options=[IPOption_Router_Alert()])),
        ExamplePacket("IPv4 with options, UDP to port 9: drop", udp4(dport=9, options=[IPOption_Router_Alert()])),
        ExamplePacket("truncated IPv4 header: drop", truncated_ipv4_header()),
        ExamplePacket("IPv6: pass", udp6()),
        ExamplePacket("ARP request: pass", arp_request()),
    ]


def xdp_vlan_packets() -> list[ExamplePacket]:
    five_tags = vlan_tagged(udp4(), [10, 20, 30, 40, 50])
    return [
        ExamplePacket("untagged IPv4: pass unchanged", udp4()),
        ExamplePacket("one 802.1Q tag, VID 100: strip, pass", vlan_tagged(udp4(), [100])),
        ExamplePacket("QinQ, S-tag VID 10 then C-tag VID 20: strip both", vlan_tagged(udp4(), [10, 20])),
        ExamplePacket("three tags: strip all", vlan_tagged(tcp4(), [4095, 2, 3])),
        ExamplePacket("four tags, the maximum: strip all", vlan_tagged(udp4(), [1, 2, 3, 4])),
        ExamplePacket("five tags, one too many: drop", five_tags),
        ExamplePacket("tag cut short after two octets: drop",
                      _truncated(vlan_tagged(udp4(), [100]), ETH_HEADER + 2)),
        ExamplePacket("tagged IPv6, VID 200: strip", vlan_tagged(udp6(), [200])),
        ExamplePacket("tagged ARP, VID 300: strip", vlan_tagged(arp_request(), [300])),
        ExamplePacket("untagged ARP: pass unchanged", arp_request()),
    ]


def xdp_tailcall_packets() -> list[ExamplePacket]:
    return [
        ExamplePacket("IPv4 UDP: stage 2 drops it", udp4()),
        ExamplePacket("IPv4 TCP: stage 2 passes it", tcp4()),
        ExamplePacket("IPv4 ICMP: stage 2 passes it", icmp4()),
        ExamplePacket("truncated IPv4 header: stage 2 drops it", truncated_ipv4_header()),
        ExamplePacket("IPv6: stage 1 passes it", udp6()),
        ExamplePacket("ARP: stage 1 passes it", arp_request()),
    ]


def xdp_tailcall_maps() -> dict:
    return {"maps": {"jmp_table": {struct.pack("<I", 0).hex(): "xdp/stage2"}}}


def xdp1_percpu_packets() -> list[ExamplePacket]:
    return [
        ExamplePacket("IPv4 UDP: counter 17", udp4()),
        ExamplePacket("IPv4 TCP: counter 6", tcp4()),
        ExamplePacket("IPv4 ICMP: counter 1", icmp4()),
        ExamplePacket("IPv6 UDP: counter 17", udp6()),
        ExamplePacket("IPv6 ICMPv6: counter 58", icmp6()),
        ExamplePacket("802.1Q-tagged IPv4 UDP: counter 17", vlan_tagged(udp4(), [100])),
        ExamplePacket("QinQ-tagged IPv4 TCP: counter 6", vlan_tagged(tcp4(), [10, 20])),
        ExamplePacket("three tags, deeper than parsed: counter 0", vlan_tagged(udp4(), [1, 2, 3])),
        ExamplePacket("ARP: counter 0", arp_request()),
        ExamplePacket("truncated IPv4 header: counter 0", truncated_ipv4_header()),
    ]


def xdp_atomic_packets() -> list[ExamplePacket]:
    return [
        ExamplePacket("60-octet IPv4 UDP: pass", udp4()),
        ExamplePacket("100-octet IPv4 TCP: pass", tcp4(payload=bytes(100 - 54))),
        ExamplePacket("128-octet IPv4 UDP, the limit: pass", udp4(payload=bytes(128 - 42))),
        ExamplePacket("129-octet IPv4 UDP: drop", udp4(payload=bytes(129 - 42))),
        ExamplePacket("IPv4 ICMP: pass", icmp4()),
        ExamplePacket("IPv6 UDP: pass", udp6()),
        ExamplePacket("ARP: pass", arp_request()),
        ExamplePacket("1514-octet IPv4 UDP: drop", udp4(payload=bytes(1514 - 42))),
        ExamplePacket("frame whose first octet has the top bit set (sign extension)",
                      _padded(Ether(src=HOST_MAC, dst="f2:00:00:00:00:02") / _ipv4() / UDP() / Raw(b"x"))),
    ]


def xdp_libbpf_style_packets() -> list[ExamplePacket]:
    return [
        ExamplePacket("UDP to port 7 (echo): drop, logged", udp4(dport=7)),
        ExamplePacket("UDP to port 53: pass", udp4(dport=53)),
        ExamplePacket("802.1Q-tagged UDP to port 7: drop", vlan_tagged(udp4(dport=7), [42])),
        ExamplePacket("TCP to port 7: pass", tcp4(dport=7)),
        ExamplePacket("IPv4 with options, UDP to port 7: drop", udp4(dport=7, options=[IPOption_Router_Alert()])),
        ExamplePacket("UDP header cut at 4 octets: pass",
                      _truncated(udp4(dport=7), ETH_HEADER + IPV4_HEADER + 4)),
        ExamplePacket("truncated IPv4 header: pass", truncated_ipv4_header()),
        ExamplePacket("IPv6 UDP to port 7: pass", udp6(dport=7)),
        ExamplePacket("ARP: pass", arp_request()),
    ]


# ---- registry and output ---------------------------------------------------------------------

PACKETS: dict[str, Callable[[], list[ExamplePacket]]] = {
    "xdp_drop": xdp_drop_packets,
    "xdp_pass": xdp_pass_packets,
    "xdp_macswap": xdp_macswap_packets,
    "xdp_firewall": xdp_firewall_packets,
    "xdp_router": xdp_router_packets,
    "xdp_encap": xdp_encap_packets,
    "xdp_calls": xdp_calls_packets,
    "xdp_vlan": xdp_vlan_packets,
    "xdp_tailcall": xdp_tailcall_packets,
    "xdp1_percpu": xdp1_percpu_packets,
    "xdp_atomic": xdp_atomic_packets,
    "xdp_libbpf_style": xdp_libbpf_style_packets,
}

MAP_INITS: dict[str, Callable[[], dict]] = {
    "xdp_firewall": xdp_firewall_maps,
    "xdp_router": xdp_router_maps,
    "xdp_encap": xdp_encap_maps,
    "xdp_tailcall": xdp_tailcall_maps,
}


def _stamped(packets: list[ExamplePacket]) -> list[Packet]:
    frames = []
    for index, example_packet in enumerate(packets):
        frame = example_packet.packet.copy()
        frame.time = PCAP_EPOCH + index
        frames.append(frame)
    return frames


def write_pcaps(folder: Path | str) -> list[Path]:
    """Write `folder/pcap/<example>.pcap` for every example; return the paths written."""
    pcap_folder = Path(folder) / "pcap"
    pcap_folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make_packets in PACKETS.items():
        path = pcap_folder / f"{name}.pcap"
        wrpcap(str(path), _stamped(make_packets()), linktype=1)  # LINKTYPE_ETHERNET
        written.append(path)
    return written


def map_init_json(name: str) -> str:
    """The map-init file text for one example (keys sorted, newline-terminated)."""
    return json.dumps(MAP_INITS[name](), indent=2, sort_keys=True) + "\n"


def write_map_inits(folder: Path | str) -> list[Path]:
    """Write `folder/<example>.maps.json` for every example that needs map entries."""
    written = []
    for name in MAP_INITS:
        path = Path(folder) / f"{name}.maps.json"
        path.write_text(map_init_json(name))
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print("usage: python examples/packets.py [FOLDER]", file=sys.stderr)
        return 2
    folder = Path(argv[0]) if argv else EXAMPLES_DIR
    for path in write_pcaps(folder) + write_map_inits(folder):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
