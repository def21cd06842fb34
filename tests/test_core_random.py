"""Random programs on the RTL core in lockstep with the golden VM.

- Verifier-clean programs from sw/progen.py (ALU, divisions, byte swaps, JMP/JMP32 shapes, stack loads and
  stores, atomics), run behind a fast and behind a slow, back-pressuring data port.
- Programs of local calls: progen programs as functions called from a main program that keeps its own
  r6..r9, nested up to four frames deep, and recursion beyond MAX_CALL_FRAMES, which must trap where the
  VM faults.
- Unverified programs: random valid encodings with backward jumps and wild pointers near the edges of the
  regions; the core and the VM must agree instruction by instruction, fault for fault, and the core must
  never ask the memory system for a byte outside its regions.

The default run is short; `--run-slow` runs the long campaigns.

Ref: RFC 9669 (semantics, through the golden VM); sw/progen.py (the verifier's rules it follows).
"""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfnic.hw.core.interfaces import TrapCause
from bpfnic.sim.lockstep import LockstepHarness
from bpfnic.sw import isa, memory, progen
from bpfnic.sw.vm import Vm

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                derandomize=True)


@pytest.fixture(scope="module")
def harness():
    return LockstepHarness(imem_depth=1024)


@pytest.fixture(scope="module")
def slow_harness():
    return LockstepHarness(imem_depth=1024, memory_latency=3, memory_stall=0.35, seed=3)


# -- verifier-clean programs ---------------------------------------------------------------------------

@settings(max_examples=60, **SETTINGS)
@given(progen.programs())
def test_progen_programs(harness, generated):
    harness.run(generated.program())


@settings(max_examples=25, **SETTINGS)
@given(progen.programs(progen.STACK_KINDS + progen.JUMP_KINDS + ("alu",)))
def test_progen_programs_behind_a_slow_memory(slow_harness, generated):
    harness = slow_harness
    harness.run(generated.program())


@pytest.mark.slow
@settings(max_examples=2000, **SETTINGS)
@given(progen.programs(max_items=64, max_branches=8))
def test_progen_campaign(harness, generated):
    harness.run(generated.program())


# -- local calls -------------------------------------------------------------------------------------------

class Call:
    """A local call of function number `index`, placed by _layout."""

    def __init__(self, index: int):
        self.index = index
        self.slots = 1


def _layout(functions: list[list]) -> isa.Program:
    """Place functions one after the other, turning each Call into a call instruction."""
    starts, position = [], 0
    for body in functions:
        starts.append(position)
        position += sum(item.slots for item in body)
    insns, position = [], 0
    for body in functions:
        for item in body:
            if isinstance(item, Call):
                insns.append(isa.Insn(isa.OP_CALL, 0, isa.BPF_PSEUDO_CALL_LOCAL, 0, starts[item.index] - position - 1))
                position += 1
            else:
                insns.append(item)
                position += item.slots
    return isa.make_program(insns)


@st.composite
def call_programs(draw):
    """main: r6..r9 set, then calls of functions (progen programs, each a complete function that sets its own
    registers and exits), folding r0 and r6..r9 after each call; some functions call deeper ones."""
    count = draw(st.integers(1, 3))
    bodies = [list(draw(progen.programs(max_items=12, max_branches=3)).insns) for _ in range(count)]
    main = [isa.alu(isa.BPF_MOV, register, draw(st.integers(-2**31, 2**31 - 1))) for register in range(6, 10)]
    for _ in range(draw(st.integers(1, 3))):
        main += [isa.alu(isa.BPF_MOV, 1, draw(st.integers(0, 1000))), Call(draw(st.integers(1, count)))]
        main += [isa.alu(isa.BPF_ADD, 6, "r0"), isa.alu(isa.BPF_XOR, 7, "r6")]
    main += [isa.alu(isa.BPF_MOV, 0, "r6"), isa.alu(isa.BPF_ADD, 0, "r7"), isa.alu(isa.BPF_ADD, 0, "r8"),
             isa.alu(isa.BPF_ADD, 0, "r9"), isa.exit_insn()]
    functions = [main]
    for index, body in enumerate(bodies, 1):
        # a function may first call a deeper one (a later index), keeping the tree finite
        if index < count and draw(st.booleans()):
            body = [isa.alu(isa.BPF_MOV, 6, index), Call(draw(st.integers(index + 1, count)))] + body
        functions.append(body)
    return _layout(functions)


@settings(max_examples=25, **SETTINGS)
@given(call_programs())
def test_local_calls(harness, program):
    harness.run(program)


def test_recursion_beyond_the_frame_limit_traps(harness):
    """A function that calls itself: the eighth frame's call faults in the VM and traps CALL_DEPTH here."""
    program = _layout([
        [isa.alu(isa.BPF_MOV, 0, 0), Call(1), isa.exit_insn()],
        [isa.Insn(isa.BPF_STX | isa.BPF_MEM | isa.BPF_DW, 10, 6, -8), isa.alu(isa.BPF_ADD, 0, 1),
         isa.alu(isa.BPF_MOV, 6, "r0"), Call(1), isa.exit_insn()],
    ])
    result = harness.run(program)
    assert result.cause == TrapCause.CALL_DEPTH and result.pc == 6


# -- unverified programs --------------------------------------------------------------------------------------

def _wild_pointer(rng: random.Random) -> int:
    """A pointer at, just inside or just outside some region's edge, or a wild one."""
    tag = rng.choice([memory.TAG_INPUT, memory.TAG_STACK, memory.TAG_CONTEXT, memory.TAG_PACKET,
                      memory.TAG_MAP_HANDLE, 0, 0x80, 0x7F, 0x104])
    offset = rng.choice([0, 1, 7, 8, 15, 16, 17, 24, 4088, 4095, 4096, 0xFFFFFFFF, 0xFFFFFFF8,
                         rng.getrandbits(32)])
    return (tag << 32 | offset) & ((1 << 64) - 1)


def _random_program(rng: random.Random, length: int) -> isa.Program:
    """Random instructions that decode (legal encodings, jumps inside the program and not into an lddw's
    second half), with pointers near region edges; loops are allowed."""
    opcodes = [opcode for opcode, info in isa.OPCODES.items()
               if info.kind not in (isa.InsnKind.LD_PACKET, isa.InsnKind.CALL, isa.InsnKind.CALLX)]
    insns: list[isa.Insn] = [isa.lddw(rng.randrange(10), _wild_pointer(rng)) for _ in range(3)]
    while len(insns) < length:
        if rng.random() < 0.15:
            insns.append(isa.lddw(rng.randrange(10), _wild_pointer(rng)))
            continue
        opcode = rng.choice(opcodes)
        info = isa.OPCODES[opcode]
        for _ in range(50):
            insn = isa.Insn(opcode, rng.randrange(11), rng.randrange(11),
                            rng.choice([0, 0, 1, -1, 4, -8, 8, 16, 32, rng.randrange(-64, 64)]),
                            rng.choice([0, 1, 8, 16, 32, 64, -1, rng.getrandbits(31)] + sorted(isa.ATOMIC_OPS)))
            if info.kind in (isa.InsnKind.JA, isa.InsnKind.JCOND):
                insn = insn._replace(off=rng.randrange(-4, 6)) if insn.opcode != isa.OP_JA32 else insn._replace(imm=rng.randrange(-4, 6))
            try:
                isa.check_insn(insn)
            except isa.IsaError:
                continue
            insns.append(insn)
            break
    insns.append(isa.exit_insn())
    encoded = b"".join(insn.encode() for insn in insns)
    return isa.decode_program(encoded)   # raises IsaError for a bad jump target: the caller draws again


def _fuzz(harness: LockstepHarness, seed: int, runs: int) -> dict:
    rng = random.Random(seed)
    causes = {}
    mem = bytes(rng.getrandbits(8) for _ in range(24))
    done = 0
    while done < runs:
        try:
            program = _random_program(rng, rng.randrange(8, 40))
        except isa.IsaError:
            continue

        def environment(program, mem=mem):
            vm = Vm(program, instruction_limit=300)
            pointer = vm.add_region(memory.Region("input", memory.TAG_INPUT, bytearray(mem)))
            vm.add_region(memory.Region("context", memory.TAG_CONTEXT, bytearray(range(16)), writable=False))
            return vm, pointer, len(mem)

        # the budget ends loops before the VM's instruction limit, so every step the core takes is compared
        result = harness.run(program, environment=environment, cycle_budget=300)
        causes[result.cause] = causes.get(result.cause, 0) + 1
        done += 1
    return causes


def test_unverified_random_programs(harness):
    causes = _fuzz(harness, seed=1, runs=120)
    # the programs must exercise both the good ends and the traps the safety rests on
    assert causes.get(TrapCause.BAD_ACCESS) and causes.get(TrapCause.NONE), causes


@pytest.mark.slow
def test_unverified_random_programs_campaign(harness, slow_harness):
    _fuzz(harness, seed=2, runs=3000)
    _fuzz(slow_harness, seed=3, runs=1000)
