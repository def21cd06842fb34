"""The offload driver: one API for every bpfnic device, whatever transport reaches it (sw/transport.py: the
software NIC on the golden VM, the RTL under amaranth.sim, the RTL under cocotb with Verilator, a board).

The shape is bpftool's and libbpf's: open an object, pick a program, verify it, check it against the NIC's
capability description, relocate it onto the NIC's map slots, write the instruction memory and the map
configuration through the register bus and attach it; then maps by name (lookup, update, delete, iterate),
frames into ports, frames out of ports and the host queue, counters and the trace_printk queue.

    device = Device(transport)
    device.load("xdp_firewall.o", map_init=...)     # verify, offload check, relocate, CSR writes, attach
    device.maps["blocked"].update(key, value)
    device.send(0, frame); device.wait_idle()
    device.received(0), device.host_frames(), device.counters(), device.trace()

Register accesses go through hw/pipeline/csr.CsrDriver (the register map lives there), run synchronously over
the transport (sw/transport.complete).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from bpfnic.hw.pipeline import mac_model
from bpfnic.hw.pipeline.csr import (COUNTERS_BASE, MAP_BUSY, MAP_DONE, MAP_FOUND, STATUS_DISPATCHER_IDLE, CsrDriver,
                                    CsrError, MapOp, Reg)
from bpfnic.hw.pipeline.helper_unit import decode_trace_records, format_trace_record
from bpfnic.hw.pipeline.nic import LoadedProgram, NicLoadError, counter_names, load_object
from .transport import Transport, complete, csr_driver

FCS_BYTES = 4
VERDICT_NAMES = ("aborted", "drop", "pass", "tx", "redirect")
DEFAULT_WAIT_CYCLES = 20_000
POLL_CYCLES = 64          # how long the device runs between two looks at its counters while the driver waits
BPF_ANY = 0


class DriverError(Exception):
    """What the driver cannot do, named: an object the NIC cannot run, a map or port that does not exist, a
    device that did not finish. The message says what, where and why."""


class MapError(DriverError):
    """A map operation the NIC refused; `errno` is the syscall's error number (ENOENT, EEXIST, E2BIG, ...)."""

    def __init__(self, message: str, error_number: int):
        super().__init__(message)
        self.errno = error_number


@dataclass
class Attached:
    """The program running on the device: the object, its section, where its programs sit."""
    obj: object
    section: str
    placement: LoadedProgram


# -- register sequences, run next to the device where the transport can (Transport.execute) ---------------------

async def read_map_keys(csr: CsrDriver, index: int, positions: int, key_size: int) -> list[bytes]:
    """The keys READ_ENTRY finds at positions 0..positions-1 of map `index`. The command alone at each position:
    the key and flags writes of CsrDriver.map_read_entry would make a 2048-position walk four times as long."""
    found = []
    await csr.write(Reg.MAP_SELECT, index)
    for position in range(positions):
        await csr.write(Reg.MAP_INDEX, position)
        await csr.write(Reg.MAP_COMMAND, MapOp.READ_ENTRY.value)
        while True:
            status = await csr.read(Reg.MAP_STATUS)
            if status & MAP_DONE and not status & MAP_BUSY:
                break
        if status & MAP_FOUND:
            key = b""
            for offset in range(0, key_size, 4):
                key += (await csr.read(Reg.MAP_KEY + offset)).to_bytes(4, "little")
            found.append(key[:key_size])
    return found


async def read_map_entries(csr: CsrDriver, index: int, keys: list[bytes] | None, value_size: int,
                           positions: int = 0, key_size: int = 0) -> list[tuple[bytes, bytes]]:
    """(key, value) of every entry of map `index` found at `keys` (or, when None, at the keys READ_ENTRY finds)."""
    if keys is None:
        keys = await read_map_keys(csr, index, positions, key_size)
    entries = []
    for key in keys:
        rc, value = await csr.map_lookup(index, key, value_size)
        if value is not None:
            entries.append((key, value))
        elif rc and rc != -errno.ENOENT:
            raise MapError(f"map slot {index}: lookup of key {key.hex()}: the NIC refused it "
                           f"({errno.errorcode.get(-rc, str(-rc))})", -rc)
    return entries


async def drain_host_queue(csr: CsrDriver) -> list[tuple[bytes, int]]:
    frames = []
    while (got := await csr.receive_frame()) is not None:
        frames.append(got)
    return frames


async def drain_trace_queue(csr: CsrDriver) -> list[int]:
    words = []
    while (record := await csr.read_trace_record()) is not None:
        words += record
    return words


class DeviceMap:
    """One map slot of the NIC, by the name it was built with. Keys and values are bytes in memory order."""

    def __init__(self, device: "Device", index: int, slot):
        self.device = device
        self.index = index
        self.slot = slot
        self.name = slot.name

    def _refused(self, what: str, key: bytes, rc: int) -> MapError:
        name = errno.errorcode.get(-rc, str(-rc))
        return MapError(f"map {self.name}: {what} of key {key.hex() or '-'}: the NIC refused it ({name})", -rc)

    def _check_key(self, key: bytes) -> bytes:
        key = bytes(key)
        if self.slot.kind != "progarray" and len(key) != self.slot.key_size:
            raise DriverError(f"map {self.name}: a key of {len(key)} bytes; the map's keys have {self.slot.key_size}")
        return key

    def lookup(self, key: bytes) -> bytes | None:
        """The value at `key` (its first copy on a per-CPU map), or None when there is no entry."""
        key = self._check_key(key)
        size = 8 if self.slot.kind == "progarray" else self.slot.value_size
        rc, value = self.device._execute(CsrDriver.map_lookup, self.index, key, size)
        if rc and rc != -errno.ENOENT:
            raise self._refused("lookup", key, rc)
        return value

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        """BPF_MAP_UPDATE_ELEM with the syscall's flags (BPF_ANY, BPF_NOEXIST, BPF_EXIST); raises MapError."""
        key = self._check_key(key)
        value = bytes(value)
        if self.slot.kind != "progarray" and len(value) != self.slot.value_size:
            raise DriverError(f"map {self.name}: a value of {len(value)} bytes; the map's values have "
                              f"{self.slot.value_size}")
        copies = value + bytes(-len(value) % 8)
        rc = self.device._execute(CsrDriver.map_update, self.index, key, copies * self.slot.copies, flags)
        if rc:
            raise self._refused("update", key, rc)

    def delete(self, key: bytes) -> None:
        key = self._check_key(key)
        rc = self.device._execute(CsrDriver.map_delete, self.index, key)
        if rc:
            raise self._refused("delete", key, rc)

    def _positions(self) -> int:
        slot = self.slot
        return 2 * slot.hash_ways * slot.hash_buckets if slot.kind == "hash" else slot.max_entries

    def keys(self) -> list[bytes]:
        """Every key with an entry: an array's indices; a hash map's, an LPM trie's and a devmap's entries by
        position (READ_ENTRY walks them, hw/pipeline/map_hash.py, map_lpm.py, map_devmap.py)."""
        slot = self.slot
        if slot.kind == "array":
            return [i.to_bytes(4, "little") for i in range(slot.max_entries)]
        if slot.kind == "progarray":
            return [key for key, _ in self.items()]
        return self.device._execute(read_map_keys, self.index, self._positions(), slot.key_size)

    def items(self) -> list[tuple[bytes, bytes]]:
        """Every entry (key, value; a per-CPU map's first copy), read in one operation on the device."""
        slot = self.slot
        size = 8 if slot.kind == "progarray" else slot.value_size
        if slot.kind in ("array", "progarray"):
            keys = [i.to_bytes(4, "little") for i in range(slot.max_entries)]
            return self.device._execute(read_map_entries, self.index, keys, size)
        return self.device._execute(read_map_entries, self.index, None, size, self._positions(), slot.key_size)

    def __repr__(self) -> str:
        return f"DeviceMap({self.name!r}, slot {self.index}, {self.slot.kind})"


class Device:
    """A bpfnic NIC behind a transport. Frames this driver sends are counted, so that `wait_idle` knows when
    every one of them reached its fate; what ports send is collected as it leaves (`received`)."""

    def __init__(self, transport: Transport):
        self.transport = transport
        self.config = transport.config
        self.counter_names = counter_names(self.config)
        self._csr = csr_driver(transport, self.counter_names)
        try:
            self._do(self._csr.check_identity())
        except CsrError as error:
            raise DriverError(f"{transport.name}: {error}") from None
        self.maps = {slot.name: DeviceMap(self, index, slot) for index, slot in enumerate(self.config.maps.slots)}
        self.attached: Attached | None = None
        self.wire_frames = 0                  # frames this driver put on the RX wires
        self.injected_frames = 0              # and injected through the register bus
        self._received = {port: [] for port in range(self.config.ports)}
        # frames each port put on its wire, counted from the TX counters as this driver found them
        start = self.counters()
        self._transmitted = {port: start[f"port{port}.tx_frames_ok"] for port in range(self.config.ports)}

    def _do(self, coroutine):
        return complete(coroutine)

    def _execute(self, operation, *arguments):
        """`operation(csr, *arguments)` (a module-level async function over a CsrDriver) on the device, in one
        round trip where the transport can (Transport.execute)."""
        return self.transport.execute(operation, *arguments, counter_names=self.counter_names)

    # -- programs ---------------------------------------------------------------------------------------------
    def load(self, obj, section: str | None = None, *, verify: bool = True, map_init: dict | None = None,
             cycle_budget: int = 100_000) -> Attached:
        """Verify the object's programs (as the kernel does on load), check them against the NIC's capability
        description, relocate them onto the NIC's map slots (by map name), write them and the map entries
        through the register bus, and attach the chosen program. `obj` is a path or a loaded object."""
        if isinstance(obj, (str, Path)):
            from .elf_loader import load_object as load_elf
            obj = load_elf(obj)
        program = obj.program(section)
        if verify:
            from .runner import verify_object
            verify_object(obj)
        from .capabilities import check_offload
        problems = check_offload(obj)
        if problems:
            raise DriverError(f"{obj.path}: cannot be offloaded to the NIC: " + "; ".join(map(str, problems)))
        try:
            placement = self._do(load_object(self._csr, self.config, obj, program.section, map_init=map_init,
                                             cycle_budget=cycle_budget))
        except (NicLoadError, CsrError) as error:
            raise DriverError(f"{self.transport.name}: {error}") from None
        self.attached = Attached(obj, program.section, placement)
        return self.attached

    def detach(self) -> None:
        """Stop handing frames to the program (they wait in the packet buffer; arrivals beyond it are counted
        as dropped_buffer_full)."""
        self._do(self._csr.set_enabled(False))
        self.attached = None

    # -- frames -----------------------------------------------------------------------------------------------
    def _check_port(self, port: int) -> None:
        if not 0 <= port < self.config.ports:
            raise DriverError(f"port {port}: the NIC has ports 0..{self.config.ports - 1}")

    def send(self, port: int, frame: bytes, *, gap: int | None = None) -> None:
        """A frame (without FCS) onto port `port`'s receive wire: preamble, SFD, the frame, its FCS."""
        burst = mac_model.WireFrame(mac_model.wire_octets(frame))
        if gap is not None:
            burst = mac_model.WireFrame(burst.octets, gap=gap)
        self.send_bursts(port, [burst])

    def send_bursts(self, port: int, bursts: Sequence[mac_model.WireFrame]) -> None:
        """Raw GMII bursts (bad FCS, runts, errors and all) onto port `port`'s receive wire."""
        self._check_port(port)
        bursts = list(bursts)
        self.wire_frames += len(mac_model.decode_gmii(mac_model.gmii_samples(bursts)))
        self.transport.send(port, bursts)

    def inject(self, frame: bytes, port: int) -> None:
        """A frame into the receive path through the register bus, as if it arrived on `port`."""
        self._check_port(port)
        try:
            self._do(self._csr.inject_frame(frame, port))
        except CsrError as error:
            raise DriverError(str(error)) from None
        self.injected_frames += 1

    def _collect(self) -> None:
        for port in range(self.config.ports):
            frames = self.transport.take_transmitted(port)
            self._received[port] += frames
            self._transmitted[port] += len(frames)

    def received(self, port: int) -> list[bytes]:
        """The frames port `port` sent since the last call (FCS checked and removed), taken."""
        self._check_port(port)
        self._collect()
        frames, self._received[port] = self._received[port], []
        out = []
        for frame in frames:
            if frame.error or not mac_model.fcs_ok(frame.octets):
                raise DriverError(f"port {port} sent a damaged frame ({'TX_ER' if frame.error else 'bad FCS'}): "
                                  f"{frame.octets.hex()}")
            out.append(frame.octets[:-FCS_BYTES])
        return out

    def host_frames(self) -> list[tuple[bytes, int]]:
        """Every frame waiting in the host queue, with its ingress port, read out."""
        return self._execute(drain_host_queue)

    def trace(self) -> list[str]:
        """The trace_printk lines waiting in the trace queue, read out and formatted."""
        return [format_trace_record(record) for record in decode_trace_records(self._execute(drain_trace_queue))]

    def dump_maps(self, names: Sequence[str] | None = None) -> dict[str, dict]:
        """The contents of maps `names` (default: every map of the attached object, or every map slot when
        nothing is attached) read through the register bus, in the JSON shape of sw/xdp.XdpSession.dump_maps:
        key hex -> value hex; a program array shows section names, a per-CPU map a list with the NIC's one copy."""
        if names is None:
            names = ([definition.name for definition in self.attached.obj.maps] if self.attached
                     else list(self.maps))
        sections = ({entry.word: name for name, entry in self.attached.placement.placements.items()}
                    if self.attached else {})
        out: dict[str, dict] = {}
        for name in names:
            if name not in self.maps:
                raise DriverError(f"map {name!r}: the NIC has no map of that name (its maps: "
                                  f"{', '.join(self.maps) or 'none'})")
            device_map = self.maps[name]
            if device_map.slot.kind == "progarray":
                out[name] = {key.hex(): sections.get(int.from_bytes(value, "little"), "?")
                             for key, value in device_map.items()}
            elif device_map.slot.per_cpu:
                out[name] = {key.hex(): [value.hex()] for key, value in device_map.items()}
            else:
                out[name] = {key.hex(): value.hex() for key, value in device_map.items()}
        return out

    # -- counters and waiting -------------------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        values = self.transport.read_many([COUNTERS_BASE + 4 * i for i in range(len(self.counter_names))])
        return dict(zip(self.counter_names, values))

    def status(self) -> int:
        return self.transport.read(Reg.STATUS)

    def _settled(self, counters: dict[str, int]) -> bool:
        ports = range(self.config.ports)
        decided = sum(counters[f"port{p}.rx_{name}"] for p in ports for name in mac_model.RX_COUNTER_OF_STATUS.values())
        # every good frame is in the buffer or counted as dropped by it
        buffered = all(counters[f"port{p}.buffer_stored"] + counters[f"port{p}.dropped_buffer_full"]
                       + counters[f"port{p}.dropped_too_long"] >= counters[f"port{p}.rx_frames_ok"] for p in ports)
        stored = sum(counters[f"port{p}.buffer_stored"] for p in ports)
        verdicts = sum(counters[f"verdict.{name}"] for name in VERDICT_NAMES)
        # a verdict is counted when the program ends, its output when the frame is queued there afterwards
        forwarded = sum(counters[f"verdict.{name}"] for name in ("pass", "tx", "redirect"))
        queued = (sum(counters[f"port{p}.sent"] for p in ports) + counters["host.passed"]
                  + counters["redirect_failed"])
        # a frame handed to a TX MAC is done once the MAC counted it (sent or refused)
        transmitted = all(counters[f"port{p}.sent"] == sum(counters[f"port{p}.tx_{name}"] for name in
                                                           ("frames_ok", "oversize", "malformed")) for p in ports)
        # detached, frames wait in the buffer: only the receive side has to settle
        processed = self.attached is None or verdicts >= stored
        return decided >= self.wire_frames and buffered and processed and queued >= forwarded and transmitted

    def wait_idle(self, cycle_limit: int = DEFAULT_WAIT_CYCLES) -> dict[str, int]:
        """Run the device until every frame sent so far has reached its fate (a MAC's or the buffer's drop, or
        a verdict applied and, for TX and REDIRECT, the frame out on its wire) and the dispatcher is idle.
        Returns the counters then. Raises DriverError when that has not happened `cycle_limit` cycles after the
        last burst left the wires."""
        transport = self.transport
        idle_since = None
        polls = 0         # a device without time (the software NIC) keeps its cycle: polls count instead
        while True:
            if transport.wire_busy():
                idle_since, polls = None, 0
            else:
                idle_since = transport.cycle if idle_since is None else idle_since
                # STATUS first: one register, where the counters are 44 (and only settle once it says idle)
                counters = self.counters() if self.status() & STATUS_DISPATCHER_IDLE else None
                if counters is not None and self._settled(counters):
                    self._collect()
                    if all(self._transmitted[p] >= counters[f"port{p}.tx_frames_ok"] for p in self._transmitted):
                        return counters
                if max(transport.cycle - idle_since, polls * POLL_CYCLES) >= cycle_limit:
                    raise DriverError(f"{transport.name}: the NIC did not finish within {cycle_limit} cycles of the "
                                      f"last frame: status 0x{self.status():x}, counters "
                                      f"{ {k: v for k, v in self.counters().items() if v} }")
                polls += 1
            transport.run(POLL_CYCLES)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


# -- `bpfnic run` on a device ------------------------------------------------------------------------------------

@dataclass
class NicPacketResult:
    """A packet's result on a NIC: sw/xdp.PacketResult's fields, plus the core cycles the program took."""
    index: int
    action: int
    data: bytes
    redirect: int | None
    instructions: int | None
    trace_output: list
    fault: str | None = None
    cycles: int | None = None

    @property
    def verdict(self) -> str:
        from .xdp import verdict_name
        return verdict_name(self.action)

    def to_json(self) -> dict:
        return {"index": self.index, "verdict": self.verdict, "data": self.data.hex(), "redirect": self.redirect,
                "cycles": self.cycles}


class NicSession:
    """An object on a device with sw/xdp.XdpSession's interface (`run_packet`, `dump_maps`, `apply_map_init`,
    `close`), so that `bpfnic run` prints the same table and JSON on a NIC as on the golden VM.

    Each packet enters through port `port`'s RX wire (a frame under 60 bytes is padded by the sending MAC, as on
    a wire, so the program sees 60 bytes), and the result is what the NIC lets the host observe: the verdict from
    the verdict counters; `data` is the frame that left (a TX port for XDP_TX and XDP_REDIRECT, without its FCS;
    the host queue for XDP_PASS); for XDP_DROP and XDP_ABORTED nothing leaves, so `data` is empty. `redirect` is
    the ifindex (port + 1) of the port a redirected frame left. Instructions and cycles come from the counters."""

    def __init__(self, transport_factory, obj, section: str | None = None, port: int = 0, verify: bool = False):
        """`transport_factory(config)` builds the transport for a NIC built with the object's maps
        (NicConfig.for_object); the device starts on the first packet, after map-init is known."""
        from bpfnic.hw.pipeline.nic import NicConfig, NicConfigError
        from .capabilities import check_offload
        problems = check_offload(obj)
        if problems:
            raise DriverError(f"{obj.path}: cannot be offloaded to the NIC: " + "; ".join(map(str, problems)))
        try:
            self.config = NicConfig.for_object(obj)
        except NicConfigError as error:
            raise DriverError(f"{obj.path}: no NIC can be built for its maps: {error}") from None
        if not 0 <= port < self.config.ports:
            raise DriverError(f"port {port}: the NIC has ports 0..{self.config.ports - 1}")
        self.obj, self.section, self.port, self.verify = obj, section, port, verify
        self.map_init: dict | None = None
        self._factory = transport_factory
        self.device: Device | None = None
        self._settled_counters: dict[str, int] | None = None

    def _started(self) -> Device:
        if self.device is None:
            device = Device(self._factory(self.config))
            try:
                device.load(self.obj, self.section, verify=self.verify, map_init=self.map_init)
            except BaseException:
                device.close()
                raise
            self.device = device
        return self.device

    def apply_map_init(self, init: dict) -> None:
        if self.device is not None:
            raise DriverError("map-init: apply it before the first packet")
        entries = init.get("maps", init) if isinstance(init, dict) else None
        if not isinstance(entries, dict):
            raise DriverError("map-init: expected {\"maps\": {\"<map name>\": {\"<key hex>\": \"<value hex>\"}}}")
        slots = {slot.name: slot for slot in self.config.maps.slots}
        for name, contents in entries.items():
            if name not in slots:
                raise DriverError(f"map-init: no map named {name!r} (maps: {', '.join(sorted(slots)) or 'none'})")
            if not isinstance(contents, dict):
                raise DriverError(f"map-init: map {name}: expected an object of key hex -> value hex")
            for key_hex, value in contents.items():
                texts = [key_hex] + (value if isinstance(value, list)
                                     else [] if slots[name].kind == "progarray" else [value])
                for text in texts:
                    try:
                        bytes.fromhex(text)
                    except (TypeError, ValueError):
                        raise DriverError(f"map-init: map {name}: key {key_hex}: {text!r} is not hex bytes") from None
        self.map_init = {"maps": entries}

    def run_packet(self, frame: bytes, index: int = 0) -> NicPacketResult:
        from . import xdp
        device = self._started()
        # the counters the last frame settled with (nothing happens on the device between two frames)
        before = self._settled_counters if self._settled_counters is not None else device.counters()
        device.send(self.port, frame)
        after = self._settled_counters = device.wait_idle()
        moved = {name: (after[name] - before[name]) % (1 << 32) for name in after if after[name] != before[name]}
        verdicts = [name for name in VERDICT_NAMES if moved.get(f"verdict.{name}")]
        instructions, cycles = moved.get("instructions", 0), moved.get("cycles", 0)
        trace = device.trace()
        outputs = {port: device.received(port) for port in range(self.config.ports)}
        if not verdicts:
            reasons = ", ".join(name for name in moved if name.startswith(f"port{self.port}.")) or "no counter"
            return NicPacketResult(index, xdp.XDP_DROP, b"", None, 0, trace, f"dropped before the program ({reasons})",
                                   cycles=0)
        action = {"aborted": xdp.XDP_ABORTED, "drop": xdp.XDP_DROP, "pass": xdp.XDP_PASS, "tx": xdp.XDP_TX,
                  "redirect": xdp.XDP_REDIRECT}[verdicts[0]]
        traps = [name for name in moved if name.startswith("trap.")]
        fault = f"trap: {', '.join(traps)}" if traps else None
        data, redirect = b"", None
        if action == xdp.XDP_PASS:
            frames = device.host_frames()
            data = frames[0][0] if frames else b""
        elif action in (xdp.XDP_TX, xdp.XDP_REDIRECT):
            for port, frames in outputs.items():
                if moved.get(f"port{port}.sent"):
                    redirect = port + 1 if action == xdp.XDP_REDIRECT else None
                    if frames:
                        data = frames[0]
                    else:
                        refused = [n for n in ("tx_oversize", "tx_malformed") if moved.get(f"port{port}.{n}")]
                        fault = f"port{port}.{'/'.join(refused) or 'tx'}: the TX MAC did not send it"
        return NicPacketResult(index, action, data, redirect, instructions, trace, fault, cycles=cycles)

    def dump_maps(self) -> dict[str, dict]:
        """Every map's contents read through the register bus, in the JSON shape of XdpSession.dump_maps."""
        return self._started().dump_maps()

    def close(self) -> None:
        if self.device is not None:
            self.device.close()
