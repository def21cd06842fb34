"""The whole NIC (hw/pipeline/nic.py) under amaranth.sim, driven from the host side, and `RtlSession`: the
`bpfnic run` backend "rtl" (project issue 7, item 1).

`NicSimulation` keeps one simulation alive: frames enter through a port's RX MAC as GMII bursts (IEEE 802.3
clause 35, encoded by hw/pipeline/mac_model.py), what the TX ports put on GMII is recorded, and host commands
(loading, counters, maps, the host queue, the trace queue) run through the CSR register bus with the async
`CsrDriver` of hw/pipeline/csr.py. The simulation advances only while a host command runs, so an idle session
costs nothing.

Clocks: the NIC at 100 MHz (the core's target on the ECP5), each port's receive clock and the transmit clock at
125 MHz (GMII), with different phases.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Awaitable, Callable

from amaranth.sim import Simulator

from bpfnic.hw.pipeline import mac_model
from bpfnic.hw.pipeline.csr import (MAP_BUSY, MAP_DONE, MAP_FOUND, STATUS_DISPATCHER_IDLE, CsrDriver, CsrError,
                                    MapOp, Reg, SimulatedBus)
from bpfnic.hw.pipeline.nic import Nic, NicConfig, NicConfigError, NicLoadError, load_object
from bpfnic.sw import xdp
from bpfnic.sw.runner import RunError

VERDICT_COUNTERS = [f"verdict.{name}" for name in ("aborted", "drop", "pass", "tx", "redirect")]
VERDICT_ACTIONS = dict(zip(VERDICT_COUNTERS, (xdp.XDP_ABORTED, xdp.XDP_DROP, xdp.XDP_PASS, xdp.XDP_TX,
                                              xdp.XDP_REDIRECT)))
PHY_PERIOD = 8e-9
NIC_CLOCK_HZ = 100e6
FCS_BYTES = 4


class NicSimulationError(Exception):
    """The simulated NIC did not do what the host waited for (it hung, or a command failed), named."""


class NicSimulation:
    """One simulated NIC with an object loaded through the CSR. Host-side methods run CSR commands and advance
    the simulation until they finish; `send` queues GMII bursts that flow while any command runs."""

    def __init__(self, obj, *, section: str | None = None, map_init: dict | None = None,
                 config: NicConfig | None = None, config_parameters: dict | None = None):
        self.obj = obj
        self.config = config or NicConfig.for_object(obj, **(config_parameters or {}))
        self.dut = Nic(self.config)
        self.cycle = 0                                   # NIC clock cycles since the start
        self.tx_samples: dict[int, list] = {port: [] for port in range(self.config.ports)}
        self.frames_queued = 0                           # frames sent into the RX MACs or injected
        self.most_slots_in_use = 0
        self._rx_samples = {port: deque() for port in range(self.config.ports)}
        self._commands: deque = deque()
        self._closed = False

        sim = Simulator(self.dut)
        sim.add_clock(1 / NIC_CLOCK_HZ)
        for port in range(self.config.ports):
            sim.add_clock(PHY_PERIOD, domain=f"gmii_rx{port}", phase=PHY_PERIOD * (0.13 + 0.29 * port))
            sim.add_testbench(self._sender(port), background=True)
            sim.add_testbench(self._monitor(port), background=True)
        sim.add_clock(PHY_PERIOD, domain="gmii_tx", phase=PHY_PERIOD * 0.71)
        sim.add_testbench(self._count_cycles, background=True)
        sim.add_testbench(self._host)
        self._sim = sim
        self.loaded = self.call(lambda driver, bus: load_object(driver, self.config, obj, section,
                                                                map_init=map_init))

    # -- testbenches ---------------------------------------------------------------------------------------------
    def _sender(self, port: int):
        domain = f"gmii_rx{port}"
        rx = self.dut.gmii(port).rx
        queue = self._rx_samples[port]

        async def bench(ctx):
            while True:
                data, dv, er = queue.popleft() if queue else (0, 0, 0)
                ctx.set(rx.data, data)
                ctx.set(rx.dv, dv)
                ctx.set(rx.er, er)
                await ctx.tick(domain)
        return bench

    def _monitor(self, port: int):
        tx = self.dut.gmii(port).tx
        samples = self.tx_samples[port]

        async def bench(ctx):
            while True:
                _, _, enable, data, error = await ctx.tick("gmii_tx").sample(tx.en, tx.data, tx.er)
                if enable or (samples and samples[-1][1]):
                    samples.append((data, enable, error))
        return bench

    async def _count_cycles(self, ctx):
        while True:
            await ctx.tick()
            self.cycle += 1

    async def _host(self, ctx):
        bus = SimulatedBus(ctx, self.dut.csr)
        driver = CsrDriver(bus.read, bus.write, self.dut.counter_names)
        self._ctx = ctx
        while not self._closed:
            if not self._commands:
                await ctx.tick()
                continue
            function, box = self._commands.popleft()
            try:
                box.append((True, await function(driver, bus)))
            except Exception as error:      # handed to the caller of `call`, outside the simulator
                box.append((False, error))

    # -- the host side -------------------------------------------------------------------------------------------
    def call(self, function: Callable[[CsrDriver, SimulatedBus], Awaitable]):
        """Run `function(driver, bus)` (async) in the host testbench; its result, or its exception raised."""
        if self._closed:
            raise NicSimulationError("the NIC simulation is closed")
        box: list = []
        self._commands.append((function, box))
        while not box:
            self._sim.advance()
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def send(self, port: int, bursts: list[mac_model.WireFrame]) -> None:
        """Queue GMII bursts into port `port`'s RX MAC; they go out while commands run."""
        samples = mac_model.gmii_samples(bursts)
        self.frames_queued += len(mac_model.decode_gmii(samples))
        self._rx_samples[port].extend(samples)

    def inject(self, frame: bytes, port: int) -> None:
        """A frame into the NIC through the CSR, as if it arrived on `port`."""
        self.call(lambda driver, bus: driver.inject_frame(frame, port))
        self.frames_queued += 1

    def wait_processed(self, cycle_limit: int = 20_000, *, injected: int = 0) -> None:
        """Wait until every queued frame left its RX MAC and reached a verdict (or a MAC's drop) and the
        dispatcher is idle. Raises NicSimulationError when that takes `cycle_limit` cycles after the last
        frame was sent. `injected`: how many of the queued frames came in through the CSR."""
        config = self.config
        rx_counters = [f"port{p}.rx_{n}" for p in range(config.ports) for n in mac_model.RX_COUNTER_OF_STATUS.values()]

        async def wait(driver, bus):
            finished_sending = None
            while True:
                if not any(self._rx_samples.values()):
                    finished_sending = finished_sending or self.cycle
                    seen = injected
                    for name in rx_counters:
                        seen += await driver.counter(name)
                    stored = verdicts = 0
                    buffered = True      # every good frame is in the buffer or counted as dropped by it
                    for port in range(config.ports):
                        port_stored = await driver.counter(f"port{port}.buffer_stored")
                        stored += port_stored
                        accounted = port_stored
                        for name in ("dropped_buffer_full", "dropped_too_long"):
                            accounted += await driver.counter(f"port{port}.{name}")
                        buffered &= accounted >= await driver.counter(f"port{port}.rx_frames_ok")
                    for name in VERDICT_COUNTERS:
                        verdicts += await driver.counter(name)
                    status = await bus.read(Reg.STATUS)
                    if (seen >= self.frames_queued and buffered and verdicts == stored
                            and status & STATUS_DISPATCHER_IDLE):
                        return
                    if self.cycle - finished_sending >= cycle_limit:
                        raise NicSimulationError(
                            f"the NIC did not finish {cycle_limit} cycles after the last frame: status 0x{status:x}, "
                            f"buffer 0x{await bus.read(Reg.BUFFER):x}, counters {await driver.counters()}")
                else:
                    # while traffic flows: how many slots hold frames at most (a growing backlog means the NIC
                    # is slower than the line)
                    in_use = config.slots - (await bus.read(Reg.BUFFER) >> 16)
                    self.most_slots_in_use = max(self.most_slots_in_use, in_use)
                await self._ctx.tick()
        self.call(wait)

    def run_cycles(self, cycles: int) -> None:
        async def run(driver, bus):
            for _ in range(cycles):
                await self._ctx.tick()
        self.call(run)

    def wait_tx_idle(self, port: int, mark: int, cycle_limit: int = 20_000) -> None:
        """Wait until port `port` has put a whole frame on GMII after sample `mark` (its enable fell)."""
        samples = self.tx_samples[port]

        async def wait(driver, bus):
            start = self.cycle
            while not (len(samples) > mark and not samples[-1][1]):
                if self.cycle - start >= cycle_limit:
                    raise NicSimulationError(f"port {port} did not finish sending a frame in {cycle_limit} cycles")
                await self._ctx.tick()
        self.call(wait)

    def wait_tx_outcome(self, port: int, counters: dict[str, int], cycle_limit: int = 20_000) -> str:
        """After a frame went to port `port`'s TX MAC: which of its counters (tx_frames_ok, tx_oversize,
        tx_malformed) moved past `counters`, waiting for one to."""
        names = [f"port{port}.{name}" for name in ("tx_frames_ok", "tx_oversize", "tx_malformed")]

        async def wait(driver, bus):
            start = self.cycle
            while True:
                for name in names:
                    if await driver.counter(name) != counters[name]:
                        return name.split(".", 1)[1]
                if self.cycle - start >= cycle_limit:
                    raise NicSimulationError(f"port {port}'s TX MAC counted no outcome in {cycle_limit} cycles")
                for _ in range(16):
                    await self._ctx.tick()
        return self.call(wait)

    def transmitted(self, port: int, start: int = 0) -> list[mac_model.DecodedFrame]:
        """The frames port `port` put on GMII (octets after the SFD, FCS included), from sample `start`."""
        return mac_model.decode_gmii(self.tx_samples[port][start:] + [(0, 0, 0)])

    def counters(self) -> dict[str, int]:
        return self.call(lambda driver, bus: driver.counters())

    def host_frames(self) -> list[tuple[bytes, int]]:
        """Every frame waiting in the host queue, with its info byte (the ingress port), read out."""
        async def read(driver, bus):
            frames = []
            while (got := await driver.receive_frame()) is not None:
                frames.append(got)
            return frames
        return self.call(read)

    def trace_words(self) -> list[int]:
        """The words of every trace_printk record waiting in the trace queue, read out."""
        async def read(driver, bus):
            words = []
            while (record := await driver.read_trace_record()) is not None:
                words += record
            return words
        return self.call(read)

    def status(self) -> int:
        return self.call(lambda driver, bus: bus.read(Reg.STATUS))

    def map_lookup(self, index: int, key: bytes, value_bytes: int | None = None) -> bytes | None:
        """The value at `key` of map `index` (its first `value_bytes`, default the map's value size), or None."""
        size = value_bytes or self.config.maps.slots[index].value_size
        rc, value = self.call(lambda driver, bus: driver.map_lookup(index, key, size))
        return value

    def map_contents(self, index: int) -> dict[bytes, bytes]:
        """Every entry of map `index` read through the CSR: arrays by index, hash maps by entry position.
        Values are the first copy (the NIC has one CPU). Program arrays are listed by `RtlSession.dump_maps`."""
        slot = self.config.maps.slots[index]
        if slot.kind == "array":
            keys = [i.to_bytes(4, "little") for i in range(slot.max_entries)]
        elif slot.kind in ("hash", "lpm", "devmap"):
            # READ_ENTRY walks a hash map's two tables of buckets of ways (hw/pipeline/map_hash.py), an LPM
            # trie's and a devmap's entries by index (map_lpm.py, map_devmap.py)
            positions = 2 * slot.hash_ways * slot.hash_buckets if slot.kind == "hash" else slot.max_entries

            async def list_keys(driver, bus):
                # READ_ENTRY position by position; the command alone, without the key and flags writes of
                # CsrDriver.map_read_entry (a 1024-entry hash map has 2048 positions)
                found = []
                await bus.write(Reg.MAP_SELECT, index)
                for position in range(positions):
                    await bus.write(Reg.MAP_INDEX, position)
                    await bus.write(Reg.MAP_COMMAND, MapOp.READ_ENTRY.value)
                    while True:
                        status = await bus.read(Reg.MAP_STATUS)
                        if status & MAP_DONE and not status & MAP_BUSY:
                            break
                    if status & MAP_FOUND:
                        key = b""
                        for offset in range(0, slot.key_size, 4):
                            key += (await bus.read(Reg.MAP_KEY + offset)).to_bytes(4, "little")
                        found.append(key[:slot.key_size])
                return found
            keys = self.call(list_keys)
        else:
            raise NicSimulationError(f"{slot.label}: listing a {slot.kind} map through the CSR is not supported")

        async def look_up(driver, bus):
            contents = {}
            for key in keys:
                _, value = await driver.map_lookup(index, key, slot.value_size)
                if value is not None:
                    contents[key] = value
            return contents
        return self.call(look_up)

    def close(self) -> None:
        """End the simulation (the host testbench returns)."""
        if self._closed:
            return
        self._closed = True
        while self._sim.advance():
            pass


@dataclass
class RtlPacketResult(xdp.PacketResult):
    """A packet's result on the RTL, with its cycle counts (the JSON gains "cycles")."""
    cycles: int | None = None          # core cycles the program took (the NIC's `cycles` counter)
    latency_cycles: int | None = None  # NIC cycles from the frame's first GMII octet queued to its verdict
                                       # seen by the host (wire time and register polling included)

    def to_json(self) -> dict:
        return {**super().to_json(), "cycles": self.cycles}


class RtlError(RunError):
    """An object or map-init the RTL backend cannot run, named (a RunError, so the command line reports it)."""


class RtlSession:
    """A loaded object on the RTL NIC under amaranth.sim, with `XdpSession`'s interface (sw/xdp.py), so that
    `bpfnic run --backend rtl` gives the same table and JSON as the VM.

    Each packet enters through port `port`'s RX MAC as a GMII burst (frames under 60 bytes are padded by the
    sending MAC, as on a wire, so the program sees 60 bytes). The result is what the NIC lets the host observe:
    the verdict from the NIC's verdict counters; `data` is the frame that left (from a TX port for XDP_TX and
    XDP_REDIRECT, without its FCS, padded to 60 bytes by the TX MAC; from the host queue for XDP_PASS); for
    XDP_DROP and XDP_ABORTED nothing leaves, so `data` is empty (b""). `redirect` is the ifindex (port + 1) of
    the port a redirected frame left. `instructions` comes from the NIC's instruction counter."""

    def __init__(self, obj, section: str | None = None, port: int = 0):
        from bpfnic.sw.capabilities import check_offload
        problems = check_offload(obj)
        if problems:
            raise RtlError(f"{obj.path}: cannot be offloaded to the NIC: " + "; ".join(map(str, problems)))
        self.obj = obj
        self.section = section
        self.port = port
        self.map_init: dict | None = None
        self._nic: NicSimulation | None = None
        try:
            self.config = NicConfig.for_object(obj)
        except NicConfigError as error:
            raise RtlError(f"{obj.path}: no NIC can be built for its maps: {error}") from None
        self._prog_arrays = {slot.name for slot in self.config.maps.slots if slot.kind == "progarray"}
        if not 0 <= port < self.config.ports:
            raise RtlError(f"port {port}: the NIC has ports 0..{self.config.ports - 1}")

    def _started(self) -> NicSimulation:
        # Built on the first packet, so map-init is written through the CSR while the NIC is loaded.
        if self._nic is None:
            try:
                self._nic = NicSimulation(self.obj, section=self.section, map_init=self.map_init, config=self.config)
            except (NicLoadError, CsrError) as error:
                raise RtlError(f"{self.obj.path}: loading it into the NIC failed: {error}") from None
        return self._nic

    def apply_map_init(self, init: dict) -> None:
        if self._nic is not None:
            raise RtlError("map-init: apply it before the first packet")
        entries = init.get("maps", init) if isinstance(init, dict) else None
        names = {slot.name for slot in self.config.maps.slots}
        if not isinstance(entries, dict):
            raise RtlError("map-init: expected {\"maps\": {\"<map name>\": {\"<key hex>\": \"<value hex>\"}}}")
        for name, contents in entries.items():
            if name not in names:
                raise RtlError(f"map-init: no map named {name!r} (maps: {', '.join(sorted(names)) or 'none'})")
            if not isinstance(contents, dict):
                raise RtlError(f"map-init: map {name}: expected an object of key hex -> value hex")
            for key_hex, value in contents.items():
                texts = [key_hex] + (value if isinstance(value, list) else [] if name in self._prog_arrays else [value])
                for text in texts:
                    try:
                        bytes.fromhex(text)
                    except (TypeError, ValueError):
                        raise RtlError(f"map-init: map {name}: key {key_hex}: {text!r} is not hex bytes") from None
        self.map_init = {"maps": entries}

    def run_packet(self, frame: bytes, index: int = 0) -> RtlPacketResult:
        nic = self._started()
        before = nic.counters()
        marks = {port: len(samples) for port, samples in nic.tx_samples.items()}
        start = nic.cycle
        nic.send(self.port, [mac_model.WireFrame(mac_model.wire_octets(frame))])
        nic.wait_processed()
        latency = nic.cycle - start
        after = nic.counters()
        moved = {name: after[name] - before[name] for name in after if after[name] != before[name]}
        verdicts = [name for name in VERDICT_COUNTERS if moved.get(name)]
        instructions = moved.get("instructions", 0)
        cycles = moved.get("cycles", 0) % (1 << 32)      # the counters wrap at 32 bits
        if not verdicts:
            reasons = ", ".join(name for name in moved if name.startswith(f"port{self.port}.")) or "no counter"
            return RtlPacketResult(index, xdp.XDP_DROP, b"", None, 0, fault=f"dropped before the program ({reasons})",
                                   cycles=0, latency_cycles=latency)
        action = VERDICT_ACTIONS[verdicts[0]]
        traps = [name for name in moved if name.startswith("trap.")]
        fault = f"trap: {', '.join(traps)}" if traps else None
        data, redirect = b"", None
        if action == xdp.XDP_PASS:
            frames = nic.host_frames()
            data = frames[0][0] if frames else b""
        elif action in (xdp.XDP_TX, xdp.XDP_REDIRECT):
            senders = [port for port in range(self.config.ports) if moved.get(f"port{port}.sent")]
            if senders:
                out = senders[0]
                if action == xdp.XDP_REDIRECT:
                    redirect = out + 1
                outcome = nic.wait_tx_outcome(out, before)
                if outcome == "tx_frames_ok":
                    nic.wait_tx_idle(out, marks[out])
                    frames = nic.transmitted(out, marks[out])
                    data = frames[0].octets[:-FCS_BYTES] if frames else b""
                else:       # the TX MAC refused it (a frame grown past its maximum): nothing left the port
                    fault = f"port{out}.{outcome}: the TX MAC did not send it"
        trace = []
        if words := nic.trace_words():
            from bpfnic.hw.pipeline.helper_unit import decode_trace_records, format_trace_record
            trace = [format_trace_record(record) for record in decode_trace_records(words)]
        return RtlPacketResult(index, action, data, redirect, instructions, trace, fault, cycles=cycles,
                              latency_cycles=latency)

    def dump_maps(self) -> dict[str, dict]:
        """Every map's contents read through the CSR, in the JSON shape of `XdpSession.dump_maps` (a program
        array shows section names)."""
        nic = self._started()
        out: dict[str, dict] = {}
        for index, (slot, definition) in enumerate(zip(self.config.maps.slots, self.obj.maps)):
            if slot.kind == "progarray":
                by_word = {entry.word: name for name, entry in nic.loaded.placements.items()}
                contents = {}
                for key in range(slot.max_entries):
                    # an entry is a 64-bit ProgramEntry word (hw/pipeline/map_progarray.py)
                    value = nic.map_lookup(index, key.to_bytes(4, "little"), value_bytes=8)
                    if value is not None:
                        contents[key.to_bytes(4, "little").hex()] = by_word.get(int.from_bytes(value, "little"), "?")
                out[slot.name] = contents
                continue
            per_cpu = slot.ncpus > 1 or definition.map_type in _PER_CPU_TYPES
            out[slot.name] = {key.hex(): [value.hex()] if per_cpu else value.hex()
                              for key, value in nic.map_contents(index).items()}
        return out

    def close(self) -> None:
        if self._nic is not None:
            self._nic.close()


def _per_cpu_types() -> set[int]:
    from bpfnic.sw import maps
    return {getattr(maps, name) for name in ("BPF_MAP_TYPE_PERCPU_ARRAY", "BPF_MAP_TYPE_PERCPU_HASH",
                                             "BPF_MAP_TYPE_LRU_PERCPU_HASH") if hasattr(maps, name)}


_PER_CPU_TYPES = _per_cpu_types()
