"""The example XDP programs on the RTL core, packet by packet, in lockstep with the golden VM.

Each example is compiled from examples/*.c, loaded (sw/elf_loader.py) and run on the frames of its pcap
through sim/lockstep.py's XdpEnvironment: the packet buffer and the struct xdp_md context are regions
behind the core's data port, map helpers and the packet helpers are answered on the helper port by the
golden VM's XDP session, and maps persist across frames on both sides; the object's other programs sit in
the instruction memory too, for bpf_tail_call. Every retired instruction is compared, then the verdict,
the packet bytes and the maps.

Ref: include/uapi/linux/bpf.h (struct xdp_md, helpers); sw/xdp.py.
"""

import json
from pathlib import Path

import pytest

from bpfnic.hw.core.interfaces import TrapCause
from bpfnic.sim.lockstep import LockstepHarness, XdpEnvironment

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SOURCES = sorted(EXAMPLES.glob("*.c"))
FRAMES_BY_DEFAULT = 6


@pytest.fixture(scope="module")
def harness():
    return LockstepHarness(imem_depth=4096, memory_latency=2, memory_stall=0.1, helper_latency=2, seed=5)


def load_example(source: Path, tmp_path: Path):
    from bpfnic.sw.compile import CompileError, compile_c, example_mcpu
    from bpfnic.sw.elf_loader import load_object
    try:
        obj_path = compile_c(source, tmp_path / (source.stem + ".o"), mcpu=example_mcpu(source))
    except CompileError as error:
        pytest.fail(f"{source.name} does not compile: {error}")  # the compiler is a dependency: a failure is a bug
    return load_object(obj_path)


def run_example(harness, source: Path, tmp_path: Path, frame_limit: int | None):
    from bpfnic.sw.runner import read_pcap
    obj = load_example(source, tmp_path)
    frames = read_pcap(EXAMPLES / "pcap" / f"{source.stem}.pcap")[:frame_limit]
    map_file = EXAMPLES / f"{source.stem}.maps.json"
    map_init = json.loads(map_file.read_text()) if map_file.exists() else None
    environment = XdpEnvironment(obj, map_init=map_init)
    verdicts = []
    for frame in frames:
        result = harness.run(environment.program, environment=environment.for_frame(frame),
                             extra_programs=environment.other_programs)
        reference = result.reference
        assert result.cause == TrapCause.NONE or not hasattr(reference, "r0"), result
        verdicts.append(result.r0 & 0xFFFFFFFF)
        packets = [session._buffer.packet() for session in environment.sessions]
        assert packets[0] == packets[1], f"{source.stem}: the packet after the program differs"
    dumps = [session.dump_maps() for session in environment.sessions]
    assert dumps[0] == dumps[1], f"{source.stem}: maps differ after the frames"
    return verdicts


@pytest.mark.parametrize("source", SOURCES, ids=[source.stem for source in SOURCES])
def test_example_in_lockstep(harness, source, tmp_path):
    verdicts = run_example(harness, source, tmp_path, FRAMES_BY_DEFAULT)
    assert verdicts


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES, ids=[source.stem for source in SOURCES])
def test_example_every_frame_in_lockstep(harness, source, tmp_path):
    run_example(harness, source, tmp_path, None)
