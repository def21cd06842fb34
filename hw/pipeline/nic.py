"""The NIC: GMII ports, MACs, the packet buffer, the dispatcher, the eBPF core with its memory system and helper
unit, the map units and the host's register bus, in one component; and the host-side loader that puts an XDP
object on it through the register bus.

Ref: IEEE 802.3 clauses 3, 4 and 35 (the MACs: rx_mac.py, tx_mac.py); include/uapi/linux/bpf.h (XDP: actions,
struct xdp_md, helpers, maps); the units' own files for their contracts. docs/architecture.md draws the data
path: GMII -> RX MAC -> packet buffer slot -> dispatcher -> core (memory system, helper unit, map units) ->
verdict -> TX MAC or the host queue.

Clock domains: `sync` is the NIC clock (`nic_clock_hz`, the core's); port p's receive side runs in `gmii_rx<p>`
(its PHY's RX_CLK, 125 MHz), every transmit side in `gmii_tx` (the GTX_CLK the NIC gives its PHYs, 125 MHz).
The MACs cross into `sync` through their frame stores (asynchronous FIFOs).

Widths: the NIC side of the MACs and the packet buffer move 8 bytes a word, so one NIC cycle a word keeps up
with 1 Gb/s on every port down to a NIC clock of 125 MHz / 8 per port.

Receive arbiter: frames of the RX MACs and frames injected through the CSR (which name their port) reach the
packet buffer one whole frame at a time, the sources taking turns (round robin at frame boundaries).

Outputs of the packet buffer: k < ports is port k's TX MAC; k = ports is the host queue (CSR HOST_RX).

Cores: the dispatcher takes any number; the NIC is built with one (the packet buffer's core port, the map
units' program and value ports and the trace queue have one client each; more cores need arbiters there).

Tail calls: the helper unit answers a successful bpf_tail_call with status OK and `tail_call.taken`; the core
takes status TAIL_CALL with the entry slot in r0 (hw/core/interfaces.py). The NIC translates between the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from bpfnic.sw import isa, memory

from bpfnic.hw.core.core import Core
from bpfnic.hw.core.interfaces import HelperStatus, TrapCause
from .csr import Csr, CsrBus, CsrDriver, MapPortShape
from .dispatcher import Dispatcher
from .gmii import MAX_FRAME_BYTES, GmiiSignature
from .helper_unit import HelperUnit
from .map_config import MapConfigError, NicMapConfig
from .map_progarray import ProgramEntry
from .memory_system import MemorySystem
from .packet_buffer import DEFAULT_SLOT_SIZE, DEFAULT_TAILROOM, PacketBuffer, receive_word_layout
from .rx_mac import RX_COUNTER_OF_STATUS, RxMAC
from .tx_mac import TX_COUNTER_NAMES, TxMAC

DATA_BYTES = 8


class NicConfigError(ValueError):
    """A NIC that cannot be built as asked: names the parameter and why."""


@dataclass
class NicConfig:
    """Build parameters of the NIC."""
    ports: int = 2
    cores: int = 1
    maps: NicMapConfig = field(default_factory=lambda: NicMapConfig([]))
    nic_clock_hz: float = 125e6
    slots: int = 16
    slot_size: int = DEFAULT_SLOT_SIZE
    tailroom: int = DEFAULT_TAILROOM
    imem_depth: int = 4096
    max_frame_bytes: int = MAX_FRAME_BYTES     # the MACs' limit, FCS included
    inject_words: int = 256                     # the CSR's injection store (2 KiB)
    trace_depth: int = 512

    def __post_init__(self):
        if not 1 <= self.ports <= 15:
            raise NicConfigError(f"ports: {self.ports}; the NIC has 1..15 ports (ifindexes 1..ports)")
        if self.cores != 1:
            raise NicConfigError(f"cores: {self.cores}; this NIC is built with one core (the dispatcher takes "
                                 f"more, the packet buffer and map units need arbiters first)")
        if self.inject_words * DATA_BYTES < self.max_frame_bytes - 4:
            raise NicConfigError(f"inject_words: {self.inject_words} words cannot hold a "
                                 f"{self.max_frame_bytes - 4}-byte frame")

    @classmethod
    def for_object(cls, obj, **parameters) -> "NicConfig":
        """A NIC whose map units are the maps of a loaded object (sw/elf_loader.BpfObject)."""
        ports = parameters.get("ports", 2)
        maps = NicMapConfig.from_object(obj, valid_ifindexes=tuple(range(1, ports + 1)))
        return cls(maps=maps, **parameters)

    @classmethod
    def for_objects(cls, objs, **parameters) -> "NicConfig":
        """One NIC whose map slots hold the maps of several objects, so that any of them can be loaded onto the
        same build (the driver finds a program's maps by name: `slots_of_maps`). A name shared by two objects
        must describe the same map, which then gets one slot."""
        objs = list(objs)
        ports = parameters.get("ports", 2)
        by_name: dict = {}
        for obj in objs:
            for definition in obj.maps:
                known = by_name.get(definition.name)
                if known is None:
                    by_name[definition.name] = (obj, definition)
                    continue
                first_obj, first = known
                for what in ("map_type", "key_size", "value_size", "max_entries", "flags", "initial_data"):
                    if getattr(first, what) != getattr(definition, what):
                        raise NicConfigError(f"map {definition.name!r}: {what} differs between {first_obj.path} "
                                             f"and {obj.path}; one NIC slot cannot hold both")
        definitions = [replace(definition, index=index) for index, (_, definition) in enumerate(by_name.values())]
        try:
            maps = NicMapConfig.from_map_defs(definitions, valid_ifindexes=tuple(range(1, ports + 1)))
        except MapConfigError as error:
            raise NicConfigError(f"the maps of {len(objs)} objects on one NIC: {error}") from None
        return cls(maps=maps, **parameters)


def counter_names(config: NicConfig) -> list[str]:
    """The NIC's counters in CSR register order (COUNTERS_BASE + 4 * index)."""
    names = []
    for port in range(config.ports):
        names += [f"port{port}.rx_{name}" for name in RX_COUNTER_OF_STATUS.values()]
        names += [f"port{port}.buffer_stored", f"port{port}.dropped_buffer_full",
                  f"port{port}.dropped_too_long", f"port{port}.sent"]
        names += [f"port{port}.tx_{name}" for name in TX_COUNTER_NAMES]
    names.append("host.passed")
    names += [f"verdict.{name}" for name in ("aborted", "drop", "pass", "tx", "redirect")]
    names += [f"trap.{cause.name.lower()}" for cause in TrapCause if cause != TrapCause.NONE]
    names += ["invalid_action", "redirect_failed", "trace_dropped", "instructions", "cycles"]
    return names


class ReceiveArbiter(wiring.Component):
    """Whole frames from `sources` to `frames`, the sources taking turns at frame boundaries."""

    def __init__(self, sources: int, port_bits: int):
        self.source_count = sources
        layout = receive_word_layout(port_bits)
        super().__init__({
            "sources": In(stream.Signature(layout)).array(sources),
            "frames": Out(stream.Signature(layout)),
        })

    def elaborate(self, platform):
        m = Module()
        count = self.source_count
        in_frame = Signal()
        current = Signal(range(count))
        last_served = Signal(range(count))
        candidate = Signal(range(count))
        with m.Switch(last_served):
            for last in range(count):
                with m.Case(last):
                    order = [(last + 1 + step) % count for step in range(count)]
                    for position, index in reversed(list(enumerate(order))):
                        with m.If(self.sources[index].valid):
                            m.d.comb += candidate.eq(index)
        selected = Mux(in_frame, current, candidate)
        for index in range(count):
            with m.If(selected == index):
                m.d.comb += [
                    self.frames.valid.eq(self.sources[index].valid),
                    self.frames.payload.eq(self.sources[index].payload),
                    self.sources[index].ready.eq(self.frames.ready),
                ]
        with m.If(self.frames.valid & self.frames.ready):
            m.d.sync += [in_frame.eq(~self.frames.payload.last), current.eq(selected)]
            with m.If(~in_frame):
                m.d.sync += last_served.eq(selected)
        return m


class Nic(wiring.Component):
    """The NIC (see the module docstring): `gmii<p>` per port, `csr` for the host."""

    def __init__(self, config: NicConfig | None = None):
        self.config = config = config or NicConfig()
        self.counter_names = counter_names(config)
        members = {"csr": In(CsrBus())}
        for port in range(config.ports):
            members[f"gmii{port}"] = Out(GmiiSignature())
        super().__init__(members)

    def gmii(self, port: int):
        return getattr(self, f"gmii{port}")

    def elaborate(self, platform):
        m = Module()
        config = self.config
        ports = config.ports
        map_slots = config.maps.slots

        m.submodules.buffer = buffer = PacketBuffer(slots=config.slots, slot_size=config.slot_size,
                                                    tailroom=config.tailroom, ports=ports, outputs=ports + 1)
        m.submodules.dispatcher = dispatcher = Dispatcher(cores=1, ports=ports, slot_bits=buffer.slot_bits)
        m.submodules.csr = csr = Csr(ports=ports, cores=1, slots=config.slots, slot_size=config.slot_size,
                                     map_ports=[MapPortShape(slot.key_size, slot.staging_words) for slot in map_slots],
                                     counter_names=self.counter_names, inject_words=config.inject_words)
        m.submodules.core = core = Core(imem_depth=config.imem_depth, map_slots=max(1, len(map_slots)))
        m.submodules.memory = memory_system = MemorySystem(
            slot_bits=buffer.slot_bits, map_values=[slot.value_memory_bytes > 0 for slot in map_slots])
        m.submodules.helpers = helpers = HelperUnit(config.maps, core_index=0, clock_hz=config.nic_clock_hz,
                                                    trace_depth=config.trace_depth, frame_size=config.slot_size,
                                                    tailroom=config.tailroom)
        units = config.maps.build_units()
        for index, unit in enumerate(units):
            m.submodules[f"map{index}"] = unit

        wiring.connect(m, wiring.flipped(self.csr), csr.bus)

        # -- ports: MACs and the receive arbiter ------------------------------------------------------------
        m.submodules.receive = arbiter = ReceiveArbiter(ports + 1, buffer.port_bits)
        rx_macs, tx_macs = [], []
        for port in range(ports):
            rx = RxMAC(data_bytes=DATA_BYTES, max_frame_bytes=config.max_frame_bytes, phy_domain=f"gmii_rx{port}")
            tx = TxMAC(data_bytes=DATA_BYTES, max_frame_bytes=config.max_frame_bytes, phy_domain="gmii_tx")
            m.submodules[f"rx_mac{port}"] = rx
            m.submodules[f"tx_mac{port}"] = tx
            rx_macs.append(rx)
            tx_macs.append(tx)
            gmii = self.gmii(port)
            wiring.connect(m, wiring.flipped(gmii.rx), rx.gmii)
            wiring.connect(m, tx.gmii, wiring.flipped(gmii.tx))
            source = arbiter.sources[port]
            m.d.comb += [
                source.valid.eq(rx.frames.valid),
                source.payload.data.eq(rx.frames.payload.data),
                source.payload.bytes.eq(rx.frames.payload.bytes),
                source.payload.first.eq(rx.frames.payload.first),
                source.payload.last.eq(rx.frames.payload.last),
                source.payload.port.eq(port),
                rx.frames.ready.eq(source.ready),
            ]
            output = buffer.output[port]
            m.d.comb += [
                tx.frames.valid.eq(output.valid),
                tx.frames.payload.data.eq(output.payload.data),
                tx.frames.payload.bytes.eq(output.payload.bytes),
                tx.frames.payload.last.eq(output.payload.last),
                output.ready.eq(tx.frames.ready),
            ]
        wiring.connect(m, csr.inject, arbiter.sources[ports])
        wiring.connect(m, arbiter.frames, buffer.receive)
        wiring.connect(m, buffer.output[ports], csr.host_rx)

        # -- buffer, dispatcher, core ---------------------------------------------------------------------
        wiring.connect(m, buffer.received, dispatcher.received)
        wiring.connect(m, dispatcher.complete, buffer.complete)
        m.d.comb += dispatcher.program.eq(csr.program)
        wiring.connect(m, dispatcher.start[0], core.start)
        m.d.comb += [
            dispatcher.exit[0].valid.eq(core.exit.valid),
            dispatcher.exit[0].payload.eq(core.exit.payload),
            dispatcher.pointers[0].eq(memory_system.context.pointers),
            dispatcher.redirect[0].eq(helpers.redirect),
            dispatcher.settled[0].eq(memory_system.settled),
            memory_system.frame.valid.eq(dispatcher.context[0].valid),
            memory_system.frame.payload.eq(dispatcher.context[0].payload),
            helpers.run_start.eq(dispatcher.started[0]),
        ]
        m.d.comb += [
            core.imem_write.valid.eq(csr.imem_write.valid),
            core.imem_write.payload.eq(csr.imem_write.payload),
            csr.imem_write.ready.eq(1),
        ]
        # The core's region table: the memory system's context and packet descriptors win over the host's.
        with m.If(memory_system.regions.valid):
            m.d.comb += [core.regions.valid.eq(1), core.regions.payload.eq(memory_system.regions.payload),
                         memory_system.regions.ready.eq(1)]
        with m.Else():
            m.d.comb += [core.regions.valid.eq(csr.regions.valid), core.regions.payload.eq(csr.regions.payload),
                         csr.regions.ready.eq(1)]

        wiring.connect(m, core.data, memory_system.core)
        wiring.connect(m, memory_system.packet, buffer.access)

        # -- helpers and maps -------------------------------------------------------------------------------
        m.d.comb += [
            helpers.helper.request.valid.eq(core.helper.request.valid),
            helpers.helper.request.payload.eq(core.helper.request.payload),
            core.helper.request.ready.eq(helpers.helper.request.ready),
            core.helper.response.valid.eq(helpers.helper.response.valid),
            core.helper.response.payload.eq(helpers.helper.response.payload),
        ]
        with m.If((helpers.helper.response.payload.status == HelperStatus.OK) & helpers.tail_call.taken):
            m.d.comb += [core.helper.response.payload.status.eq(HelperStatus.TAIL_CALL),
                         core.helper.response.payload.r0.eq(helpers.tail_call.entry_pc)]
        wiring.connect(m, helpers.memory, memory_system.helper)
        m.d.comb += [
            helpers.pointers.eq(memory_system.context.pointers),
            memory_system.adjust.valid.eq(helpers.adjust.valid),
            memory_system.adjust.payload.eq(helpers.adjust.payload),
        ]
        m.d.comb += [csr.trace.valid.eq(helpers.trace.valid), csr.trace.payload.eq(helpers.trace.payload),
                     helpers.trace.ready.eq(csr.trace.ready)]
        for index, unit in enumerate(units):
            wiring.connect(m, helpers.map_ports[index], unit.program)
            wiring.connect(m, csr.map_port(index), unit.host)
            value_port = memory_system.map_port(index)
            if value_port is not None:
                wiring.connect(m, value_port, unit.value)

        # -- status and counters --------------------------------------------------------------------------
        m.d.comb += [
            csr.core_busy.eq(core.busy),
            csr.dispatcher_idle.eq(dispatcher.idle),
            csr.free_slots.eq(buffer.free_slots),
        ]
        counters = dispatcher.counters
        values = []
        for port in range(ports):
            values += [getattr(rx_macs[port].counters, name) for name in RX_COUNTER_OF_STATUS.values()]
            values += [buffer.counters[port].stored, buffer.counters[port].dropped_full,
                       buffer.counters[port].dropped_too_long, counters.to_port[port]]
            values += [getattr(tx_macs[port].counters, name) for name in TX_COUNTER_NAMES]
        values.append(counters.to_host)
        values += [counters.verdicts[index] for index in range(5)]
        values += [counters.traps[cause.value] for cause in TrapCause if cause != TrapCause.NONE]
        values += [counters.invalid_action, counters.redirect_failed, helpers.trace_dropped,
                   counters.instructions, counters.cycles]
        assert len(values) == len(self.counter_names)
        for index, value in enumerate(values):
            m.d.comb += csr.counters[index].eq(value)
        return m


# -- the host side: an XDP object onto the NIC, through the register bus ---------------------------------------

class NicLoadError(Exception):
    """An object the NIC cannot run as built (too many instructions, other maps), named."""


@dataclass
class LoadedProgram:
    entry: int                     # instruction slot of the main program
    length: int                    # slots of all programs together (the program length of the start port)
    placements: dict[str, ProgramEntry]   # every program of the object by section: where it sits


def slots_of_maps(config: NicConfig, obj) -> list[int]:
    """The NIC map slot each map of `obj` goes to (by position in `obj.maps`): the slot of the same name, which
    must have the map's type, key and value sizes, entry count, flags and initial contents, since those are
    build parameters of the map units. Raises NicLoadError naming the map and what differs."""
    slots = config.maps.slots
    by_name = {slot.name: index for index, slot in enumerate(slots)}
    placed = []
    for definition in obj.maps:
        index = by_name.get(definition.name)
        if index is None:
            raise NicLoadError(f"{obj.path}: map {definition.name!r}: the NIC has no map slot of that name "
                               f"(its slots: {', '.join(s.name for s in slots) or 'none'})")
        slot = slots[index]
        wanted = NicMapConfig.from_map_defs([replace(definition, index=-1)], ncpus=config.maps.ncpus).slots[0]
        for what in ("map_type", "key_size", "value_size", "max_entries", "flags", "initial_data"):
            if getattr(wanted, what) != getattr(slot, what):
                raise NicLoadError(f"{obj.path}: map {definition.name!r}: {what} {getattr(wanted, what)!r} differs "
                                   f"from the NIC slot's {getattr(slot, what)!r}")
        placed.append(index)
    return placed


def relocate_programs(obj, slot_of_map: list[int]) -> dict[str, isa.Program]:
    """Every program of `obj` with its map references (LDDW map_idx / map_idx_value, the loader's form) turned
    from the object's map indices into the NIC's slot indices."""
    relocated = {}
    for program in obj.programs.values():
        insns = isa.Program(program.insns)
        for position, insn in insns.instructions():
            if insn.opcode == isa.OP_LDDW and insn.src in (isa.BPF_PSEUDO_MAP_IDX, isa.BPF_PSEUDO_MAP_IDX_VALUE):
                value = insn.imm64 if insn.imm64 is not None else insn.imm & 0xFFFF_FFFF
                slot = slot_of_map[value & 0xFFFF_FFFF]      # the high half of map_idx_value is the offset
                insns[position] = insn._replace(imm=slot, imm64=(value & ~0xFFFF_FFFF) | slot)
        relocated[program.section] = insns
    return relocated


async def load_object(driver: CsrDriver, config: NicConfig, obj, section: str | None = None,
                      map_init: dict | None = None, cycle_budget: int = 100_000) -> LoadedProgram:
    """Put a loaded object (sw/elf_loader.BpfObject) on a NIC whose map slots hold its maps (`NicConfig.for_object`
    builds one; `slots_of_maps` finds them by name on any other): dispatch off, every program, relocated onto the
    slots, into the instruction memory one after another (the chosen one first, the others for tail calls), the
    map value regions into the core's region table, program-array entries and `map_init` (sw/xdp.py's
    {"maps": {name: {key hex: value hex}}} shape) into the maps, the program's entry, length and cycle budget;
    then dispatch on."""
    await driver.check_identity()
    slot_of_map = slots_of_maps(config, obj)
    await driver.set_enabled(False)
    main = obj.program(section)
    ordered = [main] + [program for program in obj.programs.values() if program is not main]
    relocated = relocate_programs(obj, slot_of_map)
    words: list[int] = []
    placements: dict[str, ProgramEntry] = {}
    for program in ordered:
        encoded = relocated[program.section].encode()
        placements[program.section] = ProgramEntry(len(words), len(encoded) // 8)
        words += [int.from_bytes(encoded[i:i + 8], "little") for i in range(0, len(encoded), 8)]
    if len(words) > config.imem_depth:
        raise NicLoadError(f"{obj.path}: {len(words)} instruction slots do not fit the NIC's "
                           f"{config.imem_depth}")
    slots = config.maps.slots
    await driver.load_program(words, entry=0, base=0, cycle_budget=cycle_budget, set_program=False)
    for index, slot in enumerate(slots):
        # Every map is present (the core refuses an lddw of an absent map); a program array's region is empty,
        # so no access to it passes the core's bounds check.
        await driver.set_region(memory.TAG_MAP_VALUE_BASE + index, slot.value_memory_bytes,
                                writable=not slot.readonly_for_program and slot.value_memory_bytes > 0)
    for definition, index in zip(obj.maps, slot_of_map):
        slot = slots[index]
        for key, section_name in definition.initial_values.items():
            if section_name not in placements:
                raise NicLoadError(f"{obj.path}: map {slot.name}: entry {key} names section {section_name!r}, "
                                   f"which the object does not have")
            rc = await driver.map_update(index, key.to_bytes(4, "little"),
                                         placements[section_name].word.to_bytes(8, "little"))
            if rc:
                raise NicLoadError(f"{obj.path}: map {slot.name}: entry {key}: the NIC refused it ({rc})")
    if map_init:
        await apply_map_init(driver, config, map_init, placements)
    await driver.write_program(entry=0, length=len(words), cycle_budget=cycle_budget)
    await driver.set_enabled(True)
    return LoadedProgram(0, len(words), placements)


async def apply_map_init(driver: CsrDriver, config: NicConfig, map_init: dict,
                         placements: dict[str, ProgramEntry]) -> None:
    entries = map_init.get("maps", map_init)
    by_name = {slot.name: (index, slot) for index, slot in enumerate(config.maps.slots)}
    for name, contents in entries.items():
        if name not in by_name:
            raise NicLoadError(f"map-init: no map named {name!r} on the NIC")
        index, slot = by_name[name]
        for key_hex, value in contents.items():
            key = bytes.fromhex(key_hex)
            if slot.kind == "progarray":
                if value not in placements:
                    raise NicLoadError(f"map-init: map {name}: key {key_hex}: no program section {value!r}")
                data = placements[value].word.to_bytes(8, "little")
            elif isinstance(value, list):
                data = b"".join(bytes.fromhex(v) + bytes(-slot.value_size % 8) for v in value)
            else:
                data = bytes.fromhex(value)
            rc = await driver.map_update(index, key, data)
            if rc:
                raise NicLoadError(f"map-init: map {name}: key {key_hex}: the NIC refused it ({rc})")
