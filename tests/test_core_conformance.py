"""All 313 vectors of the public eBPF conformance suite on the RTL core, in lockstep with the golden VM.

Each vector runs under amaranth.sim (sim/lockstep.py): every retired instruction is compared with the
golden VM (pc, register written and its value, the whole register file after it, the bytes a store
leaves), then the final r0 against the vector's expected result. The suite's helper 5 is answered through
the core's helper port by the VM's CONFORMANCE_HELPERS. One simulator serves all vectors; a second pass
runs them all again behind a slow data port (3 cycles a read, refusing 30% of requests) and slow helpers.

Ref: RFC 9669 §7 (conformance groups); Alan-Jowett/bpf_conformance (the vectors, sw/conformance.py).
"""

import pytest

from bpfnic.hw.core.interfaces import TrapCause
from bpfnic.sim.lockstep import LockstepHarness
from bpfnic.sw import isa
from bpfnic.sw.asm import assemble
from bpfnic.sw.conformance import conformance_dir, load_vectors
from bpfnic.sw.conformance_plugin import CONFORMANCE_HELPERS

VECTORS = load_vectors() if conformance_dir().is_dir() else []
IDS = [vector.name for vector in VECTORS]


def program_of(vector) -> isa.Program:
    return assemble(vector.asm, source=vector.name) if vector.asm is not None else isa.decode_program(vector.raw)


@pytest.fixture(scope="module")
def harness():
    return LockstepHarness(imem_depth=256)


@pytest.fixture(scope="module")
def slow_harness():
    return LockstepHarness(imem_depth=256, memory_latency=3, memory_stall=0.3, helper_latency=4, seed=13)


def test_the_suite_is_there():
    assert conformance_dir().is_dir(), f"conformance vectors not found in {conformance_dir()} (set BPF_CONFORMANCE_DIR)"
    assert len(VECTORS) >= 313


def check(harness, vector):
    result = harness.run(program_of(vector), vector.mem, helpers=CONFORMANCE_HELPERS)
    if vector.error is not None:
        assert result.cause != TrapCause.NONE, f"{vector.name}: expected a failure ({vector.error})"
        return
    assert result.cause == TrapCause.NONE, f"{vector.name}: trapped {result.cause.name} at {result.pc}"
    assert result.r0 == vector.result, f"{vector.name}: r0 = 0x{result.r0:x}, expected 0x{vector.result:x}"
    assert result.instructions > 0 and result.cycles >= result.instructions


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_vector_in_lockstep(harness, vector):
    check(harness, vector)


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_vector_behind_a_slow_memory(slow_harness, vector):
    check(slow_harness, vector)
