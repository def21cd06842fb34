"""Longest-prefix-match maps in hardware (BPF_MAP_TYPE_LPM_TRIE) as a parallel-compare table.

Ref: kernel/bpf/lpm_trie.c (trie_lookup_elem, trie_update_elem, trie_delete_elem) and
docs.kernel.org/bpf/map_lpm_trie.html, as modelled by sw/maps.py (LpmTrieMap: return codes and their order,
-ENOSPC when full, keys kept as last written); the ports are described in map_config.py. The key is struct
bpf_lpm_trie_key_u8: a u32 prefixlen (little-endian) then the data bytes, most significant bit first.

The table has max_entries entries, each {valid, prefixlen, mask, data}: entry s holds the prefix whose value
lives in slot s, and slots come from map_hash.SlotPool exactly as sw/maps.py hands them out, so lookup offsets
are the model's. `mask` (the prefixlen's leading bits set) is computed once, when the entry is written. The
entries sit in one memory of rows of `lpm_lanes` entries; a search reads one row a cycle and compares all its
lanes in parallel with the key (masked XOR), keeping the longest match in a small reduction tree, so a lookup
takes max_entries / lanes + a few cycles (lanes = max_entries: every entry compared at once, a TCAM). Update
and delete search the same way for the exact prefix (same prefixlen, same leading bits).
"""

from __future__ import annotations

import errno

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory, MemoryData
from amaranth.lib.wiring import In

from bpfnic.sw import maps

from .map_array import BlockKind, CommandFrontEnd, CpuSelect, ValueMemory, block_op_layout, block_states, \
    connect_staging
from .map_config import MapOp, MapSlotConfig, ValuePort
from .map_hash import SlotPool


def prefix_mask(prefixlen, data_size: int):
    """The mask of a prefix over the data bytes as they lie in the key (byte j in bits 8j..8j+7, its most
    significant bit first in prefix order)."""
    bits = []
    for byte in range(data_size):
        for bit in range(8):
            bits.append(prefixlen > 8 * byte + 7 - bit)
    return Cat(*bits)


class LpmMapUnit(wiring.Component):
    """BPF_MAP_TYPE_LPM_TRIE (see the module docstring). Memories: the entry table (max_entries / lanes rows,
    one read port, one write port with a per-lane enable), the free-slot stack, the value memory and staging.

    READ_ENTRY (host): entry position = slot, index < max_entries; found says it holds a prefix, whose key
    (prefixlen and data as last written) comes back in `key`."""

    def __init__(self, config: MapSlotConfig, value_buffer_words: int):
        if config.kind != "lpm":
            raise ValueError(f"LpmMapUnit: {config.label} is not an LPM trie")
        self.config = config
        self.data_size = config.key_size - maps.LPM_PREFIXLEN_SIZE
        self.max_prefixlen = 8 * self.data_size
        self.lanes = config.lpm_lanes
        self.rows = -(-config.max_entries // self.lanes)
        self.entry_layout = data.StructLayout({
            "valid": 1,
            "prefixlen": range(self.max_prefixlen + 1),
            "mask": self.max_prefixlen,
            "data": self.max_prefixlen,
        })
        self.row_layout = data.ArrayLayout(self.entry_layout, self.lanes)
        super().__init__({
            "program": In(config.client_port(value_buffer_words)),
            "host": In(config.host_port()),
            "value": In(ValuePort()),
        })
        self.values = ValueMemory(value_size=config.value_size, entries=config.max_entries, copies=1,
                                  ncpus=config.ncpus, program_words=value_buffer_words)
        self.value_data = self.values.value_data
        self.table_data = MemoryData(shape=self.row_layout, depth=self.rows, init=[])
        self.pool = SlotPool(config.max_entries)

    def elaborate(self, platform):
        m = Module()
        config = self.config
        lanes, rows = self.lanes, self.rows
        lane_bits = (lanes - 1).bit_length()
        count = config.max_entries
        m.submodules.values = values = self.values
        m.submodules.pool = pool = self.pool
        connect_staging(m, self, values)
        front = CommandFrontEnd(self, config.key_size, config.ncpus)

        m.submodules.table = table = Memory(data=self.table_data)
        read = table.read_port()
        write = table.write_port(granularity=1)

        key_prefixlen = front.key[0:32]
        key_data = front.key[32:]
        prefixlen_ok = key_prefixlen <= self.max_prefixlen
        exact = Signal()                          # search for the exact prefix (update, delete)

        # -- the search: one row a cycle --------------------------------------------------------------------
        issued = Signal(range(rows + 1))          # rows whose read was issued
        arriving = Signal()                       # the row read last cycle is on the read port now
        arriving_row = Signal(range(rows))
        best_found = Signal()
        best_prefixlen = Signal(range(self.max_prefixlen + 1))
        best_slot = Signal(range(count))

        candidates = []
        for lane in range(lanes):
            entry = read.data[lane]
            same_bits = ((entry.data ^ key_data) & entry.mask) == 0
            longest = entry.valid & (entry.prefixlen <= key_prefixlen) & same_bits
            exactly = entry.valid & (entry.prefixlen == key_prefixlen) & same_bits
            candidates.append((Mux(exact, exactly, longest), entry.prefixlen, lane))
        level = 0
        while len(candidates) > 1:                # pairwise: keep the longer match
            merged = []
            for (found_a, length_a, lane_a), (found_b, length_b, lane_b) in zip(candidates[::2], candidates[1::2]):
                take_b = found_b & (~found_a | (length_b > length_a))
                found = Signal(name=f"found_{level}_{len(merged)}")
                length = Signal(range(self.max_prefixlen + 1), name=f"length_{level}_{len(merged)}")
                lane = Signal(range(lanes), name=f"lane_{level}_{len(merged)}")
                m.d.comb += [found.eq(found_a | found_b), length.eq(Mux(take_b, length_b, length_a)),
                             lane.eq(Mux(take_b, lane_b, lane_a))]
                merged.append((found, length, lane))
            candidates = merged
            level += 1
        row_found, row_prefixlen, row_lane = candidates[0]
        row_slot = Cat(row_lane, arriving_row)[0:max(1, (count - 1).bit_length())] if lane_bits else arriving_row

        # -- the table entry of `slot` ------------------------------------------------------------------------
        slot = Signal(range(count))
        slot_row = slot[lane_bits:] if lane_bits else slot
        slot_lane = slot[0:lane_bits] if lane_bits else 0

        def write_entry(valid):
            m.d.comb += [write.addr.eq(slot_row), write.en.eq(1 << slot_lane)]
            for lane in range(lanes):
                m.d.comb += [write.data[lane].valid.eq(valid), write.data[lane].prefixlen.eq(key_prefixlen),
                             write.data[lane].mask.eq(prefix_mask(key_prefixlen, self.data_size)),
                             write.data[lane].data.eq(key_data)]

        block = Signal(block_op_layout(config.ncpus))
        stride = config.value_stride
        frozen = Signal(init=int(config.frozen))
        host_refuses_writes = frozen | int(config.host_readonly)
        flags = front.flags

        with m.FSM():
            front.idle_state(m, "CHECK")

            with m.State("CHECK"):                # the refusals that need no search
                m.d.sync += [issued.eq(0), arriving.eq(0), best_found.eq(0), best_prefixlen.eq(0),
                             exact.eq(front.op != MapOp.LOOKUP)]
                with m.Switch(front.op):
                    with m.Case(MapOp.LOOKUP):
                        if config.host_writeonly:
                            with m.If(front.from_host):
                                front.answer(m, errno.EPERM)
                            with m.Elif(~prefixlen_ok):
                                front.answer(m, 0, found=0)
                            with m.Else():
                                m.next = "SEARCH"
                        else:
                            with m.If(~prefixlen_ok):
                                front.answer(m, Mux(front.from_host, -errno.ENOENT, 0), found=0)
                            with m.Else():
                                m.next = "SEARCH"
                    with m.Case(MapOp.UPDATE):
                        with m.If(front.from_host & host_refuses_writes):
                            front.answer(m, errno.EPERM)
                        with m.Elif((flags > maps.BPF_EXIST) | ~prefixlen_ok):
                            front.answer(m, errno.EINVAL)
                        with m.Else():
                            m.next = "SEARCH"
                    with m.Case(MapOp.DELETE):
                        with m.If(front.from_host & host_refuses_writes):
                            front.answer(m, errno.EPERM)
                        with m.Elif(~prefixlen_ok):
                            front.answer(m, errno.EINVAL)
                        with m.Else():
                            m.next = "SEARCH"
                    with m.Case(MapOp.READ_ENTRY):
                        m.d.sync += slot.eq(front.index)
                        m.next = "ENTRY_READ"
                    with m.Case(MapOp.FREEZE):
                        with m.If(host_refuses_writes):
                            front.answer(m, errno.EPERM)
                        with m.Else():
                            m.d.sync += frozen.eq(1)
                            front.answer(m, 0)

            with m.State("SEARCH"):
                m.d.comb += read.addr.eq(issued)
                with m.If(issued != rows):
                    m.d.sync += [issued.eq(issued + 1), arriving.eq(1), arriving_row.eq(issued)]
                with m.Else():
                    m.d.sync += arriving.eq(0)
                    with m.If(~arriving):
                        m.next = "DECIDE"
                with m.If(arriving & row_found & (~best_found | (row_prefixlen > best_prefixlen))):
                    m.d.sync += [best_found.eq(1), best_prefixlen.eq(row_prefixlen), best_slot.eq(row_slot)]

            with m.State("DECIDE"):
                offset = best_slot * stride
                with m.Switch(front.op):
                    with m.Case(MapOp.LOOKUP):
                        with m.If(~best_found):
                            front.answer(m, Mux(front.from_host, -errno.ENOENT, 0), found=0)
                        with m.Elif(front.from_host):
                            m.d.sync += [block.kind.eq(BlockKind.COPY_OUT), block.cpus.eq(CpuSelect.ALL),
                                         block.slot_offset.eq(offset), front.result.found.eq(1)]
                            m.next = "BLOCK"
                        with m.Else():
                            front.answer(m, 0, found=1, offset=offset)
                    with m.Case(MapOp.UPDATE):
                        with m.If(best_found & (flags == maps.BPF_NOEXIST)):
                            front.answer(m, errno.EEXIST)
                        with m.Elif(~best_found & (flags == maps.BPF_EXIST)):
                            front.answer(m, errno.ENOENT)
                        with m.Elif(best_found):
                            m.d.sync += slot.eq(best_slot)
                            m.next = "WRITE_ENTRY"
                        with m.Elif(~pool.ready):
                            pass                   # wait for the free list's top
                        with m.Elif(~pool.available):
                            front.answer(m, errno.ENOSPC)
                        with m.Else():
                            m.d.comb += pool.take.eq(1)
                            m.d.sync += slot.eq(pool.slot)
                            m.next = "WRITE_ENTRY"
                    with m.Case(MapOp.DELETE):
                        with m.If(~best_found):
                            front.answer(m, errno.ENOENT)
                        with m.Else():
                            m.d.sync += slot.eq(best_slot)
                            m.next = "CLEAR_ENTRY"

            with m.State("WRITE_ENTRY"):          # the key as written, and its value
                write_entry(1)
                m.d.sync += [block.kind.eq(BlockKind.COPY_IN), block.from_host.eq(front.from_host),
                             block.cpus.eq(CpuSelect.ONE), block.cpu.eq(0), block.slot_offset.eq(slot * stride)]
                m.next = "BLOCK"

            with m.State("CLEAR_ENTRY"):
                with m.If(pool.ready):
                    write_entry(0)
                    m.d.comb += [pool.give.eq(1), pool.give_slot.eq(slot)]
                    front.answer(m, 0)

            block_states(m, values, block, then="DONE")
            with m.State("DONE"):
                front.answer(m, 0)

            with m.State("ENTRY_READ"):
                m.d.comb += read.addr.eq(slot_row)
                m.next = "ENTRY_ANSWER"
            with m.State("ENTRY_ANSWER"):
                entry = Signal(self.entry_layout)
                m.d.comb += entry.eq(read.data[slot_lane])
                found = entry.valid & (front.index < count)
                front.answer(m, 0, found=found,
                             key=Mux(found, Cat(entry.prefixlen, Const(0, 32 - len(entry.prefixlen)), entry.data),
                                     0))
            front.answer_state(m)
        return m
