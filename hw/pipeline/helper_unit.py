"""The helper unit of one core: the helper calls of XDP programs, behind the core's helper port.

Ref: include/uapi/linux/bpf.h (enum bpf_func_id and the helpers' contracts: bpf_map_lookup_elem,
bpf_map_update_elem, bpf_map_delete_elem, bpf_ktime_get_ns, bpf_trace_printk, bpf_get_prandom_u32,
bpf_get_smp_processor_id, bpf_tail_call, bpf_redirect, bpf_csum_diff, bpf_xdp_adjust_head, bpf_redirect_map,
bpf_xdp_adjust_meta, bpf_xdp_adjust_tail, bpf_ktime_get_boot_ns); net/core/filter.c for the XDP ones; sw/xdp.py
(XdpSession's helpers: the golden model, argument checks and limits included, checked against it by
tests/test_helper_unit.py through hw/pipeline/helper_model.py); hw/core/interfaces.py (helper and data ports);
sw/memory.py (the pointer map); G. Marsaglia, "Xorshift RNGs", J. Stat. Softw. 8(14), 2003 (xorshift32).

A call arrives on `helper` (id, r1..r5) and is answered once on `helper.response` (r0 and a status: OK; FAULT
where the golden VM faults: a pointer outside every readable region, a map argument that is not a map handle
or a map of the wrong type, a broadcast redirect; UNKNOWN for any other id).

Map helpers. r1 must be a map handle (tag 0x05, offset = map index < number of maps). The key (and for an
update the value) is read through `memory` (the unit's own data port toward the NIC memory system: stack,
packet, map values) into the key register and the value buffer, then one command goes to the map unit on
`map<n>` (map_config.MapClientPort); an update's value is copied by the map unit from the value buffer. A
lookup answers a pointer into the map's value memory (tag 0x80 + n, offset from the unit) or 0.

Other helpers:
  ktime_get_ns / ktime_get_boot_ns  a free-running nanosecond counter, advanced each cycle by 1e9 / clock_hz
                 (32-bit binary fraction, exact at 125 MHz), from 0 at reset. The golden VM reads the host's
                 clock: values differ, order and rate do not.
  get_prandom_u32 xorshift32 (13, 17, 5) from `prandom_seed`, one step a call (`XorShift32` is the model).
                 The kernel's generator is another; programs cannot rely on the values.
  get_smp_processor_id  `core_index`.
  redirect       flags != 0: r0 = XDP_ABORTED; else records the ifindex on `redirect` (for the dispatcher)
                 and answers XDP_REDIRECT. redirect_map: the devmap unit's lookup gives the ifindex; a missing
                 key answers flags & 3.
  csum_diff      ones'-complement sum of the complemented `from` words and the `to` words (4-byte multiples,
                 at most 512 bytes in all) with the seed, folded into 32 bits as csum_partial does.
  xdp_adjust_head / _meta / _tail  read the frame's data, data_end, data_meta on `pointers` (offsets in the
                 frame buffer, as the memory system keeps them) and write new ones on `adjust`, with the
                 limits of sw/xdp.py (adjust_tail: `frame_size - tailroom`). adjust_head moves the metadata
                 bytes with the data, and a growing adjust_tail zeroes the new bytes, through `memory`.
  tail_call      the program array unit's entry (entry pc and length) comes back on `tail_call` with a
                 response of status OK: `tail_call.taken` says the core must continue at `entry_pc` (same
                 frame and registers; r0 untouched) instead of writing r0. At most 33 tail calls a run (the
                 kernel's MAX_TAIL_CALL_CNT); a missing entry or the 34th call answers -ENOENT, and the
                 program goes on after the call. hw/core/interfaces.py has no such field: the core must take
                 `tail_call` next to its helper port (see the report in the commit).
  trace_printk   the format's bytes up to its NUL and r3..r5 go as one record to the `trace` FIFO, which the
                 host reads and formats (`decode_trace_records`, `format_trace_record`). A format without a
                 NUL answers -EINVAL, as the kernel does. Differences from the golden VM: r0 is the format's
                 length (the hardware does not format, so it cannot count the output); %s cannot be resolved
                 (the string is gone by the time the host formats); a format longer than the value buffer
                 answers -EINVAL; a record that does not fit the FIFO is dropped and counted (`trace_dropped`),
                 so a host that does not read never stalls traffic.

`run_start` (a pulse when the core starts a program on a frame) clears the recorded redirect and the tail
call count. Memories: the value buffer (1 read, 1 write port) and the trace FIFO.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, enum, fifo, stream, wiring
from amaranth.lib.memory import Memory, MemoryData
from amaranth.lib.wiring import In, Out

from bpfnic.hw.core.interfaces import DataPort, HelperPort, HelperStatus
from bpfnic.sw import isa, memory, vm as vm_module, xdp

from .map_config import MapOp, MapResult, NicMapConfig

#: Offsets of data, data_end and data_meta in the frame buffer (the memory system's PacketPointers).
POINTER_WIDTH = 16
PacketPointers = data.StructLayout({
    "data": POINTER_WIDTH,
    "data_end": POINTER_WIDTH,
    "data_meta": POINTER_WIDTH,
})

TailCallTarget = data.StructLayout({
    "taken": 1,              # with a response: continue at entry_pc instead of writing r0
    "entry_pc": 32,
    "length": 32,            # slots of the program starting at entry_pc
})

RedirectTarget = data.StructLayout({
    "valid": 1,              # bpf_redirect / bpf_redirect_map recorded a target in this run
    "ifindex": 32,
})

MAX_TAIL_CALLS = vm_module.MAX_TAIL_CALLS
TRACE_MARKER = 0x54            # 'T', in the top byte of a trace record's header word
DEFAULT_TRACE_FORMAT_MAX = 256


class XorShift32:
    """The hardware's get_prandom_u32, as a model (and as the golden VM's `random` in helper_model.py)."""

    def __init__(self, seed: int):
        if not seed & 0xFFFF_FFFF:
            raise ValueError("xorshift32 needs a non-zero seed")
        self.state = seed & 0xFFFF_FFFF

    def getrandbits(self, bits: int = 32) -> int:
        value = self.state
        value ^= (value << 13) & 0xFFFF_FFFF
        value ^= value >> 17
        value ^= (value << 5) & 0xFFFF_FFFF
        self.state = value
        return value if bits == 32 else value & ((1 << bits) - 1)


def nanoseconds_step(clock_hz: float) -> int:
    """Nanoseconds a cycle as a 32.32 fixed-point number."""
    return round((10 ** 9 << 32) / clock_hz)


@dataclass
class TraceRecord:
    core: int
    format: bytes            # up to (not including) the NUL
    args: tuple[int, int, int]


class TraceDecodeError(ValueError):
    """Words of the trace FIFO that are not a record (the reader lost its place)."""


def decode_trace_records(words: list[int]) -> list[TraceRecord]:
    """The records in words read from the `trace` FIFO: a header (marker, format words, core, format length),
    the format's bytes with its NUL in little-endian words, then r3, r4, r5."""
    records = []
    position = 0
    while position < len(words):
        header = words[position]
        if header >> 56 != TRACE_MARKER:
            raise TraceDecodeError(f"trace word {position}: {header:#018x} is not a record header")
        length, core, format_words = header & 0xFFFF, header >> 16 & 0xFF, header >> 24 & 0xFF
        end = position + 1 + format_words + 3
        if end > len(words):
            raise TraceDecodeError(f"trace word {position}: the record needs {end - position} words, "
                                   f"{len(words) - position} are left")
        text = b"".join(word.to_bytes(8, "little") for word in words[position + 1:position + 1 + format_words])
        records.append(TraceRecord(core, text[:length], tuple(words[end - 3:end])))
        position = end
    return records


def format_trace_record(record: TraceRecord) -> str:
    """The line bpf_trace_printk would have printed (sw/xdp.py's formatting; %s shows "(fault)": the string
    lived in the program's memory, which the host cannot read afterwards)."""
    formatter = vm_module.Vm(isa.Program())
    text = xdp._format_printk(record.format.decode("latin-1"), list(record.args), formatter)
    return "(bad format)" if text is None else text.rstrip("\n")


class _Target(enum.Enum, shape=3):
    """Where the memory reader puts what it reads."""
    KEY = 0
    VALUE = 1
    CSUM_FROM = 2
    CSUM_TO = 3
    FORMAT = 4
    META = 5


class _Next(enum.Enum, shape=3):
    """What follows a read or a write."""
    MAP_VALUE = 0      # update: read the value
    MAP_COMMAND = 1
    CSUM_TO = 2
    CSUM_FOLD = 3
    TRACE = 4
    META_WRITE = 5


class HelperUnit(wiring.Component):
    """See the module docstring. `maps`: the NIC's map slots (map<n> is slot n's client port)."""

    def __init__(self, maps: NicMapConfig, *, core_index: int = 0, clock_hz: float = 125e6,
                 prandom_seed: int = 0x2545F491, trace_depth: int = 512,
                 trace_format_max: int = DEFAULT_TRACE_FORMAT_MAX, frame_size: int = xdp.FRAME_SIZE,
                 tailroom: int = xdp.SKB_SHARED_INFO_SIZE):
        if not prandom_seed & 0xFFFF_FFFF:
            raise ValueError("HelperUnit: prandom_seed must be non-zero in its low 32 bits (xorshift32)")
        if frame_size - tailroom >= 1 << POINTER_WIDTH:
            raise ValueError(f"HelperUnit: frames of {frame_size} bytes do not fit {POINTER_WIDTH}-bit offsets")
        self.maps = maps
        self.core_index = core_index
        self.clock_hz = clock_hz
        self.prandom_seed = prandom_seed & 0xFFFF_FFFF
        self.trace_depth = trace_depth
        self.frame_size = frame_size
        self.tailroom = tailroom
        self.buffer_words = max(maps.value_buffer_words, -(-trace_format_max // 8))
        self.key_words = -(-maps.max_key_size // 8)
        members = {
            "helper": In(HelperPort()),
            "tail_call": Out(TailCallTarget),
            "memory": Out(DataPort()),
            "pointers": In(PacketPointers),
            "adjust": Out(stream.Signature(PacketPointers, always_ready=True)),
            "run_start": In(1),
            "redirect": Out(RedirectTarget),
            "trace": Out(stream.Signature(64)),
            "trace_dropped": Out(32),
        }
        for index, slot in enumerate(maps.slots):
            members[f"map{index}"] = Out(slot.client_port(maps.value_buffer_words))
        super().__init__(members)
        self.map_ports = [getattr(self, f"map{index}") for index in range(len(maps.slots))]
        self.buffer_data = MemoryData(shape=64, depth=self.buffer_words, init=[])
        self.trace_fifo = fifo.SyncFIFOBuffered(width=64, depth=trace_depth)

    def elaborate(self, platform):
        m = Module()
        slots = self.maps.slots
        map_count = len(slots)
        request = self.helper.request.payload
        call_id = Signal(32)
        args = Array(Signal(64, name=f"r{i + 1}") for i in range(5))
        response_r0 = Signal(64)
        response_status = Signal(HelperStatus)

        # -- free-running state -------------------------------------------------------------------------
        step = nanoseconds_step(self.clock_hz)
        nanoseconds = Signal(64)
        fraction = Signal(33)
        m.d.sync += [fraction.eq(fraction[0:32] + (step & 0xFFFF_FFFF)),
                     nanoseconds.eq(nanoseconds + (step >> 32) + fraction[32])]
        prandom = Signal(32, init=self.prandom_seed)
        shifted = [Signal(32, name=f"xorshift{i}") for i in range(3)]
        m.d.comb += [shifted[0].eq(prandom ^ (prandom << 13)[0:32]),
                     shifted[1].eq(shifted[0] ^ (shifted[0] >> 17)),
                     shifted[2].eq(shifted[1] ^ (shifted[1] << 5)[0:32])]
        tail_calls = Signal(range(MAX_TAIL_CALLS + 1))
        redirect = self.redirect
        with m.If(self.run_start):
            m.d.sync += [tail_calls.eq(0), redirect.valid.eq(0)]

        # -- the map slot named by a handle -------------------------------------------------------------------
        map_index = Signal(range(max(map_count, 1)))
        key_size = Signal(16)
        value_size = Signal(16)
        is_prog_array = Signal()
        is_devmap = Signal()
        with m.Switch(map_index):
            for index, slot in enumerate(slots):
                with m.Case(index):
                    m.d.comb += [key_size.eq(slot.key_size), value_size.eq(slot.value_size),
                                 is_prog_array.eq(slot.kind == "progarray"), is_devmap.eq(slot.kind == "devmap")]

        def handle_ok(pointer):
            return (pointer[32:64] == memory.TAG_MAP_HANDLE) & (pointer[0:32] < map_count)

        # -- key register and value buffer ---------------------------------------------------------------------
        key_words = Array(Signal(64, name=f"key{i}") for i in range(self.key_words))
        m.submodules.buffer = buffer = Memory(data=self.buffer_data)
        buffer_read = buffer.read_port()
        buffer_write = buffer.write_port()
        for port in self.map_ports:
            m.d.comb += port.value_data.eq(buffer_read.data)
        with m.Switch(map_index):
            for index, port in enumerate(self.map_ports):
                with m.Case(index):
                    m.d.comb += buffer_read.addr.eq(port.value_address)

        # -- the memory reader and writer -------------------------------------------------------------------
        pointers = self.pointers
        access_pointer = Signal(64)
        access_length = Signal(16)
        access_position = Signal(16)
        target = Signal(_Target)
        after = Signal(_Next)
        fill = Signal(4)                  # bytes in `builder`
        builder = Signal(64)
        word_index = Signal(range(self.buffer_words + 1))
        writing_zeros = Signal()          # the writer's bytes: zeros (adjust_tail), else the metadata words
        meta_words = Array(Signal(64, name=f"meta{i}") for i in range(xdp.MAX_METADATA // 8))

        response_data = Signal(64)        # the last read's data, registered before it is used
        chunk_log2 = Signal(2)            # log2 of the next access's size, registered as the position moves
        chunk = Signal(4)
        m.d.comb += chunk.eq(Const(1, 4) << chunk_log2)

        def chunk_for(remaining):
            """8, 4, 2 or 1 bytes: the largest that fits in what remains (as log2)."""
            return Mux(remaining >= 8, 3, Mux(remaining >= 4, 2, Mux(remaining >= 2, 1, 0)))

        def advance():
            m.d.sync += [access_position.eq(access_position + chunk),
                         chunk_log2.eq(chunk_for(access_length - access_position - chunk))]

        tag = access_pointer[32:40]
        offset = access_pointer[0:32]
        region_size = Signal(33)
        region_known = Signal()
        with m.Switch(tag):
            with m.Case(memory.TAG_STACK):
                m.d.comb += [region_known.eq(1), region_size.eq(memory.STACK_REGION_SIZE)]
            with m.Case(memory.TAG_PACKET):
                m.d.comb += [region_known.eq(1), region_size.eq(pointers.data_end)]
            for index, slot in enumerate(slots):
                with m.Case(memory.TAG_MAP_VALUE_BASE + index):
                    m.d.comb += [region_known.eq(1), region_size.eq(slot.value_memory_bytes)]
        readable = region_known & (access_pointer[40:64] == 0) & (offset + access_length <= region_size)

        def read(pointer, length, into, then):
            m.d.sync += [access_pointer.eq(pointer), access_length.eq(length), access_position.eq(0),
                         chunk_log2.eq(chunk_for(length)), target.eq(into), after.eq(then), fill.eq(0),
                         builder.eq(0), word_index.eq(0)]
            m.next = "READ_CHECK"

        def write(pointer, length, zeros):
            """Write `length` bytes (zeros, or the metadata words), then ADJUST."""
            m.d.sync += [access_pointer.eq(pointer), access_length.eq(length), access_position.eq(0),
                         chunk_log2.eq(chunk_for(length)), writing_zeros.eq(zeros)]
            m.next = "WRITE"

        # -- checksum, trace -------------------------------------------------------------------------------------
        checksum = Signal(48)
        nul_found = Signal()
        format_length = Signal(16)
        format_words = Signal(range(self.buffer_words + 1))
        m.submodules.trace_fifo = trace_fifo = self.trace_fifo
        m.d.comb += [self.trace.valid.eq(trace_fifo.r_rdy), self.trace.payload.eq(trace_fifo.r_data),
                     trace_fifo.r_en.eq(self.trace.ready)]
        trace_step = Signal(range(self.buffer_words + 5))
        trace_pending = Signal()

        # -- adjust helpers: sw/xdp.py's arithmetic, signed ---------------------------------------------------------
        delta = Signal(signed(34))
        m.d.comb += delta.eq(args[1][0:32].as_signed())
        data_pointer = Cat(pointers.data, Const(0, 2)).as_signed()
        data_end = Cat(pointers.data_end, Const(0, 2)).as_signed()
        data_meta = Cat(pointers.data_meta, Const(0, 2)).as_signed()
        metadata_length = Signal(signed(34))
        m.d.comb += metadata_length.eq(data_pointer - data_meta)
        new_data = Signal(signed(34))
        new_meta = Signal(signed(34))
        new_end = Signal(signed(34))
        m.d.comb += [new_data.eq(data_pointer + delta), new_meta.eq(data_meta + delta), new_end.eq(data_end + delta)]
        adjusted = Signal(PacketPointers)

        def respond(r0=None, status=HelperStatus.OK):
            m.d.sync += [response_r0.eq(0 if r0 is None else r0), response_status.eq(status)]
            m.next = "RESPOND"

        def negative(error_number):
            return Const(-error_number & (2 ** 64 - 1), 64)

        packet_pointer = Const(memory.TAG_PACKET << memory.REGION_SHIFT, 64)
        command_op = Signal(MapOp)
        result = Signal(MapResult)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.helper.request.ready.eq(1)
                with m.If(self.helper.request.valid):
                    m.d.sync += call_id.eq(request.id)
                    for i in range(5):
                        m.d.sync += args[i].eq(request.args[i])
                    m.d.sync += self.tail_call.taken.eq(0)
                    m.next = "DISPATCH"

            with m.State("DISPATCH"):
                with m.Switch(call_id):
                    with m.Case(xdp.HELPER_MAP_LOOKUP_ELEM, xdp.HELPER_MAP_UPDATE_ELEM, xdp.HELPER_MAP_DELETE_ELEM):
                        m.d.sync += map_index.eq(args[0][0:max(1, (map_count - 1).bit_length())])
                        with m.If(~handle_ok(args[0])):
                            respond(status=HelperStatus.FAULT)
                        with m.Else():
                            m.next = "MAP_ARGUMENTS"
                    with m.Case(xdp.HELPER_TAIL_CALL):
                        m.d.sync += map_index.eq(args[1][0:max(1, (map_count - 1).bit_length())])
                        with m.If(~handle_ok(args[1])):
                            respond(status=HelperStatus.FAULT)
                        with m.Else():
                            m.next = "TAIL_CALL"
                    with m.Case(xdp.HELPER_REDIRECT_MAP):
                        m.d.sync += map_index.eq(args[0][0:max(1, (map_count - 1).bit_length())])
                        with m.If(~handle_ok(args[0]) | (args[2] & (xdp.BPF_F_BROADCAST | xdp.BPF_F_EXCLUDE_INGRESS)
                                                         ).any()):
                            respond(status=HelperStatus.FAULT)
                        with m.Else():
                            m.next = "REDIRECT_MAP"
                    with m.Case(xdp.HELPER_KTIME_GET_NS, xdp.HELPER_KTIME_GET_BOOT_NS):
                        respond(nanoseconds)
                    with m.Case(xdp.HELPER_GET_PRANDOM_U32):
                        m.d.sync += prandom.eq(shifted[2])
                        respond(shifted[2])
                    with m.Case(xdp.HELPER_GET_SMP_PROCESSOR_ID):
                        respond(self.core_index)
                    with m.Case(xdp.HELPER_REDIRECT):
                        with m.If(args[1] != 0):
                            respond(xdp.XDP_ABORTED)
                        with m.Else():
                            m.d.sync += [redirect.valid.eq(1), redirect.ifindex.eq(args[0][0:32])]
                            respond(xdp.XDP_REDIRECT)
                    with m.Case(xdp.HELPER_CSUM_DIFF):
                        too_long = (args[1] + args[3]) > xdp.CSUM_DIFF_MAX
                        m.d.sync += checksum.eq(args[4][0:32])
                        with m.If((args[1][0:2] != 0) | (args[3][0:2] != 0) | too_long):
                            respond(negative(errno.EINVAL))
                        with m.Elif(args[1] != 0):
                            read(args[0], args[1], _Target.CSUM_FROM, _Next.CSUM_TO)
                        with m.Else():
                            m.next = "CSUM_TO"
                    with m.Case(xdp.HELPER_TRACE_PRINTK):
                        m.d.sync += [nul_found.eq(0), format_length.eq(0)]
                        with m.If(args[1] > 8 * self.buffer_words):
                            respond(negative(errno.EINVAL))
                        with m.Else():
                            read(args[0], args[1], _Target.FORMAT, _Next.TRACE)
                    with m.Case(xdp.HELPER_XDP_ADJUST_HEAD):
                        m.d.sync += adjusted.eq(Cat(new_data[0:POINTER_WIDTH], pointers.data_end,
                                                    new_meta[0:POINTER_WIDTH]))
                        with m.If((new_data < xdp.XDP_FRAME_SIZE + metadata_length) |
                                  (new_data > data_end - xdp.ETH_HLEN)):
                            respond(negative(errno.EINVAL))
                        with m.Elif(metadata_length != 0):
                            read(packet_pointer | pointers.data_meta, metadata_length, _Target.META, _Next.META_WRITE)
                        with m.Else():
                            m.next = "ADJUST"
                    with m.Case(xdp.HELPER_XDP_ADJUST_META):
                        new_length = Signal(signed(34))
                        m.d.comb += new_length.eq(data_pointer - new_meta)
                        m.d.sync += adjusted.eq(Cat(pointers.data, pointers.data_end, new_meta[0:POINTER_WIDTH]))
                        with m.If((new_meta < xdp.XDP_FRAME_SIZE) | (new_meta > data_pointer)):
                            respond(negative(errno.EINVAL))
                        with m.Elif((new_length[0:2] != 0) | (new_length > xdp.MAX_METADATA)):
                            respond(negative(errno.EACCES))
                        with m.Else():
                            m.next = "ADJUST"
                    with m.Case(xdp.HELPER_XDP_ADJUST_TAIL):
                        m.d.sync += adjusted.eq(Cat(pointers.data, new_end[0:POINTER_WIDTH], pointers.data_meta))
                        with m.If((new_end > self.frame_size - self.tailroom) |
                                  (new_end < data_pointer + xdp.ETH_HLEN)):
                            respond(negative(errno.EINVAL))
                        with m.Elif(delta > 0):     # the new bytes read as zeros, as in the kernel
                            write(packet_pointer | pointers.data_end, delta, 1)
                        with m.Else():
                            m.next = "ADJUST"
                    with m.Default():
                        respond(status=HelperStatus.UNKNOWN)

            # -- map helpers ---------------------------------------------------------------------------------
            with m.State("MAP_ARGUMENTS"):
                with m.If(is_prog_array & (call_id != xdp.HELPER_MAP_DELETE_ELEM)):
                    respond(status=HelperStatus.FAULT)      # programs only tail-call through a program array
                with m.Else():
                    m.d.sync += command_op.eq(Mux(call_id == xdp.HELPER_MAP_LOOKUP_ELEM, MapOp.LOOKUP,
                                                  Mux(call_id == xdp.HELPER_MAP_UPDATE_ELEM, MapOp.UPDATE,
                                                      MapOp.DELETE)))
                    read(args[1], key_size, _Target.KEY,
                         Mux(call_id == xdp.HELPER_MAP_UPDATE_ELEM, _Next.MAP_VALUE, _Next.MAP_COMMAND))

            with m.State("TAIL_CALL"):
                with m.If(~is_prog_array):
                    respond(status=HelperStatus.FAULT)
                with m.Else():
                    m.d.sync += [key_words[0].eq(args[2][0:32]), command_op.eq(MapOp.LOOKUP)]
                    m.next = "MAP_COMMAND"

            with m.State("REDIRECT_MAP"):
                with m.If(~is_devmap):
                    respond(status=HelperStatus.FAULT)
                with m.Else():
                    m.d.sync += [key_words[0].eq(args[1][0:32]), command_op.eq(MapOp.LOOKUP)]
                    m.next = "MAP_COMMAND"

            with m.State("MAP_COMMAND"):
                for index, port in enumerate(self.map_ports):
                    with m.If(map_index == index):
                        m.d.comb += [
                            port.command.valid.eq(1),
                            port.command.payload.op.eq(command_op),
                            port.command.payload.key.eq(Cat(*key_words)),
                            port.command.payload.flags.eq(Mux(command_op == MapOp.UPDATE, args[3], 0)),
                            port.command.payload.cpu.eq(self.core_index),
                        ]
                        with m.If(port.command.ready):
                            m.next = "MAP_RESULT"

            with m.State("MAP_RESULT"):
                for index, port in enumerate(self.map_ports):
                    with m.If(map_index == index):
                        m.d.comb += port.result.ready.eq(1)
                        with m.If(port.result.valid):
                            m.d.sync += result.eq(port.result.payload)
                            m.next = "MAP_ANSWER"

            with m.State("MAP_ANSWER"):
                with m.Switch(call_id):
                    with m.Case(xdp.HELPER_MAP_LOOKUP_ELEM):
                        respond(Mux(result.found, Cat(result.offset, memory.TAG_MAP_VALUE_BASE + map_index), 0))
                    with m.Case(xdp.HELPER_TAIL_CALL):
                        with m.If(result.found & (tail_calls < MAX_TAIL_CALLS)):
                            m.d.sync += [self.tail_call.taken.eq(1), self.tail_call.entry_pc.eq(result.data[0:32]),
                                         self.tail_call.length.eq(result.data[32:64]),
                                         tail_calls.eq(tail_calls + 1)]
                            respond(0)
                        with m.Else():
                            respond(negative(errno.ENOENT))
                    with m.Case(xdp.HELPER_REDIRECT_MAP):
                        with m.If(result.found):
                            m.d.sync += [redirect.valid.eq(1), redirect.ifindex.eq(result.data[0:32])]
                            respond(xdp.XDP_REDIRECT)
                        with m.Else():
                            respond(args[2][0:2])
                    with m.Default():                                   # update, delete: 0 or -errno
                        respond(result.rc.as_signed())

            # -- the memory reader: [access_pointer, + access_length) in chunks of 8, 4, 2, 1 bytes ------------
            with m.State("READ_CHECK"):
                with m.If(~readable):
                    respond(status=HelperStatus.FAULT)
                with m.Elif(access_length == 0):
                    m.next = "READ_DONE"
                with m.Else():
                    m.next = "READ_REQUEST"

            with m.State("READ_REQUEST"):
                m.d.comb += [
                    self.memory.request.valid.eq(1),
                    self.memory.request.payload.address.eq(access_pointer[0:40] + access_position),
                    self.memory.request.payload.size.eq(chunk_log2),
                ]
                with m.If(self.memory.request.ready):
                    m.next = "READ_WAIT"

            with m.State("READ_WAIT"):
                with m.If(self.memory.response.valid):
                    m.d.sync += response_data.eq(self.memory.response.payload)
                    m.next = "READ_ACCUMULATE"

            with m.State("READ_ACCUMULATE"):
                mask = Signal(64)
                with m.Switch(chunk_log2):
                    for size in range(4):
                        with m.Case(size):
                            m.d.comb += mask.eq((1 << (8 << size)) - 1)
                word = Signal(64)
                bytes_now = fill + chunk
                last = access_position + chunk == access_length
                m.d.comb += word.eq(builder | ((response_data & mask) << (fill * 8))[0:64])
                advance()
                with m.If((bytes_now == 8) | last):
                    m.d.sync += [builder.eq(0), fill.eq(0), word_index.eq(word_index + 1)]
                    low, high = word[0:32], word[32:64]
                    with m.Switch(target):
                        with m.Case(_Target.KEY):
                            m.d.sync += key_words[word_index].eq(word)
                        with m.Case(_Target.VALUE):
                            m.d.comb += [buffer_write.addr.eq(word_index), buffer_write.data.eq(word),
                                         buffer_write.en.eq(1)]
                        with m.Case(_Target.FORMAT):
                            m.d.comb += [buffer_write.addr.eq(word_index), buffer_write.data.eq(word),
                                         buffer_write.en.eq(1)]
                            for byte in reversed(range(8)):
                                with m.If(~nul_found & (byte < bytes_now) & (word[8 * byte:8 * byte + 8] == 0)):
                                    m.d.sync += [nul_found.eq(1),
                                                 format_length.eq(Cat(Const(byte, 3), word_index))]
                                    # the earliest NUL wins: lower bytes are checked later in this loop
                        with m.Case(_Target.CSUM_FROM):
                            m.d.sync += checksum.eq(checksum + (~low)[0:32] + Mux(bytes_now == 8, (~high)[0:32], 0))
                        with m.Case(_Target.CSUM_TO):
                            m.d.sync += checksum.eq(checksum + low + Mux(bytes_now == 8, high, 0))
                        with m.Case(_Target.META):
                            m.d.sync += meta_words[word_index[0:2]].eq(word)
                with m.Else():
                    m.d.sync += [builder.eq(word), fill.eq(bytes_now)]
                with m.If(last):
                    m.next = "READ_DONE"
                with m.Else():
                    m.next = "READ_REQUEST"

            with m.State("READ_DONE"):
                with m.Switch(after):
                    with m.Case(_Next.MAP_VALUE):
                        read(args[2], value_size, _Target.VALUE, _Next.MAP_COMMAND)
                    with m.Case(_Next.MAP_COMMAND):
                        m.next = "MAP_COMMAND"
                    with m.Case(_Next.CSUM_TO):
                        m.next = "CSUM_TO"
                    with m.Case(_Next.CSUM_FOLD):
                        m.next = "CSUM_FOLD"
                    with m.Case(_Next.TRACE):
                        m.next = "TRACE"
                    with m.Case(_Next.META_WRITE):
                        write(packet_pointer | new_meta[0:POINTER_WIDTH], metadata_length, 0)

            # -- the memory writer: metadata moved by adjust_head, zeros for adjust_tail ---------------------
            with m.State("WRITE"):
                with m.If(access_position == access_length):
                    m.next = "ADJUST"
                with m.Else():
                    meta_bytes = Cat(*meta_words)
                    m.d.comb += [
                        self.memory.request.valid.eq(1),
                        self.memory.request.payload.address.eq(access_pointer[0:40] + access_position),
                        self.memory.request.payload.size.eq(chunk_log2),
                        self.memory.request.payload.write.eq(1),
                        self.memory.request.payload.data.eq(
                            Mux(writing_zeros, 0, (meta_bytes >> (access_position[0:5] * 8))[0:64])),
                    ]
                    with m.If(self.memory.request.ready):
                        advance()

            with m.State("ADJUST"):
                m.d.comb += [self.adjust.valid.eq(1), self.adjust.payload.eq(adjusted)]
                respond(0)

            # -- csum_diff ----------------------------------------------------------------------------------------
            with m.State("CSUM_TO"):
                with m.If(args[3] != 0):
                    read(args[2], args[3], _Target.CSUM_TO, _Next.CSUM_FOLD)
                with m.Else():
                    m.next = "CSUM_FOLD"
            with m.State("CSUM_FOLD"):
                with m.If(checksum[32:] != 0):
                    m.d.sync += checksum.eq(checksum[0:32] + checksum[32:])
                with m.Else():
                    respond(checksum[0:32])

            # -- trace_printk: header, the format's words, r3..r5, all or nothing ------------------------------
            with m.State("TRACE"):
                words = Signal(range(self.buffer_words + 1))
                m.d.comb += words.eq((format_length + 8) >> 3)        # the NUL included
                m.d.sync += [format_words.eq(words), trace_step.eq(0), trace_pending.eq(0)]
                with m.If(~nul_found):
                    respond(negative(errno.EINVAL))
                with m.Elif(trace_fifo.w_level + words + 4 > self.trace_depth):
                    m.d.sync += self.trace_dropped.eq(self.trace_dropped + 1)
                    respond(format_length)
                with m.Else():
                    m.d.comb += [trace_fifo.w_en.eq(1),
                                 trace_fifo.w_data.eq(format_length | (self.core_index << 16) | (words << 24)
                                                      | (TRACE_MARKER << 56))]
                    m.next = "TRACE_WORDS"
            with m.State("TRACE_WORDS"):
                # Word `trace_step` is read from the buffer this cycle and pushed the next.
                m.d.comb += buffer_read.addr.eq(trace_step)
                with m.If(trace_step != format_words):
                    m.d.sync += [trace_step.eq(trace_step + 1), trace_pending.eq(1)]
                with m.Else():
                    m.d.sync += trace_pending.eq(0)
                    with m.If(~trace_pending):
                        m.d.sync += trace_step.eq(0)
                        m.next = "TRACE_ARGUMENTS"
                m.d.comb += [trace_fifo.w_en.eq(trace_pending), trace_fifo.w_data.eq(buffer_read.data)]
            with m.State("TRACE_ARGUMENTS"):
                m.d.comb += [trace_fifo.w_en.eq(1), trace_fifo.w_data.eq(args[2 + trace_step[0:2]])]
                m.d.sync += trace_step.eq(trace_step + 1)
                with m.If(trace_step == 2):
                    respond(format_length)

            with m.State("RESPOND"):
                m.d.comb += [self.helper.response.valid.eq(1), self.helper.response.payload.r0.eq(response_r0),
                             self.helper.response.payload.status.eq(response_status)]
                m.next = "IDLE"
        return m
