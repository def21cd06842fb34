"""The packet buffer of the NIC: frames in slots with XDP headroom and tailroom, a free-list, the core's
in-place byte access, and the readers that send [data, data_end) to the TX ports and the host.

Ref: include/uapi/linux/bpf.h (XDP_PACKET_HEADROOM), net/bpf/test_run.c and net/core/filter.c (the layout
of an XDP buffer: headroom before the data, tailroom reserved for skb_shared_info at the end, so that
bpf_xdp_adjust_head/_meta/_tail move pointers, not bytes); sw/xdp.py (`PacketBuffer`, the golden model
of one slot: the same offsets are used here, so a slot's offsets are the PACKET region's offsets of the
pointer map in sw/memory.py).

Slots. The memory holds `slots` slots of `slot_size` bytes (a power of two, 4096 by default, the size of
the golden model's frame). A received frame is written at offset `HEADROOM` (256) of a free slot; the last
`tailroom` bytes (320 by default, `xdp.SKB_SHARED_INFO_SIZE`) are never filled on receive and bound
adjust_tail, so a frame holds at most `slot_size - HEADROOM - tailroom` bytes (3520 with the defaults; a
longer frame is dropped and counted as `dropped_too_long`). A smaller `slot_size` (e.g. 2048 with a
`tailroom` of 256: 1536-byte frames) saves memory; the helper unit's adjust_tail limit is then
`slot_size - tailroom`, not the golden model's 3776 (say so when results are compared).

Memory. Two banks of 64-bit words (even and odd word addresses), each a simple dual-port block RAM
(`lib.memory`, one write port with byte enables, one synchronous read port). An access of 1..8 bytes at
any byte address touches at most two neighbouring words, which always lie in different banks, so every
access, aligned or not, takes one cycle on each port. The write port is shared by the core (priority) and
the receive side; the read port by the core (priority) and the frame readers.

Free-list. A bitmap of free slots: receive takes the lowest free slot at a frame's first word; a slot comes
back when its frame is dropped (completion with `drop`) or when the reader has issued the frame's last
read. When no slot is free, an arriving frame is consumed and dropped, and counted (`dropped_full`).

Ports (streams, `lib.stream`; all in the NIC domain):
  receive   in   frame words from the RX side (`ReceiveWord`: 8 octets, `bytes` 1..8 on the last word,
                 `last`, and the ingress `port`); a frame begins with the first word after a `last`.
  received  out  one `ReceivedFrame` per stored frame: slot, length, port (to the dispatcher).
  access    in   the core's packet accesses (`PacketAccess`: slot, offset, size, write, data), always ready;
                 a read is answered on `access.response` in the next cycle (data right-aligned).
  complete  in   the fate of a frame (`Completion`): drop (free the slot) or send [start, end) of the slot
                 out of output `output` (0..outputs-1) with an `info` byte passed along.
  outputs[k] out the frames sent to output k (`OutputWord`: data, bytes, first, last, the frame's length
                 and info on every word); each output has its own queue and reader, so a stalled output
                 never holds up the others, and frames leave an output in the order they were completed.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bpfnic.sw import xdp

HEADROOM = xdp.XDP_PACKET_HEADROOM
DEFAULT_TAILROOM = xdp.SKB_SHARED_INFO_SIZE
DEFAULT_SLOT_SIZE = xdp.FRAME_SIZE
WORD_BYTES = 8
OFFSET_WIDTH = 16        # offsets inside a slot and frame lengths
INFO_WIDTH = 8
OUTPUT_FIFO_DEPTH = 4    # per output: room for the words in flight, so one output can take a word a cycle


def _bits_for(count: int) -> int:
    """Bits of an index into `count` things (at least 1)."""
    return max(1, (count - 1).bit_length())


def receive_word_layout(port_bits: int) -> data.StructLayout:
    """A word of a received frame: 8 octets (octet i in bits 8i..8i+7), their count, last, ingress port."""
    return data.StructLayout({
        "data": unsigned(64),
        "bytes": unsigned(4),      # 1..8 on the last word; other words are full
        "first": unsigned(1),      # informative: a frame begins after a `last`
        "last": unsigned(1),
        "port": unsigned(port_bits),
    })


def received_frame_layout(slot_bits: int, port_bits: int) -> data.StructLayout:
    return data.StructLayout({
        "slot": unsigned(slot_bits),
        "length": unsigned(OFFSET_WIDTH),   # bytes, stored from offset HEADROOM
        "port": unsigned(port_bits),
    })


def completion_layout(slot_bits: int, output_bits: int) -> data.StructLayout:
    return data.StructLayout({
        "slot": unsigned(slot_bits),
        "drop": unsigned(1),                # free the slot, send nothing
        "output": unsigned(output_bits),
        "start": unsigned(OFFSET_WIDTH),    # data: first byte to send (offset in the slot)
        "end": unsigned(OFFSET_WIDTH),      # data_end: one past the last byte
        "info": unsigned(INFO_WIDTH),       # passed along with the frame (e.g. ingress port for the host)
    })


def access_layout(slot_bits: int) -> data.StructLayout:
    return data.StructLayout({
        "slot": unsigned(slot_bits),
        "offset": unsigned(OFFSET_WIDTH),
        "size": unsigned(2),                # log2 of the byte count, as the core's data port
        "write": unsigned(1),
        "data": unsigned(64),               # write data, right-aligned
    })


OutputWord = data.StructLayout({
    "data": unsigned(64),
    "bytes": unsigned(4),
    "first": unsigned(1),
    "last": unsigned(1),
    "length": unsigned(OFFSET_WIDTH),       # the whole frame's length, on every word
    "info": unsigned(INFO_WIDTH),
})


class PacketAccessPort(wiring.Signature):
    """The core side of the buffer (from the memory system): requests in, read data out a cycle later."""

    def __init__(self, slot_bits: int):
        super().__init__({
            "request": Out(stream.Signature(access_layout(slot_bits))),
            "response": In(stream.Signature(64, always_ready=True)),
        })


def port_counters_layout() -> data.StructLayout:
    return data.StructLayout({
        "stored": unsigned(32),             # frames stored and handed to the dispatcher
        "dropped_full": unsigned(32),       # no free slot at the frame's first word
        "dropped_too_long": unsigned(32),   # longer than the slot holds
    })


class TwoBankMemory(wiring.Component):
    """A byte-addressed memory of `size_bytes` (a power of two, at least 16) in two banks of 64-bit words.

    Word w is in the even bank when w is even, so the two words an access of up to 8 bytes at any byte
    address touches (w and w + 1) are in different banks and both are reached in one cycle. Each bank is
    a simple dual-port memory: one write port with byte enables and one synchronous read port.

    Write: when `write_valid`, 1 << `write_size` bytes of `write_data` (right-aligned) go to `write_address`.
    Read: 8 bytes from `read_address` appear on `read_data` in the next cycle (a read sees every write
    accepted before its own cycle). Addresses wrap at the end of the memory.
    """

    def __init__(self, size_bytes: int):
        if size_bytes < 16 or size_bytes & (size_bytes - 1):
            raise ValueError(f"TwoBankMemory: size_bytes must be a power of two of at least 16, got {size_bytes}")
        self.size_bytes = size_bytes
        address_bits = (size_bytes - 1).bit_length()
        super().__init__({
            "write_valid": In(1),
            "write_address": In(address_bits),
            "write_data": In(64),
            "write_size": In(2),
            "read_address": In(address_bits),
            "read_data": Out(64),
        })

    def elaborate(self, platform):
        m = Module()
        rows = self.size_bytes // 16
        m.submodules.even_bank = even = Memory(shape=64, depth=rows, init=[])
        m.submodules.odd_bank = odd = Memory(shape=64, depth=rows, init=[])
        even_write, odd_write = even.write_port(granularity=8), odd.write_port(granularity=8)
        even_read, odd_read = even.read_port(), odd.read_port()

        shift = self.write_address[:3]
        word = self.write_address[3:]
        byte_mask = Signal(8)
        with m.Switch(self.write_size):
            for size_log2 in range(4):
                with m.Case(size_log2):
                    m.d.comb += byte_mask.eq((1 << (1 << size_log2)) - 1)
        wide_data = Signal(128)
        wide_mask = Signal(16)
        m.d.comb += [
            wide_data.eq(self.write_data << (shift * 8)),
            wide_mask.eq(Mux(self.write_valid, byte_mask << shift, 0)),
        ]
        word_is_even = ~word[0]
        low_mask, high_mask = wide_mask[:8], wide_mask[8:]
        m.d.comb += [
            even_write.addr.eq((word + 1) >> 1),
            odd_write.addr.eq(word >> 1),
            even_write.data.eq(Mux(word_is_even, wide_data[:64], wide_data[64:])),
            odd_write.data.eq(Mux(word_is_even, wide_data[64:], wide_data[:64])),
            even_write.en.eq(Mux(word_is_even, low_mask, high_mask)),
            odd_write.en.eq(Mux(word_is_even, high_mask, low_mask)),
        ]

        read_word = self.read_address[3:]
        read_shift = Signal(3)
        read_even = Signal()
        m.d.comb += [
            even_read.addr.eq((read_word + 1) >> 1),
            odd_read.addr.eq(read_word >> 1),
        ]
        m.d.sync += [read_shift.eq(self.read_address[:3]), read_even.eq(~read_word[0])]
        low = Mux(read_even, even_read.data, odd_read.data)
        high = Mux(read_even, odd_read.data, even_read.data)
        m.d.comb += self.read_data.eq(Cat(low, high) >> (read_shift * 8))
        return m


class PacketBuffer(wiring.Component):
    """See the module docstring. `ports`: ingress port numbers 0..ports-1; `outputs`: output streams."""

    def __init__(self, *, slots: int = 16, slot_size: int = DEFAULT_SLOT_SIZE, tailroom: int = DEFAULT_TAILROOM,
                 ports: int = 2, outputs: int = 3):
        if slots < 1 or slots > 64 or slots & (slots - 1):
            raise ValueError(f"PacketBuffer: slots must be a power of two in 1..64 (a bitmap free-list), "
                             f"got {slots}")
        if slot_size & (slot_size - 1) or not 512 <= slot_size <= 1 << (OFFSET_WIDTH - 1):
            raise ValueError(f"PacketBuffer: slot_size must be a power of two in 512..{1 << (OFFSET_WIDTH - 1)}, "
                             f"got {slot_size}")
        if tailroom % WORD_BYTES or tailroom < 0 or HEADROOM + tailroom + 64 > slot_size:
            raise ValueError(f"PacketBuffer: tailroom {tailroom} must be a multiple of {WORD_BYTES} leaving room "
                             f"for a 64-byte frame after the {HEADROOM}-byte headroom in a {slot_size}-byte slot")
        if ports < 1 or outputs < 1:
            raise ValueError(f"PacketBuffer: needs at least one port and one output, got {ports} and {outputs}")
        self.slots = slots
        self.slot_size = slot_size
        self.tailroom = tailroom
        self.max_frame_bytes = slot_size - HEADROOM - tailroom
        self.ports = ports
        self.outputs = outputs
        self.slot_bits = _bits_for(slots)
        self.port_bits = _bits_for(ports)
        self.output_bits = _bits_for(outputs)
        super().__init__({
            "receive": In(stream.Signature(receive_word_layout(self.port_bits))),
            "received": Out(stream.Signature(received_frame_layout(self.slot_bits, self.port_bits))),
            "access": In(PacketAccessPort(self.slot_bits)),
            "complete": In(stream.Signature(completion_layout(self.slot_bits, self.output_bits))),
            "output": Out(stream.Signature(OutputWord)).array(outputs),
            "counters": Out(data.ArrayLayout(port_counters_layout(), ports)),
            "free_slots": Out(range(slots + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        slot_bits, offset_bits = self.slot_bits, (self.slot_size - 1).bit_length()
        address_bits = (self.slots * self.slot_size - 1).bit_length()

        m.submodules.memory = memory = TwoBankMemory(self.slots * self.slot_size)
        write_valid, write_address = memory.write_valid, memory.write_address
        write_data, write_size = memory.write_data, memory.write_size
        read_address = memory.read_address
        read_value = memory.read_data

        def byte_address(slot, offset):
            if self.slots == 1:
                return offset[:offset_bits]
            return Cat(offset[:offset_bits], slot[:(self.slots - 1).bit_length()])

        # What the read in flight is for: the core, or output k (with the word's framing).
        pipe_core = Signal()
        pipe_output_valid = Signal()
        pipe_output = Signal(range(self.outputs))
        pipe_word = Signal(OutputWord)

        # -- free-list ------------------------------------------------------------------------------------
        free = Signal(self.slots, init=(1 << self.slots) - 1)
        allocate = Signal(self.slots)      # one-hot, this cycle
        release_receive = Signal(self.slots)      # a frame too long for its slot
        release_complete = Signal(self.slots)     # a dropped frame
        release_readers = []                      # one per output: a frame's last read was issued
        any_free = free.any()
        lowest_free = Signal(range(self.slots))
        for index in reversed(range(self.slots)):
            with m.If(free[index]):
                m.d.comb += lowest_free.eq(index)
        count = Const(0, range(self.slots + 1))
        for index in range(self.slots):
            count = count + free[index]
        m.d.comb += self.free_slots.eq(count)

        # -- the core's accesses (priority on both ports) ---------------------------------------------------
        access = self.access.request
        core_address = byte_address(access.payload.slot, access.payload.offset)
        core_writes = access.valid & access.payload.write
        core_reads = access.valid & ~access.payload.write
        m.d.comb += access.ready.eq(1)
        m.d.comb += [
            self.access.response.valid.eq(pipe_core),
            self.access.response.payload.eq(read_value),
        ]

        # -- receive: frames into free slots --------------------------------------------------------------
        receive = self.receive
        word_in = receive.payload
        in_frame = Signal()         # a frame's first word has been taken
        dropping = Signal()         # the frame is being consumed without a slot
        too_long = Signal()         # the frame outgrew its slot: consume the rest, then free the slot
        rx_slot = Signal(slot_bits)
        rx_port = Signal(self.port_bits)
        rx_length = Signal(OFFSET_WIDTH)
        frame_port = Mux(in_frame, rx_port, word_in.port)
        starting = ~in_frame
        fits = rx_length + word_in.bytes <= self.max_frame_bytes

        m.submodules.received_queue = received_queue = fifo.SyncFIFOBuffered(
            width=len(self.received.payload.as_value()), depth=self.slots)
        m.d.comb += [
            self.received.valid.eq(received_queue.r_rdy),
            self.received.payload.eq(received_queue.r_data),
            received_queue.r_en.eq(self.received.ready),
        ]
        stores_frame = Mux(starting, any_free, ~dropping & ~too_long & fits)   # if this word ends the frame
        m.d.comb += receive.ready.eq(~core_writes & (~word_in.last | ~stores_frame | received_queue.w_rdy))
        taken = receive.valid & receive.ready
        counter = self.counters[frame_port]
        received_entry = Signal(self.received.payload.shape())

        with m.If(taken):
            m.d.sync += in_frame.eq(~word_in.last)
            m.d.comb += [write_data.eq(word_in.data), write_size.eq(3)]
            with m.If(starting):
                m.d.sync += [rx_port.eq(word_in.port), too_long.eq(0), rx_length.eq(word_in.bytes),
                             rx_slot.eq(lowest_free), dropping.eq(~any_free)]
                with m.If(any_free):
                    m.d.comb += [
                        allocate.eq(1 << lowest_free),
                        write_valid.eq(1),
                        write_address.eq(byte_address(lowest_free, Const(HEADROOM, OFFSET_WIDTH))),
                    ]
                    with m.If(word_in.last):
                        m.d.comb += [received_entry.slot.eq(lowest_free), received_entry.length.eq(word_in.bytes),
                                     received_entry.port.eq(word_in.port), received_queue.w_en.eq(1)]
                        m.d.sync += counter.stored.eq(counter.stored + 1)
                with m.Else():
                    m.d.sync += counter.dropped_full.eq(counter.dropped_full + 1)
            with m.Elif(~dropping):
                with m.If(~too_long & fits):
                    m.d.comb += [
                        write_valid.eq(1),
                        write_address.eq(byte_address(rx_slot, HEADROOM + rx_length)),
                    ]
                with m.If(~fits):
                    m.d.sync += too_long.eq(1)
                m.d.sync += rx_length.eq(rx_length + word_in.bytes)
                with m.If(word_in.last):
                    # The frame ends: hand it on, or give its slot back when it did not fit.
                    with m.If(too_long | ~fits):
                        m.d.comb += release_receive.eq(1 << rx_slot)
                        m.d.sync += counter.dropped_too_long.eq(counter.dropped_too_long + 1)
                    with m.Else():
                        m.d.comb += [received_entry.slot.eq(rx_slot), received_entry.length.eq(rx_length + word_in.bytes),
                                     received_entry.port.eq(rx_port), received_queue.w_en.eq(1)]
                        m.d.sync += counter.stored.eq(counter.stored + 1)
        m.d.comb += received_queue.w_data.eq(received_entry)

        # The core's write wins the port; receive waits (its ready is low) while the core writes.
        with m.If(core_writes):
            m.d.comb += [
                write_valid.eq(1),
                write_address.eq(core_address),
                write_data.eq(access.payload.data),
                write_size.eq(access.payload.size),
            ]

        # -- completions: drop, or queue for an output ----------------------------------------------------
        completion = self.complete.payload
        queues = []
        for index in range(self.outputs):
            queue = fifo.SyncFIFOBuffered(width=len(completion.as_value()), depth=self.slots)
            m.submodules[f"output_queue_{index}"] = queue
            queues.append(queue)
            m.d.comb += queue.w_data.eq(completion)
        empty_frame = completion.end <= completion.start
        with m.If(completion.drop | empty_frame | (completion.output >= self.outputs)):
            m.d.comb += self.complete.ready.eq(1)
            with m.If(self.complete.valid):
                m.d.comb += release_complete.eq(1 << completion.slot)
        with m.Else():
            with m.Switch(completion.output):
                for index, queue in enumerate(queues):
                    with m.Case(index):
                        m.d.comb += [self.complete.ready.eq(queue.w_rdy),
                                     queue.w_en.eq(self.complete.valid)]

        # -- readers: one context per output, one read a cycle among them ----------------------------------
        eligible = Signal(self.outputs)
        chosen = Signal(range(self.outputs))
        chosen_valid = Signal()
        last_served = Signal(range(self.outputs))
        reader_issue = chosen_valid & ~core_reads
        issue_address = Signal(address_bits)
        issue_word = Signal(OutputWord)
        for index, queue in enumerate(queues):
            active = Signal(name=f"reader_{index}_active")
            slot = Signal(slot_bits, name=f"reader_{index}_slot")
            position = Signal(OFFSET_WIDTH, name=f"reader_{index}_position")
            end = Signal(OFFSET_WIDTH, name=f"reader_{index}_end")
            length = Signal(OFFSET_WIDTH, name=f"reader_{index}_length")
            info = Signal(INFO_WIDTH, name=f"reader_{index}_info")
            first = Signal(name=f"reader_{index}_first")
            release_reader = Signal(self.slots, name=f"reader_{index}_release")
            release_readers.append(release_reader)
            out_fifo = fifo.SyncFIFO(width=len(Signal(OutputWord).as_value()), depth=OUTPUT_FIFO_DEPTH)
            m.submodules[f"output_fifo_{index}"] = out_fifo
            in_flight = pipe_output_valid & (pipe_output == index)
            m.d.comb += eligible[index].eq(active & (out_fifo.level + in_flight < OUTPUT_FIFO_DEPTH))

            # Load the next frame of this output.
            head = Signal(completion.shape())
            m.d.comb += head.eq(queue.r_data)
            with m.If(~active & queue.r_rdy):
                m.d.comb += queue.r_en.eq(1)
                m.d.sync += [active.eq(1), slot.eq(head.slot), position.eq(head.start), end.eq(head.end),
                             length.eq(head.end - head.start), info.eq(head.info), first.eq(1)]

            remaining = end - position
            is_last = remaining <= WORD_BYTES
            with m.If(reader_issue & (chosen == index)):
                m.d.comb += [
                    issue_address.eq(byte_address(slot, position)),
                    issue_word.bytes.eq(Mux(is_last, remaining, WORD_BYTES)),
                    issue_word.first.eq(first),
                    issue_word.last.eq(is_last),
                    issue_word.length.eq(length),
                    issue_word.info.eq(info),
                ]
                m.d.sync += [position.eq(position + WORD_BYTES), first.eq(0)]
                with m.If(is_last):
                    # The slot's last read is issued now: its bytes are out before anyone can rewrite them.
                    m.d.sync += active.eq(0)
                    m.d.comb += release_reader.eq(1 << slot)

            # Read data arrive a cycle after the issue.
            m.d.comb += [
                out_fifo.w_en.eq(pipe_output_valid & (pipe_output == index)),
                out_fifo.w_data.eq(Cat(read_value, pipe_word.as_value()[64:])),
                self.output[index].valid.eq(out_fifo.r_rdy),
                self.output[index].payload.eq(out_fifo.r_data),
                out_fifo.r_en.eq(self.output[index].ready),
            ]

        released = release_receive | release_complete
        for release_reader in release_readers:
            released = released | release_reader
        m.d.sync += free.eq((free & ~allocate) | released)

        # Round robin: the first eligible output after the one served last.
        with m.Switch(last_served):
            for last in range(self.outputs):
                with m.Case(last):
                    order = [(last + 1 + step) % self.outputs for step in range(self.outputs)]
                    for position, candidate in enumerate(order):
                        condition = eligible[candidate]
                        for earlier in order[:position]:
                            condition = condition & ~eligible[earlier]
                        with m.If(condition):
                            m.d.comb += [chosen.eq(candidate), chosen_valid.eq(1)]
        with m.If(reader_issue):
            m.d.sync += last_served.eq(chosen)

        # -- the read port's user this cycle, and the pipeline register for its data -------------------------
        with m.If(core_reads):
            m.d.comb += read_address.eq(core_address)
        with m.Else():
            m.d.comb += read_address.eq(issue_address)
        m.d.sync += [
            pipe_core.eq(core_reads),
            pipe_output_valid.eq(reader_issue),
            pipe_output.eq(chosen),
            pipe_word.eq(issue_word),
        ]
        return m


# -- the software model ----------------------------------------------------------------------------------

@dataclass
class ModelCounters:
    stored: int = 0
    dropped_full: int = 0
    dropped_too_long: int = 0


class PacketBufferModel:
    """The naive reference of `PacketBuffer`: slots as bytearrays, the set of free slots, output lists.

    The hardware picks the slots; the model checks that each one it picks is free (`store`), mirrors the
    core's accesses (`read`, `write`) and the completions (`complete`), and collects what each output
    must send, as (bytes, info) per frame, in order. A frame is written in whole 8-byte words, as the
    hardware does (the receive side sends zeros in the lanes past a frame's end).
    """

    def __init__(self, *, slots: int = 16, slot_size: int = DEFAULT_SLOT_SIZE, tailroom: int = DEFAULT_TAILROOM,
                 ports: int = 2, outputs: int = 3):
        self.slot_size = slot_size
        self.max_frame_bytes = slot_size - HEADROOM - tailroom
        self.memory = [bytearray(slot_size) for _ in range(slots)]
        self.free = set(range(slots))
        self.outputs: list[list[tuple[bytes, int]]] = [[] for _ in range(outputs)]
        self.counters = [ModelCounters() for _ in range(ports)]

    def store(self, slot: int, frame: bytes, port: int) -> None:
        if slot not in self.free:
            raise AssertionError(f"the buffer stored a frame in slot {slot}, which holds another frame")
        if len(frame) > self.max_frame_bytes:
            raise AssertionError(f"the buffer stored a {len(frame)}-byte frame; slots hold {self.max_frame_bytes}")
        self.free.discard(slot)
        padded = frame + bytes(-len(frame) % WORD_BYTES)
        self.memory[slot][HEADROOM:HEADROOM + len(padded)] = padded
        self.counters[port].stored += 1

    def read(self, slot: int, offset: int, size: int) -> int:
        return int.from_bytes(self.memory[slot][offset:offset + size], "little")

    def write(self, slot: int, offset: int, size: int, value: int) -> None:
        self.memory[slot][offset:offset + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")

    def complete(self, slot: int, *, drop: bool, output: int = 0, start: int = 0, end: int = 0,
                 info: int = 0) -> None:
        if slot in self.free:
            raise AssertionError(f"completion of slot {slot}, which holds no frame")
        if not drop and end > start and output < len(self.outputs):
            self.outputs[output].append((bytes(self.memory[slot][start:end]), info))
        self.free.add(slot)
