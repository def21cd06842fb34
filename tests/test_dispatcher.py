"""The dispatcher (hw/pipeline/dispatcher.py) against its completion model, with random stalls on every stream.

The cores are a behavioural stand-in here (a testbench that takes the start, waits, moves the packet pointers as
the adjust helpers would, sets a redirect target and reports an exit with a scripted r0 or trap); the real core
runs in tests/test_nic.py. With two cores finishing out of order, completions must stay in arrival order."""

from __future__ import annotations

import random

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from bpfnic.hw.core.interfaces import TrapCause
from bpfnic.hw.pipeline.dispatcher import (CONTEXT_POINTER, INFO_REDIRECT, Dispatcher, DispatcherCounters,
                                           apply_verdict)
from bpfnic.hw.pipeline.packet_buffer import HEADROOM
from bpfnic.sw import xdp

from test_packet_buffer import CLOCK_PERIOD, get, put, refused, signal_ports, stall

PORTS = 2


def script(rng: random.Random, index: int) -> dict:
    """What the stand-in core does with frame `index`."""
    kind = rng.random()
    trap = 0
    redirect = None
    if kind < 0.1:
        trap = rng.choice([c.value for c in TrapCause if c != TrapCause.NONE])
        r0 = 0
    elif kind < 0.15:
        r0 = rng.choice([5, 99, 0xFFFF_FFFF])                      # invalid actions
    elif kind < 0.2:
        r0 = rng.getrandbits(32) << 32 | xdp.XDP_TX               # only the low 32 bits count
    else:
        r0 = rng.choice(list(xdp.VERDICT_NAMES))
    if r0 & 0xFFFF_FFFF == xdp.XDP_REDIRECT or rng.random() < 0.2:
        redirect = rng.choice([None, 1, 2, 3, 7, 0x1000])          # ports are ifindex 1, 2; others go up
    return {"r0": r0, "trap": trap, "redirect": redirect, "head": rng.randrange(-40, 40),
            "tail": rng.randrange(-10, 50), "latency": rng.randrange(1, 12),
            "instructions": rng.randrange(1, 100), "cycles": rng.randrange(1, 200)}


def run_dispatcher(seed: int, *, cores: int, frames: int, stall_probability: float):
    rng = random.Random(seed)
    dut = Dispatcher(cores=cores, ports=PORTS, slot_bits=4)
    plans = [script(rng, index) for index in range(frames)]
    arrivals = [{"slot": index % 16, "length": rng.randrange(14, 1500), "port": rng.randrange(PORTS)}
                for index in range(frames)]
    counters = DispatcherCounters(PORTS)
    expected = []
    for arrival, plan in zip(arrivals, plans):
        fate = apply_verdict(counters, r0=plan["r0"], trap=plan["trap"], redirect=plan["redirect"],
                             ingress_port=arrival["port"])
        data = HEADROOM + plan["head"]
        end = HEADROOM + arrival["length"] + plan["tail"]
        expected.append({"slot": arrival["slot"], "drop": fate.output is None,
                         "output": fate.output, "start": data, "end": end, "info": fate.info})
    completions = []
    starts_seen = []

    async def receive_side(ctx):
        for _ in range(20):
            await ctx.tick()
        assert not ctx.get(dut.received.ready), "nothing is dispatched while ENABLE is clear"
        ctx.set(dut.program.enable, 1)
        for arrival in arrivals:
            await stall(ctx, rng, stall_probability, most=8)
            await put(ctx, dut.received, arrival)

    def core(k):
        async def bench(ctx):
            local = random.Random(seed * 13 + k)
            ctx.set(dut.settled[k], 1)
            while True:
                _, _, loaded, context = await ctx.tick().sample(dut.context[k].valid, dut.context[k].payload)
                if not loaded:
                    continue
                index = next(i for i, a in enumerate(arrivals) if a["slot"] == context.slot
                             and i not in starts_seen)
                arrival, plan = arrivals[index], plans[index]
                assert (context.pointers.data, context.pointers.data_end, context.pointers.data_meta) == \
                    (HEADROOM, HEADROOM + arrival["length"], HEADROOM)
                assert context.ingress_ifindex == arrival["port"] + 1 and context.rx_queue_index == 0
                ctx.set(dut.settled[k], 0)        # the memory system writes the core's region descriptors
                for _ in range(local.randrange(0, 4)):
                    await ctx.tick()
                ctx.set(dut.settled[k], 1)
                await stall(ctx, local, stall_probability)
                start = await get(ctx, dut.start[k])
                starts_seen.append(index)
                assert (start.pc, start.r1, start.r2, start.program_length, start.cycle_budget) == \
                    (12, CONTEXT_POINTER, 0, 40, 5000)
                for _ in range(plan["latency"]):
                    await ctx.tick()
                ctx.set(dut.pointers[k], {"data": HEADROOM + plan["head"], "data_meta": HEADROOM + plan["head"],
                                          "data_end": HEADROOM + arrival["length"] + plan["tail"]})
                ctx.set(dut.redirect[k], {"valid": plan["redirect"] is not None, "ifindex": plan["redirect"] or 0})
                ctx.set(dut.exit[k].payload, {"r0": plan["r0"], "cause": TrapCause(plan["trap"]), "pc": 3,
                                              "instructions": plan["instructions"], "cycles": plan["cycles"]})
                ctx.set(dut.exit[k].valid, 1)
                await ctx.tick()
                ctx.set(dut.exit[k].valid, 0)
                ctx.set(dut.redirect[k], {"valid": 0, "ifindex": 0xDEAD})   # the next frame's must not leak
        return bench

    async def completion_side(ctx):
        ctx.set(dut.program.entry, 12)
        ctx.set(dut.program.length, 40)
        ctx.set(dut.program.cycle_budget, 5000)
        for _ in range(frames):
            await stall(ctx, rng, stall_probability, most=6)
            word = await get(ctx, dut.complete)
            entry = {"slot": word.slot, "drop": bool(word.drop), "output": None if word.drop else word.output,
                     "start": word.start, "end": word.end, "info": word.info if not word.drop else 0}
            completions.append(entry)
        for _ in range(3):
            await ctx.tick()
        assert ctx.get(dut.idle)
        got = ctx.get(dut.counters)
        assert list(got.verdicts) == counters.verdicts
        assert list(got.traps) == counters.traps
        assert got.invalid_action == counters.invalid_action
        assert got.redirect_failed == counters.redirect_failed
        assert list(got.to_port) == counters.to_port and got.to_host == counters.to_host
        assert got.instructions == sum(p["instructions"] for p in plans)
        assert got.cycles == sum(p["cycles"] for p in plans)

    sim = Simulator(dut)
    sim.add_clock(CLOCK_PERIOD)
    sim.add_testbench(receive_side, background=True)
    for k in range(cores):
        sim.add_testbench(core(k), background=True)
    sim.add_testbench(completion_side)
    sim.run()
    for index, (got, want) in enumerate(zip(completions, expected)):
        if want["drop"]:
            want = {**want, "output": None, "info": 0}
            got = {**got, "start": want["start"], "end": want["end"]}   # a drop's offsets do not matter
        assert got == want, f"frame {index}: {got} != {want} (plan {plans[index]})"
    return counters


@pytest.mark.parametrize("seed", [1, 2])
def test_one_core_with_stalls(seed):
    counters = run_dispatcher(seed, cores=1, frames=60, stall_probability=0.3)
    assert counters.to_host and counters.redirect_failed and sum(counters.traps)


@pytest.mark.parametrize("seed", [3, 4])
def test_two_cores_complete_in_arrival_order(seed):
    run_dispatcher(seed, cores=2, frames=60, stall_probability=0.3)


def test_no_stalls():
    run_dispatcher(5, cores=1, frames=40, stall_probability=0.0)


def test_verdict_model():
    counters = DispatcherCounters(2)
    assert apply_verdict(counters, r0=xdp.XDP_TX, trap=0, redirect=None, ingress_port=1).output == 1
    assert apply_verdict(counters, r0=xdp.XDP_REDIRECT, trap=0, redirect=1, ingress_port=1).output == 0
    fate = apply_verdict(counters, r0=xdp.XDP_REDIRECT, trap=0, redirect=9, ingress_port=1)
    assert fate.output == 2 and fate.info == 1 | INFO_REDIRECT
    assert apply_verdict(counters, r0=xdp.XDP_REDIRECT, trap=0, redirect=None, ingress_port=0).output is None
    assert apply_verdict(counters, r0=xdp.XDP_PASS, trap=TrapCause.BAD_ACCESS.value, redirect=None,
                         ingress_port=0).output is None
    assert counters.traps[TrapCause.BAD_ACCESS.value] == 1 and counters.redirect_failed == 1
    assert counters.verdicts == [1, 0, 0, 1, 3]


def test_dispatcher_parameters_and_verilog():
    refused(Dispatcher, "1..15 ports", ports=16)
    dut = Dispatcher(cores=2, ports=2, slot_bits=3)
    assert "module" in verilog.convert(dut, name="dispatcher", ports=signal_ports(dut))
