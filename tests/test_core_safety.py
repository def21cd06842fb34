"""Hostile programs on the RTL core: whatever a program does, verified or not, it cannot reach memory
outside the regions it was given, and it ends with the trap the golden VM's fault names.

Each program runs in lockstep where the golden VM can run it (the trap cause and instruction must match
the VM's fault); encodings the VM's decoder refuses run on the core alone. In every run the harness's
memory system fails the test on any request outside the regions, so "no escape" is checked independently
of the core's own trap.

Ref: sw/memory.py (the pointer map and the access rule o + n <= size); hw/core/interfaces.py (traps).
"""

import pytest

from bpfnic.hw.core.interfaces import TrapCause
from bpfnic.sim.lockstep import LockstepHarness
from bpfnic.sw import isa, memory
from bpfnic.sw.asm import assemble
from bpfnic.sw.vm import Vm, VmFault

INPUT = bytes(range(16))


@pytest.fixture(scope="module")
def harness():
    return LockstepHarness(imem_depth=256)


def with_read_only_context(program):
    """INPUT (16 writable bytes, r1) and a 16-byte read-only CONTEXT region (r2 points at it)."""
    vm = Vm(program)
    pointer = vm.add_region(memory.Region("input", memory.TAG_INPUT, bytearray(INPUT)))
    context = vm.add_region(memory.Region("context", memory.TAG_CONTEXT, bytearray(16), writable=False))
    return vm, pointer, context


# source, expected cause, expected trapping instruction
HOSTILE = {
    "load past the end": ("ldxw %r0, [%r1+13]\nexit", TrapCause.BAD_ACCESS, 0),
    "load ending at the end": ("ldxdw %r0, [%r1+8]\nexit", TrapCause.NONE, None),
    "load one byte past": ("ldxdw %r0, [%r1+9]\nexit", TrapCause.BAD_ACCESS, 0),
    "load before the start": ("ldxb %r0, [%r1-1]\nexit", TrapCause.BAD_ACCESS, 0),
    "store past the end": ("stw [%r1+14], 1\nexit", TrapCause.BAD_ACCESS, 0),
    "atomic past the end": ("mov %r3, 1\nlock add32 [%r1+12], %r3\nlock add32 [%r1+13], %r3\nexit", TrapCause.BAD_ACCESS, 2),
    "null pointer": ("mov %r1, 0\nldxb %r0, [%r1]\nexit", TrapCause.BAD_ACCESS, 1),
    "null plus offset": ("mov %r1, 0\nldxb %r0, [%r1+8]\nexit", TrapCause.BAD_ACCESS, 1),
    "map handle": ("lddw %r1, 0x500000000\nldxb %r0, [%r1]\nexit", TrapCause.BAD_ACCESS, 2),
    "high pointer bits": ("lddw %r1, 0x10400000000\nldxb %r0, [%r1]\nexit", TrapCause.BAD_ACCESS, 2),
    "missing region": ("lddw %r1, 0x8000000000\nstb [%r1], 1\nexit", TrapCause.BAD_ACCESS, 2),
    "stack: the byte at r10": ("stb [%r10], 1\nexit", TrapCause.BAD_ACCESS, 0),
    "stack: below the deepest frame": ("ldxb %r0, [%r10-4097]\nexit", TrapCause.BAD_ACCESS, 0),
    "stack: the deepest frame's first byte": ("ldxb %r0, [%r10-4096]\nexit", TrapCause.NONE, None),
    "read-only region: store": ("stb [%r2], 1\nexit", TrapCause.BAD_ACCESS, 0),
    "read-only region: atomic": ("mov %r3, 1\nlock add [%r2], %r3\nexit", TrapCause.BAD_ACCESS, 1),
    "read-only region: load": ("ldxdw %r0, [%r2+8]\nexit", TrapCause.NONE, None),
    "pointer arithmetic across a tag": ("mov %r3, %r1\nlsh %r3, 1\nldxb %r0, [%r3]\nexit", TrapCause.BAD_ACCESS, 2),
    "unknown helper": ("call 99\nexit", TrapCause.UNKNOWN_HELPER, 0),
    "map that does not exist": ("lddw %r1, 0x7\nexit", TrapCause.NONE, None),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_program(harness, name):
    source, cause, pc = HOSTILE[name]
    result = harness.run(assemble(source), environment=with_read_only_context)
    assert result.cause == cause, f"{name}: {result.cause.name} at {result.pc}"
    if pc is not None:
        assert result.pc == pc
    if cause != TrapCause.NONE:
        assert result.r0 == 0, "a trap reports XDP_ABORTED (0)"


def test_lddw_of_a_missing_map_traps(harness):
    program = isa.make_program([isa.lddw(1, 3, src=isa.BPF_PSEUDO_MAP_IDX), isa.exit_insn()])
    result = harness.run(program)
    assert result.cause == TrapCause.INVALID_INSTRUCTION and result.pc == 0


def test_falling_off_the_end_traps(harness):
    result = harness.run(assemble("mov %r0, 1\nadd %r0, 1"))
    assert result.cause == TrapCause.PC_OUT_OF_PROGRAM and result.pc == 2


def raw(*insns: isa.Insn) -> bytes:
    return b"".join(insn.encode() for insn in insns)


@pytest.mark.parametrize("name, code, cause, pc", [
    ("unknown opcode", raw(isa.alu(isa.BPF_MOV, 0, 1)) + bytes([0xFF]) + bytes(7) + raw(isa.exit_insn()),
     TrapCause.INVALID_INSTRUCTION, 1),
    ("write to r10", raw(isa.Insn(isa.BPF_ALU64 | isa.BPF_K | isa.BPF_ADD, 10, 0, 0, 8), isa.exit_insn()),
     TrapCause.INVALID_INSTRUCTION, 0),
    ("register r12", raw(isa.Insn(isa.BPF_ALU64 | isa.BPF_X | isa.BPF_MOV, 0, 12), isa.exit_insn()),
     TrapCause.INVALID_INSTRUCTION, 0),
    ("jump out of the program", raw(isa.Insn(isa.OP_JA, 0, 0, 100), isa.exit_insn()), TrapCause.PC_OUT_OF_PROGRAM, 101),
    ("jump before the program", raw(isa.Insn(isa.OP_JA, 0, 0, -5), isa.exit_insn()), TrapCause.PC_OUT_OF_PROGRAM,
     (1 << 32) - 1),
    ("jump into an lddw's second half", raw(isa.Insn(isa.OP_JA, 0, 0, 2), isa.exit_insn(), isa.lddw(0, 0x1111222233334444),
                                             isa.exit_insn()), TrapCause.INVALID_INSTRUCTION, 3),
    ("truncated lddw", raw(isa.exit_insn())[:0] + raw(isa.alu(isa.BPF_MOV, 0, 0)) + isa.lddw(0, 5).encode()[:8],
     TrapCause.INVALID_INSTRUCTION, 1),
    ("lddw with a bad second half", isa.lddw(0, 5).encode()[:8] + raw(isa.exit_insn()) + raw(isa.exit_insn()),
     TrapCause.INVALID_INSTRUCTION, 0),
    ("kfunc call", raw(isa.Insn(isa.OP_CALL, 0, isa.BPF_PSEUDO_KFUNC_CALL, 0, 7), isa.exit_insn()),
     TrapCause.INVALID_INSTRUCTION, 0),
    ("legacy packet load", raw(isa.Insn(isa.BPF_LD | isa.BPF_ABS | isa.BPF_W, 0, 0, 0, 0), isa.exit_insn()),
     TrapCause.INVALID_INSTRUCTION, 0),
])
def test_encodings_the_vm_refuses(harness, name, code, cause, pc):
    result = harness.run(code)
    assert (result.cause, result.pc) == (cause, pc), f"{name}: {result.cause.name} at {result.pc}"


def test_cycle_budget_ends_an_endless_loop(harness):
    result = harness.run(assemble("mov %r0, 0\nloop:\nadd %r0, 1\nja loop"), reference=False, cycle_budget=500)
    assert result.cause == TrapCause.CYCLE_BUDGET
    assert 500 <= result.cycles <= 505 and result.r0 == 0


def test_no_budget_means_no_limit(harness):
    result = harness.run(assemble("mov %r0, 0\nloop:\nadd %r0, 1\njlt %r0, 3000, loop\nexit"))
    assert result.cause == TrapCause.NONE and result.r0 == 3000


def test_helper_fault_traps(harness):
    def refusing_helper(vm, *args):
        raise vm.fault("bad argument")

    result = harness.run(assemble("mov %r1, 1\ncall 3\nexit"), helpers={3: refusing_helper})
    assert (result.cause, result.pc) == (TrapCause.HELPER_FAULT, 1)


def test_fault_before_any_store_is_issued(harness):
    """A store that faults leaves memory as it was: the region is compared with the VM's at the end."""
    def environment(program):
        vm, pointer, _ = with_read_only_context(program)
        return vm, pointer, 0

    result = harness.run(assemble("stdw [%r1+0], -1\nstdw [%r1+9], -1\nexit"), environment=environment)
    assert result.cause == TrapCause.BAD_ACCESS and result.pc == 1
    assert isinstance(result.reference, VmFault)
