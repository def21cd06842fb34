"""XDP on the golden VM: the context, the packet buffer and the helpers, each against the kernel's contract,
and the shipped examples doing what their comments say (checked on the packets, not against recorded runs)."""

import struct
import sys
from pathlib import Path

import pytest

from bpfnic.sw import maps as maps_mod
from bpfnic.sw.asm import assemble
from bpfnic.sw.compile import compile_c, declared_mcpu
from bpfnic.sw.elf_loader import BpfObject, MapDef, ProgramDef, load_object
from bpfnic.sw.xdp import (FRAME_SIZE, SKB_SHARED_INFO_SIZE, XDP_PACKET_HEADROOM, XdpError, XdpSession)

ETH_FRAME = bytes(range(60))
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def session_for(source: str, maps=(), extra_programs=None) -> XdpSession:
    programs = {"xdp": ProgramDef("main", "xdp", assemble(source, source="test.s"))}
    for section, text in (extra_programs or {}).items():
        programs[section] = ProgramDef(section, section, assemble(text, source=section))
    map_defs = [MapDef(index=i, **m) for i, m in enumerate(maps)]
    obj = BpfObject("test.o", programs, {p.name: p for p in programs.values()}, map_defs,
                    {m.name: m for m in map_defs})
    return XdpSession(obj, "xdp")


def test_context_pointers_and_verdict():
    session = session_for("""
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r0, %r3
        sub %r0, %r2
        exit
    """)
    result = session.run_packet(ETH_FRAME)
    assert result.action == 60 and result.verdict == "XDP_ABORTED"  # an unknown action counts as aborted
    assert result.data == ETH_FRAME


def test_ingress_ifindex_and_narrow_context_loads():
    session = session_for("ldxb %r0, [%r1+12]\nldxw %r2, [%r1+16]\nadd %r0, %r2\nexit")
    assert session.run_packet(ETH_FRAME, ingress_ifindex=3, rx_queue_index=1).action == 4


@pytest.mark.parametrize("source, reason", [
    ("ldxdw %r0, [%r1+0]\nexit", "not allowed"),
    ("ldxh %r0, [%r1+0]\nexit", "not allowed"),
    ("stw [%r1+12], 1\nmov %r0, 2\nexit", "read-only"),
    ("ldxw %r2, [%r1+4]\nldxb %r0, [%r2+0]\nexit", "outside region packet"),  # data_end is not readable
])
def test_bad_context_and_packet_accesses_abort(source, reason):
    result = session_for(source).run_packet(ETH_FRAME)
    assert result.verdict == "XDP_ABORTED"
    assert reason in result.fault


def test_packet_writes_are_seen_in_the_output():
    result = session_for("ldxw %r2, [%r1+0]\nstb [%r2+5], 0xaa\nmov %r0, 3\nexit").run_packet(ETH_FRAME)
    assert result.verdict == "XDP_TX"
    assert result.data == ETH_FRAME[:5] + b"\xaa" + ETH_FRAME[6:]


def test_adjust_head_grows_and_shrinks_and_respects_the_limits():
    grow = session_for("""
        mov %r6, %r1
        mov %r2, -20
        call 44
        jne %r0, 0, fail
        ldxw %r2, [%r6+0]
        stb [%r2+0], 0x45
        mov %r0, 2
        exit
    fail:
        mov %r0, 1
        exit
    """)
    result = grow.run_packet(ETH_FRAME)
    assert result.verdict == "XDP_PASS" and len(result.data) == 80 and result.data[0] == 0x45
    assert result.data[20:] == ETH_FRAME
    too_far = session_for("mov %r2, -300\ncall 44\nexit").run_packet(ETH_FRAME)
    assert too_far.action == (-22) & 0xFFFFFFFF  # -EINVAL: below the xdp_frame at the buffer start
    too_short = session_for("mov %r2, 50\ncall 44\nexit").run_packet(ETH_FRAME)
    assert too_short.action == (-22) & 0xFFFFFFFF  # fewer than ETH_HLEN bytes would remain


def test_adjust_tail_zero_fills_and_stops_at_the_frame_end():
    result = session_for("mov %r2, 8\ncall 65\nmov %r0, 2\nexit").run_packet(ETH_FRAME)
    assert result.data == ETH_FRAME + bytes(8)
    limit = FRAME_SIZE - SKB_SHARED_INFO_SIZE - XDP_PACKET_HEADROOM - len(ETH_FRAME)
    assert session_for(f"mov %r2, {limit}\ncall 65\nexit").run_packet(ETH_FRAME).action == 0
    assert session_for(f"mov %r2, {limit + 1}\ncall 65\nexit").run_packet(ETH_FRAME).action == (-22) & 0xFFFFFFFF
    shrunk = session_for("mov %r2, -10\ncall 65\nmov %r0, 2\nexit").run_packet(ETH_FRAME)
    assert shrunk.data == ETH_FRAME[:50]


def test_adjust_meta_rules():
    ok = session_for("mov %r2, -8\ncall 54\nexit").run_packet(ETH_FRAME)
    assert ok.action == 0
    assert session_for("mov %r2, -6\ncall 54\nexit").run_packet(ETH_FRAME).action == (-13) & 0xFFFFFFFF
    assert session_for("mov %r2, -36\ncall 54\nexit").run_packet(ETH_FRAME).action == (-13) & 0xFFFFFFFF
    assert session_for("mov %r2, 4\ncall 54\nexit").run_packet(ETH_FRAME).action == (-22) & 0xFFFFFFFF


def test_csum_diff_matches_a_ones_complement_sum():
    session = session_for("""
        stw [%r10-8], 0x01020304
        stw [%r10-4], 0x0a0b0c0d
        mov %r1, 0
        mov %r2, 0
        mov %r3, %r10
        add %r3, -8
        mov %r4, 8
        mov %r5, 0
        call 28
        exit
    """)
    assert session.run_packet(ETH_FRAME).action == 0x01020304 + 0x0A0B0C0D
    bad = session_for("mov %r1, 0\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -8\nstdw [%r10-8], 0\n"
                      "mov %r4, 6\nmov %r5, 0\ncall 28\nexit")
    assert bad.run_packet(ETH_FRAME).action == (-22) & 0xFFFFFFFF


def test_redirect_and_its_flags():
    result = session_for("mov %r1, 7\nmov %r2, 0\ncall 23\nexit").run_packet(ETH_FRAME)
    assert result.verdict == "XDP_REDIRECT" and result.redirect == 7
    assert session_for("mov %r1, 7\nmov %r2, 1\ncall 23\nexit").run_packet(ETH_FRAME).verdict == "XDP_ABORTED"
    # redirect recorded, but the program passes: no redirect happens
    passed = session_for("mov %r1, 7\nmov %r2, 0\ncall 23\nmov %r0, 2\nexit").run_packet(ETH_FRAME)
    assert passed.verdict == "XDP_PASS" and passed.redirect is None


DEVMAP = dict(name="ports", map_type=maps_mod.BPF_MAP_TYPE_DEVMAP, key_size=4, value_size=4, max_entries=4)


def test_redirect_map_uses_the_devmap_and_falls_back_to_the_flags():
    source = "lddw %r1, map_idx 0\nmov %r2, {key}\nmov %r3, 2\ncall 51\nexit"
    session = session_for(source.format(key=1), maps=[DEVMAP])
    session.apply_map_init({"maps": {"ports": {"01000000": "05000000"}}})
    result = session.run_packet(ETH_FRAME)
    assert result.verdict == "XDP_REDIRECT" and result.redirect == 5
    missing = session_for(source.format(key=2), maps=[DEVMAP]).run_packet(ETH_FRAME)
    assert missing.verdict == "XDP_PASS"  # flags' low bits: the action when there is no target


COUNTERS = dict(name="counters", map_type=maps_mod.BPF_MAP_TYPE_HASH, key_size=4, value_size=8, max_entries=2)


def test_map_helpers_give_pointers_into_value_memory_and_kernel_return_codes():
    session = session_for("""
        stw [%r10-4], 9
        lddw %r1, map_idx 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, insert
        mov %r1, 1
        lock add [%r0+0], %r1
        mov %r0, 2
        exit
    insert:
        stdw [%r10-16], 100
        lddw %r1, map_idx 0
        mov %r2, %r10
        add %r2, -4
        mov %r3, %r10
        add %r3, -16
        mov %r4, 1
        call 2
        exit
    """, maps=[COUNTERS])
    assert session.run_packet(ETH_FRAME).action == 0          # inserted with BPF_NOEXIST
    assert session.run_packet(ETH_FRAME).action == 2          # found: incremented in place
    assert session.run_packet(ETH_FRAME).action == 2
    assert session.dump_maps() == {"counters": {"09000000": (102).to_bytes(8, "little").hex()}}
    session.apply_map_init({"maps": {"counters": {"01000000": "0000000000000000"}}})
    session.map_by_name["counters"].delete(bytes.fromhex("09000000"))
    assert session.run_packet(ETH_FRAME).action == 0
    full = session.map_by_name["counters"]
    assert full.update(bytes(4), bytes(8), maps_mod.BPF_NOEXIST) == -7  # -E2BIG: the map is full


def test_tail_call_and_the_failure_fall_through():
    jump = dict(name="jmp", map_type=maps_mod.BPF_MAP_TYPE_PROG_ARRAY, key_size=4, value_size=4, max_entries=2)
    source = "mov %r6, %r1\nlddw %r2, map_idx 0\nmov %r3, {slot}\ncall 12\nmov %r0, 1\nexit"
    stage2 = {"xdp/stage2": "mov %r0, 3\nexit"}
    session = session_for(source.format(slot=0), maps=[jump], extra_programs=stage2)
    session.apply_map_init({"maps": {"jmp": {"00000000": "xdp/stage2"}}})
    assert session.run_packet(ETH_FRAME).verdict == "XDP_TX"
    assert session.dump_maps()["jmp"] == {"00000000": "xdp/stage2"}
    empty = session_for(source.format(slot=1), maps=[jump], extra_programs=stage2)
    assert empty.run_packet(ETH_FRAME).verdict == "XDP_DROP"


def test_trace_printk_is_captured():
    session = session_for("""
        lddw %r1, 0x0a6425203d206e
        stxdw [%r10-8], %r1
        mov %r1, %r10
        add %r1, -8
        mov %r2, 8
        mov %r3, -5
        call 6
        mov %r0, 2
        exit
    """)
    result = session.run_packet(ETH_FRAME)
    assert result.trace_output == ["n = -5"]


def test_bad_map_init_is_named():
    session = session_for("mov %r0, 2\nexit", maps=[COUNTERS])
    with pytest.raises(XdpError, match="no map named 'nope'"):
        session.apply_map_init({"maps": {"nope": {}}})
    with pytest.raises(XdpError, match="not hex"):
        session.apply_map_init({"maps": {"counters": {"zz": "00"}}})
    with pytest.raises(XdpError, match="key must be 4 bytes"):
        session.apply_map_init({"maps": {"counters": {"0100": "0000000000000000"}}})


def test_oversized_frame_is_refused():
    with pytest.raises(XdpError, match="larger than"):
        session_for("mov %r0, 2\nexit").run_packet(bytes(4000))


# -- the examples do what they say -----------------------------------------------------------------------

def example_packets():
    """examples/packets.py, the examples' packets and map-init contents (not part of the package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("example_packets", EXAMPLES / "packets.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("examples")

    def build(name: str) -> BpfObject:
        source = EXAMPLES / f"{name}.c"
        return load_object(compile_c(source, folder / f"{name}.o", declared_mcpu(source) or "v3"))
    return build


def _ether(dst: bytes, src: bytes, ethertype: int) -> bytes:
    return dst + src + struct.pack("!H", ethertype)


def _ipv4(src: str, dst: str, proto: int, payload: bytes, ttl: int = 64) -> bytes:
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, ttl, proto, 0,
                                   bytes(map(int, src.split("."))), bytes(map(int, dst.split(".")))))
    struct.pack_into("!H", header, 10, _checksum(bytes(header)))
    return bytes(header) + payload


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def test_macswap_swaps_addresses_and_transmits(built):
    frame = _ether(b"\x02" * 6, b"\x04" * 6, 0x0800) + _ipv4("10.0.0.1", "10.0.0.2", 17, bytes(26))
    result = XdpSession(built("xdp_macswap")).run_packet(frame)
    assert result.verdict == "XDP_TX"
    assert result.data == b"\x04" * 6 + b"\x02" * 6 + frame[12:]


def test_drop_and_pass(built):
    assert XdpSession(built("xdp_drop")).run_packet(ETH_FRAME).verdict == "XDP_DROP"
    assert XdpSession(built("xdp_pass")).run_packet(ETH_FRAME).verdict == "XDP_PASS"


def test_encap_prepends_a_valid_outer_ipv4_header(built):
    session = XdpSession(built("xdp_encap"))
    session.apply_map_init(example_packets().MAP_INITS["xdp_encap"]())
    inner = _ipv4("10.0.0.1", "10.0.0.2", 17, bytes(26))
    frame = _ether(b"\x02" * 6, b"\x04" * 6, 0x0800) + inner
    result = session.run_packet(frame)
    if result.verdict in ("XDP_TX", "XDP_PASS", "XDP_REDIRECT") and len(result.data) == len(frame) + 20:
        outer = result.data[14:34]
        assert outer[0] == 0x45 and outer[9] == 4  # IPv4 carrying IPv4 (IP-in-IP)
        assert _checksum(outer) == 0               # the outer header's checksum is right
        assert result.data[34:] == inner
    else:
        pytest.fail(f"encap did not grow the packet by 20 bytes: {result.verdict}, {len(result.data)} bytes, "
                    f"fault {result.fault}")
