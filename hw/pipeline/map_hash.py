"""Hash maps in hardware: BPF_MAP_TYPE_HASH, PERCPU_HASH, LRU_HASH and LRU_PERCPU_HASH.

Ref: kernel/bpf/hashtab.c (htab_map_lookup_elem, htab_map_update_elem, htab_lru_map_update_elem,
htab_map_delete_elem) as modelled by sw/maps.py (HashMap and its subclasses: return codes and their order,
slot reuse, exact LRU order); the ports are described in map_config.py. Hashing: IEEE 802.3 clause 3.2.9
CRC-32 and RFC 3720 appendix B.4 CRC-32C (Castagnoli), both as a fixed XOR network over the key bits.

Organisation (2-left hashing, Vöcking 2003): two tables of `hash_buckets` buckets of `hash_ways` entries
(valid, full key, slot). A key may live in bucket CRC-32(key) of table 0 or bucket CRC-32C(key) of table 1;
a lookup reads both buckets in the same cycle (one block RAM each) and compares the key against every way in
parallel. A new key goes to the less occupied of its two buckets (table 0 on a tie), into the lowest free
way. Each table has max_entries / ways buckets or more, so the tables have room for twice max_entries keys;
with two choices a bucket overflows only with a vanishing probability for random keys.

Values live in slots of the value memory (map_array.ValueMemory), handed out by `SlotPool` exactly as
sw/maps.py's pool does (fresh slots in order, the last freed slot first), so a lookup's offset is the
model's. Updating an existing key writes its slot in place, as the model does.

Where the unit differs from sw/maps.py (and `HashUnitModel` says so exactly, for the tests):
- A new key whose two buckets are both full is refused with -E2BIG by HASH/PERCPU_HASH even if the map has
  free slots. The CRC is not a keyed hash: chosen keys can collide on purpose; the worst they can do is this
  refusal (or, for LRU maps, the eviction below).
- LRU maps keep the model's exact recency order in a doubly linked list over the slots (program lookups and
  successful updates move an entry to the tail; host lookups do not). When no slot is free the head (least
  recently used) is evicted, as the model does. When both buckets of a new key are full, the least recently
  used entry among those two buckets is evicted instead (found by walking the list from its head), and the new
  key takes its slot: the model's result with that entry deleted first.
"""

from __future__ import annotations

import copy
import errno
import zlib

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.memory import Memory, MemoryData
from amaranth.lib.wiring import In, Out

from bpfnic.sw import maps

from .map_array import (BlockKind, CommandFrontEnd, CpuSelect, ValueMemory, block_op_layout, block_states,
                        connect_staging)
from .map_config import MapOp, MapSlotConfig, ValuePort

# -- the hash functions -------------------------------------------------------------------------------------
_CRC32C_TABLE = []
for _byte in range(256):
    _value = _byte
    for _ in range(8):
        _value = (_value >> 1) ^ (0x82F63B78 if _value & 1 else 0)
    _CRC32C_TABLE.append(_value)


def crc32c(data_bytes: bytes) -> int:
    """CRC-32C (Castagnoli, reflected, init and final xor 0xFFFFFFFF), as iSCSI computes it."""
    value = 0xFFFFFFFF
    for byte in data_bytes:
        value = (value >> 8) ^ _CRC32C_TABLE[(value ^ byte) & 0xFF]
    return value ^ 0xFFFFFFFF


HASH_FUNCTIONS = (zlib.crc32, crc32c)   # table 0, table 1


def bucket_of(table: int, key: bytes, buckets: int) -> int:
    """The bucket of `key` in `table`: the low bits of its CRC (the hardware's function, for models)."""
    return HASH_FUNCTIONS[table](bytes(key)) & (buckets - 1)


def hash_network(table: int, key_size: int, bits: int) -> list[tuple[list[int], int]]:
    """For each of the low `bits` bits of the table's CRC over a `key_size`-byte key: the key bits (bit 8j+b is
    bit b of byte j) whose XOR, with the constant, gives it. CRCs are affine over GF(2), so this is exact."""
    function = HASH_FUNCTIONS[table]
    base = function(bytes(key_size))
    columns = []
    for position in range(8 * key_size):
        unit = bytearray(key_size)
        unit[position // 8] = 1 << (position % 8)
        columns.append(function(bytes(unit)) ^ base)
    return [([position for position, column in enumerate(columns) if column >> bit & 1], base >> bit & 1)
            for bit in range(bits)]


# -- free slots ---------------------------------------------------------------------------------------------
class SlotPool(wiring.Component):
    """Free value slots, handed out as sw/maps.py's _SlotPool does: freed slots first, the last freed first
    (a stack in block RAM), then fresh slots in order 0, 1, 2...

    `slot` is the slot a `take` gets and `available` says there is one; both are meaningful while `ready`.
    A `take` or a `give` (never both in one cycle) makes `ready` low for the next cycle (the stack's top is
    read again)."""

    def __init__(self, count: int):
        self.count = count
        super().__init__({
            "take": In(1),
            "give": In(1),
            "give_slot": In(range(count)),
            "slot": Out(range(count)),
            "available": Out(1),
            "ready": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.freed = freed = Memory(shape=max(1, (self.count - 1).bit_length()), depth=self.count, init=[])
        top = freed.read_port()
        push = freed.write_port()
        fresh = Signal(range(self.count + 1))
        depth = Signal(range(self.count + 1))
        settled = Signal(init=1)
        m.d.comb += [
            top.addr.eq(depth - 1),
            self.slot.eq(Mux(depth != 0, top.data, fresh)),
            self.available.eq((depth != 0) | (fresh != self.count)),
            self.ready.eq(settled),
            push.addr.eq(depth),
            push.data.eq(self.give_slot),
        ]
        m.d.sync += settled.eq(1)
        with m.If(self.take & settled & self.available):
            with m.If(depth != 0):
                m.d.sync += depth.eq(depth - 1)
            with m.Else():
                m.d.sync += fresh.eq(fresh + 1)
            m.d.sync += settled.eq(0)
        with m.Elif(self.give & settled):
            m.d.comb += push.en.eq(1)
            m.d.sync += [depth.eq(depth + 1), settled.eq(0)]
        return m


# -- the unit -----------------------------------------------------------------------------------------------
class _Then(enum.Enum, shape=2):
    """Where a linked-list operation of an LRU map continues."""
    DONE = 0
    WRITE_VALUE = 1
    REREAD = 2


class HashMapUnit(wiring.Component):
    """A hash map (see the module docstring). Memories: two bucket tables (hash_buckets rows of hash_ways
    entries), the free-slot stack, the value memory and staging buffer; LRU maps add prev/next/position
    memories of max_entries rows each.

    READ_ENTRY (host): entry position `index` = (table * hash_buckets + bucket) * hash_ways + way, for index <
    `entry_positions`; found says the position holds a key, returned in `key`."""

    def __init__(self, config: MapSlotConfig, value_buffer_words: int):
        if config.kind != "hash":
            raise ValueError(f"HashMapUnit: {config.label} is not a hash map")
        self.config = config
        self.ways = config.hash_ways
        self.buckets = config.hash_buckets
        self.entry_positions = 2 * self.ways * self.buckets
        count = config.max_entries
        self.entry_layout = data.StructLayout({"valid": 1, "key": 8 * config.key_size, "slot": range(count)})
        self.row_layout = data.ArrayLayout(self.entry_layout, self.ways)
        self.position_layout = data.StructLayout({"way": range(self.ways), "bucket": range(self.buckets),
                                                  "table": 1})
        super().__init__({
            "program": In(config.client_port(value_buffer_words)),
            "host": In(config.host_port()),
            "value": In(ValuePort()),
        })
        self.values = ValueMemory(value_size=config.value_size, entries=count, copies=config.copies,
                                  ncpus=config.ncpus, program_words=value_buffer_words)
        self.value_data = self.values.value_data
        self.table_data = [MemoryData(shape=self.row_layout, depth=self.buckets, init=[]) for _ in range(2)]
        self.pool = SlotPool(count)

    def elaborate(self, platform):
        m = Module()
        config = self.config
        ways, buckets, count = self.ways, self.buckets, config.max_entries
        nil = count                               # "no slot" in the LRU list
        m.submodules.values = values = self.values
        m.submodules.pool = pool = self.pool
        connect_staging(m, self, values)
        front = CommandFrontEnd(self, config.key_size, config.ncpus)

        tables_read, tables_write = [], []
        for table in range(2):
            memory = Memory(data=self.table_data[table])
            m.submodules[f"table{table}"] = memory
            tables_read.append(memory.read_port())
            tables_write.append(memory.write_port())
        # The buckets as read, one cycle after the block RAM (whose output is slow on the ECP5): each read is
        # followed by a LATCH state before its row is used.
        rows = [Signal(self.row_layout, name=f"row{table}") for table in range(2)]
        for table in range(2):
            m.d.sync += rows[table].eq(tables_read[table].data)

        # -- hashing and matching -----------------------------------------------------------------------
        bucket_bits = (buckets - 1).bit_length()
        bucket = [Signal(range(buckets), name=f"bucket{table}") for table in range(2)]
        hashed = [Signal(range(buckets), name=f"hashed{table}") for table in range(2)]
        for table in range(2):
            for bit, (positions, constant) in enumerate(hash_network(table, config.key_size, bucket_bits)):
                term = Cat(*[front.key[p] for p in positions]).xor() if positions else Const(0)
                m.d.comb += hashed[table][bit].eq(term ^ constant)
            m.d.comb += tables_read[table].addr.eq(bucket[table])   # default: the key's two buckets

        hit_way = [[Signal(name=f"hit{table}_{way}") for way in range(ways)] for table in range(2)]
        free_count = [Signal(range(ways + 1), name=f"free{table}") for table in range(2)]
        first_free = [Signal(range(ways), name=f"first_free{table}") for table in range(2)]
        for table in range(2):
            for way in range(ways):
                entry = rows[table][way]
                m.d.comb += hit_way[table][way].eq(entry.valid & (entry.key == front.key))
            m.d.comb += free_count[table].eq(sum(~rows[table][way].valid for way in range(ways)))
            for way in reversed(range(ways)):
                with m.If(~rows[table][way].valid):
                    m.d.comb += first_free[table].eq(way)

        hit = Signal()
        hit_table = Signal()
        hit_way_index = Signal(range(ways))
        hit_slot = Signal(range(count))
        both_full = Signal()
        place_table = Signal()
        place_way = Signal(range(ways))
        slot = Signal(range(count))               # the slot the command works on
        new_entry = Signal()

        def latch_placement():
            place_in_1 = free_count[1] > free_count[0]
            return [place_table.eq(place_in_1), place_way.eq(Mux(place_in_1, first_free[1], first_free[0])),
                    both_full.eq((free_count[0] == 0) & (free_count[1] == 0))]

        # -- LRU list -----------------------------------------------------------------------------------
        lru = config.lru
        if lru:
            prev_memory = Memory(shape=range(count + 1), depth=count, init=[])
            next_memory = Memory(shape=range(count + 1), depth=count, init=[])
            where_memory = Memory(shape=self.position_layout, depth=count, init=[])
            m.submodules.lru_prev = prev_memory
            m.submodules.lru_next = next_memory
            m.submodules.lru_where = where_memory
            prev_read, prev_write = prev_memory.read_port(), prev_memory.write_port()
            next_read, next_write = next_memory.read_port(), next_memory.write_port()
            where_read, where_write = where_memory.read_port(), where_memory.write_port()
            head = Signal(range(count + 1), init=nil)
            tail = Signal(range(count + 1), init=nil)
            list_slot = Signal(range(count + 1))  # the slot a list operation moves, or the walk's position
            then = Signal(_Then)
            victim_position = Signal(self.position_layout)
            m.d.comb += [prev_read.addr.eq(list_slot), next_read.addr.eq(list_slot), where_read.addr.eq(list_slot)]

        stride = config.value_stride
        block = Signal(block_op_layout(config.ncpus))
        host_refuses_writes = Signal()
        frozen = Signal(init=int(config.frozen))
        m.d.comb += host_refuses_writes.eq(frozen | int(config.host_readonly))
        flags = front.flags

        def write_row(table, bucket_index, way, entry_value):
            """Write `entry_value` into one way of the row currently on the table's read port."""
            port = tables_write[table]
            m.d.comb += [port.addr.eq(bucket_index), port.en.eq(1), port.data.eq(rows[table])]
            with m.Switch(way):
                for each in range(ways):
                    with m.Case(each):
                        m.d.comb += port.data[each].eq(entry_value)

        def clear_way(table_signal, bucket_index, way):
            for table in range(2):
                with m.If(table_signal == table):
                    write_row(table, bucket_index, way, Cat(Const(0, 1), rows[table][way].as_value()[1:]))

        with m.FSM():
            front.idle_state(m, "HASH")

            with m.State("HASH"):
                m.d.sync += [bucket[0].eq(hashed[0]), bucket[1].eq(hashed[1])]
                with m.If(front.from_host & (front.op == MapOp.READ_ENTRY)):
                    m.next = "ENTRY_READ"
                with m.Elif(front.from_host & (front.op == MapOp.FREEZE)):
                    with m.If(host_refuses_writes):
                        front.answer(m, errno.EPERM)
                    with m.Else():
                        m.d.sync += frozen.eq(1)
                        front.answer(m, 0)
                with m.Else():
                    m.next = "ROWS"

            with m.State("ROWS"):                 # the two buckets are read this cycle
                m.next = "ROWS_LATCH"
            with m.State("ROWS_LATCH"):
                m.next = "MATCH"

            with m.State("MATCH"):
                any_hit = Cat(*hit_way[0], *hit_way[1]).any()
                m.d.sync += [hit.eq(any_hit), hit_table.eq(~Cat(*hit_way[0]).any()), *latch_placement()]
                for table in range(2):
                    for way in range(ways):
                        with m.If(hit_way[table][way]):
                            m.d.sync += [hit_way_index.eq(way), hit_slot.eq(rows[table][way].slot)]
                m.next = "DECIDE"

            with m.State("DECIDE"):
                offset = hit_slot * stride
                with m.Switch(front.op):
                    with m.Case(MapOp.LOOKUP):
                        with m.If(front.from_host):
                            if config.host_writeonly:
                                front.answer(m, errno.EPERM)
                            else:
                                with m.If(~hit):
                                    front.answer(m, errno.ENOENT)
                                with m.Else():
                                    m.d.sync += [block.kind.eq(BlockKind.COPY_OUT), block.cpus.eq(CpuSelect.ALL),
                                                 block.slot_offset.eq(offset), front.result.found.eq(1)]
                                    m.next = "BLOCK"
                        with m.Elif(~hit):
                            front.answer(m, 0, found=0)
                        with m.Else():
                            cpu_offset = front.cpu * (count * stride) if config.per_cpu else 0
                            m.d.sync += [front.result.found.eq(1), front.result.offset.eq(cpu_offset + offset)]
                            if lru:
                                m.d.sync += [list_slot.eq(hit_slot), then.eq(_Then.DONE)]
                                m.next = "TOUCH"
                            else:
                                m.next = "DONE"
                    with m.Case(MapOp.UPDATE):
                        with m.If(front.from_host & host_refuses_writes):
                            front.answer(m, errno.EPERM)
                        with m.Elif(flags > maps.BPF_EXIST):   # BPF_F_LOCK: no bpf_spin_lock in hardware
                            front.answer(m, errno.EINVAL)
                        with m.Elif(hit & (flags == maps.BPF_NOEXIST)):
                            front.answer(m, errno.EEXIST)
                        with m.Elif(~hit & (flags == maps.BPF_EXIST)):
                            front.answer(m, errno.ENOENT)
                        with m.Elif(hit):
                            m.d.sync += [slot.eq(hit_slot), new_entry.eq(0)]
                            if lru:
                                m.d.sync += [list_slot.eq(hit_slot), then.eq(_Then.WRITE_VALUE)]
                                m.next = "TOUCH"
                            else:
                                m.next = "WRITE_VALUE"
                        with m.Elif(both_full):
                            if lru:
                                m.d.sync += list_slot.eq(head)
                                m.next = "WALK_READ"
                            else:
                                front.answer(m, errno.E2BIG)
                        with m.Elif(~pool.ready):
                            pass                                   # wait for the free list's top
                        with m.Elif(pool.available):
                            m.d.comb += pool.take.eq(1)
                            m.d.sync += [slot.eq(pool.slot), new_entry.eq(1)]
                            m.next = "PLACE"
                        with m.Else():
                            if lru:
                                m.d.sync += [list_slot.eq(head), slot.eq(head), new_entry.eq(1)]
                                m.next = "EVICT_WHERE"
                            else:
                                front.answer(m, errno.E2BIG)
                    with m.Case(MapOp.DELETE):
                        with m.If(front.from_host & host_refuses_writes):
                            front.answer(m, errno.EPERM)
                        with m.Elif(~hit):
                            front.answer(m, errno.ENOENT)
                        with m.Elif(pool.ready):
                            clear_way(hit_table, Mux(hit_table, bucket[1], bucket[0]), hit_way_index)
                            m.d.comb += [pool.give.eq(1), pool.give_slot.eq(hit_slot)]
                            if lru:
                                m.d.sync += [list_slot.eq(hit_slot), then.eq(_Then.DONE)]
                                m.next = "REMOVE_READ"
                            else:
                                front.answer(m, 0)
                    with m.Default():
                        front.answer(m, errno.EINVAL)

            with m.State("PLACE"):
                for table in range(2):
                    with m.If(place_table == table):
                        write_row(table, bucket[table], place_way, Cat(Const(1, 1), front.key, slot))
                if lru:
                    m.d.comb += [
                        where_write.addr.eq(slot), where_write.en.eq(1),
                        where_write.data.way.eq(place_way), where_write.data.table.eq(place_table),
                        where_write.data.bucket.eq(Mux(place_table, bucket[1], bucket[0])),
                    ]
                    m.d.sync += [list_slot.eq(slot), then.eq(_Then.WRITE_VALUE)]
                    m.next = "APPEND"
                else:
                    m.next = "WRITE_VALUE"

            with m.State("WRITE_VALUE"):
                m.d.sync += [block.kind.eq(BlockKind.COPY_IN), block.from_host.eq(front.from_host),
                             block.cpus.eq(Mux(front.from_host, CpuSelect.ALL, CpuSelect.ONE)),
                             block.cpu.eq(front.cpu), block.slot_offset.eq(slot * stride)]
                with m.If(~front.from_host & new_entry & int(config.per_cpu)):
                    m.next = "COPY_OWN"
                with m.Else():
                    m.next = "BLOCK"
            # A program's new entry of a per-CPU map: its CPU's copy from the value, the others zeroed.
            block_states(m, values, block, then="ZERO_OTHERS", name="COPY_OWN")
            with m.State("ZERO_OTHERS"):
                m.d.sync += [block.kind.eq(BlockKind.ZERO), block.cpus.eq(CpuSelect.OTHERS)]
                m.next = "BLOCK"
            block_states(m, values, block, then="DONE")

            with m.State("DONE"):
                front.answer(m, 0)

            # -- host READ_ENTRY ------------------------------------------------------------------------
            way_bits = (ways - 1).bit_length()
            entry_way = front.index[0:way_bits]
            entry_bucket = front.index[way_bits:way_bits + bucket_bits]
            entry_table = front.index[way_bits + bucket_bits]
            with m.State("ENTRY_READ"):
                for table in range(2):
                    m.d.comb += tables_read[table].addr.eq(entry_bucket)
                m.next = "ENTRY_LATCH"
            with m.State("ENTRY_LATCH"):
                m.next = "ENTRY_ANSWER"
            with m.State("ENTRY_ANSWER"):
                entry = Signal(self.entry_layout)
                m.d.comb += entry.eq(Mux(entry_table, rows[1].as_value(), rows[0].as_value())
                                     .word_select(entry_way, self.entry_layout.size) if ways > 1 else
                                     Mux(entry_table, rows[1].as_value(), rows[0].as_value()))
                in_range = front.index < self.entry_positions
                front.answer(m, 0, found=entry.valid & in_range, key=Mux(in_range & entry.valid, entry.key, 0))

            if lru:
                # -- eviction: the victim in list_slot leaves its bucket and the list; its slot is reused ------
                with m.State("EVICT_WHERE"):      # where[list_slot] is read this cycle
                    m.next = "EVICT_ROW"
                with m.State("EVICT_ROW"):
                    m.d.sync += victim_position.eq(where_read.data)
                    m.next = "EVICT_ROW_READ"
                with m.State("EVICT_ROW_READ"):
                    for table in range(2):
                        m.d.comb += tables_read[table].addr.eq(victim_position.bucket)
                    m.next = "EVICT_ROW_LATCH"
                with m.State("EVICT_ROW_LATCH"):
                    m.next = "EVICT_CLEAR"
                with m.State("EVICT_CLEAR"):
                    clear_way(victim_position.table, victim_position.bucket, victim_position.way)
                    m.d.sync += then.eq(_Then.REREAD)
                    m.next = "REMOVE_READ"
                with m.State("REREAD"):           # the key's buckets again, now that the victim is gone
                    m.next = "REREAD_LATCH"
                with m.State("REREAD_LATCH"):
                    m.next = "REPLACE"
                with m.State("REPLACE"):
                    m.d.sync += latch_placement()
                    m.next = "PLACE"

                # -- walk from the head to the first entry in one of the key's buckets -----------------------
                with m.State("WALK_READ"):
                    m.next = "WALK_CHECK"
                with m.State("WALK_CHECK"):
                    position = where_read.data
                    in_bucket = Mux(position.table, position.bucket == bucket[1], position.bucket == bucket[0])
                    with m.If(list_slot == nil):
                        front.answer(m, errno.E2BIG)        # cannot happen: full buckets hold listed entries
                    with m.Elif(in_bucket):
                        m.d.sync += [slot.eq(list_slot), new_entry.eq(1)]
                        m.next = "EVICT_WHERE"
                    with m.Else():
                        m.d.sync += list_slot.eq(next_read.data)
                        m.next = "WALK_READ"

                def go_on():
                    with m.Switch(then):
                        with m.Case(_Then.DONE):
                            m.next = "DONE"
                        with m.Case(_Then.WRITE_VALUE):
                            m.next = "WRITE_VALUE"
                        with m.Case(_Then.REREAD):
                            m.next = "REREAD"

                # -- touch: move list_slot to the tail (most recently used) ------------------------------------
                with m.State("TOUCH"):            # prev/next of list_slot are read this cycle
                    with m.If(list_slot == tail):
                        go_on()
                    with m.Else():
                        m.next = "TOUCH_UNLINK"
                with m.State("TOUCH_UNLINK"):
                    before, after = prev_read.data, next_read.data
                    m.d.comb += [prev_write.addr.eq(after), prev_write.data.eq(before), prev_write.en.eq(1)]
                    with m.If(list_slot == head):
                        m.d.sync += head.eq(after)
                    with m.Else():
                        m.d.comb += [next_write.addr.eq(before), next_write.data.eq(after), next_write.en.eq(1)]
                    m.next = "TOUCH_LINK"
                with m.State("TOUCH_LINK"):
                    m.d.comb += [next_write.addr.eq(tail), next_write.data.eq(list_slot), next_write.en.eq(1),
                                 prev_write.addr.eq(list_slot), prev_write.data.eq(tail), prev_write.en.eq(1)]
                    m.d.sync += tail.eq(list_slot)
                    m.next = "LINK_END"
                with m.State("LINK_END"):
                    m.d.comb += [next_write.addr.eq(list_slot), next_write.data.eq(nil), next_write.en.eq(1)]
                    go_on()

                # -- append list_slot at the tail ------------------------------------------------------------
                with m.State("APPEND"):
                    m.d.comb += [prev_write.addr.eq(list_slot), prev_write.data.eq(tail), prev_write.en.eq(1)]
                    with m.If(tail == nil):
                        m.d.sync += head.eq(list_slot)
                    with m.Else():
                        m.d.comb += [next_write.addr.eq(tail), next_write.data.eq(list_slot), next_write.en.eq(1)]
                    m.d.sync += tail.eq(list_slot)
                    m.next = "LINK_END"

                # -- remove list_slot from the list ------------------------------------------------------------
                with m.State("REMOVE_READ"):
                    m.next = "REMOVE_UNLINK"
                with m.State("REMOVE_UNLINK"):
                    before, after = prev_read.data, next_read.data
                    with m.If(list_slot == head):
                        m.d.sync += head.eq(after)
                    with m.Else():
                        m.d.comb += [next_write.addr.eq(before), next_write.data.eq(after), next_write.en.eq(1)]
                    with m.If(list_slot == tail):
                        m.d.sync += tail.eq(before)
                    with m.Else():
                        m.d.comb += [prev_write.addr.eq(after), prev_write.data.eq(before), prev_write.en.eq(1)]
                    go_on()

            front.answer_state(m)
        return m


class HashUnitModel:
    """sw/maps.py's hash map plus the unit's bucket placement: the reference for HashMapUnit, operation by
    operation. `program_*` and `host_*` return what the unit answers."""

    def __init__(self, config: MapSlotConfig):
        self.config = config
        self.map = config.model()
        self.ways, self.buckets = config.hash_ways, config.hash_buckets
        self.rows = [[[None] * self.ways for _ in range(self.buckets)] for _ in range(2)]
        self.where: dict[bytes, tuple[int, int, int]] = {}
        # How often each deviation and eviction happened (tests check their sequences reach them).
        self.bucket_refusals = self.bucket_evictions = self.head_evictions = 0

    def candidates(self, key: bytes) -> list[tuple[int, int]]:
        return [(table, bucket_of(table, key, self.buckets)) for table in range(2)]

    def _full(self, key: bytes) -> bool:
        return all(None not in self.rows[table][bucket] for table, bucket in self.candidates(key))

    def _place(self, key: bytes) -> None:
        (_, bucket0), (_, bucket1) = self.candidates(key)
        free0 = self.rows[0][bucket0].count(None)
        free1 = self.rows[1][bucket1].count(None)
        table, bucket = (1, bucket1) if free1 > free0 else (0, bucket0)
        way = self.rows[table][bucket].index(None)
        self.rows[table][bucket][way] = key
        self.where[key] = (table, bucket, way)

    def _forget(self, key: bytes) -> None:
        table, bucket, way = self.where.pop(key)
        self.rows[table][bucket][way] = None

    def _sync_removed(self) -> None:
        present = set(self.map._slots)
        for key in [k for k in self.where if k not in present]:
            self._forget(key)

    def update(self, key: bytes, value, flags: int, cpu: int | None) -> int:
        key = bytes(key)
        if key not in self.where and self._full(key):
            trial = copy.deepcopy(self.map).update(key, value, flags, cpu)
            if trial != 0:
                return trial
            if not self.config.lru:
                self.bucket_refusals += 1
                return -errno.E2BIG
            self.bucket_evictions += 1
            candidates = set(self.candidates(key))
            victim = next(k for k in self.map.lru_order() if self.where[k][:2] in candidates)
            self.map.delete(victim, cpu)
            self._forget(victim)
        result = self.map.update(key, value, flags, cpu)
        if result == 0 and key not in self.where:
            if len(self.map) <= len(self.where):
                self.head_evictions += 1
                self._sync_removed()          # the LRU map evicted its head
            self._place(key)
        return result

    def delete(self, key: bytes, cpu: int | None) -> int:
        result = self.map.delete(bytes(key), cpu)
        if result == 0:
            self._forget(bytes(key))
        return result

    def lookup_slot(self, key: bytes, cpu: int = 0) -> int | None:
        return self.map.lookup_slot(bytes(key), cpu)

    def lookup(self, key: bytes):
        return self.map.lookup(bytes(key))

    def freeze(self) -> int:
        return self.map.freeze()

    @property
    def value_memory(self) -> bytearray:
        return self.map.value_memory

    def entry(self, index: int) -> bytes | None:
        """READ_ENTRY: the key at an entry position, or None."""
        way = index % self.ways
        bucket = (index // self.ways) % self.buckets
        table = index // (self.ways * self.buckets)
        if table > 1:
            return None
        return self.rows[table][bucket][way]
