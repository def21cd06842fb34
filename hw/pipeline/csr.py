"""The host interface of the NIC: a 32-bit register bus (CSR), its register map, and the host-side driver.

Ref: hw/core/interfaces.py (instruction memory and region descriptor writes), hw/pipeline/map_config.py (the
map units' host port: BPF_MAP_*_ELEM commands with the syscall's semantics, sw/maps.py with cpu = None, and
their staging buffer), hw/pipeline/packet_buffer.py (frame words), include/uapi/linux/bpf.h (map update flags).

Bus (`CsrBus`, NIC clock domain). A request is a transfer on `bus.request`: a byte address (a multiple of 4),
`write`, and 32 bits of write data; every request, read or write, is answered by exactly one transfer on
`bus.response` (read data; 0 for writes), in order. A request takes at least three cycles; it waits (the
response comes later) while its effect cannot happen yet: an instruction or region write while the core's port
is busy, an injected word while the injection store is full, a map command while the map unit is busy.
Unknown addresses read 0 and ignore writes.

Register map (R read, W write; values little-endian; 64-bit values as LOW/HIGH pairs):

  0x0000 ID              R   0x424E4943 ("BNIC")
  0x0004 VERSION         R   register map version (1)
  0x0008 CONFIG          R   ports [7:0], cores [15:8], maps [23:16], log2 of the packet slot size [31:24]
  0x000C BUFFER          R   slots [15:0], free slots [31:16]
  0x0010 CONTROL         RW  bit 0 ENABLE: the dispatcher hands frames to the cores (frames wait while 0)
  0x0014 STATUS          R   bit 0 a core is running, bit 1 a passed frame waits (HOST_RX), bit 2 a trace word
                             waits, bit 3 the dispatcher is idle (no frame in a core, none waiting to complete)
  0x0018 PROG_ENTRY      RW  entry slot of the program
  0x001C PROG_LENGTH     RW  program length in slots
  0x0020 CYCLE_BUDGET    RW  cycles a program may run per frame (0: no limit)
  0x0024 IMEM_ADDRESS    RW  instruction slot the next IMEM_DATA_HIGH write fills (then it counts up)
  0x0028 IMEM_DATA_LOW   RW  bits 0..31 of the instruction word
  0x002C IMEM_DATA_HIGH  W   bits 32..63; the write stores the slot in every core's instruction memory
  0x0030 REGION_TAG      RW  tag of a region descriptor (sw/memory.py): map value regions 0x80 + n
  0x0034 REGION_SIZE     RW  its size in bytes
  0x0038 REGION_COMMIT   W   bit 0 writable, bit 1 computed, bit 2 present: writes the descriptor to every core
  0x0040 INJECT_CONTROL  W   starts an injected frame: length in bytes [15:0], ingress port [23:16]
  0x0044 INJECT_DATA     W   the next 4 bytes of the frame (byte 0 in bits 0..7); the frame enters the receive
                             path, as if from its port, once its last byte is written
  0x0048 INJECT_STATUS   R   bit 0 a frame is being written, bit 1 the last INJECT_CONTROL was refused (a
                             length of 0 or more than the store holds), [31:16] the store's size in bytes
  0x0050 HOST_RX_STATUS  R   bit 31 a frame waits; its length [15:0] and info byte [23:16] (the ingress port
                             for the host queue); bit 30: nothing of it has been read yet
  0x0054 HOST_RX_DATA    R   the next 4 bytes of the waiting frame (byte 0 in bits 0..7; bytes past its end
                             read 0); reading its last bytes takes the frame off the queue; 0 when no frame
                             waits (a read in the middle of a frame waits for the frame's next word)
  0x0058 HOST_RX_DISCARD W   takes the rest of the waiting frame off the queue
  0x0060 TRACE_STATUS    R   bit 31 a word of the trace_printk queue waits (records of 64-bit words, see
                             helper_unit.py: a header, the format's bytes, r3..r5)
  0x0064 TRACE_LOW       R   bits 0..31 of the waiting word (0 when none)
  0x0068 TRACE_HIGH      R   bits 32..63 of the waiting word; the read takes it off the queue
  0x0100 MAP_SELECT      RW  the map the following registers talk to
  0x0104 MAP_COMMAND     W   runs a command on the selected map: MapOp (LOOKUP 0, UPDATE 1, DELETE 2,
                             READ_ENTRY 3, FREEZE 4) with MAP_KEY, MAP_FLAGS, MAP_INDEX and the staging buffer
  0x0108 MAP_STATUS      R   bit 0 busy, bit 1 done (a result is here), bit 2 found
  0x010C MAP_RESULT      R   the command's return code (0 or -errno, as the bpf() syscall)
  0x0110 MAP_FLAGS_LOW   RW  update flags (BPF_ANY 0, BPF_NOEXIST 1, BPF_EXIST 2, ...)
  0x0114 MAP_FLAGS_HIGH  RW
  0x0118 MAP_INDEX       RW  READ_ENTRY's entry position
  0x011C STAGING_ADDRESS RW  word of the selected map's staging buffer the next access uses
  0x0120 STAGING_LOW     RW  writes: bits 0..31 of the next staging word; reads: bits 0..31 of the staging word
  0x0124 STAGING_HIGH    RW  writes: bits 32..63, and the word is stored; reads: bits 32..63; both count the
                             address up
  0x0140 MAP_KEY         RW  16 registers, 64 bytes: the key (byte 0 in bits 0..7 of 0x0140); a READ_ENTRY
                             that finds an entry leaves its key here
  0x1000 COUNTERS        R   32-bit counters, wrapping, one a register in the order of `counter_names`
                             (see nic.py for the NIC's list: per port, per verdict, per drop reason, per trap)

The host touches a map's staging buffer only while none of its commands runs (map_config.py), which the
driver keeps by polling MAP_STATUS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable, Sequence

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from bpfnic.hw.core.interfaces import ImemWrite, RegionWrite
from .map_config import HostMapPort, MapOp
from .packet_buffer import OFFSET_WIDTH, OutputWord, receive_word_layout

ID_VALUE = 0x424E4943
VERSION = 1
KEY_BYTES = 64
COUNTERS_BASE = 0x1000


class Reg:
    """Register addresses (see the module docstring)."""
    ID = 0x0000
    VERSION = 0x0004
    CONFIG = 0x0008
    BUFFER = 0x000C
    CONTROL = 0x0010
    STATUS = 0x0014
    PROG_ENTRY = 0x0018
    PROG_LENGTH = 0x001C
    CYCLE_BUDGET = 0x0020
    IMEM_ADDRESS = 0x0024
    IMEM_DATA_LOW = 0x0028
    IMEM_DATA_HIGH = 0x002C
    REGION_TAG = 0x0030
    REGION_SIZE = 0x0034
    REGION_COMMIT = 0x0038
    INJECT_CONTROL = 0x0040
    INJECT_DATA = 0x0044
    INJECT_STATUS = 0x0048
    HOST_RX_STATUS = 0x0050
    HOST_RX_DATA = 0x0054
    HOST_RX_DISCARD = 0x0058
    TRACE_STATUS = 0x0060
    TRACE_LOW = 0x0064
    TRACE_HIGH = 0x0068
    MAP_SELECT = 0x0100
    MAP_COMMAND = 0x0104
    MAP_STATUS = 0x0108
    MAP_RESULT = 0x010C
    MAP_FLAGS_LOW = 0x0110
    MAP_FLAGS_HIGH = 0x0114
    MAP_INDEX = 0x0118
    STAGING_ADDRESS = 0x011C
    STAGING_LOW = 0x0120
    STAGING_HIGH = 0x0124
    MAP_KEY = 0x0140


STATUS_CORE_BUSY = 1 << 0
STATUS_HOST_FRAME = 1 << 1
STATUS_TRACE = 1 << 2
STATUS_DISPATCHER_IDLE = 1 << 3
REGION_WRITABLE, REGION_COMPUTED, REGION_PRESENT = 1 << 0, 1 << 1, 1 << 2
MAP_BUSY, MAP_DONE, MAP_FOUND = 1 << 0, 1 << 1, 1 << 2

CsrRequest = data.StructLayout({"address": unsigned(16), "write": unsigned(1), "data": unsigned(32)})

ProgramSettings = data.StructLayout({
    "enable": unsigned(1),
    "entry": unsigned(32),
    "length": unsigned(32),
    "cycle_budget": unsigned(32),
})

class CsrBus(wiring.Signature):
    """The register bus, from the host's side (the NIC takes `In(CsrBus())`)."""

    def __init__(self):
        super().__init__({
            "request": Out(stream.Signature(CsrRequest)),
            "response": In(stream.Signature(32)),
        })


@dataclass(frozen=True)
class MapPortShape:
    """What the CSR needs to know of a map unit's host port."""
    key_size: int
    staging_words: int


class Csr(wiring.Component):
    """The register file (see the module docstring).

    Parameters: `ports`, `cores` (reported in CONFIG); `slots`, `slot_size` (the packet buffer's, for CONFIG and
    BUFFER); `map_ports`, one `MapPortShape` per map (map n's host port is the member `map_<n>`);
    `counter_names`, the counters in register order; `inject_words`, the injection store's size in 8-byte
    words (a power of two; it must hold the longest frame the host injects).
    """

    def __init__(self, *, ports: int, cores: int = 1, slots: int = 16, slot_size: int = 4096,
                 map_ports: Sequence[MapPortShape] = (), counter_names: Sequence[str] = (),
                 inject_words: int = 256):
        if inject_words < 2 or inject_words & (inject_words - 1):
            raise ValueError(f"Csr: inject_words must be a power of two of at least 2, got {inject_words}")
        for index, shape in enumerate(map_ports):
            if not 1 <= shape.key_size <= KEY_BYTES:
                raise ValueError(f"Csr: map {index}: key_size {shape.key_size} is not in 1..{KEY_BYTES}")
        if len(counter_names) > 1024:
            raise ValueError(f"Csr: {len(counter_names)} counters do not fit the 4 KiB counter window")
        self.ports = ports
        self.cores = cores
        self.slots = slots
        self.slot_size = slot_size
        self.map_ports = list(map_ports)
        self.counter_names = list(counter_names)
        self.inject_words = inject_words
        self.port_bits = max(1, (ports - 1).bit_length())
        members = {
            "bus": In(CsrBus()),
            "program": Out(ProgramSettings),
            "imem_write": Out(stream.Signature(ImemWrite)),
            "regions": Out(stream.Signature(RegionWrite)),
            "inject": Out(stream.Signature(receive_word_layout(self.port_bits))),
            "host_rx": In(stream.Signature(OutputWord)),
            "trace": In(stream.Signature(64)),
            "counters": In(data.ArrayLayout(32, max(1, len(self.counter_names)))),
            "core_busy": In(1),
            "dispatcher_idle": In(1),
            "free_slots": In(16),
        }
        for index, shape in enumerate(self.map_ports):
            members[f"map_{index}"] = Out(HostMapPort(shape.key_size, shape.staging_words))
        super().__init__(members)

    def map_port(self, index: int):
        return getattr(self, f"map_{index}")

    def elaborate(self, platform):
        m = Module()

        # -- the bus: take a request, carry it out, answer ----------------------------------------------
        address = Signal(16)
        write = Signal()
        write_data = Signal(32)
        read_data = Signal(32)
        done = Signal()             # the request's effect happens this cycle (or it had none to wait for)
        answer = Signal(32)
        with m.FSM() as bus_fsm:
            with m.State("IDLE"):
                m.d.comb += self.bus.request.ready.eq(1)
                with m.If(self.bus.request.valid):
                    m.d.sync += [address.eq(self.bus.request.payload.address),
                                 write.eq(self.bus.request.payload.write),
                                 write_data.eq(self.bus.request.payload.data)]
                    m.next = "EXECUTE"
            with m.State("EXECUTE"):
                m.d.comb += done.eq(1)   # cleared below by the registers that must wait
                m.d.sync += answer.eq(Mux(write, 0, read_data))
                with m.If(done):
                    m.next = "RESPOND"
            with m.State("RESPOND"):
                m.d.comb += [self.bus.response.valid.eq(1), self.bus.response.payload.eq(answer)]
                with m.If(self.bus.response.ready):
                    m.next = "IDLE"
        executing = Signal()
        m.d.comb += executing.eq(bus_fsm.ongoing("EXECUTE"))

        def on_write(register):
            return executing & write & (address == register)

        def on_read(register):
            return executing & ~write & (address == register)

        def wait_unless(register, ready, *, for_write=True):
            """A request to `register` waits until `ready`."""
            access = on_write(register) if for_write else on_read(register)
            with m.If(access & ~ready):
                m.d.comb += done.eq(0)
            return access & ready

        read_values: dict[int, object] = {}

        # -- identity, control, program -------------------------------------------------------------------
        read_values[Reg.ID] = Const(ID_VALUE, 32)
        read_values[Reg.VERSION] = Const(VERSION, 32)
        read_values[Reg.CONFIG] = Const(self.ports | self.cores << 8 | len(self.map_ports) << 16
                                        | (self.slot_size.bit_length() - 1) << 24, 32)
        read_values[Reg.BUFFER] = Cat(Const(self.slots, 16), self.free_slots)
        program = self.program
        for register, field_value in ((Reg.PROG_ENTRY, program.entry), (Reg.PROG_LENGTH, program.length),
                                      (Reg.CYCLE_BUDGET, program.cycle_budget)):
            read_values[register] = field_value
            with m.If(on_write(register)):
                m.d.sync += field_value.eq(write_data)
        read_values[Reg.CONTROL] = program.enable
        with m.If(on_write(Reg.CONTROL)):
            m.d.sync += program.enable.eq(write_data[0])

        # -- instruction memory and region descriptors -------------------------------------------------------
        imem_address = Signal(32)
        imem_low = Signal(32)
        read_values[Reg.IMEM_ADDRESS] = imem_address
        read_values[Reg.IMEM_DATA_LOW] = imem_low
        with m.If(on_write(Reg.IMEM_ADDRESS)):
            m.d.sync += imem_address.eq(write_data)
        with m.If(on_write(Reg.IMEM_DATA_LOW)):
            m.d.sync += imem_low.eq(write_data)
        m.d.comb += [
            self.imem_write.valid.eq(on_write(Reg.IMEM_DATA_HIGH)),
            self.imem_write.payload.address.eq(imem_address),
            self.imem_write.payload.data.eq(Cat(imem_low, write_data)),
        ]
        with m.If(wait_unless(Reg.IMEM_DATA_HIGH, self.imem_write.ready)):
            m.d.sync += imem_address.eq(imem_address + 1)

        region_tag = Signal(8)
        region_size = Signal(32)
        read_values[Reg.REGION_TAG] = region_tag
        read_values[Reg.REGION_SIZE] = region_size
        with m.If(on_write(Reg.REGION_TAG)):
            m.d.sync += region_tag.eq(write_data)
        with m.If(on_write(Reg.REGION_SIZE)):
            m.d.sync += region_size.eq(write_data)
        m.d.comb += [
            self.regions.valid.eq(on_write(Reg.REGION_COMMIT)),
            self.regions.payload.tag.eq(region_tag),
            self.regions.payload.size.eq(region_size),
            self.regions.payload.writable.eq(write_data[0]),
            self.regions.payload.computed.eq(write_data[1]),
            self.regions.payload.present.eq(write_data[2]),
        ]
        wait_unless(Reg.REGION_COMMIT, self.regions.ready)

        # -- frame injection: words gathered in a store, released a whole frame at a time ----------------------
        inject_layout = receive_word_layout(self.port_bits)
        m.submodules.inject_store = store = fifo.SyncFIFOBuffered(width=inject_layout.size, depth=self.inject_words)
        inject_length = Signal(OFFSET_WIDTH)     # bytes of the frame still to come
        inject_port = Signal(self.port_bits)
        inject_refused = Signal()
        inject_first = Signal()
        gathered = Signal(32)                    # the low half of the word being built
        half = Signal()                          # the low half is in `gathered`
        complete_frames = Signal(range(self.inject_words + 1))
        read_values[Reg.INJECT_STATUS] = Cat(inject_length != 0, inject_refused, Const(0, 14),
                                             Const(min(self.inject_words * 8, 0xFFFF), 16))
        with m.If(on_write(Reg.INJECT_CONTROL)):
            length = write_data[:16]
            refused = (length == 0) | (length > self.inject_words * 8) | (inject_length != 0)
            m.d.sync += inject_refused.eq(refused)
            with m.If(~refused):
                m.d.sync += [inject_length.eq(length), inject_port.eq(write_data[16:24]), half.eq(0),
                             inject_first.eq(1)]
        # A data write completes a word when it brings its high half or the frame's last bytes.
        bytes_now = Mux(inject_length > 4, 4, inject_length)
        ends_frame = inject_length <= 4
        word_complete = half | ends_frame
        word = Signal(inject_layout)
        new_bytes = Signal(32)      # the written bytes that belong to the frame; zeros past its end
        m.d.comb += new_bytes.eq(write_data & (Const(0xFFFF_FFFF, 32) >> ((4 - bytes_now)[:3] * 8)))
        m.d.comb += [
            word.data.eq(Mux(half, Cat(gathered, new_bytes), new_bytes)),
            word.bytes.eq(Mux(half, 4, 0) + bytes_now),
            word.first.eq(inject_first),
            word.last.eq(ends_frame),
            word.port.eq(inject_port),
            store.w_data.eq(word),
        ]
        data_write = on_write(Reg.INJECT_DATA) & (inject_length != 0)
        with m.If(data_write & word_complete):
            m.d.comb += store.w_en.eq(1)
            with m.If(~store.w_rdy):
                m.d.comb += done.eq(0)
        with m.If(data_write & (~word_complete | store.w_rdy)):
            m.d.sync += [inject_length.eq(inject_length - bytes_now), half.eq(~word_complete),
                         gathered.eq(new_bytes)]
            with m.If(word_complete):
                m.d.sync += inject_first.eq(0)
        # Released only whole: a host that stops half-way through a frame holds up nobody.
        head = Signal(inject_layout)
        m.d.comb += [
            head.eq(store.r_data),
            self.inject.payload.eq(head),
            self.inject.valid.eq(store.r_rdy & (complete_frames != 0)),
            store.r_en.eq(self.inject.ready & (complete_frames != 0)),
        ]
        frame_written = store.w_en & store.w_rdy & word.last
        frame_sent = self.inject.valid & self.inject.ready & head.last
        m.d.sync += complete_frames.eq(complete_frames + frame_written - frame_sent)

        # -- frames passed to the host ---------------------------------------------------------------------------
        host_rx = self.host_rx
        rx_word = host_rx.payload
        rx_half = Signal()                 # the low half of the head word has been read
        rx_started = Signal()              # some of the head frame has been read
        discarding = Signal()
        read_values[Reg.HOST_RX_STATUS] = Cat(rx_word.length, rx_word.info, Const(0, 6),
                                              host_rx.valid & ~rx_started, host_rx.valid)
        rx_data = Signal(64)        # the head word, zero past the frame's end
        m.d.comb += rx_data.eq(rx_word.data & (Const(2**64 - 1, 64) >> ((8 - rx_word.bytes)[:4] * 8)))
        read_values[Reg.HOST_RX_DATA] = Mux(host_rx.valid, Mux(rx_half, rx_data[32:], rx_data[:32]), 0)
        reading_rx = on_read(Reg.HOST_RX_DATA) & host_rx.valid
        # In the middle of a frame, the next word may be a few cycles away (the buffer's readers take turns).
        wait_unless(Reg.HOST_RX_DATA, host_rx.valid | ~rx_started, for_write=False)
        word_used = rx_half | (rx_word.bytes <= 4)
        with m.If(reading_rx):
            m.d.sync += [rx_half.eq(~word_used), rx_started.eq(~(word_used & rx_word.last))]
        with m.If(on_write(Reg.HOST_RX_DISCARD) & host_rx.valid):
            m.d.sync += discarding.eq(1)
        with m.If(discarding & host_rx.valid):
            m.d.comb += host_rx.ready.eq(1)
            with m.If(rx_word.last):
                m.d.sync += [discarding.eq(0), rx_half.eq(0), rx_started.eq(0)]
        with m.Elif(reading_rx & word_used):
            m.d.comb += host_rx.ready.eq(1)

        # -- the trace_printk queue ------------------------------------------------------------------------------
        trace = self.trace
        read_values[Reg.TRACE_STATUS] = Cat(Const(0, 31), trace.valid)
        read_values[Reg.TRACE_LOW] = Mux(trace.valid, trace.payload[:32], 0)
        read_values[Reg.TRACE_HIGH] = Mux(trace.valid, trace.payload[32:], 0)
        m.d.comb += trace.ready.eq(on_read(Reg.TRACE_HIGH) & trace.valid)

        # -- maps -------------------------------------------------------------------------------------------------
        map_select = Signal(8)
        map_flags = Signal(64)
        map_index = Signal(32)
        map_key = Signal(8 * KEY_BYTES)
        map_busy = Signal()
        map_done = Signal()
        map_found = Signal()
        map_rc = Signal(32)
        staging_address = Signal(16)
        staging_low = Signal(32)
        read_values[Reg.MAP_SELECT] = map_select
        read_values[Reg.MAP_STATUS] = Cat(map_busy, map_done, map_found)
        read_values[Reg.MAP_RESULT] = map_rc
        read_values[Reg.MAP_FLAGS_LOW] = map_flags[:32]
        read_values[Reg.MAP_FLAGS_HIGH] = map_flags[32:]
        read_values[Reg.MAP_INDEX] = map_index
        read_values[Reg.STAGING_ADDRESS] = staging_address
        for register, target in ((Reg.MAP_SELECT, map_select), (Reg.MAP_FLAGS_LOW, map_flags[:32]),
                                 (Reg.MAP_FLAGS_HIGH, map_flags[32:]), (Reg.MAP_INDEX, map_index),
                                 (Reg.STAGING_ADDRESS, staging_address), (Reg.STAGING_LOW, staging_low)):
            with m.If(on_write(register)):
                m.d.sync += target.eq(write_data)
        for word_index in range(KEY_BYTES // 4):
            register = Reg.MAP_KEY + 4 * word_index
            read_values[register] = map_key[32 * word_index:32 * (word_index + 1)]
            with m.If(on_write(register)):
                m.d.sync += map_key[32 * word_index:32 * (word_index + 1)].eq(write_data)

        staging_read = Signal(64)
        read_values[Reg.STAGING_LOW] = staging_read[:32]
        read_values[Reg.STAGING_HIGH] = staging_read[32:]
        with m.If(on_write(Reg.STAGING_HIGH) | on_read(Reg.STAGING_HIGH)):
            m.d.sync += staging_address.eq(staging_address + 1)
        command_accepted = Signal()
        for index, shape in enumerate(self.map_ports):
            port = self.map_port(index)
            selected = map_select == index
            command = port.command.payload
            m.d.comb += [
                command.op.eq(write_data[:3]),
                command.key.eq(map_key[:8 * shape.key_size]),
                command.flags.eq(map_flags),
                command.index.eq(map_index),
                port.command.valid.eq(selected & on_write(Reg.MAP_COMMAND) & ~map_busy),
                port.staging_write_enable.eq(selected & on_write(Reg.STAGING_HIGH)),
                port.staging_write_address.eq(staging_address),
                port.staging_write_data.eq(Cat(staging_low, write_data)),
                port.staging_read_address.eq(staging_address),
                port.result.ready.eq(selected & map_busy),
            ]
            with m.If(selected):
                m.d.comb += staging_read.eq(port.staging_read_data)
                with m.If(port.command.valid & port.command.ready):
                    m.d.comb += command_accepted.eq(1)
                with m.If(port.result.valid & map_busy):
                    m.d.sync += [map_busy.eq(0), map_done.eq(1), map_found.eq(port.result.payload.found),
                                 map_rc.eq(port.result.payload.rc)]
                    with m.If(port.result.payload.found):
                        m.d.sync += map_key[:8 * shape.key_size].eq(port.result.payload.key)
        with m.If(on_write(Reg.MAP_COMMAND)):
            with m.If(map_select >= len(self.map_ports)):
                # No such map: answered at once, as the syscall would (-EINVAL = -22).
                m.d.sync += [map_done.eq(1), map_found.eq(0), map_rc.eq(-22 & 0xFFFF_FFFF)]
            with m.Elif(map_busy):
                pass   # one command at a time; the driver polls MAP_STATUS first
            with m.Elif(~command_accepted):
                m.d.comb += done.eq(0)
            with m.Else():
                m.d.sync += [map_busy.eq(1), map_done.eq(0), map_found.eq(0)]

        # -- status and counters ------------------------------------------------------------------------------------
        read_values[Reg.STATUS] = Cat(self.core_busy, host_rx.valid, trace.valid, self.dispatcher_idle)
        for index in range(len(self.counter_names)):
            read_values[COUNTERS_BASE + 4 * index] = self.counters[index]

        with m.Switch(address):
            for register, value in read_values.items():
                with m.Case(register):
                    m.d.comb += read_data.eq(value)
        return m


def register_table(counter_names: Sequence[str]) -> list[tuple[int, str]]:
    """Every register address with its name, counters included (for drivers and documentation)."""
    table = [(value, name) for name, value in vars(Reg).items() if name.isupper()]
    table += [(Reg.MAP_KEY + 4 * index, f"MAP_KEY_{index}") for index in range(1, KEY_BYTES // 4)]
    table += [(COUNTERS_BASE + 4 * index, name) for index, name in enumerate(counter_names)]
    return sorted(table)


# -- the host-side driver ------------------------------------------------------------------------------------

class CsrError(Exception):
    """The NIC refused what the host asked (a frame it cannot take, a map that does not exist), named."""


class CsrDriver:
    """Host operations on the register map, over any transport with `read(address)` and `write(address,
    value)` coroutines: the simulated bus (tests, `SimulatedBus`), or a real one. Map commands return the
    syscall's return code (0 or -errno) as the map units give it."""

    def __init__(self, read: Callable[[int], Awaitable[int]], write: Callable[[int, int], Awaitable[None]],
                 counter_names: Sequence[str] = ()):
        self.read = read
        self.write = write
        self.counter_names = list(counter_names)

    async def check_identity(self) -> None:
        found = await self.read(Reg.ID)
        if found != ID_VALUE:
            raise CsrError(f"no bpfnic at this bus: ID register reads 0x{found:08x}, expected 0x{ID_VALUE:08x}")

    async def set_enabled(self, enabled: bool) -> None:
        await self.write(Reg.CONTROL, int(enabled))

    async def load_program(self, words: Sequence[int], entry: int = 0, base: int = 0, cycle_budget: int = 0,
                           set_program: bool = True) -> None:
        """Write instruction slots `base`.. with `words` (64-bit little-endian instruction words); when
        `set_program`, make it the program run on every frame (entry slot `base + entry`)."""
        await self.write(Reg.IMEM_ADDRESS, base)
        for word in words:
            await self.write(Reg.IMEM_DATA_LOW, word & 0xFFFF_FFFF)
            await self.write(Reg.IMEM_DATA_HIGH, word >> 32)
        if set_program:
            await self.write_program(base + entry, base + len(words), cycle_budget)

    async def write_program(self, entry: int, length: int, cycle_budget: int = 0) -> None:
        """The program every frame runs: its entry slot, the program length (slots 0..length-1 may run) and
        the cycle budget (0: none)."""
        await self.write(Reg.PROG_ENTRY, entry)
        await self.write(Reg.PROG_LENGTH, length)
        await self.write(Reg.CYCLE_BUDGET, cycle_budget)

    async def set_region(self, tag: int, size: int, *, writable: bool, computed: bool = False,
                         present: bool = True) -> None:
        await self.write(Reg.REGION_TAG, tag)
        await self.write(Reg.REGION_SIZE, size)
        await self.write(Reg.REGION_COMMIT, (REGION_WRITABLE if writable else 0)
                         | (REGION_COMPUTED if computed else 0) | (REGION_PRESENT if present else 0))

    async def inject_frame(self, frame: bytes, port: int) -> None:
        await self.write(Reg.INJECT_CONTROL, len(frame) | port << 16)
        status = await self.read(Reg.INJECT_STATUS)
        if status & 2:
            raise CsrError(f"the NIC refused to inject a frame of {len(frame)} bytes on port {port} (it takes "
                           f"1..{status >> 16} bytes, one frame at a time)")
        for offset in range(0, len(frame), 4):
            await self.write(Reg.INJECT_DATA, int.from_bytes(frame[offset:offset + 4], "little"))

    async def receive_frame(self) -> tuple[bytes, int] | None:
        """The next frame of the host queue and its info byte, or None when none waits."""
        status = await self.read(Reg.HOST_RX_STATUS)
        if not status >> 31:
            return None
        length, info = status & 0xFFFF, status >> 16 & 0xFF
        frame = b""
        while len(frame) < length:
            frame += (await self.read(Reg.HOST_RX_DATA)).to_bytes(4, "little")
        return frame[:length], info

    async def read_trace_record(self) -> list[int] | None:
        """The 64-bit words of the next trace_printk record (helper_unit.decode_trace_records reads them), or
        None when the queue is empty. The header word says how long the record is."""
        if not await self.read(Reg.TRACE_STATUS) >> 31:
            return None
        header = await self._read_trace_word()
        words = [header]
        for _ in range((header >> 24 & 0xFF) + 3):
            words.append(await self._read_trace_word())
        return words

    async def _read_trace_word(self) -> int:
        for _ in range(1000):   # the rest of a record is on its way (the helper unit writes it in a few cycles)
            if await self.read(Reg.TRACE_STATUS) >> 31:
                low = await self.read(Reg.TRACE_LOW)
                return low | await self.read(Reg.TRACE_HIGH) << 32
        raise CsrError("trace record cut short: the queue stayed empty in the middle of a record")

    async def counters(self) -> dict[str, int]:
        return {name: await self.read(COUNTERS_BASE + 4 * index) for index, name in enumerate(self.counter_names)}

    async def counter(self, name: str) -> int:
        try:
            index = self.counter_names.index(name)
        except ValueError:
            raise CsrError(f"no counter named {name!r}") from None
        return await self.read(COUNTERS_BASE + 4 * index)

    # -- maps ------------------------------------------------------------------------------------------------
    async def _map_command(self, index: int, op: MapOp, key: bytes = b"", flags: int = 0, entry: int = 0):
        """Run a command on map `index` (selected here, if not already) and wait for its result."""
        await self.write(Reg.MAP_SELECT, index)
        if len(key) > KEY_BYTES:
            raise CsrError(f"map {index}: a key of {len(key)} bytes is longer than the {KEY_BYTES} the NIC takes")
        padded = key + bytes(-len(key) % 4)
        for offset in range(0, len(padded), 4):
            await self.write(Reg.MAP_KEY + offset, int.from_bytes(padded[offset:offset + 4], "little"))
        await self.write(Reg.MAP_FLAGS_LOW, flags & 0xFFFF_FFFF)
        await self.write(Reg.MAP_FLAGS_HIGH, flags >> 32)
        await self.write(Reg.MAP_INDEX, entry)
        await self.write(Reg.MAP_COMMAND, op.value)
        while True:
            status = await self.read(Reg.MAP_STATUS)
            if status & MAP_DONE and not status & MAP_BUSY:
                break
        result = await self.read(Reg.MAP_RESULT)
        rc = result - (1 << 32) if result >> 31 else result
        return rc, bool(status & MAP_FOUND)

    async def _write_staging(self, words: Sequence[int]) -> None:
        await self.write(Reg.STAGING_ADDRESS, 0)
        for word in words:
            await self.write(Reg.STAGING_LOW, word & 0xFFFF_FFFF)
            await self.write(Reg.STAGING_HIGH, word >> 32)

    async def _read_staging(self, count: int) -> list[int]:
        await self.write(Reg.STAGING_ADDRESS, 0)
        words = []
        for _ in range(count):
            low = await self.read(Reg.STAGING_LOW)
            words.append(low | await self.read(Reg.STAGING_HIGH) << 32)
        return words

    async def map_update(self, index: int, key: bytes, value: bytes, flags: int = 0) -> int:
        """BPF_MAP_UPDATE_ELEM: `value` is every copy of the value (per-CPU maps: CPU-major, each copy padded
        to a multiple of 8 bytes), as the staging buffer holds it."""
        padded = value + bytes(-len(value) % 8)
        await self.write(Reg.MAP_SELECT, index)   # the staging buffer is the selected map's
        await self._write_staging([int.from_bytes(padded[o:o + 8], "little") for o in range(0, len(padded), 8)])
        rc, _ = await self._map_command(index, MapOp.UPDATE, key, flags)
        return rc

    async def map_lookup(self, index: int, key: bytes, value_bytes: int) -> tuple[int, bytes | None]:
        """BPF_MAP_LOOKUP_ELEM: (rc, the staged value's first `value_bytes` bytes when found)."""
        rc, found = await self._map_command(index, MapOp.LOOKUP, key)
        if rc or not found:
            return rc, None
        words = await self._read_staging(-(-value_bytes // 8))
        return rc, b"".join(word.to_bytes(8, "little") for word in words)[:value_bytes]

    async def map_delete(self, index: int, key: bytes) -> int:
        rc, _ = await self._map_command(index, MapOp.DELETE, key)
        return rc

    async def map_read_entry(self, index: int, position: int, key_size: int) -> tuple[int, bytes | None]:
        rc, found = await self._map_command(index, MapOp.READ_ENTRY, b"", entry=position)
        if rc or not found:
            return rc, None
        key = b""
        for offset in range(0, key_size, 4):
            key += (await self.read(Reg.MAP_KEY + offset)).to_bytes(4, "little")
        return rc, key[:key_size]


class SimulatedBus:
    """The bus as an `amaranth.sim` testbench drives it: `read`/`write` for a `CsrDriver` (one request at a
    time, waiting for its response)."""

    def __init__(self, ctx, bus):
        self.ctx = ctx
        self.bus = bus

    async def _transfer(self, address: int, write: bool, value: int) -> int:
        ctx, bus = self.ctx, self.bus
        ctx.set(bus.request.payload, {"address": address, "write": write, "data": value & 0xFFFF_FFFF})
        ctx.set(bus.request.valid, 1)
        while True:
            _, _, ready = await ctx.tick().sample(bus.request.ready)
            if ready:
                break
        ctx.set(bus.request.valid, 0)
        ctx.set(bus.response.ready, 1)
        while True:
            _, _, valid, payload = await ctx.tick().sample(bus.response.valid, bus.response.payload)
            if valid:
                break
        ctx.set(bus.response.ready, 0)
        return payload

    async def read(self, address: int) -> int:
        return await self._transfer(address, False, 0)

    async def write(self, address: int, value: int) -> None:
        await self._transfer(address, True, value)
