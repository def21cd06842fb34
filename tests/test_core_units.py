"""The core's units one by one, each against a naive software model of its RFC 9669 semantics.

Ref: RFC 9669 §4.1 (arithmetic), §4.2 (byte swaps), §4.3 (jump conditions), §3 and `isa.check_insn` (which
encodings are legal). Combinational units are driven by a testbench without a clock; the multi-cycle units
(multiplier, divider) are clocked, and the pipeline stage is checked with random stalls and kills.
"""

import random

import pytest
from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from bpfnic.hw.core.alu import Alu
from bpfnic.hw.core.branch import BranchUnit
from bpfnic.hw.core.byteswap import ByteSwap
from bpfnic.hw.core.divider import Divider
from bpfnic.hw.core.isa_decode import Decoder, Operation, operation_of
from bpfnic.hw.core.multiplier import Multiplier
from bpfnic.hw.core.shifter import Shifter
from bpfnic.hw.core.stage import Stage
from bpfnic.sw import isa

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
EDGES = [0, 1, 2, 7, 0x7F, 0x80, 0xFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x100000000,
         0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFE, 0x123456789ABCDEF0]


def operand_pairs(rng: random.Random, count: int):
    pairs = [(a, b) for a in EDGES for b in EDGES[::3]]
    pairs += [(rng.getrandbits(64), rng.getrandbits(64)) for _ in range(count)]
    pairs += [(rng.getrandbits(rng.choice((8, 16, 32, 40))), rng.getrandbits(rng.choice((3, 8, 33)))) for _ in range(count)]
    return pairs


def run_combinational(dut, body):
    simulator = Simulator(dut)
    simulator.add_testbench(body)
    simulator.run()


def signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


# -- the decoder ----------------------------------------------------------------------------------------

# The values each field's rules tell apart (isa.check_insn): registers that exist, r10, and beyond; offsets
# of signed division and sign-extending moves; immediates of byte swaps, callx registers and atomics.
FIELD_VALUES = {
    "dst": [0, 5, 10, 11, 15],
    "src": [0, 1, 2, 4, 5, 10, 11],
    "off": [0, 1, 2, 8, 16, 32, -1, 3],
    "imm": sorted({0, 1, 5, 10, 11, 16, 32, 64, -1, 0xE0, 2**31 - 1, -2**31} | set(isa.ATOMIC_OPS)),
}


def _decoder_words(rng: random.Random):
    """Every opcode byte with every pair of field values (the other fields 0), which puts each rule of
    isa.check_insn, none of which involves more than two fields at once, on both of its sides; and random
    words."""
    words = []
    names = list(FIELD_VALUES)
    for opcode in range(256):
        words += [isa.Insn(opcode, rng.randrange(16), rng.randrange(16), rng.randrange(-32768, 32768),
                           rng.randrange(-2**31, 2**31)) for _ in range(4)]
        if opcode not in isa.OPCODES:
            continue
        for first in range(len(names)):
            for second in range(first + 1, len(names)):
                for value_one in FIELD_VALUES[names[first]]:
                    for value_two in FIELD_VALUES[names[second]]:
                        words.append(isa.Insn(opcode)._replace(**{names[first]: value_one, names[second]: value_two}))
    return words


def test_decoder_legal_exactly_when_check_insn_accepts():
    rng = random.Random(5)
    words = _decoder_words(rng)
    decoder = Decoder()
    mismatches = []

    async def bench(ctx):
        for insn in words:
            ctx.set(decoder.word, int.from_bytes(insn.encode()[:8], "little"))
            decoded = ctx.get(decoder.decoded)
            try:
                info = isa.check_insn(insn)
                legal = True
            except isa.IsaError:
                legal = False
            if decoded.legal != legal:
                mismatches.append((insn, legal))
                continue
            if legal:
                expected = operation_of(info)
                if info.kind == isa.InsnKind.CALL:
                    expected = {isa.BPF_PSEUDO_CALL_HELPER: Operation.CALL_HELPER,
                                isa.BPF_PSEUDO_CALL_LOCAL: Operation.CALL_LOCAL}.get(insn.src, Operation.INVALID)
                if decoded.operation != expected:
                    mismatches.append((insn, f"operation {decoded.operation} != {expected}"))

    run_combinational(decoder, bench)
    assert not mismatches, f"{len(mismatches)} words decoded wrongly, first: {mismatches[:5]}"


def test_decoder_registers_of_each_kind():
    """The operand and destination registers the pipeline reads and writes, for one of each kind."""
    cases = [
        (isa.alu(isa.BPF_ADD, 3, "r4"), dict(ra=3, reads_a=1, rb=4, reads_b=1, rd=3, writes_rd=1)),
        (isa.alu(isa.BPF_MOV, 3, 7), dict(reads_a=0, reads_b=0, rd=3, writes_rd=1)),
        (isa.Insn(isa.BPF_LDX | isa.BPF_MEM | isa.BPF_W, 2, 6, -4), dict(ra=6, reads_a=1, rd=2, writes_rd=1)),
        (isa.Insn(isa.BPF_STX | isa.BPF_MEM | isa.BPF_DW, 10, 1, -8), dict(ra=10, reads_a=1, rb=1, reads_b=1, writes_rd=0)),
        (isa.Insn(isa.BPF_STX | isa.BPF_ATOMIC | isa.BPF_DW, 10, 1, -8, isa.BPF_ADD | isa.BPF_FETCH),
         dict(ra=10, rb=1, rd=1, writes_rd=1)),
        (isa.Insn(isa.BPF_STX | isa.BPF_ATOMIC | isa.BPF_W, 10, 1, -8, isa.BPF_CMPXCHG), dict(rd=0, writes_rd=1)),
        (isa.Insn(isa.BPF_STX | isa.BPF_ATOMIC | isa.BPF_W, 10, 1, -8, isa.BPF_XOR), dict(writes_rd=0)),
        (isa.Insn(isa.OP_CALL, 0, 0, 0, 7), dict(rd=0, writes_rd=1, reads_a=0)),
        (isa.Insn(isa.OP_CALLX, 0, 0, 0, 4), dict(ra=4, reads_a=1, rd=0, writes_rd=1)),
        (isa.Insn(isa.OP_CALLX, 5, 0, 0, 0), dict(ra=5, reads_a=1)),
        (isa.exit_insn(), dict(reads_a=0, reads_b=0, writes_rd=0)),
    ]
    decoder = Decoder()

    async def bench(ctx):
        for insn, expected in cases:
            ctx.set(decoder.word, int.from_bytes(insn.encode()[:8], "little"))
            decoded = ctx.get(decoder.decoded)
            assert decoded.legal, insn
            for name, value in expected.items():
                assert getattr(decoded, name) == value, f"{insn}: {name} = {getattr(decoded, name)}, not {value}"

    run_combinational(decoder, bench)


# -- ALU, shifter, byte swap, branch ----------------------------------------------------------------------

def alu_model(op: int, is64: bool, a: int, b: int, movsx: int) -> int:
    bits = 64 if is64 else 32
    mask = (1 << bits) - 1
    a &= mask
    b64 = b
    b &= mask
    if op == isa.BPF_MOV and movsx:
        return signed(b64, movsx) & mask
    result = {isa.BPF_ADD: a + b, isa.BPF_SUB: a - b, isa.BPF_OR: a | b, isa.BPF_AND: a & b,
              isa.BPF_XOR: a ^ b, isa.BPF_NEG: -a, isa.BPF_MOV: b}[op]
    return result & mask


@pytest.mark.parametrize("op", [isa.BPF_ADD, isa.BPF_SUB, isa.BPF_OR, isa.BPF_AND, isa.BPF_XOR, isa.BPF_NEG, isa.BPF_MOV],
                         ids=lambda op: isa.ALU_OP_NAMES[op])
def test_alu(op):
    rng = random.Random(op)
    alu = Alu()
    movsx_options = (0, 8, 16, 32) if op == isa.BPF_MOV else (0,)

    async def bench(ctx):
        ctx.set(alu.op, op >> 4)
        for a, b in operand_pairs(rng, 150):
            for is64 in (0, 1):
                for movsx in movsx_options:
                    if movsx == 32 and not is64:
                        continue
                    ctx.set(alu.is64, is64)
                    ctx.set(alu.movsx_bits, movsx)
                    ctx.set(alu.a, a)
                    ctx.set(alu.b, b)
                    expected = alu_model(op, is64, a, b, movsx)
                    assert ctx.get(alu.result) == expected, (hex(a), hex(b), is64, movsx)

    run_combinational(alu, bench)


def shift_model(op: int, is64: bool, a: int, b: int) -> int:
    bits = 64 if is64 else 32
    mask = (1 << bits) - 1
    amount = b & (bits - 1)
    a &= mask
    if op == isa.BPF_LSH:
        return (a << amount) & mask
    if op == isa.BPF_RSH:
        return a >> amount
    return (signed(a, bits) >> amount) & mask


@pytest.mark.parametrize("op", [isa.BPF_LSH, isa.BPF_RSH, isa.BPF_ARSH], ids=lambda op: isa.ALU_OP_NAMES[op])
def test_shifter(op):
    rng = random.Random(op)
    shifter = Shifter()

    async def bench(ctx):
        ctx.set(shifter.op, op >> 4)
        for a, _ in operand_pairs(rng, 60):
            for amount in (0, 1, 7, 31, 32, 33, 63, 64, 65, rng.getrandbits(64)):
                for is64 in (0, 1):
                    ctx.set(shifter.is64, is64)
                    ctx.set(shifter.a, a)
                    ctx.set(shifter.b, amount)
                    assert ctx.get(shifter.result) == shift_model(op, is64, a, amount), (hex(a), amount, is64)

    run_combinational(shifter, bench)


def test_byteswap():
    rng = random.Random(3)
    unit = ByteSwap()

    async def bench(ctx):
        for a in EDGES + [rng.getrandbits(64) for _ in range(100)]:
            for width in (16, 32, 64):
                for swap in (0, 1):
                    ctx.set(unit.a, a)
                    ctx.set(unit.width, width)
                    ctx.set(unit.swap, swap)
                    low = a & ((1 << width) - 1)
                    expected = int.from_bytes(low.to_bytes(width // 8, "little"), "big") if swap else low
                    assert ctx.get(unit.result) == expected, (hex(a), width, swap)

    run_combinational(unit, bench)


def branch_model(op: int, is64: bool, a: int, b: int) -> bool:
    bits = 64 if is64 else 32
    ua, ub = a & ((1 << bits) - 1), b & ((1 << bits) - 1)
    sa, sb = signed(a, bits), signed(b, bits)
    return {isa.BPF_JEQ: ua == ub, isa.BPF_JNE: ua != ub, isa.BPF_JSET: bool(ua & ub), isa.BPF_JGT: ua > ub,
            isa.BPF_JGE: ua >= ub, isa.BPF_JLT: ua < ub, isa.BPF_JLE: ua <= ub, isa.BPF_JSGT: sa > sb,
            isa.BPF_JSGE: sa >= sb, isa.BPF_JSLT: sa < sb, isa.BPF_JSLE: sa <= sb}[op]


def test_branch_conditions():
    rng = random.Random(11)
    unit = BranchUnit()
    pairs = operand_pairs(rng, 40) + [(a, a) for a in EDGES] + [(a, a ^ (1 << 32)) for a in EDGES]

    async def bench(ctx):
        for op in isa.JMP_COND_NAMES:
            ctx.set(unit.op, op >> 4)
            for a, b in pairs:
                for is64 in (0, 1):
                    ctx.set(unit.is64, is64)
                    ctx.set(unit.a, a)
                    ctx.set(unit.b, b)
                    assert ctx.get(unit.taken) == branch_model(op, is64, a, b), (isa.JMP_COND_NAMES[op], hex(a), hex(b), is64)

    run_combinational(unit, bench)


# -- multi-cycle units --------------------------------------------------------------------------------------

def divide_model(a: int, b: int, is64: bool, is_signed: bool, remainder: bool) -> int:
    bits = 64 if is64 else 32
    mask = (1 << bits) - 1
    a &= mask
    b &= mask
    if b == 0:
        return a if remainder else 0
    if not is_signed:
        return (a % b) if remainder else (a // b)
    sa, sb = signed(a, bits), signed(b, bits)
    quotient = abs(sa) // abs(sb) * (-1 if (sa < 0) != (sb < 0) else 1)
    rest = abs(sa) % abs(sb) * (-1 if sa < 0 else 1)
    return (rest if remainder else quotient) & mask


@pytest.mark.parametrize("bits_per_cycle", [1, 2, 4])
def test_divider(bits_per_cycle):
    rng = random.Random(bits_per_cycle)
    divider = Divider(bits_per_cycle)
    cases = operand_pairs(rng, 40 if bits_per_cycle == 1 else 15)
    cases += [(0x8000000000000000, M64), (0x80000000, M32), (5, 0), (M64, 0)]

    async def bench(ctx):
        for a, b in cases:
            for is64 in (0, 1):
                for is_signed in (0, 1):
                    for remainder in (0, 1):
                        ctx.set(divider.start, 1)
                        for name, value in (("a", a), ("b", b), ("is64", is64), ("signed", is_signed),
                                            ("remainder", remainder)):
                            ctx.set(getattr(divider, name), value)
                        await ctx.tick()
                        ctx.set(divider.start, 0)
                        cycles = 1
                        while not ctx.get(divider.done):
                            await ctx.tick()
                            cycles += 1
                        expected = divide_model(a, b, is64, is_signed, remainder)
                        assert ctx.get(divider.result) == expected, (hex(a), hex(b), is64, is_signed, remainder)
                        assert cycles <= divider.latency(8 if is64 else 4) + 1

    simulator = Simulator(divider)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()


def test_multiplier():
    rng = random.Random(9)
    multiplier = Multiplier()

    async def bench(ctx):
        for a, b in operand_pairs(rng, 100):
            for is64 in (0, 1):
                ctx.set(multiplier.start, 1)
                ctx.set(multiplier.a, a)
                ctx.set(multiplier.b, b)
                ctx.set(multiplier.is64, is64)
                await ctx.tick()
                ctx.set(multiplier.start, 0)
                ctx.set(multiplier.a, rng.getrandbits(64))   # the operands are taken at the start only
                for _ in range(Multiplier.LATENCY - 1):
                    assert not ctx.get(multiplier.done)
                    await ctx.tick()
                assert ctx.get(multiplier.done)
                mask = M64 if is64 else M32
                assert ctx.get(multiplier.result) == ((a & mask) * (b & mask)) & mask, (hex(a), hex(b), is64)

    simulator = Simulator(multiplier)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()


# -- the pipeline stage ---------------------------------------------------------------------------------------

class _Pipe(wiring.Component):
    """Three stages in a row, each with a random stall input; the middle one can kill."""

    source: In(stream.Signature(16))
    sink: Out(stream.Signature(16))
    stalls: In(3)
    kill_middle: In(1)

    def elaborate(self, platform):
        m = Module()
        stages = [Stage(16, 16) for _ in range(3)]
        for index, stage in enumerate(stages):
            m.submodules[f"stage{index}"] = stage
            stage.stall_on(self.stalls[index])
            m.d.comb += stage.result.eq(stage.sink.payload)
        stages[1].kill_on(self.kill_middle)
        wiring.connect(m, wiring.flipped(self.source), stages[0].sink)
        wiring.connect(m, stages[0].source, stages[1].sink)
        wiring.connect(m, stages[1].source, stages[2].sink)
        wiring.connect(m, stages[2].source, wiring.flipped(self.sink))
        self.middle = stages[1]
        return m


def test_stage_order_stalls_and_kills():
    """Every item comes out once and in order, except those killed in the middle stage, whatever the stalls
    and the back-pressure."""
    rng = random.Random(1)
    pipe = _Pipe()
    sent, received, killed = [], [], []

    async def bench(ctx):
        next_item = 0
        for _ in range(3000):
            ctx.set(pipe.stalls, rng.getrandbits(3) & rng.getrandbits(3))
            ctx.set(pipe.sink.ready, rng.random() < 0.7)
            ctx.set(pipe.source.valid, rng.random() < 0.8)
            ctx.set(pipe.source.payload, next_item)
            kill = rng.random() < 0.1
            ctx.set(pipe.kill_middle, kill)
            if kill and ctx.get(pipe.middle.sink.valid):
                killed.append(ctx.get(pipe.middle.sink.payload))
            if ctx.get(pipe.source.valid) and ctx.get(pipe.source.ready):
                sent.append(next_item)
                next_item += 1
            if ctx.get(pipe.sink.valid) and ctx.get(pipe.sink.ready):
                received.append(ctx.get(pipe.sink.payload))
            await ctx.tick()

    simulator = Simulator(pipe)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    assert killed and received
    in_flight = sent[len(received) + len(killed):]
    assert sorted(received + killed + in_flight) == sent
    assert received == sorted(received)
    assert not set(received) & set(killed)
