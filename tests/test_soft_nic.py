"""The software NIC (sw/soft_nic.py: the golden VM behind the NIC's register map) through the driver
(sw/driver.py), checked against the NIC model (hw/pipeline/nic_model.py) as tests/test_nic.py checks the RTL:
every example frame by frame (frames out of each port, the host queue, every counter but cycles, trace_printk
lines, every map read back through the register bus), map commands with the bpf() syscall's return codes and the
hash unit's bucket limits, READ_ENTRY iteration, injection, frames waiting while dispatch is off, bad bursts
counted by reason, the trace queue and its overflow, the core's trap causes, and bad input named. No simulator:
every test is fast."""

from __future__ import annotations

import errno
import json
import random
from pathlib import Path

import pytest

from bpfnic.hw.pipeline import mac_model
from bpfnic.hw.pipeline.csr import ID_VALUE, STATUS_DISPATCHER_IDLE, STATUS_HOST_FRAME, MapOp, Reg
from bpfnic.hw.pipeline.map_config import MapLimits, MapSlotConfig, NicMapConfig
from bpfnic.hw.pipeline.map_hash import HashUnitModel
from bpfnic.hw.pipeline.nic import NicConfig
from bpfnic.hw.pipeline.nic_model import NicModel
from bpfnic.sw import asm, maps
from bpfnic.sw.driver import Device, DriverError, MapError
from bpfnic.sw.runner import read_pcap
from bpfnic.sw.soft_nic import SoftNicTransport
from bpfnic.sw.transport import TransportError, complete, csr_driver

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_NAMES = sorted(path.stem for path in EXAMPLES.glob("*.c"))


def map_init_of(name: str) -> dict | None:
    path = EXAMPLES / f"{name}.maps.json"
    return json.loads(path.read_text()) if path.exists() else None


def loaded(compiled, name: str, **config_parameters) -> tuple[Device, NicModel]:
    """The example on a software NIC through the driver, and the model of the same NIC."""
    obj = compiled(name)
    config = NicConfig.for_object(obj, **config_parameters)
    device = Device(SoftNicTransport(config))
    device.load(obj, map_init=map_init_of(name))
    return device, NicModel(obj, config, map_init=map_init_of(name))


def ethernet_frame(rng: random.Random, length: int) -> bytes:
    """A frame without FCS: two unicast MAC addresses, an IPv4 EtherType, random payload."""
    addresses = bytes([0x02]) + rng.randbytes(5) + bytes([0x02]) + rng.randbytes(5)
    return addresses + b"\x08\x00" + rng.randbytes(length - 14)


def check_counters(counters: dict[str, int], model: NicModel, where: str) -> None:
    """Every counter as the model counts it; trap causes as one sum (the model only knows faults); no cycles."""
    for name, value in model.finish_counters().items():
        if name == "cycles" or name.startswith("trap."):
            continue
        assert counters[name] == value, f"{where}: counter {name}: soft NIC {counters[name]}, model {value}"
    assert sum(v for k, v in counters.items() if k.startswith("trap.")) == model.faults, where
    assert counters["cycles"] == 0, where


# -- every example against the model ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_matches_model_frame_by_frame(compiled, name):
    """The example's pcap into the ports in turn, one frame at a time: after each, what left each port, the host
    queue, the trace lines and every counter are the model's; at the end every map is."""
    device, model = loaded(compiled, name)
    ports = device.config.ports
    for index, frame in enumerate(read_pcap(EXAMPLES / "pcap" / f"{name}.pcap")):
        where = f"{name} frame {index}"
        port = index % ports
        sent_before = [len(frames) for frames in model.sent]
        host_before = len(model.host)
        device.send(port, frame)
        counters = device.wait_idle()
        result = model.receive(port, mac_model.with_fcs(frame))
        for out in range(ports):
            expected = [mac_model.pad(sent.data) for sent in model.sent[out][sent_before[out]:]]
            assert device.received(out) == expected, f"{where}: port {out}"
        assert device.host_frames() == [(frame.data, frame.info) for frame in model.host[host_before:]], where
        assert device.trace() == (result.trace_output if result else []), where
        check_counters(counters, model, where)
    assert device.dump_maps() == model.dump_maps()
    assert model.results, f"{name}: no frame reached the program"


# -- maps through the register bus ---------------------------------------------------------------------------------

def nic_with_maps(*slots: MapSlotConfig, **parameters) -> NicConfig:
    """A NIC with these map slots (every type a map unit implements, devmap_hash too)."""
    return NicConfig(maps=NicMapConfig(list(slots), limits=MapLimits()), **parameters)


def test_map_commands_have_the_syscall_semantics():
    config = nic_with_maps(
        MapSlotConfig(index=0, name="flows", map_type=maps.BPF_MAP_TYPE_HASH, key_size=8, value_size=12,
                      max_entries=4),
        MapSlotConfig(index=1, name="counts", map_type=maps.BPF_MAP_TYPE_ARRAY, key_size=4, value_size=8,
                      max_entries=3),
        MapSlotConfig(index=2, name="routes", map_type=maps.BPF_MAP_TYPE_LPM_TRIE, key_size=8, value_size=4,
                      max_entries=2, flags=maps.BPF_F_NO_PREALLOC),
        MapSlotConfig(index=3, name="ports", map_type=maps.BPF_MAP_TYPE_DEVMAP_HASH, key_size=4, value_size=4,
                      max_entries=2, valid_ifindexes=(1, 2)))
    transport = SoftNicTransport(config)
    device = Device(transport)

    flows = device.maps["flows"]
    keys = [bytes([n]) * 8 for n in range(1, 6)]
    flows.update(keys[0], b"a" * 12)
    assert flows.lookup(keys[0]) == b"a" * 12
    with pytest.raises(MapError, match="EEXIST") as refused:
        flows.update(keys[0], b"b" * 12, maps.BPF_NOEXIST)
    assert refused.value.errno == errno.EEXIST
    with pytest.raises(MapError) as refused:
        flows.update(keys[1], b"b" * 12, maps.BPF_EXIST)
    assert refused.value.errno == errno.ENOENT
    with pytest.raises(MapError) as refused:
        flows.delete(keys[1])
    assert refused.value.errno == errno.ENOENT
    for key in keys[1:4]:
        flows.update(key, key[:1] * 12)
    with pytest.raises(MapError) as refused:
        flows.update(keys[4], b"c" * 12)
    assert refused.value.errno == errno.E2BIG, "a full hash map"
    assert sorted(flows.keys()) == keys[:4]
    flows.delete(keys[2])
    assert flows.lookup(keys[2]) is None
    assert sorted(flows.keys()) == [keys[0], keys[1], keys[3]]

    counts = device.maps["counts"]
    counts.update((2).to_bytes(4, "little"), (7).to_bytes(8, "little"))
    assert dict(counts.items()) == {(0).to_bytes(4, "little"): bytes(8), (1).to_bytes(4, "little"): bytes(8),
                                    (2).to_bytes(4, "little"): (7).to_bytes(8, "little")}
    with pytest.raises(MapError) as refused:
        counts.delete((0).to_bytes(4, "little"))
    assert refused.value.errno == errno.EINVAL, "array entries cannot be deleted"
    with pytest.raises(MapError) as refused:
        counts.update((3).to_bytes(4, "little"), bytes(8))
    assert refused.value.errno == errno.E2BIG

    routes = device.maps["routes"]
    routes.update(bytes([8, 0, 0, 0, 10, 0, 0, 0]), b"ten.")
    routes.update(bytes([24, 0, 0, 0, 10, 1, 2, 0]), b"sub.")
    assert routes.lookup(bytes([32, 0, 0, 0, 10, 1, 2, 3])) == b"sub.", "the longest prefix"
    assert routes.lookup(bytes([32, 0, 0, 0, 10, 9, 9, 9])) == b"ten."
    with pytest.raises(MapError) as refused:
        routes.update(bytes([16, 0, 0, 0, 10, 1, 0, 0]), b"full")
    assert refused.value.errno == errno.ENOSPC
    assert sorted(routes.keys()) == [bytes([8, 0, 0, 0, 10, 0, 0, 0]), bytes([24, 0, 0, 0, 10, 1, 2, 0])]

    ports = device.maps["ports"]
    with pytest.raises(MapError) as refused:
        ports.update((5).to_bytes(4, "little"), (7).to_bytes(4, "little"))
    assert refused.value.errno == errno.EINVAL, "ifindex 7 is not one of the NIC's ports"
    ports.update((5).to_bytes(4, "little"), (2).to_bytes(4, "little"))
    assert ports.keys() == [(5).to_bytes(4, "little")]

    csr = csr_driver(transport, device.counter_names)
    assert complete(csr.map_delete(9, bytes(4))) == -errno.EINVAL, "a map the NIC does not have"
    assert complete(csr._map_command(1, MapOp.FREEZE)) == (0, False)
    assert complete(csr._map_command(1, MapOp.FREEZE)) == (-errno.EPERM, False), "frozen already"
    with pytest.raises(MapError) as refused:
        counts.update((0).to_bytes(4, "little"), bytes(8))
    assert refused.value.errno == errno.EPERM, "a frozen map"


def test_hash_maps_hold_keys_as_the_hash_unit_does():
    """Two tables of one bucket of one way: a third key finds both its buckets full and is refused (-E2BIG) with
    room left in the map, as hw/pipeline/map_hash.py's unit refuses it; READ_ENTRY walks its two positions."""
    config = nic_with_maps(MapSlotConfig(index=0, name="tiny", map_type=maps.BPF_MAP_TYPE_HASH, key_size=4,
                                         value_size=8, max_entries=8, hash_ways=1, hash_buckets=1))
    device = Device(SoftNicTransport(config))
    tiny = device.maps["tiny"]
    tiny.update(b"key1", bytes(8))
    tiny.update(b"key2", bytes(8))
    with pytest.raises(MapError) as refused:
        tiny.update(b"key3", bytes(8))
    assert refused.value.errno == errno.E2BIG
    assert sorted(tiny.keys()) == [b"key1", b"key2"]


def test_iteration_finds_every_key_of_a_large_hash_map(compiled):
    """xdp_firewall's 1024-entry rule map filled through the driver: READ_ENTRY over the hash unit's 2048 positions
    lists exactly the keys the NIC took."""
    obj = compiled("xdp_firewall")
    device = Device(SoftNicTransport(NicConfig.for_object(obj)))
    device.load(obj)
    blocked = device.maps["blocked"]
    rng = random.Random(5)
    taken = set()
    for _ in range(700):
        key = rng.randbytes(7) + b"\x00"
        try:
            blocked.update(key, rng.randbytes(8))
        except MapError as error:
            assert error.errno == errno.E2BIG
        else:
            taken.add(key)
    assert len(taken) >= 690
    assert set(blocked.keys()) == taken
    assert len(blocked.keys()) == len(taken)


MAP_KINDS = [
    dict(map_type=maps.BPF_MAP_TYPE_ARRAY, key_size=4, value_size=12, max_entries=5),
    dict(map_type=maps.BPF_MAP_TYPE_HASH, key_size=4, value_size=5, max_entries=6, hash_ways=2),
    dict(map_type=maps.BPF_MAP_TYPE_LRU_HASH, key_size=4, value_size=8, max_entries=4, hash_ways=2),
    dict(map_type=maps.BPF_MAP_TYPE_LPM_TRIE, key_size=5, value_size=8, max_entries=4, flags=maps.BPF_F_NO_PREALLOC),
    dict(map_type=maps.BPF_MAP_TYPE_DEVMAP, key_size=4, value_size=4, max_entries=4, valid_ifindexes=(1, 2)),
    dict(map_type=maps.BPF_MAP_TYPE_DEVMAP_HASH, key_size=4, value_size=8, max_entries=3, valid_ifindexes=(1, 2)),
]


@pytest.mark.parametrize("parameters", MAP_KINDS, ids=lambda p: maps.map_type_name(p["map_type"]))
def test_map_commands_match_the_map_model(parameters):
    """Random host commands through the register bus (CsrDriver: key registers, 64-bit flags, the staging buffer)
    against sw/maps.py (hash maps: map_hash.HashUnitModel, the hash unit's reference), return codes, values and
    READ_ENTRY positions included."""
    slot = MapSlotConfig(index=0, name="m", **parameters)
    transport = SoftNicTransport(nic_with_maps(slot))
    csr = csr_driver(transport)
    reference = HashUnitModel(slot) if slot.kind == "hash" else slot.model()
    rng = random.Random(repr(parameters))
    keys = [rng.randbytes(slot.key_size) for _ in range(2 * slot.max_entries)]
    if slot.key_size == 4:
        keys += [n.to_bytes(4, "little") for n in range(slot.max_entries + 1)]
    if slot.kind == "lpm":
        keys = [bytes([rng.choice([0, 3, 8, 9])]) + bytes(3) + key[4:] for key in keys]

    def value() -> bytes:
        if slot.kind == "devmap":
            return (rng.choice([0, 1, 2, 3]) | rng.choice([0, 0, 4]) << 32).to_bytes(8, "little")[:slot.value_size]
        return rng.randbytes(slot.value_size)

    for step in range(300):
        key, choice = rng.choice(keys), rng.random()
        where = f"step {step}, key {key.hex()}"
        if choice < 0.4:
            new, flags = value(), rng.choice([maps.BPF_ANY, maps.BPF_NOEXIST, maps.BPF_EXIST, maps.BPF_F_LOCK, 1 << 40])
            assert complete(csr.map_update(0, key, new, flags)) == reference.update(key, new, flags, None), where
        elif choice < 0.6:
            assert complete(csr.map_delete(0, key)) == reference.delete(key, None), where
        else:
            expected = reference.lookup(key)
            rc, got = complete(csr.map_lookup(0, key, slot.value_size))
            assert (rc, got) == ((0, expected) if expected is not None else (-errno.ENOENT, None)), where
    if slot.kind == "hash":
        positions = {index: reference.entry(index) for index in range(2 * slot.hash_ways * slot.hash_buckets)}
    elif slot.kind == "array" or slot.map_type == maps.BPF_MAP_TYPE_DEVMAP:
        positions = {index: index.to_bytes(4, "little") for index in range(slot.max_entries)}
    else:
        positions = {reference.lookup_slot(key) // slot.value_stride: key for key in reference.keys()}
    for index in range(max(positions) + 2 if positions else 2):
        rc, key = complete(csr.map_read_entry(0, index, slot.key_size))
        assert (rc, key) == (0, positions.get(index)), f"READ_ENTRY {index}"


# -- frames --------------------------------------------------------------------------------------------------------

def test_injected_frames(compiled):
    """Frames through INJECT_*: no MAC on their way (any length, no FCS, no RX counter), counted by the buffer for
    their port, through the program (xdp_macswap sends them back out of that port); refusals named."""
    device, model = loaded(compiled, "xdp_macswap")
    rng = random.Random(6)
    injected = [(ethernet_frame(rng, length), length % 2) for length in (14, 59, 60, 201, 1514)]
    expected = {0: [], 1: []}
    for frame, port in injected:
        device.inject(frame, port)
        # the model's MAC would call the short ones runts: the golden VM alone, as the frame reaches the program
        result = model.session.run_packet(frame, ingress_ifindex=port + 1)
        assert result.verdict == "XDP_TX"
        expected[port].append(mac_model.pad(result.data))
    counters = device.wait_idle()
    for port in (0, 1):
        assert device.received(port) == expected[port]
        assert counters[f"port{port}.buffer_stored"] == sum(1 for _, p in injected if p == port)
        assert counters[f"port{port}.rx_frames_ok"] == 0
    assert counters["verdict.tx"] == len(injected)
    with pytest.raises(DriverError, match="refused to inject a frame of 0 bytes"):
        device.inject(b"", 0)
    with pytest.raises(DriverError, match="refused to inject a frame of 2049 bytes"):
        device.inject(bytes(2049), 1)
    transport = device.transport
    transport.write(Reg.INJECT_CONTROL, 64)
    assert transport.read(Reg.INJECT_STATUS) == 1 | 2048 << 16, "a frame is being written"
    transport.write(Reg.INJECT_CONTROL, 64)
    assert transport.read(Reg.INJECT_STATUS) & 2, "one frame at a time"


def test_frames_wait_while_dispatch_is_off(compiled):
    """Detached, frames wait in the buffer (BUFFER counts them; the overflow is dropped_buffer_full); setting
    CONTROL.ENABLE runs them in order; passed frames hold their slots until the host reads them."""
    device, _ = loaded(compiled, "xdp_pass")
    transport, slots = device.transport, device.config.slots
    device.detach()
    rng = random.Random(7)
    frames = [ethernet_frame(rng, 64 + n) for n in range(slots + 3)]
    for frame in frames:
        device.send(0, frame)
    counters = device.wait_idle()
    assert counters["port0.buffer_stored"] == slots and counters["port0.dropped_buffer_full"] == 3
    assert counters["verdict.pass"] == 0 and transport.read(Reg.BUFFER) == slots
    assert transport.read(Reg.STATUS) == STATUS_DISPATCHER_IDLE
    transport.write(Reg.CONTROL, 1)
    counters = device.counters()
    assert counters["verdict.pass"] == counters["host.passed"] == slots
    assert transport.read(Reg.BUFFER) == slots, "every slot still holds a frame for the host"
    assert transport.read(Reg.STATUS) == STATUS_DISPATCHER_IDLE | STATUS_HOST_FRAME
    status = transport.read(Reg.HOST_RX_STATUS)
    assert status == 1 << 31 | 1 << 30 | len(frames[0])
    transport.read(Reg.HOST_RX_DATA)
    assert transport.read(Reg.HOST_RX_STATUS) == 1 << 31 | len(frames[0]), "bit 30: nothing read yet"
    transport.write(Reg.HOST_RX_DISCARD, 1)
    assert device.host_frames() == [(frame, 0) for frame in frames[1:slots]]
    assert transport.read(Reg.BUFFER) == slots | slots << 16
    assert transport.read(Reg.HOST_RX_DATA) == 0 and not transport.read(Reg.STATUS) & STATUS_HOST_FRAME


def test_wait_idle_gives_up_on_a_timeless_device(compiled):
    """A program attached but dispatch switched off behind the driver's back: frames never reach a verdict, and
    wait_idle says so after its limit instead of polling a device whose clock never moves."""
    device, _ = loaded(compiled, "xdp_pass")
    device.transport.write(Reg.CONTROL, 0)
    device.send(0, ethernet_frame(random.Random(3), 64))
    with pytest.raises(DriverError, match="did not finish within 640 cycles"):
        device.wait_idle(cycle_limit=640)


def bad_bursts(rng: random.Random) -> list[mac_model.WireFrame]:
    """One burst of every kind a MAC refuses, between good frames."""
    def good(length: int, gap: int = 12) -> mac_model.WireFrame:
        return mac_model.WireFrame(mac_model.wire_octets(ethernet_frame(rng, length)), gap=gap)
    damaged = bytearray(mac_model.wire_octets(ethernet_frame(rng, 100)))
    damaged[30] ^= 0x10
    runt = ethernet_frame(rng, 30)
    return [
        good(60),
        mac_model.WireFrame(bytes(damaged)),                                                  # bad FCS
        mac_model.WireFrame(mac_model.preamble() + runt + mac_model.fcs(runt)),               # runt
        good(1600),                                                                           # oversize
        mac_model.WireFrame(mac_model.wire_octets(ethernet_frame(rng, 80)), error_at=frozenset({40})),  # PHY error
        mac_model.WireFrame(mac_model.preamble()[:5]),                                        # no SFD: no frame
        good(1514, gap=1),
        good(61),
    ]


def test_bad_bursts_are_counted_by_reason(compiled):
    device, model = loaded(compiled, "xdp_macswap")
    rng = random.Random(8)
    bursts = {0: bad_bursts(rng), 1: bad_bursts(rng)}
    for port, port_bursts in bursts.items():
        device.send_bursts(port, port_bursts)
        for frame in mac_model.decode_gmii(mac_model.gmii_samples(port_bursts)):
            model.receive(port, frame.octets, phy_error=frame.error)
    counters = device.wait_idle()
    check_counters(counters, model, "bad bursts")
    for port in (0, 1):
        assert [counters[f"port{port}.rx_{name}"] for name in ("frames_ok", "bad_fcs", "runt", "oversize",
                                                                "phy_error")] == [3, 1, 1, 1, 1]
        assert device.received(port) == [mac_model.pad(sent.data) for sent in model.sent[port]]


def test_oversize_frame_out_of_a_tx_port(compiled):
    """xdp_encap grows frames by an outer header: one that no longer fits the MAC is counted tx_oversize."""
    device, model = loaded(compiled, "xdp_encap")
    frames = [frame for frame in read_pcap(EXAMPLES / "pcap" / "xdp_encap.pcap")]
    big = max(frames, key=len)
    grown = big + bytes(1514 - len(big))
    device.send(0, grown)
    counters = device.wait_idle()
    model.receive(0, mac_model.with_fcs(grown))
    check_counters(counters, model, "grown frame")
    assert sum(counters[f"port{port}.tx_oversize"] for port in (0, 1)) == 1


# -- trace_printk --------------------------------------------------------------------------------------------------

def echo_frame(compiled) -> tuple[bytes, str]:
    """A frame of xdp_libbpf_style's pcap that makes it print, and the line."""
    model = NicModel(compiled("xdp_libbpf_style"), NicConfig.for_object(compiled("xdp_libbpf_style")))
    for frame in read_pcap(EXAMPLES / "pcap" / "xdp_libbpf_style.pcap"):
        result = model.receive(0, mac_model.with_fcs(frame))
        if result and result.trace_output:
            return frame, result.trace_output[0]
    pytest.fail("no frame of xdp_libbpf_style.pcap makes it print")


def test_trace_printk_through_the_trace_queue(compiled):
    frame, line = echo_frame(compiled)
    assert "drop UDP echo" in line
    device, _ = loaded(compiled, "xdp_libbpf_style")
    for _ in range(3):
        device.send(1, frame)
    device.wait_idle()
    assert device.trace() == [line] * 3
    assert device.transport.read(Reg.TRACE_STATUS) == 0 and device.transport.read(Reg.TRACE_HIGH) == 0


def test_trace_queue_overflow_is_counted(compiled):
    """A 16-word trace queue holds one record of this format (9 words: a header, 5 words of the format and its
    NUL, r3..r5): the second is dropped and counted, as the helper unit does; once read, the queue takes records
    again."""
    frame, line = echo_frame(compiled)
    device, _ = loaded(compiled, "xdp_libbpf_style", trace_depth=16)
    device.send(0, frame)
    device.send(0, frame)
    assert device.wait_idle()["trace_dropped"] == 1
    assert device.trace() == [line]
    device.send(0, frame)
    assert device.wait_idle()["trace_dropped"] == 1
    assert device.trace() == [line]


# -- programs written through the registers ------------------------------------------------------------------------

TRAPS = [
    ("mov %r1, 0\nldxw %r0, [%r1]\nexit", "trap.bad_access"),
    ("call 999\nexit", "trap.unknown_helper"),
    ("mov %r1, 0\nmov %r2, %r10\ncall 1\nexit", "trap.helper_fault"),       # map_lookup_elem of no map
    ("loop:\nja loop", "trap.cycle_budget"),
    ("lddw %r1, map_idx 3\nexit", "trap.invalid_instruction"),             # no map 3 on this NIC
    ("mov %r0, 2", "trap.pc_out_of_program"),
    ("call local f\nexit\nf:\ncall local f\nexit", "trap.call_depth"),
    ("mov %r0, 9\nexit", "invalid_action"),
]


@pytest.mark.parametrize("source, counter", TRAPS, ids=[counter for _, counter in TRAPS])
def test_programs_written_through_the_registers_trap_by_cause(source, counter):
    """A program written with CsrDriver.load_program (no object, no driver load) runs on injected frames; each
    way of ending badly is counted under the core's trap cause, and the frame is aborted."""
    program = asm.assemble(source)
    encoded = program.encode()
    transport = SoftNicTransport(NicConfig())
    device = Device(transport)
    csr = csr_driver(transport, device.counter_names)
    complete(csr.load_program([int.from_bytes(encoded[i:i + 8], "little") for i in range(0, len(encoded), 8)],
                              cycle_budget=1000))
    complete(csr.set_enabled(True))
    device.inject(bytes(60), 0)
    counters = device.counters()
    assert counters[counter] == 1 and counters["verdict.aborted"] == 1
    assert sum(v for k, v in counters.items() if k.startswith("trap.")) == (counter != "invalid_action")


def test_nothing_loaded_aborts_frames():
    """Dispatch on with an empty instruction memory: the core finds no instruction to run."""
    transport = SoftNicTransport(NicConfig())
    transport.write(Reg.CONTROL, 1)
    transport.write(Reg.INJECT_CONTROL, 60)
    for _ in range(15):
        transport.write(Reg.INJECT_DATA, 0)
    counters = Device(transport).counters()
    assert counters["trap.pc_out_of_program"] == counters["verdict.aborted"] == 1


# -- identity, time, bad input --------------------------------------------------------------------------------------

def test_identity_and_no_time():
    transport = SoftNicTransport(NicConfig(ports=3, slots=8))
    assert transport.name == "vm"
    assert transport.read(Reg.ID) == ID_VALUE and transport.read(Reg.VERSION) == 1
    assert transport.read(Reg.CONFIG) == 3 | 1 << 8 | 0 << 16 | 12 << 24
    assert transport.read(Reg.BUFFER) == 8 | 8 << 16
    assert transport.read(Reg.STATUS) == STATUS_DISPATCHER_IDLE
    transport.run(10_000)
    assert transport.cycle == 0 and not transport.wire_busy()
    transport.write(0x0ffc, 5)
    assert transport.read(0x0ffc) == 0, "an unknown address reads 0"
    transport.write(Reg.PROG_ENTRY, -1)
    assert transport.read(Reg.PROG_ENTRY) == 0xFFFF_FFFF
    assert set(Device(transport).counters().values()) == {0}


def test_bad_input_is_named():
    transport = SoftNicTransport(NicConfig())
    burst = mac_model.WireFrame(mac_model.wire_octets(bytes(60)))
    with pytest.raises(TransportError, match=r"send: port 2: the NIC has ports 0\.\.1"):
        transport.send(2, [burst])
    with pytest.raises(TransportError, match="take_transmitted: port -1"):
        transport.take_transmitted(-1)
    with pytest.raises(TransportError, match="burst 1 is a bytes, not a mac_model.WireFrame"):
        transport.send(0, [burst, b"raw octets"])
    with pytest.raises(TransportError, match="send: port 0: GMII burst needs at least one idle cycle"):
        transport.send(0, [mac_model.WireFrame(burst.octets, gap=0)])
    with pytest.raises(TransportError, match="INJECT_CONTROL: ingress port 5"):
        transport.write(Reg.INJECT_CONTROL, 60 | 5 << 16)
    with pytest.raises(TransportError, match="register address 65536"):
        transport.read(0x10000)
    with pytest.raises(TransportError, match="the value must be an int"):
        transport.write(Reg.CONTROL, "1")
    with pytest.raises(TransportError, match="expected a hw/pipeline/nic.NicConfig"):
        SoftNicTransport("two ports")
    with pytest.raises(DriverError, match="port 7: the NIC has ports 0..1"):
        Device(transport).send(7, bytes(60))
    transport.close()
    with pytest.raises(TransportError, match="closed"):
        transport.read(Reg.ID)


@pytest.mark.parametrize("name", ["xdp_firewall", "xdp_router", "xdp_libbpf_style"])
def test_the_scoreboard_passes_the_software_nic(compiled, name):
    """The system tests' scoreboard (sim/scoreboard.py) over this transport, as over the RTL: the example's frames
    on both ports, a host map update between bursts, everything compared with the model."""
    from bpfnic.sim.scoreboard import Scoreboard
    device, _ = loaded(compiled, name)
    board = Scoreboard(device, compiled(name), map_init=map_init_of(name))
    frames = read_pcap(EXAMPLES / "pcap" / f"{name}.pcap")
    board.send_frames(0, frames)
    first_map = device.attached.obj.maps[0]
    key = next(iter(device.maps[first_map.name].keys()), None)
    if key is not None and device.maps[first_map.name].slot.kind in ("hash", "lpm"):
        board.update_map(first_map.name, key, None)             # delete a rule between the bursts
    board.read_host()           # passed frames hold buffer slots until the host reads them
    board.send_frames(1, frames)
    report = board.check()
    assert report.frames == 2 * len(frames)
