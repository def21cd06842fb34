"""The core's ports and cycle costs: start/exit handshake, instruction memory host port, region table,
helper port, the RTLIL conversion, and the cycle counts the pipeline promises (hw/core/core.py docstring).

Ref: hw/core/interfaces.py (ports and protocols).
"""

import pytest
from amaranth.back import rtlil
from amaranth.sim import Simulator

from bpfnic.hw.core.core import Core
from bpfnic.hw.core.interfaces import TrapCause
from bpfnic.hw.core.regions import RegionTable
from bpfnic.sim.lockstep import LockstepHarness
from bpfnic.sw import memory
from bpfnic.sw.asm import assemble

FILL = 3   # cycles before the first instruction retires (D, X, M) beyond its own


@pytest.fixture(scope="module")
def harness():
    return LockstepHarness(imem_depth=256)


# -- cycle costs ------------------------------------------------------------------------------------------

def test_dependent_alu_instructions_issue_back_to_back(harness):
    source = "mov %r0, 1\n" + "add %r0, %r0\nxor %r0, 3\nlsh %r0, 1\nsub %r0, 1\n" * 5 + "exit"
    result = harness.run(assemble(source))
    assert result.cycles == result.instructions + FILL


def test_a_load_used_at_once_costs_one_cycle(harness):
    result = harness.run(assemble("ldxdw %r0, [%r1]\nadd %r0, 1\nexit"), bytes(8))
    assert result.cycles == result.instructions + FILL + 1
    result = harness.run(assemble("ldxdw %r0, [%r1]\nmov %r2, 5\nadd %r0, %r2\nexit"), bytes(8))
    assert result.cycles == result.instructions + FILL


def test_jumps_and_lddw_cost_nothing(harness):
    result = harness.run(assemble("ja skip\nmov %r0, 9\nskip:\nlddw %r0, 0x1122334455667788\nexit"))
    assert result.cycles == result.instructions + FILL


def test_a_trained_loop_branch_costs_nothing(harness):
    loop = "mov %r0, 0\nmov %r1, 0\nloop:\nadd %r0, %r1\nadd %r1, 1\njlt %r1, 200, loop\nexit"
    harness.run(assemble(loop))
    result = harness.run(assemble(loop))
    # one misprediction, at the loop's end
    assert result.cycles <= result.instructions + FILL + 1


def test_calls_and_returns_cost_nothing(harness):
    source = "mov %r6, 1\ncall local f\nadd %r0, %r6\nexit\nf:\nmov %r0, 2\nexit"
    result = harness.run(assemble(source))
    assert result.r0 == 3 and result.cycles == result.instructions + FILL
    # a return right behind an r6 write waits one cycle for it to reach W
    source = "call local f\nadd %r0, %r6\nexit\nf:\nmov %r0, 2\nmov %r6, 5\nexit"
    result = harness.run(assemble(source))
    assert result.r0 == 2 and result.cycles == result.instructions + FILL + 1


# -- the host ports --------------------------------------------------------------------------------------------

def test_start_exit_handshake_and_reload():
    """Driven directly: load through the host port, start, see start.ready low while running, one exit
    pulse with the counts, then load another program over the first and run it."""
    core = Core(imem_depth=16)
    reports = []

    async def load(ctx, words, base=0):
        for index, word in enumerate(words):
            ctx.set(core.imem_write.valid, 1)
            ctx.set(core.imem_write.payload.address, base + index)
            ctx.set(core.imem_write.payload.data, word)
            await ctx.tick()
        ctx.set(core.imem_write.valid, 0)

    async def run(ctx, length, r1=0):
        ctx.set(core.start.payload.pc, 0)
        ctx.set(core.start.payload.r1, r1)
        ctx.set(core.start.payload.program_length, length)
        ctx.set(core.start.valid, 1)
        assert ctx.get(core.start.ready)
        await ctx.tick()
        ctx.set(core.start.valid, 0)
        pulses = 0
        for _ in range(100):
            if ctx.get(core.exit.valid):
                pulses += 1
                reports.append(ctx.get(core.exit.payload))
            elif pulses:
                break
            else:
                assert ctx.get(core.busy) and not ctx.get(core.start.ready)
            await ctx.tick()
        assert pulses == 1 and not ctx.get(core.busy)

    def words(source):
        code = assemble(source).encode()
        return [int.from_bytes(code[i:i + 8], "little") for i in range(0, len(code), 8)]

    async def bench(ctx):
        first = words("mov %r0, %r1\nadd %r0, 1\nexit")
        await load(ctx, first)
        # a write beyond the memory must not alias a slot of it
        await load(ctx, [0xFFFFFFFFFFFFFFFF], base=16)
        await run(ctx, len(first), r1=41)
        await load(ctx, words("mov %r0, 7\nexit"))
        await run(ctx, 2)
        await run(ctx, 2)

    simulator = Simulator(core)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    assert [(r.r0, r.cause, r.instructions, r.pc) for r in reports] == [
        (42, TrapCause.NONE, 3, 2), (7, TrapCause.NONE, 2, 1), (7, TrapCause.NONE, 2, 1)]
    assert reports[0].cycles == 3 + FILL


def test_region_removed_between_runs(harness):
    program = assemble("lddw %r1, 0x400000000\nldxb %r0, [%r1+3]\nexit")
    assert harness.run(program, bytes(range(8))).r0 == 3
    result = harness.run(program)
    assert result.cause == TrapCause.BAD_ACCESS and result.pc == 2


def test_helper_port_arguments_and_latency():
    seen = []

    def helper(vm, *args):
        seen.append(args)
        return sum(args) + 1

    slow = LockstepHarness(imem_depth=64, helper_latency=9)
    source = "mov %r1, 1\nmov %r2, 2\nlddw %r3, 0x300000000\nmov %r4, -1\nmov %r5, 5\ncall 7\nexit"
    result = slow.run(assemble(source), helpers={7: helper})
    # the golden VM and the core each called it once, with the same r1..r5
    assert seen == [(1, 2, 0x300000000, (1 << 64) - 1, 5)] * 2
    assert result.r0 == sum(seen[0]) + 1 & ((1 << 64) - 1)
    assert result.cycles >= result.instructions + FILL + 8


def test_helper_exit_status_ends_the_program(harness):
    from bpfnic.sw.conformance_plugin import CONFORMANCE_HELPERS
    result = harness.run(assemble("mov %r1, 0\ncall 5\nmov %r0, 2\nexit"), helpers=CONFORMANCE_HELPERS)
    assert (result.r0, result.cause, result.pc, result.instructions) == (0, TrapCause.NONE, 1, 2)


def test_region_table_ignores_tags_without_a_slot():
    """A descriptor for the map-handle tag or a map beyond the table's slots changes nothing."""
    table = RegionTable(map_slots=2)
    assert memory.TAG_MAP_HANDLE not in table.tags() and memory.TAG_MAP_VALUE_BASE + 2 not in table.tags()

    async def bench(ctx):
        for tag in (memory.TAG_MAP_HANDLE, memory.TAG_MAP_VALUE_BASE + 2, memory.TAG_INPUT,
                    memory.TAG_MAP_VALUE_BASE + 1):
            ctx.set(table.write.valid, 1)
            ctx.set(table.write.payload.tag, tag)
            ctx.set(table.write.payload.present, 1)
            ctx.set(table.write.payload.size, 100)
            await ctx.tick()
        ctx.set(table.write.valid, 0)
        for tag, present in ((memory.TAG_MAP_HANDLE, 0), (memory.TAG_MAP_VALUE_BASE + 2, 0),
                             (memory.TAG_MAP_VALUE_BASE + 1, 1), (memory.TAG_INPUT, 1), (memory.TAG_STACK, 1),
                             (memory.TAG_CONTEXT, 0), (0, 0)):
            ctx.set(table.lookup.tag, tag)
            assert ctx.get(table.lookup.present) == present, hex(tag)
        assert ctx.get(table.map_present) == 0b10

    simulator = Simulator(table)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()


def test_converts_to_rtlil():
    core = Core(imem_depth=64)
    text = rtlil.convert(core, ports=core.ports())
    assert "module" in text and "imem_write__payload" in text
