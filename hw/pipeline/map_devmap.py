"""Device maps in hardware: BPF_MAP_TYPE_DEVMAP and BPF_MAP_TYPE_DEVMAP_HASH, the targets of bpf_redirect_map.

Ref: kernel/bpf/devmap.c (dev_map_update_elem, dev_map_hash_update_elem, dev_map_delete_elem,
__dev_map_lookup_elem) and include/uapi/linux/bpf.h (struct bpf_devmap_val: u32 ifindex, then the program
to run on redirected frames), as modelled by sw/maps.py (DevMap, DevMapHash: return codes and their order);
the ports are described in map_config.py.

Each entry maps a u32 key to an ifindex, kept in the value memory (programs may read it: map_lookup_elem
returns a pointer; the core refuses stores, the map being BPF_F_RDONLY_PROG). A program LOOKUP answers the
entry's value offset and, in `data`, its ifindex: that is bpf_redirect_map's lookup; the NIC turns the
ifindex into a port. Programs cannot update or delete (-EOPNOTSUPP, as the model answers the verifier's
refusal). The host writes entries; an ifindex must be one of `valid_ifindexes` (the NIC's ports; None: any
non-zero one). A program number (8-byte values) > 0 is refused with -EINVAL: the hardware runs no second
program on redirected frames, as the model does without a program resolver; stored values carry program 0.

DEVMAP: entry = key (< max_entries), a presence bit a key. DEVMAP_HASH: keys in registers compared in
parallel (devmap_hash tables are small), entry position = value slot, slots from map_hash.SlotPool as
sw/maps.py hands them out.
"""

from __future__ import annotations

import errno

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from bpfnic.sw import maps

from .map_array import BlockKind, CommandFrontEnd, CpuSelect, ValueMemory, block_op_layout, block_states, \
    connect_staging
from .map_config import MapOp, MapSlotConfig, ValuePort
from .map_hash import SlotPool


class DevMapUnit(wiring.Component):
    """DEVMAP or DEVMAP_HASH (see the module docstring). Memories: the value memory and staging; registers:
    presence bits (DEVMAP) or keys and valid bits (DEVMAP_HASH), and the free-slot stack (DEVMAP_HASH).

    READ_ENTRY (host): DEVMAP: index < max_entries is found, key = index (keys() walks every index);
    DEVMAP_HASH: position = slot, found if it holds a key."""

    def __init__(self, config: MapSlotConfig, value_buffer_words: int):
        if config.kind != "devmap":
            raise ValueError(f"DevMapUnit: {config.label} is not a device map")
        self.config = config
        self.hashed = config.map_type == maps.BPF_MAP_TYPE_DEVMAP_HASH
        super().__init__({
            "program": In(config.client_port(value_buffer_words)),
            "host": In(config.host_port()),
            "value": In(ValuePort()),
        })
        self.values = ValueMemory(value_size=config.value_size, entries=config.max_entries, copies=1,
                                  ncpus=config.ncpus, program_words=value_buffer_words)
        self.value_data = self.values.value_data
        self.pool = SlotPool(config.max_entries) if self.hashed else None

    def elaborate(self, platform):
        m = Module()
        config = self.config
        count = config.max_entries
        m.submodules.values = values = self.values
        connect_staging(m, self, values)
        front = CommandFrontEnd(self, config.key_size, config.ncpus)
        key = front.key[0:32]
        stride = config.value_stride

        # -- where the key lives ------------------------------------------------------------------------
        hit = Signal()
        slot = Signal(range(count))
        if self.hashed:
            m.submodules.pool = pool = self.pool
            keys = Array(Signal(32, name=f"key{s}") for s in range(count))
            valid = Signal(count)
            for s in reversed(range(count)):
                with m.If(valid[s] & (keys[s] == key)):
                    m.d.comb += [hit.eq(1), slot.eq(s)]
        else:
            present = Signal(count)
            m.d.comb += [hit.eq((key < count) & present.bit_select(key[0:max(1, (count - 1).bit_length())], 1)),
                         slot.eq(key)]

        # -- the host's value: struct bpf_devmap_val ----------------------------------------------------------
        staged = values.block_data
        ifindex = staged[0:32]
        program_number = staged[32:64].as_signed() if config.value_size == 8 else 0
        if config.valid_ifindexes is None:
            ifindex_valid = ifindex != 0
        else:
            ifindex_valid = Cat(Const(0, 1), *[ifindex == number for number in config.valid_ifindexes]).any()

        block = Signal(block_op_layout(config.ncpus))
        frozen = Signal(init=int(config.frozen))
        host_refuses_writes = frozen | int(config.host_readonly)
        flags = front.flags

        with m.FSM():
            front.idle_state(m, "EXECUTE")

            with m.State("EXECUTE"):
                with m.If(~front.from_host):
                    with m.If(front.op == MapOp.LOOKUP):
                        with m.If(hit):
                            m.d.sync += [block.kind.eq(BlockKind.READ_WORD), block.slot_offset.eq(slot * stride),
                                         front.result.found.eq(1), front.result.offset.eq(slot * stride)]
                            m.next = "LOOKUP_READ"
                        with m.Else():
                            front.answer(m, 0, found=0)
                    with m.Else():
                        front.answer(m, errno.EOPNOTSUPP)
                with m.Else():
                    with m.Switch(front.op):
                        with m.Case(MapOp.LOOKUP):
                            if config.host_writeonly:
                                front.answer(m, errno.EPERM)
                            else:
                                with m.If(hit):
                                    m.d.sync += [block.kind.eq(BlockKind.COPY_OUT), block.cpus.eq(CpuSelect.ALL),
                                                 block.slot_offset.eq(slot * stride), front.result.found.eq(1)]
                                    m.next = "BLOCK"
                                with m.Else():
                                    front.answer(m, errno.ENOENT)
                        with m.Case(MapOp.UPDATE):
                            with m.If(host_refuses_writes):
                                front.answer(m, errno.EPERM)
                            with m.Elif(flags[2]):         # BPF_F_LOCK: no bpf_spin_lock in a devmap
                                front.answer(m, errno.EINVAL)
                            with m.Else():
                                m.d.sync += block.kind.eq(BlockKind.READ_STAGING)
                                m.next = "STAGED_READ"
                        with m.Case(MapOp.DELETE):
                            missing = (~hit) if self.hashed else (key >= count)
                            with m.If(host_refuses_writes):
                                front.answer(m, errno.EPERM)
                            with m.Elif(missing):
                                front.answer(m, errno.ENOENT if self.hashed else errno.EINVAL)
                            with m.Else():
                                if self.hashed:
                                    m.next = "FORGET"
                                else:
                                    m.next = "CLEAR"
                        with m.Case(MapOp.READ_ENTRY):
                            in_range = front.index < count
                            if self.hashed:
                                position = front.index[0:max(1, (count - 1).bit_length())]
                                occupied = in_range & valid.bit_select(position, 1)
                                front.answer(m, 0, found=occupied, key=Mux(occupied, keys[position], 0))
                            else:
                                front.answer(m, 0, found=in_range, key=Mux(in_range, front.index, 0))
                        with m.Case(MapOp.FREEZE):
                            with m.If(host_refuses_writes):
                                front.answer(m, errno.EPERM)
                            with m.Else():
                                m.d.sync += frozen.eq(1)
                                front.answer(m, 0)
                        with m.Default():
                            front.answer(m, errno.EINVAL)

            block_states(m, values, block, then="LOOKUP_ANSWER", name="LOOKUP_READ")
            with m.State("LOOKUP_ANSWER"):
                front.answer(m, 0, data=values.block_data[0:32])

            block_states(m, values, block, then="UPDATE", name="STAGED_READ")
            with m.State("UPDATE"):
                m.d.sync += [block.kind.eq(BlockKind.WRITE_WORD), block.data.eq(ifindex),
                             block.slot_offset.eq(slot * stride)]
                if self.hashed:
                    with m.If((flags > maps.BPF_EXIST) | (ifindex == 0)):
                        front.answer(m, errno.EINVAL)
                    with m.Elif(hit & flags[0]):
                        front.answer(m, errno.EEXIST)
                    with m.Elif(~ifindex_valid | (program_number > 0)):
                        front.answer(m, errno.EINVAL)
                    with m.Elif(hit):
                        m.next = "BLOCK"
                    with m.Elif(~pool.ready):
                        pass                       # wait for the free list's top
                    with m.Elif(~pool.available):
                        front.answer(m, errno.E2BIG)
                    with m.Else():
                        m.d.comb += pool.take.eq(1)
                        m.d.sync += [keys[pool.slot].eq(key), valid.bit_select(pool.slot, 1).eq(1),
                                     block.slot_offset.eq(pool.slot * stride)]
                        m.next = "BLOCK"
                else:
                    with m.If(flags > maps.BPF_EXIST):
                        front.answer(m, errno.EINVAL)
                    with m.Elif(key >= count):
                        front.answer(m, errno.E2BIG)
                    with m.Elif(flags == maps.BPF_NOEXIST):
                        front.answer(m, errno.EEXIST)
                    with m.Elif(ifindex == 0):
                        with m.If(program_number > 0):
                            front.answer(m, errno.EINVAL)
                        with m.Else():
                            m.next = "CLEAR"
                    with m.Elif(~ifindex_valid | (program_number > 0)):
                        front.answer(m, errno.EINVAL)
                    with m.Else():
                        m.d.sync += present.bit_select(slot, 1).eq(1)
                        m.next = "BLOCK"

            if self.hashed:
                with m.State("FORGET"):
                    with m.If(pool.ready):
                        m.d.sync += valid.bit_select(slot, 1).eq(0)
                        m.d.comb += [pool.give.eq(1), pool.give_slot.eq(slot)]
                        front.answer(m, 0)
            else:
                with m.State("CLEAR"):             # absent, and the value zeroed as the kernel does
                    m.d.sync += [present.bit_select(slot, 1).eq(0), block.kind.eq(BlockKind.ZERO),
                                 block.cpus.eq(CpuSelect.ONE), block.cpu.eq(0),
                                 block.slot_offset.eq(slot * stride)]
                    m.next = "BLOCK"

            block_states(m, values, block, then="DONE")
            with m.State("DONE"):
                front.answer(m, 0)
            front.answer_state(m)
        return m
