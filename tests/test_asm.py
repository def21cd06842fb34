"""Tests of the assembler (sw/asm.py), the disassembler (sw/disasm.py), the vector reader (sw/conformance.py)
and the encoding checks of sw/isa.py (RFC 9669 §3-§5).

The conformance suite's `-- asm` sections are the reference for the dialect: each one must assemble, match its
`-- raw` words where it has them, and survive assemble -> disassemble -> assemble unchanged; so must random
valid instructions of every opcode in isa.OPCODES (hypothesis).
"""

from __future__ import annotations

import functools
import re
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfnic.sw import conformance, isa
from bpfnic.sw.asm import AsmError, assemble
from bpfnic.sw.disasm import disassemble, format_insn


def _vectors() -> list[conformance.Vector]:
    try:
        return conformance.load_vectors()
    except FileNotFoundError:
        return []


VECTORS = _vectors()
needs_vectors = pytest.mark.skipif(not VECTORS, reason=f"no conformance vectors at {conformance.conformance_dir()} "
                                                       f"(set {conformance.ENVIRONMENT_VARIABLE})")


def roundtrip(program: isa.Program, labels: bool) -> isa.Program:
    return assemble(disassemble(program, addresses=False, raw=False, labels=labels), "<disassembly>")


# -- The conformance vectors ---------------------------------------------------------------------------------------

@needs_vectors
def test_the_suite_is_all_there():
    assert len(VECTORS) > 300
    assert sum(vector.raw is not None for vector in VECTORS) >= 1


@needs_vectors
@pytest.mark.parametrize("vector", VECTORS, ids=lambda vector: vector.name)
def test_vector_assembles_and_round_trips(vector: conformance.Vector):
    program = assemble(vector.asm, f"{vector.name}.data")
    code = program.encode()
    if vector.raw is not None:
        assert code == vector.raw
    assert isa.decode_program(code) == program
    for labels in (True, False):
        assert roundtrip(program, labels).encode() == code


# -- Random valid instructions of every opcode ---------------------------------------------------------------

REGISTER = st.integers(0, 10)
WRITABLE = st.integers(0, 9)   # r10 is read-only
S16 = st.integers(-(1 << 15), (1 << 15) - 1)
S32 = st.integers(-(1 << 31), (1 << 31) - 1)
U64 = st.integers(0, (1 << 64) - 1)


def draw_insn(draw, opcode: int) -> tuple[isa.Insn, str | None]:
    """A random instruction with this opcode that obeys RFC 9669, and which field holds its jump offset."""
    info = isa.OPCODES[opcode]
    kind, op, register_source = info.kind, opcode & isa.OP_MASK, bool(opcode & isa.BPF_X)
    make = functools.partial(isa.Insn, opcode)
    if kind == isa.InsnKind.ALU:
        if op == isa.BPF_NEG:
            return make(dst=draw(WRITABLE)), None
        off = 0
        if op in (isa.BPF_DIV, isa.BPF_MOD):
            off = draw(st.sampled_from((0, 1)))
        elif op == isa.BPF_MOV and register_source:
            off = draw(st.sampled_from((0, 8, 16, 32) if info.cls == isa.BPF_ALU64 else (0, 8, 16)))
        if register_source:
            return make(dst=draw(WRITABLE), src=draw(REGISTER), off=off), None
        return make(dst=draw(WRITABLE), off=off, imm=draw(S32)), None
    if kind == isa.InsnKind.END:
        return make(dst=draw(WRITABLE), imm=draw(st.sampled_from((16, 32, 64)))), None
    if kind == isa.InsnKind.JA:
        return make(), "imm" if opcode == isa.OP_JA32 else "off"
    if kind == isa.InsnKind.JCOND:
        if register_source:
            return make(dst=draw(REGISTER), src=draw(REGISTER)), "off"
        return make(dst=draw(REGISTER), imm=draw(S32)), "off"
    if kind == isa.InsnKind.CALL:
        src = draw(st.sampled_from((isa.BPF_PSEUDO_CALL_HELPER, isa.BPF_PSEUDO_CALL_LOCAL, isa.BPF_PSEUDO_KFUNC_CALL)))
        if src == isa.BPF_PSEUDO_CALL_LOCAL:
            return make(src=src), "imm"
        return make(src=src, imm=draw(S32)), None
    if kind == isa.InsnKind.CALLX:
        if draw(st.booleans()):
            return make(dst=draw(REGISTER)), None
        return make(imm=draw(st.integers(1, 10))), None   # the older encoding, register number in imm
    if kind == isa.InsnKind.EXIT:
        return make(), None
    if kind == isa.InsnKind.LDDW:
        src = draw(st.sampled_from(sorted(isa.LDDW_PSEUDO_NAMES)))
        value = draw(U64)
        insn = make(dst=draw(WRITABLE), src=src, imm=isa.s32(value), imm64=value)
        return insn, "imm64" if src == isa.BPF_PSEUDO_FUNC else None
    if kind == isa.InsnKind.LD_PACKET:
        if (opcode & isa.MODE_MASK) == isa.BPF_ABS:
            return make(imm=draw(S32)), None
        return make(src=draw(REGISTER), imm=draw(S32)), None
    if kind == isa.InsnKind.LDX:
        return make(dst=draw(WRITABLE), src=draw(REGISTER), off=draw(S16)), None
    if kind == isa.InsnKind.ST:
        return make(dst=draw(REGISTER), off=draw(S16), imm=draw(S32)), None
    if kind == isa.InsnKind.STX:
        return make(dst=draw(REGISTER), src=draw(REGISTER), off=draw(S16)), None
    if kind == isa.InsnKind.ATOMIC:
        imm = draw(st.sampled_from(sorted(isa.ATOMIC_OPS)))
        fetching_into_src = imm & isa.BPF_FETCH and imm != isa.BPF_CMPXCHG
        src = draw(WRITABLE if fetching_into_src else REGISTER)
        return make(dst=draw(REGISTER), src=src, off=draw(S16), imm=imm), None
    raise AssertionError(f"no generator for {kind}")


def draw_program(draw, opcode: int) -> isa.Program:
    """A few random instructions around one with `opcode`, ending in exit; jumps go to instruction starts."""
    opcodes = draw(st.lists(st.sampled_from(sorted(isa.OPCODES)), max_size=3))
    opcodes.insert(draw(st.integers(0, len(opcodes))), opcode)
    drawn = [draw_insn(draw, each) for each in opcodes] + [(isa.exit_insn(), None)]
    starts, slot = [], 0
    for insn, _ in drawn:
        starts.append(slot)
        slot += insn.slots
    insns = []
    for (insn, jump_field), index in zip(drawn, starts):
        if jump_field is not None:
            offset = draw(st.sampled_from(starts)) - index - 1
            if jump_field == "off":
                insn = insn._replace(off=offset)
            elif jump_field == "imm":
                insn = insn._replace(imm=offset)
            else:  # code_addr: the offset is the low half of the 64-bit immediate
                insn = insn._replace(imm=offset, imm64=(insn.imm64 & ~0xFFFFFFFF) | (offset & 0xFFFFFFFF))
        insns.append(insn)
    return isa.make_program(insns)


LISTING_LINE = re.compile(r"\s*(\d+):  ((?:[0-9a-f]{2} ){7}[0-9a-f]{2})(?:  (.*))?")


@pytest.mark.parametrize("opcode", sorted(isa.OPCODES), ids=lambda opcode: f"0x{opcode:02x}")
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_instructions_round_trip(opcode: int, data):
    program = draw_program(data.draw, opcode)
    code = program.encode()
    for labels in (True, False):
        assert roundtrip(program, labels).encode() == code

    # The full listing: slot indices in order, and its raw bytes are the program's.
    slots = [LISTING_LINE.fullmatch(line) for line in disassemble(program).splitlines()
             if not re.fullmatch(r"L\d+:", line)]
    assert all(slots)
    assert [int(match[1]) for match in slots] == list(range(len(program)))
    assert b"".join(bytes.fromhex(match[2]) for match in slots) == code

    for index, insn in program.instructions():
        if isa.jump_target(insn, index) is None:  # alone, a jump would leave its one-instruction program
            assert assemble(format_insn(insn)).encode() == insn.encode()
        else:
            assert format_insn(insn, index).endswith(f"# -> {isa.jump_target(insn, index)}")


# -- Syntax -----------------------------------------------------------------------------------------------------------

def test_dialect_examples():
    program = assemble("""
        # registers, immediates in every spelling
        mov32 %r0, 1
        add %r0, %r1            # a comment after an instruction
        mov %r2, 0xffffffff     # wraps to imm -1
        mov %r3, -0x10
        neg %r0
        be16 %r0
        swap64 %r1
        bswap32 %r1
        sdiv32 %r0, -3
        smod %r0, %r1
        movsx1632 %r4, %r1
        ldxsb %r5, [%r1 - 2]
        stw [%r10-8], 5
        stxdw [%r1], %r2
        lock fetch add32 [%r1+4], %r2
        lock cmpxchg [%r10-8], %r3
        call 5
        call %r2
        call kfunc 7
        lddw %r6, -1
    target: jeq32 %r6, %r2, target
        exit
    """, "example.s")
    fields = [(insn.opcode, insn.dst, insn.src, insn.off, insn.imm) for _, insn in program.instructions()]
    assert fields == [
        (0xB4, 0, 0, 0, 1), (0x0F, 0, 1, 0, 0), (0xB7, 2, 0, 0, -1), (0xB7, 3, 0, 0, -16), (0x87, 0, 0, 0, 0),
        (0xDC, 0, 0, 0, 16), (0xD7, 1, 0, 0, 64), (0xD7, 1, 0, 0, 32), (0x34, 0, 0, 1, -3), (0x9F, 0, 1, 1, 0),
        (0xBC, 4, 1, 16, 0), (0x91, 5, 1, -2, 0), (0x62, 10, 0, -8, 5), (0x7B, 1, 2, 0, 0),
        (0xC3, 1, 2, 4, isa.BPF_ADD | isa.BPF_FETCH), (0xDB, 10, 3, -8, isa.BPF_CMPXCHG), (0x85, 0, 0, 0, 5),
        (0x8D, 2, 0, 0, 0), (0x85, 0, isa.BPF_PSEUDO_KFUNC_CALL, 0, 7), (0x18, 6, 0, 0, -1),
        (0x1E, 6, 2, -1, 0), (0x95, 0, 0, 0, 0),
    ]
    assert program[19].imm64 == (1 << 64) - 1


def test_implicit_exit_label_goes_to_the_first_exit():
    program = assemble("ja exit\nmov %r0, 1\nexit\nmov %r0, 2\nexit\n")
    assert program[0].off == 1
    explicit = assemble("ja exit\nmov %r0, 1\nexit\nexit:\nmov %r0, 2\nexit\n")
    assert explicit[0].off == 2


def test_pseudo_lddw_sources():
    program = assemble("""
        lddw %r1, map_fd 7
        lddw %r1, map_value 7+16
        lddw %r1, var_addr 42
        lddw %r1, code_addr func
        lddw %r1, map_idx 3
        lddw %r1, map_idx_value 3+0x20
        lddw %r1, map_value 1-4
        exit
    func:
        exit
    """)
    lddws = [insn for _, insn in program.instructions() if insn.is_lddw]
    assert [(insn.src, insn.imm64) for insn in lddws] == [
        (isa.BPF_PSEUDO_MAP_FD, 7), (isa.BPF_PSEUDO_MAP_VALUE, 7 | 16 << 32), (isa.BPF_PSEUDO_BTF_ID, 42),
        (isa.BPF_PSEUDO_FUNC, 15 - 6 - 1), (isa.BPF_PSEUDO_MAP_IDX, 3), (isa.BPF_PSEUDO_MAP_IDX_VALUE, 3 | 0x20 << 32),
        (isa.BPF_PSEUDO_MAP_VALUE, 1 | 0xFFFFFFFC << 32),
    ]
    text = disassemble(program, addresses=False, raw=False)
    assert "lddw %r1, map_idx_value 3+32" in text and "lddw %r1, code_addr L15" in text
    assert roundtrip(program, True).encode() == program.encode()


@pytest.mark.parametrize("source, message", [
    ("mov %r0, 1\nmvo %r0, 1\nexit", "prog.s:2: unknown mnemonic 'mvo'"),
    ("mov %r11, 1\nexit", "prog.s:1: register %r11 does not exist"),
    ("ldxw %r0, [%r12+4]\nexit", "prog.s:1: register %r12 does not exist"),
    ("mov %r0, r1\nexit", "prog.s:1: expected a number for the immediate, got 'r1'"),
    ("exit\nmov %r0\nexit", "prog.s:2: mov takes 2 operands"),
    ("neg %r0, 1\nexit", "prog.s:1: neg takes 1 operand"),
    ("exit %r0", "prog.s:1: exit takes 0 operands"),
    ("jeq %r0, 1\nexit", "prog.s:1: jeq takes 3 operands"),
    ("mov %r0, 0x100000000\nexit", "prog.s:1: immediate 0x100000000 is out of range"),
    ("mov %r0, -2147483649\nexit", "prog.s:1: immediate -2147483649 is out of range"),
    ("lddw %r0, 0x10000000000000000\nexit", "prog.s:1: 64-bit immediate 0x10000000000000000 is out of range"),
    ("ldxb %r0, [%r1+65536]\nexit", "prog.s:1: memory offset +65536 is out of range"),
    ("ja +65536\nexit", "prog.s:1: jump offset +65536 is out of range"),
    ("stw %r1, 5\nexit", "prog.s:1: expected a memory operand like [%r1+8], got '%r1'"),
    ("add %r0,\nexit", "prog.s:1: empty operand"),
    ("\n\nja nowhere\nexit", "prog.s:3: unknown label 'nowhere'"),
    ("ja 3\nexit", "prog.s:1: jump target '3' must be a label or a signed offset"),
    ("a:\nexit\na:\nexit", "prog.s:3: label 'a' is already defined on line 1"),
    ("ja +5\nexit", "prog.s:1: jump target 6 is outside the program"),
    ("mov %r0, 0\nja +1\nlddw %r0, 1\nexit", "prog.s:2: jump target 3 is the second half of an lddw"),
    ("mov %r10, 1\nexit", "prog.s:1: mov writes r10"),
    ("movsx864 %r0, 5\nexit", "prog.s:1: movsx864 takes a register source"),
    ("movsx3232 %r0, %r1\nexit", "prog.s:1: unknown mnemonic 'movsx3232'"),
    ("be17 %r0\nexit", "prog.s:1: unknown mnemonic 'be17'"),
    ("lock nand [%r1], %r2\nexit", "prog.s:1: unknown atomic operation 'lock nand'"),
    ("lock fetch add [%r1], %r10\nexit", "prog.s:1: lock writes r10"),
    ("call local\nexit", "prog.s:1: call local needs a target, like 'call local name'"),
    ("call 1 2 3\nexit", "prog.s:1: call takes a helper number"),
    ("call far 3\nexit", "prog.s:1: unknown call kind 'far'"),
    ("lddw %r1, map_idx\nexit", "prog.s:1: lddw map_idx needs a value"),
    ("# nothing\n", "prog.s: no instructions"),
])
def test_errors_name_the_line(source: str, message: str):
    with pytest.raises(AsmError) as error:
        assemble(source, "prog.s")
    assert str(error.value).startswith(message), str(error.value)


def test_a_label_too_far_for_16_bits():
    source = "ja end\n" + "mov %r0, 0\n" * 40000 + "end:\nexit\n"
    with pytest.raises(AsmError, match=r"^<input>:1: label 'end' is 40000 instructions away: too far for a 16-bit"):
        assemble(source)
    assert assemble(source.replace("ja end", "ja32 end"))[0].imm == 40000


# -- Listings and one-instruction text ------------------------------------------------------------------------------

def test_listing_layout():
    program = assemble("lddw %r0, 0x1122334455667788\njne %r0, 0, out\nmov %r0, 1\nout:\nexit\n")
    assert disassemble(program) == (
        "    0:  18 00 00 00 88 77 66 55  lddw %r0, 0x1122334455667788\n"
        "    1:  00 00 00 00 44 33 22 11\n"
        "    2:  55 00 01 00 00 00 00 00  jne %r0, 0, L4\n"
        "    3:  b7 00 00 00 01 00 00 00  mov %r0, 1\n"
        "L4:\n"
        "    4:  95 00 00 00 00 00 00 00  exit\n"
    )
    assert disassemble(program.encode(), addresses=False, raw=False, labels=False) == (
        "lddw %r0, 0x1122334455667788\njne %r0, 0, +1\nmov %r0, 1\nexit\n")


def test_disassembling_bytes_keeps_targets_outside_the_program_as_offsets():
    code = isa.jcond(isa.BPF_JEQ, 1, 0, 7).encode() + isa.exit_insn().encode()
    assert disassemble(code, addresses=False, raw=False) == "jeq %r1, 0, +7\nexit\n"


def test_format_insn_for_error_messages():
    assert format_insn(isa.alu(isa.BPF_ADD, 1, "r2", is64=False)) == "add32 %r1, %r2"
    assert format_insn(isa.jcond(isa.BPF_JSGT, 3, -1, -4), 10) == "jsgt %r3, -1, -4  # -> 7"
    assert format_insn(isa.Insn(isa.OP_CALL, imm=5)) == "call 5"
    assert format_insn(isa.LDDW_TAIL) == "(second half of the lddw above)"
    assert format_insn(isa.Insn(0xFF, 1, 2, 3, 4)) == "<unknown opcode 0xff: opcode=0xff dst=1 src=2 off=3 imm=4>"
    broken = format_insn(isa.Insn(isa.BPF_ALU64 | isa.BPF_K | isa.BPF_ADD, 10, 0, 5, 1))
    assert broken.startswith("add %r10, 1  # invalid: add: unused field off must be 0 (is 5); opcode=0x07 dst=10")
    assert format_insn(isa.Insn(isa.OP_EXIT, dst=14)).startswith("exit  # invalid: destination register r14")


# -- Invalid encodings rejected by isa.decode_program -------------------------------------------------------------

def word(opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", opcode, src << 4 | dst, off, imm)


EXIT = word(isa.OP_EXIT)


@pytest.mark.parametrize("code, index, reason", [
    (word(0xFF) + EXIT, 0, "unknown opcode 0xff"),
    (EXIT + word(0x8E) + EXIT, 1, "unknown opcode 0x8e"),
    (word(0x07, 0, 0, 1, 5) + EXIT, 0, "add: unused field off must be 0 (is 1)"),
    (word(0xBF, 0, 1, 0, 9) + EXIT, 0, "mov: unused field imm must be 0 (is 9)"),
    (word(0x95, 0, 0, 0, 1), 0, "exit: unused field imm must be 0"),
    (word(0xB7, 11, 0, 0, 0) + EXIT, 0, "destination register r11 does not exist"),
    (word(0xBF, 0, 12, 0, 0) + EXIT, 0, "source register r12 does not exist"),
    (word(0xB7, 10, 0, 0, 0) + EXIT, 0, "mov writes r10, the read-only frame pointer"),
    (word(0x61, 10, 1, 0, 0) + EXIT, 0, "ldxw writes r10"),
    (EXIT + word(isa.OP_LDDW, 0, 0, 0, 1), 1, "truncated lddw"),
    (word(isa.OP_LDDW, 0, 0, 0, 1) + word(0, 1) + EXIT, 1, "lddw second half must have opcode, registers"),
    (word(isa.OP_JA, 0, 0, 5) + EXIT, 0, "jump target 6 is outside the program (0..1)"),
    (EXIT + word(0x15, 1, 0, -3) + EXIT, 1, "jump target -1 is outside the program"),
    (word(isa.OP_JA, 0, 0, 1) + word(isa.OP_LDDW) + word(0) + EXIT, 0, "jump target 2 is the second half of an lddw"),
    (word(isa.OP_CALL, 0, 1, 0, 9) + EXIT, 0, "call target 10 is outside the program"),
])
def test_decode_program_rejects(code: bytes, index: int, reason: str):
    with pytest.raises(isa.IsaError) as error:
        isa.decode_program(code)
    assert error.value.index == index
    assert error.value.reason.startswith(reason), error.value.reason
    assert f"instruction {index}" in str(error.value)


# -- The vector reader ------------------------------------------------------------------------------------------------

def test_parse_vector_sections():
    vector = conformance.parse_vector(
        "# header\n-- asm\nmov %r0, %r2\nexit\n-- mem\n00 01\nff\n-- c\nint x;\n"
        "-- raw\n0x00000000000000b7\n0x0000000000000095\n-- result\n0xFFFFFFFFFFFFFFF6\n-- error\n  bad thing \n",
        "sample")
    assert vector == conformance.Vector("sample", "mov %r0, %r2\nexit\n", word(0xB7) + EXIT, b"\x00\x01\xff",
                                        0xFFFFFFFFFFFFFFF6, "bad thing")
    assert assemble(vector.asm).encode() == word(0xBF, 0, 2) + EXIT


@pytest.mark.parametrize("text, message", [
    ("-- asm\nexit\n-- mem\n0g\n", "bad.data:4: memory byte '0g' is not hexadecimal"),
    ("-- asm\nexit\n-- mem\n100\n", "bad.data:4: memory byte '100' does not fit in 8 bits"),
    ("-- asm\nexit\n-- result\n1\n2\n", "bad.data:5: the result section holds one number"),
    ("-- asm\nexit\n-- asm\nexit\n", "bad.data:3: section 'asm' appears twice"),
    ("-- result\n0x1\n", "bad.data: no asm or raw section"),
])
def test_parse_vector_errors(text: str, message: str):
    with pytest.raises(conformance.VectorError, match=re.escape(message)):
        conformance.parse_vector(text, "bad.data")


def test_conformance_dir_follows_the_environment(monkeypatch, tmp_path):
    (tmp_path / "one.data").write_text("-- asm\nexit\n-- result\n0x0\n")
    monkeypatch.setenv(conformance.ENVIRONMENT_VARIABLE, str(tmp_path))
    assert conformance.conformance_dir() == tmp_path
    assert [vector.name for vector in conformance.load_vectors()] == ["one"]
    monkeypatch.setenv(conformance.ENVIRONMENT_VARIABLE, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="BPF_CONFORMANCE_DIR"):
        conformance.load_vectors()
