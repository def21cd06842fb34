"""Differential tests: the golden VM (sw/vm.py) against the Linux kernel, on random programs (sw/progen.py).

The kernel is the second oracle (STYLE.md, "What we take" 6). Each generated program runs twice:
- on the VM as it is (`Vm(program).run()`);
- in the kernel as an XDP program (BPF_PROG_LOAD, BPF_PROG_TEST_RUN of include/uapi/linux/bpf.h), wrapped so
  that the full 64-bit r0 comes back: test_run reports only a 32-bit retval, so every `exit` of the body
  becomes a jump to an epilogue that stores r0 as a u64 at data[0] (after the `data + 8 <= data_end` check on
  struct xdp_md's data and data_end, offsets 0 and 4) and returns XDP_PASS.
The context pointer is spilled to [r10-512] first; generated programs use the stack above it only. The
packet is 96 bytes (room for the 80 bytes of initial registers of the "opaque" way below).

Two ways of setting r0..r9 in the kernel, drawn per example: "known" runs the program's own lddw/mov
prefix, so the verifier knows every value and decides every branch itself (and rewrites the dead ones
away); "opaque" loads the same values from the packet instead, so the verifier knows nothing and the JIT's
compares and jumps do the work.

Examples per test: BPFNIC_KDIFF_EXAMPLES (default 1500); `--run-slow` adds a long campaign of all kinds.
"""

from __future__ import annotations

import os
import platform
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfnic.sw import isa, progen
from bpfnic.sw import kernel_bpf as kb
from bpfnic.sw.vm import Vm, VmFault

try:
    from bpfnic.sw.disasm import format_insn
except ImportError:  # the disassembler is optional here: fall back to raw bytes
    format_insn = None

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(kb.bpf_unavailable_reason() is not None, reason=kb.bpf_unavailable_reason() or ""),
]

KERNEL = platform.release()
EXAMPLES = int(os.environ.get("BPFNIC_KDIFF_EXAMPLES", "1500"))
CAMPAIGN_EXAMPLES = int(os.environ.get("BPFNIC_KDIFF_CAMPAIGN_EXAMPLES", "20000"))
COVERAGE_EXAMPLES = 1000   # from here on, every instruction form of a test's kinds must have come up

CTX_SPILL = -isa.STACK_SIZE                       # the struct xdp_md pointer lives at [r10-512]
STACK_WINDOW = (CTX_SPILL + 8, 0)                 # the generated programs get the rest of the frame
XDP_MD_DATA, XDP_MD_DATA_END = 0, 4               # offsets in struct xdp_md
PACKET_SIZE = 96                                  # 80 bytes of initial registers, plus room
R1, R2, R3, R4 = 1, 2, 3, 4


def _ld(size: int, dst: int, base: int, off: int) -> isa.Insn:
    return isa.Insn(isa.BPF_LDX | isa.BPF_MEM | size, dst, base, off)


def _stx(size: int, base: int, off: int, src: int) -> isa.Insn:
    return isa.Insn(isa.BPF_STX | isa.BPF_MEM | size, base, src, off)


def _mov(dst: int, value: int | str) -> isa.Insn:
    return isa.alu(isa.BPF_MOV, dst, value)


def _packet_bounds_check(length: int, ok_is_taken: bool, skip: int) -> list[isa.Insn]:
    """r2 = data, r3 = data_end from the spilled-to-r1 context; then a jump over `skip` slots: taken when the
    packet holds `length` bytes (ok_is_taken) or when it does not."""
    compare = isa.BPF_JLE if ok_is_taken else isa.BPF_JGT
    return [_ld(isa.BPF_W, R2, R1, XDP_MD_DATA), _ld(isa.BPF_W, R3, R1, XDP_MD_DATA_END),
            _mov(R4, f"r{R2}"), isa.alu(isa.BPF_ADD, R4, length), isa.jcond(compare, R4, f"r{R3}", skip)]


def _epilogue() -> list[isa.Insn]:
    """Store the 64-bit r0 at data[0], return XDP_PASS; XDP_ABORTED if the packet is too short."""
    return ([_ld(isa.BPF_DW, R1, isa.FRAME_POINTER, CTX_SPILL)] + _packet_bounds_check(8, False, 3)
            + [_stx(isa.BPF_DW, R2, 0, 0), _mov(0, kb.XDP_PASS), isa.exit_insn(),
               _mov(0, kb.XDP_ABORTED), isa.exit_insn()])


def _opaque_init() -> list[isa.Insn]:
    """Load r0..r9 from the first 80 bytes of the packet (r2, the packet pointer, last)."""
    loads = [_ld(isa.BPF_DW, reg, R2, 8 * reg) for reg in progen.DATA_REGISTERS if reg != R2]
    return (_packet_bounds_check(8 * len(progen.DATA_REGISTERS), True, 2)
            + [_mov(0, kb.XDP_ABORTED), isa.exit_insn()] + loads + [_ld(isa.BPF_DW, R2, R2, 8 * R2)])


def wrap_for_kernel(generated: progen.GeneratedProgram, opaque: bool) -> tuple[list[isa.Insn], bytes]:
    """The XDP program that runs `generated` and hands back its 64-bit r0, and the packet to run it on."""
    prologue = [_stx(isa.BPF_DW, isa.FRAME_POINTER, CTX_SPILL, R1)]
    if opaque:
        prologue += _opaque_init()
        body = list(generated.body)
        packet = struct.pack("<10Q", *generated.initial_registers).ljust(PACKET_SIZE, b"\xA5")
    else:
        body = list(generated.insns)
        packet = bytes(range(PACKET_SIZE))
    start = sum(insn.slots for insn in prologue)
    epilogue_at = start + sum(insn.slots for insn in body)
    wrapped = list(prologue)
    slot = start
    for insn in body:
        if insn.opcode == isa.OP_EXIT:
            insn = isa.Insn(isa.OP_JA, off=epilogue_at - (slot + 1))
        wrapped.append(insn)
        slot += insn.slots
    return wrapped + _epilogue(), packet


def kernel_r0(generated: progen.GeneratedProgram, opaque: bool) -> int:
    """r0 of `generated` as the kernel computes it. Fails the test with the verifier log if refused."""
    insns, packet = wrap_for_kernel(generated, opaque)
    code = isa.encode_program(insns)
    try:
        prog = kb.KernelProgram.load(kb.BPF_PROG_TYPE_XDP, code, log_level=0, name="kdiff")
    except kb.BpfError as error:
        log = "\n".join(error.log.rstrip().splitlines()[-60:])
        pytest.fail(f"the kernel ({KERNEL}) refused a generated program ({'opaque' if opaque else 'known'} "
                    f"registers): {str(error).splitlines()[0]}\n{listing(isa.make_program(insns))}\n"
                    f"verifier log (end):\n{log}", pytrace=False)
    with prog:
        result = prog.test_run(packet)
    if result.retval != kb.XDP_PASS or len(result.data_out) < 8:
        pytest.fail(f"the wrapped program returned {result.retval} with {len(result.data_out)} bytes of "
                    f"packet, not XDP_PASS with r0 in data[0:8]\n{listing(isa.make_program(insns))}",
                    pytrace=False)
    return struct.unpack_from("<Q", result.data_out)[0]


def listing(program: isa.Program) -> str:
    lines = []
    for index, insn in program.instructions():
        raw = insn.encode()[:8].hex(" ")
        text = format_insn(insn, index) if format_insn is not None else ""
        lines.append(f"{index:5d}: {raw}  {text}".rstrip())
    return "\n".join(lines)


def check_against_kernel(generated: progen.GeneratedProgram, opaque: bool) -> None:
    program = generated.program()
    try:
        vm_r0 = Vm(program).run().r0
    except VmFault as fault:
        pytest.fail(f"the VM faulted on a generated program: {fault}\n{listing(program)}", pytrace=False)
    kernel = kernel_r0(generated, opaque)
    if vm_r0 != kernel:
        registers = " ".join(f"r{reg}=0x{value:x}" for reg, value in enumerate(generated.initial_registers))
        pytest.fail(f"VM and kernel ({KERNEL}) disagree on r0: VM 0x{vm_r0:016x}, kernel 0x{kernel:016x} "
                    f"(registers set {'from the packet' if opaque else 'by the program'})\n"
                    f"initial registers: {registers}\n{listing(program)}", pytrace=False)


# -- -mcpu=v4 instructions: which does this kernel take? --------------------------------------------------

def _pass(*insns: isa.Insn) -> bytes:
    return isa.encode_program([*insns, _mov(0, kb.XDP_PASS), isa.exit_insn()])


_V4_PROBES = {
    progen.KIND_SDIVMOD: _pass(_mov(0, 7), _mov(1, -2), isa.alu(isa.BPF_DIV, 0, "r1", True, off=1),
                               isa.alu(isa.BPF_MOD, 0, 3, False, off=1)),
    progen.KIND_MOVSX: _pass(_mov(1, 0x80), isa.alu(isa.BPF_MOV, 0, "r1", True, off=8),
                             isa.alu(isa.BPF_MOV, 0, "r1", False, off=16)),
    progen.KIND_BSWAP: _pass(_mov(0, 1), isa.Insn(isa.BPF_ALU64 | isa.BPF_END, 0, imm=64)),
    progen.KIND_GOTOL: _pass(isa.Insn(isa.OP_JA32, imm=0)),
    progen.KIND_LOADSX: _pass(isa.Insn(isa.BPF_ST | isa.BPF_MEM | isa.BPF_B, 10, 0, -8, 0x80),
                              isa.Insn(isa.BPF_LDX | isa.BPF_MEMSX | isa.BPF_B, 0, 10, -8)),
}
assert set(_V4_PROBES) == set(progen.V4_KINDS)

_refusals: dict[str, str | None] = {}


def v4_refusal(kind: str) -> str | None:
    """Why this kernel refuses the v4 instructions of `kind`, or None if it takes them."""
    if kind not in _refusals:
        try:
            kb.KernelProgram.load(kb.BPF_PROG_TYPE_XDP, _V4_PROBES[kind]).close()
            _refusals[kind] = None
        except kb.BpfError as error:
            last = error.log.strip().splitlines()[-1:] or [str(error).splitlines()[0]]
            _refusals[kind] = f"kernel {KERNEL} refuses -mcpu=v4 kind {kind!r}: {last[0]}"
    return _refusals[kind]


def accepted(kinds) -> tuple[str, ...]:
    return tuple(kind for kind in kinds if kind not in progen.V4_KINDS or v4_refusal(kind) is None)


@pytest.mark.parametrize("kind", sorted(progen.V4_KINDS))
def test_kernel_takes_v4_instructions(kind):
    """Reports (as a skip) a v4 kind this kernel refuses; the random tests leave such kinds out."""
    reason = v4_refusal(kind)
    if reason is not None:
        pytest.skip(reason)


# -- the harness itself ---------------------------------------------------------------------------------

@pytest.mark.parametrize("opaque", [False, True], ids=["known", "opaque"])
def test_harness_returns_the_full_64_bit_r0(opaque):
    values = (0x8877665544332211, 0xFFFFFFFF00000001, 0x0123456789ABCDEF, 1 << 63, 0xFFFFFFFF,
              0x100000000, 0xDEADBEEFCAFEF00D, 7, 0x8000000000000001, 0xFFFFFFFFFFFFFFFF)
    generated = progen.GeneratedProgram(tuple(isa.lddw(reg, value) for reg, value in enumerate(values)),
                                        tuple(progen.fold_and_exit()), values)
    expected = values[0]
    for reg in range(1, 10):
        expected = expected ^ values[reg] if reg % 2 else (expected + values[reg]) & progen.M64
    assert Vm(generated.program()).run().r0 == expected
    assert kernel_r0(generated, opaque) == expected


def _opcode_forms(kinds) -> set[tuple]:
    """Every instruction form (opcode, and the off/imm values that select an operation) the kinds can emit."""
    return {form for form, kind in _every_form() if kind in kinds}


def _form(insn: isa.Insn) -> tuple:
    info = isa.OPCODES[insn.opcode]
    if info.kind == isa.InsnKind.END:
        return (insn.opcode, insn.imm)
    if info.kind == isa.InsnKind.ATOMIC:
        return (insn.opcode, insn.imm)
    if info.kind == isa.InsnKind.ALU:
        return (insn.opcode, insn.off)
    return (insn.opcode,)


def _every_form():
    """(form, kind) for each form the generator should reach."""
    for cls in (isa.BPF_ALU, isa.BPF_ALU64):
        for op in (isa.BPF_ADD, isa.BPF_SUB, isa.BPF_MUL, isa.BPF_OR, isa.BPF_AND, isa.BPF_XOR, isa.BPF_MOV,
                   isa.BPF_LSH, isa.BPF_RSH, isa.BPF_ARSH):
            for source in (isa.BPF_K, isa.BPF_X):
                yield (cls | source | op, 0), progen.KIND_ALU
        yield (cls | isa.BPF_NEG, 0), progen.KIND_ALU
        for op in (isa.BPF_DIV, isa.BPF_MOD):
            for source in (isa.BPF_K, isa.BPF_X):
                yield (cls | source | op, 0), progen.KIND_DIVMOD
                yield (cls | source | op, 1), progen.KIND_SDIVMOD
        for width in ((8, 16, 32) if cls == isa.BPF_ALU64 else (8, 16)):
            yield (cls | isa.BPF_X | isa.BPF_MOV, width), progen.KIND_MOVSX
        for width in (16, 32, 64):
            if cls == isa.BPF_ALU:
                yield (cls | isa.BPF_TO_LE | isa.BPF_END, width), progen.KIND_END
                yield (cls | isa.BPF_TO_BE | isa.BPF_END, width), progen.KIND_END
            else:
                yield (cls | isa.BPF_END, width), progen.KIND_BSWAP
    yield (isa.OP_LDDW,), progen.KIND_LDDW
    for cls in (isa.BPF_JMP, isa.BPF_JMP32):
        for op in isa.JMP_COND_NAMES:
            for source in (isa.BPF_K, isa.BPF_X):
                yield (cls | source | op,), progen.KIND_JCOND
    yield (isa.OP_JA,), progen.KIND_JCOND
    yield (isa.OP_JA32,), progen.KIND_GOTOL
    for size in isa.SIZE_BYTES:
        yield (isa.BPF_ST | isa.BPF_MEM | size,), progen.KIND_STORE
        yield (isa.BPF_STX | isa.BPF_MEM | size,), progen.KIND_STORE
        yield (isa.BPF_LDX | isa.BPF_MEM | size,), progen.KIND_LOAD
        if size != isa.BPF_DW:
            yield (isa.BPF_LDX | isa.BPF_MEMSX | size,), progen.KIND_LOADSX
    for size in (isa.BPF_W, isa.BPF_DW):
        for op in isa.ATOMIC_OPS:
            yield (isa.BPF_STX | isa.BPF_ATOMIC | size, op), progen.KIND_ATOMIC


def test_generator_rejects_bad_parameters():
    with pytest.raises(ValueError, match="unknown instruction kinds"):
        progen.programs(["alu", "floating point"])
    with pytest.raises(ValueError, match="add 'jcond'"):
        progen.programs(["alu", "exit"])
    with pytest.raises(ValueError, match="emit no instructions"):
        progen.programs(["jcond", "exit"])
    with pytest.raises(ValueError, match="stack_window"):
        progen.programs(stack_window=(-4, 0))


# -- the differential tests -----------------------------------------------------------------------------

def _settings(examples: int):
    return settings(max_examples=examples, deadline=None, derandomize=False, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def run_differential(kinds, examples: int, **options) -> None:
    """Compare VM and kernel on `examples` random programs of the (accepted) kinds; then check that the
    programs held every instruction form of those kinds, so that a passing run means they were all tried."""
    kinds = accepted(kinds)
    strategy = progen.programs(kinds, stack_window=STACK_WINDOW, **options)
    seen: set[tuple] = set()

    @_settings(examples)
    @given(data=st.data(), opaque=st.booleans())
    def differential(data, opaque):
        generated = data.draw(strategy, label="program")
        check_against_kernel(generated, opaque)
        seen.update(_form(insn) for insn in generated.body)

    differential()
    if examples >= COVERAGE_EXAMPLES:  # fewer programs may miss a rare form by chance
        missing = _opcode_forms(kinds) - seen
        assert not missing, f"{examples} programs of kinds {kinds} never held: " + ", ".join(
            f"{isa.OPCODES[form[0]].mnemonic} (0x{form[0]:02x}{f', {form[1]}' if len(form) > 1 else ''})"
            for form in sorted(missing))


def test_alu_programs_agree_with_the_kernel():
    """(a) straight-line ALU/ALU64: every operation, immediate and register sources, divisions by 0."""
    run_differential(progen.ALU_KINDS, EXAMPLES)


def test_jump_programs_agree_with_the_kernel():
    """(b) forward conditional jumps (JMP, JMP32; imm, register; every condition), ja, gotol, early exits."""
    run_differential((progen.KIND_ALU, progen.KIND_LDDW) + progen.JUMP_KINDS, EXAMPLES)


def test_stack_programs_agree_with_the_kernel():
    """(c) stores, loads (also sign-extending) and atomics of every size on written stack bytes."""
    run_differential((progen.KIND_ALU,) + progen.STACK_KINDS, EXAMPLES)


@pytest.mark.slow
def test_campaign_of_all_kinds_agrees_with_the_kernel():
    """Everything at once, longer programs: a campaign for --run-slow."""
    run_differential(progen.ALL_KINDS, CAMPAIGN_EXAMPLES, max_items=64, max_branches=8)
