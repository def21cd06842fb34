"""Cycles per instruction of the RTL core (hw/core): the example XDP programs on their packets, and the
conformance vectors by RFC 9669 group.

Every program runs under amaranth.sim in lockstep with the golden VM (sim/lockstep.py), so every count
comes from a checked run. An example runs on each frame of its pcap (examples/pcap), with its map-init
file, maps persisting across frames; the predictor's table persists too, as on the NIC. A conformance
vector belongs to the most demanding group among its instructions (atomic64, atomic32, divmul64, divmul32,
base64, base32). Cycles are the core's own count, from the start transfer to the exit report (so they
include the pipeline's fill, 3 cycles a run); the program load is not included.

    .venv/bin/python benchmarks/core_cpi.py              # the two tables
    .venv/bin/python benchmarks/core_cpi.py --programs   # and one line per conformance vector
    .venv/bin/python benchmarks/core_cpi.py --memory-latency 3 --memory-stall 0.2

Ref: RFC 9669 §7 (conformance groups); the public bpf_conformance suite's vectors (sw/conformance.py).
"""

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bpfnic.sim.lockstep import HarnessError, LockstepHarness, XdpEnvironment
from bpfnic.sw import isa
from bpfnic.sw.asm import assemble
from bpfnic.sw.conformance import conformance_dir, load_vectors
from bpfnic.sw.conformance_plugin import CONFORMANCE_HELPERS

GROUP_ORDER = ("atomic64", "atomic32", "divmul64", "divmul32", "base64", "base32")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


FILL = 3   # cycles of a run before its first instruction retires (the D, X and M stages)


def example_rows(harness: LockstepHarness) -> list[tuple]:
    """(name, frames, instructions, cycles, note) per example."""
    from bpfnic.sw.compile import CompileError, compile_c, example_mcpu
    from bpfnic.sw.elf_loader import load_object
    from bpfnic.sw.runner import read_pcap
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for source in sorted(EXAMPLES.glob("*.c")):
            try:
                obj = load_object(compile_c(source, Path(folder) / (source.stem + ".o"), mcpu=example_mcpu(source)))
            except CompileError as error:
                rows.append((source.stem, 0, 0, 0, f"does not compile: {error}"))
                continue
            map_file = EXAMPLES / f"{source.stem}.maps.json"
            environment = XdpEnvironment(obj, map_init=json.loads(map_file.read_text()) if map_file.exists() else None)
            frames = read_pcap(EXAMPLES / "pcap" / f"{source.stem}.pcap")
            instructions = cycles = 0
            note = ""
            for frame in frames:
                try:
                    result = harness.run(environment.program, environment=environment.for_frame(frame),
                                         extra_programs=environment.other_programs)
                except HarnessError as error:
                    note = str(error)
                    break
                instructions += result.instructions
                cycles += result.cycles
            rows.append((source.stem, len(frames), instructions, cycles, note))
    return rows


def vector_group(program: isa.Program) -> str:
    groups = {isa.insn_group(insn) for _, insn in program.instructions()}
    return next((group for group in GROUP_ORDER if group in groups), "base32")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", action="store_true", help="print one line per program too")
    parser.add_argument("--memory-latency", type=int, default=1, help="data port read latency in cycles")
    parser.add_argument("--memory-stall", type=float, default=0.0,
                        help="probability that the data port refuses a request in a cycle")
    parser.add_argument("--divider-bits", type=int, default=1, choices=(1, 2, 4),
                        help="quotient bits the divider makes a cycle")
    parser.add_argument("--no-examples", action="store_true", help="only the conformance vectors")
    args = parser.parse_args(argv)

    if not conformance_dir().is_dir():
        print(f"conformance vectors not found in {conformance_dir()} (set BPF_CONFORMANCE_DIR)", file=sys.stderr)
        return 1
    harness = LockstepHarness(imem_depth=4096, memory_latency=args.memory_latency,
                              memory_stall=args.memory_stall, divider_bits_per_cycle=args.divider_bits)
    began = time.time()
    if not args.no_examples:
        print(f"{'example':20s} {'frames':>6s} {'insns':>7s} {'cycles':>7s} {'CPI':>6s} {'w/o fill':>8s}")
        all_frames = all_instructions = all_cycles = 0
        for name, frames, instructions, cycles, note in example_rows(harness):
            if note:
                print(f"{name:20s} {frames:6d}   not run: {note}")
                continue
            all_frames += frames
            all_instructions += instructions
            all_cycles += cycles
            print(f"{name:20s} {frames:6d} {instructions:7d} {cycles:7d} {cycles / instructions:6.2f} "
                  f"{(cycles - FILL * frames) / instructions:8.2f}")
        print(f"{'all examples':20s} {all_frames:6d} {all_instructions:7d} {all_cycles:7d} "
              f"{all_cycles / all_instructions:6.2f} {(all_cycles - FILL * all_frames) / all_instructions:8.2f}\n")
    totals = defaultdict(lambda: [0, 0, 0])   # group -> programs, instructions, cycles
    rows = []
    for vector in load_vectors():
        program = assemble(vector.asm, source=vector.name) if vector.asm is not None else isa.decode_program(vector.raw)
        result = harness.run(program, vector.mem, helpers=CONFORMANCE_HELPERS)
        group = vector_group(program)
        for key in (group, "all"):
            totals[key][0] += 1
            totals[key][1] += result.instructions
            totals[key][2] += result.cycles
        rows.append((vector.name, group, result.instructions, result.cycles))
    elapsed = time.time() - began

    if args.programs:
        print(f"{'program':32s} {'group':9s} {'insns':>7s} {'cycles':>7s} {'CPI':>6s}")
        for name, group, instructions, cycles in rows:
            print(f"{name:32s} {group:9s} {instructions:7d} {cycles:7d} {cycles / instructions:6.2f}")
        print()
    print(f"{'group':9s} {'programs':>8s} {'insns':>7s} {'cycles':>7s} {'CPI':>6s}")
    for group in GROUP_ORDER + ("all",):
        if group in totals:
            programs, instructions, cycles = totals[group]
            print(f"{group:9s} {programs:8d} {instructions:7d} {cycles:7d} {cycles / instructions:6.2f}")
    print(f"\nin lockstep in {elapsed:.1f} s (memory latency {args.memory_latency}, stall {args.memory_stall}, "
          f"divider {args.divider_bits} bit/cycle)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
