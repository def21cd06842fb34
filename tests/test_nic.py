"""The whole NIC (hw/pipeline/nic.py) under amaranth.sim against its model (hw/pipeline/nic_model.py): frames
into GMII ports (encoded by hw/pipeline/mac_model.py), programs compiled from examples/*.c and written through
the CSR, and what comes out of the TX ports, the host queue and the counters. Bad frames are counted and dropped
without hangs; back-to-back minimum frames at 1 Gb/s lose nothing.

Clocks: the NIC at 100 MHz (the core's target on the ECP5), each port's receive clock and the transmit clock at
125 MHz (GMII), with different phases."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from amaranth.back import verilog
from bpfnic.hw.pipeline import mac_model
from bpfnic.hw.pipeline.gmii import INTER_FRAME_GAP_BYTES
from bpfnic.hw.pipeline.helper_unit import decode_trace_records, format_trace_record
from bpfnic.hw.pipeline.nic import Nic, NicConfig, NicConfigError
from bpfnic.hw.pipeline.nic_model import NicModel
from bpfnic.sim.nic_sim import NicSimulation

from test_packet_buffer import signal_ports

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def ethernet_frame(rng: random.Random, length: int) -> bytes:
    """A frame without FCS: two unicast MAC addresses, an IPv4 EtherType, random payload."""
    destination = bytes([0x02]) + bytes(rng.randrange(256) for _ in range(5))
    source = bytes([0x02]) + bytes(rng.randrange(256) for _ in range(5))
    return destination + source + b"\x08\x00" + bytes(rng.randrange(256) for _ in range(length - 14))


def good_burst(frame: bytes, gap: int = INTER_FRAME_GAP_BYTES) -> mac_model.WireFrame:
    return mac_model.WireFrame(mac_model.wire_octets(frame), gap=gap)


class NicRun:
    """One simulation of the NIC (sim/nic_sim.NicSimulation): a program loaded through the CSR, GMII bursts into
    the ports, and everything that came out."""

    def __init__(self, obj, bursts: dict[int, list[mac_model.WireFrame]], *, map_init=None, injected=(),
                 config_parameters=None, cycle_limit: int = 20_000):
        self.config = NicConfig.for_object(obj, **(config_parameters or {}))
        self.obj = obj
        self.bursts = bursts
        self.map_init = map_init
        self.injected = list(injected)          # (frame, port) through the CSR
        self.cycle_limit = cycle_limit
        self.host_frames = []
        self.trace_words = []
        self.maps = {}
        self.most_slots_in_use = 0
        self.counters = {}

    def run(self) -> "NicRun":
        self.reference = self.model()
        model_maps = self.reference.dump_maps()
        nic = NicSimulation(self.obj, map_init=self.map_init, config=self.config)
        self.dut = nic.dut
        try:
            for frame, port in self.injected:
                nic.inject(frame, port)
            for port, bursts in self.bursts.items():
                if bursts:
                    nic.send(port, bursts)
            nic.wait_processed(self.cycle_limit, injected=len(self.injected))
            self.most_slots_in_use = nic.most_slots_in_use
            nic.run_cycles(3000)     # the TX MACs' stores drain onto GMII
            self.tx_samples = nic.tx_samples
            self.host_frames = nic.host_frames()
            self.trace_words = nic.trace_words()
            self.counters = nic.counters()
            # the maps, read through the CSR at the keys the model holds (for arrays, the entries that are not
            # zero: a 4096-entry array would take thousands of reads)
            for index, slot in enumerate(self.config.maps.slots):
                if slot.kind == "progarray" or slot.name not in model_maps:
                    continue
                contents = {}
                for key_hex in checked_keys(slot, model_maps[slot.name]):
                    value = nic.map_lookup(index, bytes.fromhex(key_hex))
                    contents[key_hex] = None if value is None else value.hex()
                self.maps[slot.name] = contents
            self.status = nic.status()
        finally:
            nic.close()
        return self

    def transmitted(self, port: int) -> list[bytes]:
        frames = mac_model.decode_gmii(self.tx_samples[port] + [(0, 0, 0)])
        assert not any(frame.error for frame in frames), f"port {port} sent a frame with TX_ER"
        return [frame.octets for frame in frames]

    def model(self, order: list[tuple[int, mac_model.WireFrame]] | None = None) -> NicModel:
        """The model fed the same frames: port by port in arrival order, unless `order` is given."""
        model = NicModel(self.obj, self.config, map_init=self.map_init)
        if order is None:
            order = [(port, burst) for port in sorted(self.bursts) for burst in self.bursts[port]]
        for port, burst in order:
            for frame in mac_model.decode_gmii(mac_model.gmii_samples([burst])):
                model.receive(port, frame.octets, phy_error=frame.error)
        for frame, port in self.injected:
            model.receive(port, mac_model.with_fcs(frame) if len(frame) >= 60 else frame + mac_model.fcs(frame))
        return model


def checked_keys(slot, contents: dict) -> list[str]:
    if slot.kind != "array":
        return list(contents)
    return [key for key, value in contents.items()
            if any(int(v, 16) for v in (value if isinstance(value, list) else [value]))]


def check_against_model(run: NicRun, model: NicModel, *, ordered: bool = True) -> None:
    expected_counters = model.finish_counters()
    for name, value in expected_counters.items():
        if name in ("instructions", "cycles") or name.startswith("trap.") or name == "trace_dropped":
            continue
        assert run.counters[name] == value, f"counter {name}: NIC {run.counters[name]}, model {value}"
    assert sum(v for k, v in run.counters.items() if k.startswith("trap.")) == model.faults
    if not model.faults:
        assert run.counters["instructions"] == expected_counters["instructions"], "instructions retired"
    for port in range(run.config.ports):
        sent = run.transmitted(port)
        expected = model.wire_frames(port)
        if ordered:
            assert sent == expected, f"port {port}: {len(sent)} frames sent, {len(expected)} expected"
        else:
            assert Counter(sent) == Counter(expected), f"port {port}"
    assert [(frame, info) for frame, info in run.host_frames] == [(f.data, f.info) for f in model.host]
    for slot in run.config.maps.slots:
        if slot.name in run.maps:
            contents = model.dump_maps()[slot.name]
            expected = {key: value[0] if isinstance(value, list) else value for key, value in contents.items()
                        if key in checked_keys(slot, contents)}
            name = slot.name
            assert run.maps[name] == expected, f"map {name}"
    lines = [format_trace_record(record) for record in decode_trace_records(run.trace_words)]
    assert lines == [line for result in model.results for line in result.trace_output], "trace_printk output"


# -- the tests -----------------------------------------------------------------------------------------------

def mixed_bursts(rng: random.Random, count: int) -> list[mac_model.WireFrame]:
    """Good frames of many sizes with bad ones mixed in: bad FCS, runts, oversize, PHY errors, a lone
    preamble."""
    bursts = []
    for index in range(count):
        kind = rng.random()
        frame = ethernet_frame(rng, rng.choice([60, 61, 64, 100, 127, 128, 512, 1514, rng.randint(60, 300)]))
        octets = bytearray(mac_model.wire_octets(frame))
        if kind < 0.08:
            octets[20] ^= 0x40                                             # bad FCS
            bursts.append(mac_model.WireFrame(bytes(octets)))
        elif kind < 0.14:
            bursts.append(mac_model.WireFrame(mac_model.preamble() + frame[:30] + mac_model.fcs(frame[:30])))  # runt
        elif kind < 0.18:
            long_frame = ethernet_frame(rng, 1600)
            bursts.append(good_burst(long_frame))                           # oversize (1604 > 1518)
        elif kind < 0.22:
            bursts.append(mac_model.WireFrame(bytes(octets), error_at=frozenset({40})))   # PHY error: truncated
        elif kind < 0.24:
            bursts.append(mac_model.WireFrame(mac_model.preamble()[:5]))  # a burst without SFD: not a frame
        else:
            bursts.append(good_burst(frame, gap=rng.choice([12, 12, 20, 100])))
    return bursts


def test_drop_all_with_bad_frames(compiled):
    """xdp_drop on two ports with good and bad frames: nothing leaves, every frame is counted by reason."""
    rng = random.Random(1)
    run = NicRun(compiled("xdp_drop"), {0: mixed_bursts(rng, 14), 1: mixed_bursts(rng, 14)}).run()
    model = run.reference
    check_against_model(run, model)
    bad = sum(run.counters[f"port{p}.rx_{n}"] for p in range(2) for n in ("bad_fcs", "runt", "oversize", "phy_error"))
    assert bad >= 4 and run.counters["verdict.drop"] >= 10
    assert all(not run.transmitted(p) for p in range(2))


# Under amaranth.sim the whole NIC runs about 700 cycles a second; tests/test_nic_cocotb.py checks the same RTL
# under Verilator in the default run (every example, line rate, mixed traffic), so these repeat it as a slow campaign.
@pytest.mark.slow
def test_macswap_both_ports(compiled):
    """xdp_macswap: every good frame goes back out of its port with the MAC addresses swapped."""
    rng = random.Random(2)
    run = NicRun(compiled("xdp_macswap"), {0: mixed_bursts(rng, 10), 1: mixed_bursts(rng, 10)}).run()
    model = run.reference
    check_against_model(run, model)
    assert run.counters["verdict.tx"] >= 8
    first = model.sent[0][0].data if model.sent[0] else None
    if first:
        assert run.transmitted(0)[0][:6] == first[:6]


def test_pass_to_host_and_injection(compiled):
    """xdp_pass: frames from GMII and frames injected through the CSR reach the host queue, read back through
    the CSR with their ingress port."""
    rng = random.Random(3)
    injected = [(ethernet_frame(rng, n), n % 2) for n in (60, 61, 90, 200)]
    run = NicRun(compiled("xdp_pass"), {0: [good_burst(ethernet_frame(rng, 70))],
                                        1: [good_burst(ethernet_frame(rng, 64))]}, injected=injected).run()
    model = run.reference
    assert sorted(run.host_frames) == sorted((f.data, f.info) for f in model.host)
    assert run.counters["host.passed"] == 6 and run.counters["verdict.pass"] == 6


@pytest.mark.slow
@pytest.mark.parametrize("program, ports", [("xdp_drop", (0, 1)), ("xdp_macswap", (0,))])
def test_line_rate_minimum_frames(compiled, program, ports):
    """Back-to-back 64-byte frames (60 bytes + FCS) with the minimum gap at 1 Gb/s: none is lost, and the
    buffer holds no growing backlog (the NIC keeps up, not only absorbs the burst). xdp_drop takes both ports
    at line rate at once; xdp_macswap (50 instructions, about 64 NIC cycles a frame at 100 MHz against 67.2
    between frames) one port."""
    rng = random.Random(4)
    count = 40
    bursts = {port: [good_burst(ethernet_frame(rng, 60)) for _ in range(count)] if port in ports else []
              for port in range(2)}
    run = NicRun(compiled(program), bursts).run()
    counters = run.counters
    for port in ports:
        assert counters[f"port{port}.rx_frames_ok"] == count
        assert counters[f"port{port}.rx_fifo_overflow"] == 0 and counters[f"port{port}.dropped_buffer_full"] == 0
        assert counters[f"port{port}.buffer_stored"] == count
    assert run.most_slots_in_use <= 3, f"a backlog of {run.most_slots_in_use} frames built up"
    check_against_model(run, run.reference)
    if program == "xdp_macswap":
        assert len(run.transmitted(0)) == count


def run_example(compiled, name: str) -> NicRun:
    """An example's pcap into port 0 (frames under 60 bytes are padded by the sender's MAC, so they would not
    be the pcap's frames: they are left out), its map-init file through the CSR, checked against the model."""
    import json
    from bpfnic.sw.runner import read_pcap
    obj = compiled(name)
    map_file = EXAMPLES / f"{name}.maps.json"
    map_init = json.loads(map_file.read_text()) if map_file.exists() else None
    frames = read_pcap(EXAMPLES / "pcap" / f"{name}.pcap")
    bursts = {0: [good_burst(frame) for frame in frames if 60 <= len(frame) <= 1514], 1: []}
    run = NicRun(obj, bursts, map_init=map_init).run()
    check_against_model(run, run.reference, ordered=False)
    return run


@pytest.mark.parametrize("name", ["xdp_tailcall", pytest.param("xdp_router", marks=pytest.mark.slow),
                                  pytest.param("xdp_encap", marks=pytest.mark.slow),
                                  pytest.param("xdp_libbpf_style", marks=pytest.mark.slow)])
def test_examples_with_maps_and_helpers(compiled, name):
    """xdp_router: LPM and devmap lookups, redirects; xdp_tailcall: a program array and bpf_tail_call (the
    helper unit's tail_call answer translated for the core); xdp_encap: bpf_xdp_adjust_head and a frame that
    grows past the TX MAC's maximum; xdp_libbpf_style: bpf_printk through the trace queue, read by the host."""
    run = run_example(compiled, name)
    assert run.counters["verdict.drop"] + run.counters["verdict.pass"] + run.counters["verdict.tx"] \
        + run.counters["verdict.redirect"] >= 4


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(path.stem for path in EXAMPLES.glob("*.c")))
def test_every_example(compiled, name):
    run_example(compiled, name)


def test_one_core_only():
    with pytest.raises(NicConfigError, match="cores: 2"):
        NicConfig(cores=2)


def test_nic_converts_to_verilog(compiled):
    """The whole NIC with one core, two ports and an example's maps (xdp_router: an LPM trie and a devmap)."""
    obj = compiled("xdp_router")
    dut = Nic(NicConfig.for_object(obj, imem_depth=1024))
    text = verilog.convert(dut, name="bpfnic_nic", ports=signal_ports(dut))
    assert "module bpfnic_nic" in text
