"""Tests of sw/kernel_bpf.py, the ctypes binding to bpf(2), against the running kernel.

Programs are raw instructions built here (struct bpf_insn of include/uapi/linux/bpf.h:
opcode u8, dst:4|src:4 u8, off s16, imm s32), so these tests depend on no other module.
Every test skips, with the reason, where bpf() is refused (e.g. not root).
"""

import errno
import struct

import pytest

from bpfnic.sw import kernel_bpf as kb

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(kb.bpf_unavailable_reason() is not None,
                       reason=kb.bpf_unavailable_reason() or ""),
]

# Opcodes (class | source | operation) used below.
MOV64_IMM, MOV64_REG, ADD64_IMM, ADD64_REG = 0xB7, 0xBF, 0x07, 0x0F
LDX_W, LDX_DW, STX_DW, ST_B, ST_W = 0x61, 0x79, 0x7B, 0x72, 0x62
JGT_REG, JEQ_IMM, JLT_IMM, CALL, EXIT, LDDW = 0x2D, 0x15, 0xA5, 0x85, 0x95, 0x18
R10 = 10
HELPER_MAP_LOOKUP_ELEM = 1


def insn(opcode, dst=0, src=0, off=0, imm=0) -> bytes:
    return struct.pack("<BBhi", opcode, dst | (src << 4), off, imm)


def lddw(dst, src, imm, next_imm=0) -> bytes:
    """The two-word 64-bit immediate load; src selects a pseudo (map fd, map index...)."""
    return insn(LDDW, dst, src, imm=imm) + insn(0, imm=next_imm)


def program(*insns: bytes) -> bytes:
    return b"".join(insns)


RETURN_PASS = program(insn(MOV64_IMM, 0, imm=kb.XDP_PASS), insn(EXIT))
PACKET = bytes(range(64))


def load_xdp(insns: bytes, **options) -> kb.KernelProgram:
    return kb.KernelProgram.load(kb.BPF_PROG_TYPE_XDP, insns, **options)


# -- programs -------------------------------------------------------------------------

def test_xdp_pass_returns_the_packet_unchanged():
    with load_xdp(RETURN_PASS, name="pass") as prog:
        assert prog.fd >= 0
        assert "processed 2 insns" in prog.log
        result = prog.test_run(PACKET)
    assert result.retval == kb.XDP_PASS
    assert result.data_out == PACKET
    assert result.ctx_out is None
    assert prog.fd == -1


def test_program_writes_into_the_packet():
    writer = program(
        insn(LDX_W, 2, 1, off=0),            # r2 = ctx->data
        insn(LDX_W, 3, 1, off=4),            # r3 = ctx->data_end
        insn(MOV64_REG, 4, 2),
        insn(ADD64_IMM, 4, imm=2),
        insn(JGT_REG, 4, 3, off=4),          # fewer than 2 bytes: drop
        insn(ST_B, 2, off=0, imm=0xAA),
        insn(ST_B, 2, off=1, imm=0xBB),
        insn(MOV64_IMM, 0, imm=kb.XDP_TX),
        insn(EXIT),
        insn(MOV64_IMM, 0, imm=kb.XDP_DROP),
        insn(EXIT),
    )
    with load_xdp(writer) as prog:
        result = prog.test_run(PACKET)
    assert result.retval == kb.XDP_TX
    assert result.data_out == b"\xAA\xBB" + PACKET[2:]


def test_reading_an_uninitialized_register_is_refused_with_the_log():
    reads_r2 = program(insn(MOV64_REG, 0, 2), insn(EXIT))
    with pytest.raises(kb.BpfError) as caught:
        load_xdp(reads_r2, name="bad")
    error = caught.value
    assert error.command == "BPF_PROG_LOAD"
    assert error.errno == errno.EACCES
    assert "R2 !read_ok" in error.log
    first_line, _, rest = str(error).partition("\n")
    assert first_line.startswith("BPF_PROG_LOAD failed: Permission denied (EACCES)")
    assert "R2 !read_ok" in rest


def test_refusal_without_log_level_still_reports_the_log():
    reads_r2 = program(insn(MOV64_REG, 0, 2), insn(EXIT))
    with pytest.raises(kb.BpfError) as caught:
        load_xdp(reads_r2, log_level=0)
    assert "R2 !read_ok" in caught.value.log
    # The log fetched for the refusal overflows: the refusal's errno still wins.
    with pytest.raises(kb.BpfError) as caught:
        load_xdp(reads_r2, log_level=0, log_size=16)
    assert caught.value.errno == errno.EACCES


def test_a_log_larger_than_log_size_is_fetched_whole():
    with load_xdp(RETURN_PASS, log_level=2, log_size=32) as prog:
        assert len(prog.log) > 32
        assert "processed 2 insns" in prog.log


def test_malformed_instruction_bytes_are_a_clear_error():
    with pytest.raises(ValueError, match="multiple of 8 bytes, got 12"):
        load_xdp(RETURN_PASS[:12], name="cut")
    with pytest.raises(ValueError, match="program name 'bad-name'"):
        load_xdp(RETURN_PASS, name="bad-name")


def test_map_lookup_through_fd_array_and_pseudo_map_idx():
    counter = program(
        insn(ST_W, R10, off=-4, imm=0),       # key = 0 on the stack
        insn(MOV64_REG, 2, R10),
        insn(ADD64_IMM, 2, imm=-4),
        lddw(1, kb.BPF_PSEUDO_MAP_IDX, imm=1),  # fd_array[1]
        insn(CALL, imm=HELPER_MAP_LOOKUP_ELEM),
        insn(JEQ_IMM, 0, off=5, imm=0),
        insn(LDX_DW, 1, 0),
        insn(ADD64_IMM, 1, imm=1),
        insn(STX_DW, 0, 1),                   # (*value)++
        insn(MOV64_REG, 0, 1),
        insn(EXIT),
        insn(MOV64_IMM, 0, imm=kb.XDP_ABORTED),
        insn(EXIT),
    )
    with kb.KernelMap.create(kb.BPF_MAP_TYPE_ARRAY, 4, 8, 1, name="unused") as unused, \
            kb.KernelMap.create(kb.BPF_MAP_TYPE_ARRAY, 4, 8, 1, name="counter") as counts:
        counts.update(struct.pack("<I", 0), struct.pack("<Q", 41))
        with load_xdp(counter, fd_array=[unused.fd, counts.fd]) as prog:
            assert prog.test_run(PACKET).retval == 42
            assert counts.lookup(struct.pack("<I", 0)) == struct.pack("<Q", 42)
            # repeat really runs the program that many times.
            assert prog.test_run(PACKET, repeat=50).retval == 92
        assert counts.lookup(struct.pack("<I", 0)) == struct.pack("<Q", 92)
        assert unused.lookup(struct.pack("<I", 0)) == bytes(8)


def test_pseudo_map_idx_value_points_into_the_value():
    reader = program(
        lddw(1, kb.BPF_PSEUDO_MAP_IDX_VALUE, imm=0, next_imm=4),  # &value[4]
        insn(LDX_W, 0, 1),
        insn(EXIT),
    )
    with kb.KernelMap.create(kb.BPF_MAP_TYPE_ARRAY, 4, 8, 1, name="pair") as pair:
        pair.update(struct.pack("<I", 0), struct.pack("<II", 7, 9))
        with load_xdp(reader, fd_array=[pair.fd]) as prog:
            assert prog.test_run(PACKET).retval == 9


def test_xdp_md_context_in_and_out():
    ingress = program(insn(LDX_W, 0, 1, off=12), insn(EXIT))  # r0 = ctx->ingress_ifindex
    with load_xdp(ingress) as prog:
        context = kb.XdpMd.for_packet(len(PACKET), ingress_ifindex=1)  # loopback
        result = prog.test_run(PACKET, ctx=context.pack())
        assert result.retval == 1
        assert kb.XdpMd.unpack(result.ctx_out) == context
        with pytest.raises(kb.BpfError) as caught:
            prog.test_run(PACKET, ctx=kb.XdpMd(data_end=len(PACKET), egress_ifindex=1).pack())
        assert caught.value.errno == errno.EINVAL
        assert caught.value.command == "BPF_PROG_TEST_RUN"


def test_packet_shorter_than_ethernet_header_is_refused():
    with load_xdp(RETURN_PASS) as prog, pytest.raises(kb.BpfError, match="14 bytes"):
        prog.test_run(bytes(10))


def test_duration_is_reported_per_run():
    summing_loop = program(
        insn(MOV64_IMM, 0, imm=0),
        insn(MOV64_IMM, 1, imm=0),
        insn(ADD64_REG, 0, 1),
        insn(ADD64_IMM, 1, imm=1),
        insn(JLT_IMM, 1, off=-3, imm=1000),
        insn(EXIT),
    )
    with load_xdp(summing_loop) as prog:
        result = prog.test_run(PACKET, repeat=200)
    assert result.retval == sum(range(1000))
    # A 1000-iteration loop takes well over a nanosecond and well under a millisecond.
    assert 0 < result.duration_ns < 1_000_000


# -- maps -----------------------------------------------------------------------------

def u32(value: int) -> bytes:
    return struct.pack("<I", value)


def test_array_map():
    with kb.KernelMap.create(kb.BPF_MAP_TYPE_ARRAY, 4, 4, 3, name="arr") as arr:
        assert arr.lookup(u32(1)) == bytes(4)  # array elements always exist
        arr.update(u32(1), u32(0xDEADBEEF))
        assert arr.lookup(u32(1)) == u32(0xDEADBEEF)
        assert arr.lookup(u32(3)) is None      # past max_entries
        assert list(arr.keys()) == [u32(0), u32(1), u32(2)]
        with pytest.raises(kb.BpfError) as caught:
            arr.delete(u32(1))
        assert caught.value.errno == errno.EINVAL
        with pytest.raises(kb.BpfError) as caught:
            arr.update(u32(0), u32(5), kb.BPF_NOEXIST)
        assert caught.value.errno == errno.EEXIST
        with pytest.raises(ValueError, match=r"map arr \(fd \d+\): key must be 4 bytes, got 2"):
            arr.lookup(b"\0\0")


def test_hash_map_and_update_flags():
    with kb.KernelMap.create(kb.BPF_MAP_TYPE_HASH, 4, 8, 2, name="hash") as table:
        assert table.lookup(u32(7)) is None
        with pytest.raises(kb.BpfError) as caught:
            table.update(u32(7), bytes(8), kb.BPF_EXIST)
        assert caught.value.errno == errno.ENOENT
        table.update(u32(7), struct.pack("<Q", 1), kb.BPF_NOEXIST)
        with pytest.raises(kb.BpfError) as caught:
            table.update(u32(7), struct.pack("<Q", 2), kb.BPF_NOEXIST)
        assert caught.value.errno == errno.EEXIST
        assert "BPF_MAP_UPDATE_ELEM failed" in str(caught.value)
        table.update(u32(7), struct.pack("<Q", 3), kb.BPF_EXIST)
        table.update(u32(8), struct.pack("<Q", 4))
        assert dict(table.items()) == {u32(7): struct.pack("<Q", 3), u32(8): struct.pack("<Q", 4)}
        with pytest.raises(kb.BpfError) as caught:
            table.update(u32(9), bytes(8))   # max_entries is 2
        assert caught.value.errno == errno.E2BIG
        assert table.delete(u32(7)) is True
        assert table.delete(u32(7)) is False
        assert list(table.keys()) == [u32(8)]


def test_percpu_array_map():
    cpus = kb.possible_cpus()
    assert cpus >= 1
    with kb.KernelMap.create(kb.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 4, 2) as percpu:
        assert percpu.value_buffer_size == cpus * 8   # each slot rounded up to 8 bytes
        values = [u32(100 + cpu) for cpu in range(cpus)]
        percpu.update_percpu(u32(1), values)
        assert percpu.lookup_percpu(u32(1)) == values
        raw = percpu.lookup(u32(1))
        assert len(raw) == cpus * 8
        assert raw[:8] == u32(100) + bytes(4)
        percpu.update_percpu(u32(0), u32(5))          # one value for every CPU
        assert percpu.lookup_percpu(u32(0)) == [u32(5)] * cpus
        with pytest.raises(ValueError, match=f"value must be {cpus * 8} bytes"):
            percpu.update(u32(0), u32(5))


def test_lpm_trie_longest_prefix_match():
    def key(prefix_len, address):
        return struct.pack("<I", prefix_len) + bytes(address)
    with kb.KernelMap.create(kb.BPF_MAP_TYPE_LPM_TRIE, 8, 4, 16,
                             flags=kb.BPF_F_NO_PREALLOC, name="routes") as routes:
        routes.update(key(8, [10, 0, 0, 0]), u32(8))
        routes.update(key(16, [10, 1, 0, 0]), u32(16))
        assert routes.lookup(key(32, [10, 1, 2, 3])) == u32(16)
        assert routes.lookup(key(32, [10, 2, 2, 3])) == u32(8)
        assert routes.lookup(key(32, [11, 0, 0, 1])) is None
        assert set(routes.keys()) == {key(8, [10, 0, 0, 0]), key(16, [10, 1, 0, 0])}
        assert routes.delete(key(16, [10, 1, 0, 0])) is True
        assert routes.lookup(key(32, [10, 1, 2, 3])) == u32(8)


def test_lpm_trie_without_no_prealloc_is_refused():
    with pytest.raises(kb.BpfError) as caught:
        kb.KernelMap.create(kb.BPF_MAP_TYPE_LPM_TRIE, 8, 4, 16, name="routes")
    assert caught.value.command == "BPF_MAP_CREATE"
    assert caught.value.errno == errno.EINVAL
    assert "map routes type 11" in str(caught.value)


def test_frozen_map_refuses_writes():
    with kb.KernelMap.create(kb.BPF_MAP_TYPE_ARRAY, 4, 4, 1,
                             flags=kb.BPF_F_RDONLY_PROG, name="rodata") as rodata:
        rodata.update(u32(0), u32(123))
        rodata.freeze()
        with pytest.raises(kb.BpfError) as caught:
            rodata.update(u32(0), u32(124))
        assert caught.value.errno == errno.EPERM
        assert rodata.lookup(u32(0)) == u32(123)


def test_closed_map_and_bad_name_are_clear_errors():
    arr = kb.KernelMap.create(kb.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    arr.close()
    with pytest.raises(ValueError, match=r"map \(unnamed\): used after close\(\)"):
        arr.lookup(u32(0))
    with pytest.raises(ValueError, match="at most 15 characters"):
        kb.KernelMap.create(kb.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name="x" * 16)


def test_output_larger_than_data_size_out_is_enospc():
    with load_xdp(RETURN_PASS) as prog:
        with pytest.raises(kb.BpfError) as caught:
            prog.test_run(PACKET, data_size_out=10)
        assert caught.value.errno == errno.ENOSPC
        assert "output of 64 bytes does not fit data_size_out=10" in str(caught.value)
        assert prog.test_run(PACKET, data_size_out=0).data_out == b""
