"""The region table of the core: the size and permission of each region a pointer can name.

Ref: the project's pointer map (sw/memory.py; docs/architecture.md "Pointer map"). A pointer is
`tag << 32 | offset`; the table tells, for a tag, whether the region exists, its size in bytes and whether
it may be written. The host sets the descriptors of the context, packet and input regions and of the
value memories of maps 0..map_slots-1 (tags 0x80 + n) before a start; the stack region (tag 3, all call
frames, isa.STACK_SIZE * isa.MAX_CALL_FRAMES bytes, writable) is fixed. Tag 0 (null) and the map handles
(tag 5) never name memory. Writes of descriptors for other tags are ignored; the driver checks them.

A region with a load hook in the golden VM (the XDP context) is given here as read-only (the VM refuses
stores to it too) and `computed`: its loads take the memory system's 64-bit value (interfaces.py).
"""

from amaranth import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from bpfnic.sw import memory

from .interfaces import RegionWrite

#: Tags whose descriptor the host sets, besides the map values.
HOST_TAGS = (memory.TAG_CONTEXT, memory.TAG_PACKET, memory.TAG_INPUT)

Descriptor = data.StructLayout({"present": 1, "size": 32, "writable": 1, "computed": 1})


class RegionLookup(wiring.Signature):
    """A combinational lookup, seen from the unit that asks."""

    def __init__(self):
        super().__init__({
            "tag": Out(8),
            "present": In(1),
            "size": In(33),
            "writable": In(1),
            "computed": In(1),
        })


class RegionTable(wiring.Component):
    def __init__(self, map_slots: int = 16):
        if not 0 <= map_slots <= memory.MAX_MAPS:
            raise ValueError(f"RegionTable: map_slots must be 0..{memory.MAX_MAPS}, not {map_slots}")
        self.map_slots = map_slots
        super().__init__({
            "write": In(stream.Signature(RegionWrite, always_ready=True)),
            "lookup": In(RegionLookup()),
            "map_present": Out(max(map_slots, 1)),   # for lddw of a map or map value
        })

    def tags(self) -> list[int]:
        """Every tag the host may describe."""
        return list(HOST_TAGS) + [memory.TAG_MAP_VALUE_BASE + n for n in range(self.map_slots)]

    def elaborate(self, platform):
        m = Module()
        descriptors = {tag: Signal(Descriptor, name=f"region_{tag:02x}") for tag in self.tags()}

        with m.If(self.write.valid):
            with m.Switch(self.write.payload.tag):
                for tag, descriptor in descriptors.items():
                    with m.Case(tag):
                        m.d.sync += [
                            descriptor.present.eq(self.write.payload.present),
                            descriptor.size.eq(self.write.payload.size),
                            descriptor.writable.eq(self.write.payload.writable),
                            descriptor.computed.eq(self.write.payload.computed),
                        ]

        lookup = self.lookup
        with m.Switch(lookup.tag):
            with m.Case(memory.TAG_STACK):
                m.d.comb += [lookup.present.eq(1), lookup.size.eq(memory.STACK_REGION_SIZE),
                             lookup.writable.eq(1)]
            for tag, descriptor in descriptors.items():
                with m.Case(tag):
                    m.d.comb += [lookup.present.eq(descriptor.present), lookup.size.eq(descriptor.size),
                                 lookup.writable.eq(descriptor.writable), lookup.computed.eq(descriptor.computed)]
        for n in range(self.map_slots):
            m.d.comb += self.map_present[n].eq(descriptors[memory.TAG_MAP_VALUE_BASE + n].present)
        return m
