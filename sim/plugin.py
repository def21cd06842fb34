"""`bpfnic conformance-plugin --backend rtl`: one program of the public bpf_conformance suite on the RTL
core, in lockstep with the golden VM, under either simulator.

The suite's runner starts the plugin once per test (sw/conformance_plugin.py speaks its protocol); this
module runs the program and gives back r0, or raises RtlFailure (a trap, a difference from the golden VM,
a simulator that cannot run) with a message for standard error. Under amaranth.sim a run costs well under
a second; under cocotb + Verilator (sim/cocotb_core.py) it costs a simulator process start and the design's
conversion (about 3 s) once the build is cached, so amaranth.sim is the default for one program a process.

Ref: Alan-Jowett/bpf_conformance (plugin protocol); RFC 9669 (through the golden VM).
"""

from __future__ import annotations

from bpfnic.hw.core.interfaces import TrapCause
from bpfnic.sw import isa
from bpfnic.sw.conformance_plugin import CONFORMANCE_HELPERS, RtlFailure

SIMULATORS = ("amaranth", "verilator")


def _imem_depth(program: isa.Program) -> int:
    depth = 16
    while depth < len(program):
        depth *= 2
    return depth


def run_rtl_plugin(program: isa.Program, mem: bytes | None, simulator: str = "amaranth") -> int:
    """r0 of `program` run on the RTL core with `mem` as its memory (r1 = its pointer, r2 = its length), in
    lockstep with the golden VM and with the suite's helpers. Raises RtlFailure on a trap or a difference."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator {simulator!r}: expected one of {', '.join(SIMULATORS)}")
    if simulator == "verilator":
        return _run_verilator(program, mem or b"")
    from bpfnic.sim.lockstep import HarnessError, LockstepMismatch, run_bare_program
    try:
        result = run_bare_program(program, mem or None, helpers=CONFORMANCE_HELPERS)
    except LockstepMismatch as mismatch:
        raise RtlFailure(f"the RTL core differs from the golden VM: {mismatch}") from None
    except HarnessError as error:
        raise RtlFailure(f"the program cannot run on the RTL core: {error}") from None
    if result.cause != TrapCause.NONE:
        raise RtlFailure(f"the RTL core trapped at instruction {result.pc}: {TrapCause(result.cause).name}")
    return result.r0


def _run_verilator(program: isa.Program, mem: bytes) -> int:
    from bpfnic.sim.cocotb_core import DEFAULT_CORE, VerilatorRunError, run_in_verilator
    from bpfnic.sim.verilator import SimulatorUnavailable
    # the default depth shares the cached build of the tests and benchmarks
    depth = max(DEFAULT_CORE["imem_depth"], _imem_depth(program))
    try:
        report = run_in_verilator([{"kind": "program", "name": "program", "program": program.encode().hex(),
                                    "memory": mem.hex()}], imem_depth=depth)
    except (VerilatorRunError, SimulatorUnavailable) as error:
        raise RtlFailure(f"the Verilator simulation could not run: {error}") from None
    (job,) = report["jobs"]
    if "error" in job:
        raise RtlFailure(f"the RTL core differs from the golden VM (Verilator): {job['error']}")
    if job["cause"] != "NONE":
        raise RtlFailure(f"the RTL core trapped at instruction {job['pc']}: {job['cause']}")
    return job["r0"]
