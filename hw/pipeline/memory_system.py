"""The memory system of one core: the data port decoder, the XDP context of the frame being processed, and
the stack.

Ref: sw/memory.py (the pointer map: a pointer is tag << 32 | offset; CONTEXT 1, PACKET 2, STACK 3, map n's
values 0x80 + n); include/uapi/linux/bpf.h (struct xdp_md: data, data_end, data_meta, ingress_ifindex,
rx_queue_index, egress_ifindex, six u32 fields); sw/xdp.py (`XdpSession._load_context`: the three pointer
fields read as packet pointers on 4-byte loads); hw/core/interfaces.py (the data port protocol, and the
`computed` regions whose loads take all 64 bits of the response).

Initiators: the core's data port (`core`) and the helper unit's memory port (`helper`: map keys and values
on the stack, in the packet or in a map). Both speak the data port protocol. Targets, by the pointer's tag:

  CONTEXT (1)   answered here, a cycle later, from the context registers: a 4-byte load at offset 0, 4 or 8
                gives the 64-bit packet pointer (tag 2) of data, data_end or data_meta; any other load gives
                the bytes of the 24-byte struct, cut to the access size (the region is `computed`, so the
                core takes the response as it is). The golden VM refuses the misaligned or 8-byte forms;
                the hardware answers them with the raw offsets (the verifier refuses such programs; the
                core's bounds check still keeps them inside the 24 bytes). Stores are ignored (read-only).
  PACKET (2)    the packet buffer's access port, in the slot of the frame being processed.
  STACK (3)     a block RAM of STACK_REGION_SIZE (4096) bytes here (the core keeps no stack of its own),
                answered a cycle later. It is not cleared between frames (256 cycles a frame; the kernel does
                not clear it either); only unverified programs can read what an earlier frame left there.
  0x80 + n      map n's value port (`map<n>`, the map units' `ValuePort`), offset = the pointer's offset.
  anything else no memory: reads answer 0, writes are ignored (the core's region check keeps it from
                asking; a helper given a bad pointer must not hang the NIC).

Order: reads are answered in request order per initiator. Reads may be outstanding (up to MAX_PENDING) to
one target and one initiator at a time; a read to another target, or from the other initiator, waits until
they are answered. Writes never wait for reads (no write is answered, and each target keeps its own order).
The core has priority over the helper unit.

Context registers. `frame` loads them when the dispatcher hands a frame to the core (slot, data, data_end,
data_meta as offsets in the slot; ingress ifindex; queue). `adjust` replaces data, data_end and data_meta
(the helper unit's xdp_adjust_head/_tail/_meta, with sw/xdp.py's limits checked there); `context` shows the
current values (the dispatcher reads the final [data, data_end) when the program exits). Every load and
every adjust of data_end rewrites the core's PACKET region descriptor (size = data_end, as in sw/xdp.py, so
a load past the packet's end traps), in the same cycle when the core's port takes it; the CONTEXT descriptor
(24 bytes, read-only, computed) is written once after reset (a host write to tag 1 through the CSR would
replace it: the driver never makes one). Both go on the `regions` stream, to the core's region table, which
must favour it over the host's writes. `settled` is high when no descriptor write is pending: the dispatcher
starts the core only then (from the cycle after it loaded the context).
"""

from __future__ import annotations

from typing import Sequence

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from bpfnic.sw import memory, xdp

from bpfnic.hw.core.interfaces import DataPort, RegionWrite
from .map_config import ValuePort
from .packet_buffer import OFFSET_WIDTH, PacketAccessPort, TwoBankMemory

MAX_PENDING = 3

PacketPointers = data.StructLayout({
    "data": unsigned(OFFSET_WIDTH),
    "data_end": unsigned(OFFSET_WIDTH),
    "data_meta": unsigned(OFFSET_WIDTH),
})


def frame_context_layout(slot_bits: int) -> data.StructLayout:
    return data.StructLayout({
        "slot": unsigned(slot_bits),
        "pointers": PacketPointers,
        "ingress_ifindex": unsigned(32),
        "rx_queue_index": unsigned(32),
    })


class MemorySystem(wiring.Component):
    """See the module docstring. `slot_bits`: width of a packet buffer slot number; `map_values[n]`: whether
    map n has a value memory (its port is the member `map<n>`; a program array has none, and its tag is then
    no memory)."""

    def __init__(self, *, slot_bits: int, map_values: Sequence[bool] = ()):
        self.slot_bits = slot_bits
        self.map_values = list(map_values)
        self.map_count = len(self.map_values)
        members = {
            "core": In(DataPort()),
            "helper": In(DataPort()),
            "packet": Out(PacketAccessPort(slot_bits)),
            "frame": In(stream.Signature(frame_context_layout(slot_bits), always_ready=True)),
            "adjust": In(stream.Signature(PacketPointers, always_ready=True)),
            "context": Out(frame_context_layout(slot_bits)),
            "regions": Out(stream.Signature(RegionWrite)),
            "settled": Out(1),
        }
        for index, has_values in enumerate(self.map_values):
            if has_values:
                members[f"map{index}"] = Out(ValuePort())
        super().__init__(members)

    def map_port(self, index: int):
        """The value port of map `index` (None for a map without a value memory)."""
        return getattr(self, f"map{index}", None)

    def elaborate(self, platform):
        m = Module()

        # -- context registers and the core's descriptors of CONTEXT and PACKET ----------------------------
        context = self.context
        context_region_written = Signal()    # the CONTEXT descriptor is the same for every frame: once
        write_packet_region = Signal()       # a PACKET descriptor write the core's port did not take yet
        regions = self.regions

        def offer_packet_region(data_end):
            m.d.comb += [
                regions.valid.eq(1),
                regions.payload.tag.eq(memory.TAG_PACKET),
                regions.payload.size.eq(data_end),
                regions.payload.writable.eq(1),
                regions.payload.present.eq(1),
            ]
            m.d.sync += write_packet_region.eq(~regions.ready)

        # A new frame's or an adjust's PACKET descriptor goes out in the same cycle, from the new data_end.
        with m.If(self.frame.valid):
            m.d.sync += context.eq(self.frame.payload)
            offer_packet_region(self.frame.payload.pointers.data_end)
        with m.Elif(self.adjust.valid):
            m.d.sync += context.pointers.eq(self.adjust.payload)
            with m.If(self.adjust.payload.data_end != context.pointers.data_end):
                offer_packet_region(self.adjust.payload.data_end)
        with m.Elif(write_packet_region):
            offer_packet_region(context.pointers.data_end)
        with m.Elif(~context_region_written):
            m.d.comb += [
                regions.valid.eq(1),
                regions.payload.tag.eq(memory.TAG_CONTEXT),
                regions.payload.size.eq(xdp.XDP_MD_SIZE),
                regions.payload.computed.eq(1),
                regions.payload.present.eq(1),
            ]
            with m.If(regions.ready):
                m.d.sync += context_region_written.eq(1)
        write_context_region = ~context_region_written
        m.d.comb += self.settled.eq(~write_context_region & ~write_packet_region)

        # -- choosing a request ---------------------------------------------------------------------------
        initiators = [self.core, self.helper]
        chosen = Signal(range(2))                 # 0 = core, 1 = helper
        m.d.comb += chosen.eq(~self.core.request.valid)
        request = Signal(self.core.request.payload.shape())
        request_valid = Signal()
        m.d.comb += [
            request.eq(Mux(chosen, self.helper.request.payload, self.core.request.payload)),
            request_valid.eq(self.core.request.valid | self.helper.request.valid),
        ]
        tag = request.address[memory.REGION_SHIFT:memory.REGION_SHIFT + 8]
        offset = request.address[:memory.REGION_SHIFT]

        target_context, target_packet, target_stack, target_none = 0, 1, 2, 3
        first_map_target = 4
        target_count = first_map_target + self.map_count
        target = Signal(range(target_count))
        with m.Switch(tag):
            with m.Case(memory.TAG_CONTEXT):
                m.d.comb += target.eq(target_context)
            with m.Case(memory.TAG_PACKET):
                m.d.comb += target.eq(target_packet)
            with m.Case(memory.TAG_STACK):
                m.d.comb += target.eq(target_stack)
            for index in range(self.map_count):
                if self.map_values[index]:
                    with m.Case(memory.TAG_MAP_VALUE_BASE + index):
                        m.d.comb += target.eq(first_map_target + index)
            with m.Default():
                m.d.comb += target.eq(target_none)

        # -- read order -----------------------------------------------------------------------------------
        pending = Signal(range(MAX_PENDING + 1))
        pending_owner = Signal(range(2))
        pending_target = Signal(range(target_count))
        may_go = request.write | (pending == 0) | (
            (pending_owner == chosen) & (pending_target == target) & (pending < MAX_PENDING))

        target_ready = Signal()
        accepted = Signal()
        m.d.comb += accepted.eq(request_valid & may_go & target_ready)
        for index, initiator in enumerate(initiators):
            m.d.comb += initiator.request.ready.eq(accepted & (chosen == index))

        # -- the targets ----------------------------------------------------------------------------------
        local_response = Signal()                 # context and no-memory reads, answered here
        local_data = Signal(64)
        size_mask = Signal(64)
        with m.Switch(request.size):
            for size_log2 in range(4):
                with m.Case(size_log2):
                    m.d.comb += size_mask.eq((1 << (8 << size_log2)) - 1)

        pointers = context.pointers
        context_image = Cat(pointers.data, Const(0, 32 - OFFSET_WIDTH),
                            pointers.data_end, Const(0, 32 - OFFSET_WIDTH),
                            pointers.data_meta, Const(0, 32 - OFFSET_WIDTH),
                            context.ingress_ifindex, context.rx_queue_index, Const(0, 32 + 64))
        context_bytes = Signal(64)
        context_value = Signal(64)
        m.d.comb += context_bytes.eq((context_image >> (offset[:5] * 8))[:64] & size_mask)
        field_pointer = Signal(OFFSET_WIDTH)
        is_pointer_field = Signal()
        with m.If(request.size == 2):
            with m.Switch(offset):
                for field_offset, field in ((0, pointers.data), (4, pointers.data_end), (8, pointers.data_meta)):
                    with m.Case(field_offset):
                        m.d.comb += [field_pointer.eq(field), is_pointer_field.eq(1)]
        m.d.comb += context_value.eq(Mux(is_pointer_field, memory.make_pointer(memory.TAG_PACKET, 0) | field_pointer,
                                         context_bytes))

        m.submodules.stack = stack = TwoBankMemory(memory.STACK_REGION_SIZE)
        stack_response = Signal()
        stack_offset = offset[:(memory.STACK_REGION_SIZE - 1).bit_length()]
        m.d.comb += [
            stack.write_address.eq(stack_offset),
            stack.read_address.eq(stack_offset),
            stack.write_data.eq(request.data),
            stack.write_size.eq(request.size),
        ]

        packet_request = self.packet.request
        m.d.comb += [
            packet_request.payload.slot.eq(context.slot),
            packet_request.payload.offset.eq(offset),
            packet_request.payload.size.eq(request.size),
            packet_request.payload.write.eq(request.write),
            packet_request.payload.data.eq(request.data),
        ]
        map_ports = {index: self.map_port(index) for index in range(self.map_count) if self.map_values[index]}
        for port in map_ports.values():
            m.d.comb += [
                port.request.payload.offset.eq(offset),
                port.request.payload.size.eq(request.size),
                port.request.payload.write.eq(request.write),
                port.request.payload.data.eq(request.data),
            ]

        go = request_valid & may_go
        with m.Switch(target):
            with m.Case(target_context, target_none):
                m.d.comb += target_ready.eq(1)
            with m.Case(target_packet):
                m.d.comb += [packet_request.valid.eq(go), target_ready.eq(packet_request.ready)]
            with m.Case(target_stack):
                m.d.comb += [target_ready.eq(1), stack.write_valid.eq(go & request.write)]
            for index, port in map_ports.items():
                with m.Case(first_map_target + index):
                    m.d.comb += [port.request.valid.eq(go), target_ready.eq(port.request.ready)]

        reads = accepted & ~request.write
        m.d.sync += [
            local_response.eq(reads & ((target == target_context) | (target == target_none))),
            local_data.eq(Mux(target == target_context, context_value, 0)),
            stack_response.eq(reads & (target == target_stack)),
        ]

        # -- responses, back to the initiator that owns the reads ------------------------------------------
        response_valid = Signal()
        response_data = Signal(64)
        m.d.comb += [
            response_valid.eq(local_response | stack_response | self.packet.response.valid),
            response_data.eq(Mux(local_response, local_data,
                                 Mux(stack_response, stack.read_data, self.packet.response.payload))),
        ]
        for port in map_ports.values():
            with m.If(port.response.valid):
                m.d.comb += [response_valid.eq(1), response_data.eq(port.response.payload)]
        for index, initiator in enumerate(initiators):
            m.d.comb += [
                initiator.response.valid.eq(response_valid & (pending_owner == index)),
                initiator.response.payload.eq(response_data),
            ]

        m.d.sync += pending.eq(pending + reads - response_valid)
        with m.If(reads):
            m.d.sync += [pending_owner.eq(chosen), pending_target.eq(target)]
        return m


class MemorySystemModel:
    """The naive reference: the same routing over byte arrays (the map value memories and the packet slot
    are bytearrays given by the test), the context struct computed as sw/xdp.py does."""

    def __init__(self, packet: bytearray, map_values: list[bytearray]):
        self.packet = packet
        self.maps = map_values
        self.stack = bytearray(memory.STACK_REGION_SIZE)
        self.data = self.data_end = self.data_meta = xdp.XDP_PACKET_HEADROOM
        self.ingress_ifindex = 1
        self.rx_queue_index = 0

    def _memory(self, tag: int) -> bytearray | None:
        if tag == memory.TAG_PACKET:
            return self.packet
        if tag == memory.TAG_STACK:
            return self.stack
        if memory.TAG_MAP_VALUE_BASE <= tag < memory.TAG_MAP_VALUE_BASE + len(self.maps):
            return self.maps[tag - memory.TAG_MAP_VALUE_BASE]
        return None

    def read(self, address: int, size: int) -> int:
        tag, offset = address >> memory.REGION_SHIFT, address & memory.OFFSET_MASK
        if tag == memory.TAG_CONTEXT:
            pointers = {0: self.data, 4: self.data_end, 8: self.data_meta}
            if size == 4 and offset in pointers:
                return memory.make_pointer(memory.TAG_PACKET, pointers[offset])
            image = b"".join(value.to_bytes(4, "little") for value in (
                self.data, self.data_end, self.data_meta, self.ingress_ifindex, self.rx_queue_index, 0)) + bytes(8)
            return int.from_bytes(image[offset:offset + size], "little")
        target = self._memory(tag)
        if target is None:
            return 0
        return int.from_bytes(target[offset:offset + size], "little")

    def write(self, address: int, size: int, value: int) -> None:
        tag, offset = address >> memory.REGION_SHIFT, address & memory.OFFSET_MASK
        target = self._memory(tag)
        if target is not None:
            target[offset:offset + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
