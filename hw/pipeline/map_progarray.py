"""Program arrays in hardware (BPF_MAP_TYPE_PROG_ARRAY): the tail-call targets of bpf_tail_call.

Ref: kernel/bpf/arraymap.c (the fd-array operations: prog_fd_array_get_ptr, fd_array_map_delete_elem) and
the bpf_tail_call contract in include/uapi/linux/bpf.h, as modelled by sw/maps.py (ProgArrayMap: host update
flags other than BPF_ANY -EINVAL, index >= max_entries -E2BIG, delete of an empty entry -ENOENT, programs may
only tail-call through it); the ports are described in map_config.py.

An entry is where a program sits in the core's instruction memory: its entry pc and its length in slots,
one 64-bit word (entry_pc | length << 32, `ProgramEntry.word`) that the host stages to update an entry and
reads back on lookup. A program LOOKUP is bpf_tail_call's: found and, in `data`, that word. Programs cannot
update or delete (-EOPNOTSUPP). The unit has no value memory (no `value` port): a program array's values
are programs, not bytes a program could load.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory, MemoryData
from amaranth.lib.wiring import In

from .map_array import CommandFrontEnd
from .map_config import MapOp, MapSlotConfig


@dataclass(frozen=True)
class ProgramEntry:
    """A program in the core's instruction memory: what a program-array entry stands for."""

    entry_pc: int
    length: int

    @property
    def word(self) -> int:
        return self.entry_pc | self.length << 32

    @classmethod
    def from_word(cls, word: int) -> "ProgramEntry":
        return cls(word & 0xFFFF_FFFF, word >> 32 & 0xFFFF_FFFF)


class ProgArrayUnit(wiring.Component):
    """BPF_MAP_TYPE_PROG_ARRAY (see the module docstring). Memory: the entries (max_entries words, one read
    and one write port); registers: the presence bits and the one staging word.

    READ_ENTRY (host): index < max_entries is found, key = index (keys() walks every index)."""

    def __init__(self, config: MapSlotConfig, value_buffer_words: int):
        if config.kind != "progarray":
            raise ValueError(f"ProgArrayUnit: {config.label} is not a program array")
        self.config = config
        super().__init__({
            "program": In(config.client_port(value_buffer_words)),
            "host": In(config.host_port()),
        })
        self.entry_data = MemoryData(shape=64, depth=config.max_entries, init=[])

    def elaborate(self, platform):
        m = Module()
        config = self.config
        count = config.max_entries
        front = CommandFrontEnd(self, config.key_size, config.ncpus)
        m.submodules.entries = entries = Memory(data=self.entry_data)
        read = entries.read_port()
        write = entries.write_port()

        staging = Signal(64)
        with m.If(self.host.staging_write_enable):
            m.d.sync += staging.eq(self.host.staging_write_data)
        m.d.sync += self.host.staging_read_data.eq(staging)   # one cycle, like the other units' block RAM

        index = front.key[0:32]
        in_range = index < count
        position = index[0:max(1, (count - 1).bit_length())]
        present = Signal(count)
        occupied = in_range & present.bit_select(position, 1)
        m.d.comb += read.addr.eq(position)
        frozen = Signal(init=int(config.frozen))
        host_refuses_writes = frozen | int(config.host_readonly)

        with m.FSM():
            front.idle_state(m, "EXECUTE")
            with m.State("EXECUTE"):               # the entry of `index` is read this cycle
                with m.If(~front.from_host):
                    with m.If(front.op == MapOp.LOOKUP):
                        with m.If(occupied):
                            m.next = "ANSWER_ENTRY"
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
                                with m.If(occupied):
                                    m.next = "STAGE_ENTRY"
                                with m.Else():
                                    front.answer(m, errno.ENOENT)
                        with m.Case(MapOp.UPDATE):
                            with m.If(host_refuses_writes):
                                front.answer(m, errno.EPERM)
                            with m.Elif(front.flags != 0):    # BPF_F_LOCK included: -EINVAL either way
                                front.answer(m, errno.EINVAL)
                            with m.Elif(~in_range):
                                front.answer(m, errno.E2BIG)
                            with m.Else():
                                m.d.comb += [write.addr.eq(position), write.data.eq(staging), write.en.eq(1)]
                                m.d.sync += present.bit_select(position, 1).eq(1)
                                front.answer(m, 0)
                        with m.Case(MapOp.DELETE):
                            with m.If(host_refuses_writes):
                                front.answer(m, errno.EPERM)
                            with m.Elif(~in_range):
                                front.answer(m, errno.E2BIG)
                            with m.Elif(~occupied):
                                front.answer(m, errno.ENOENT)
                            with m.Else():
                                m.d.sync += present.bit_select(position, 1).eq(0)
                                front.answer(m, 0)
                        with m.Case(MapOp.READ_ENTRY):
                            exists = front.index < count
                            front.answer(m, 0, found=exists, key=Mux(exists, front.index, 0))
                        with m.Case(MapOp.FREEZE):
                            with m.If(host_refuses_writes):
                                front.answer(m, errno.EPERM)
                            with m.Else():
                                m.d.sync += frozen.eq(1)
                                front.answer(m, 0)
                        with m.Default():
                            front.answer(m, errno.EINVAL)
            with m.State("ANSWER_ENTRY"):
                front.answer(m, 0, found=1, data=read.data)
            with m.State("STAGE_ENTRY"):
                m.d.sync += staging.eq(read.data)
                front.answer(m, 0, found=1)
            front.answer_state(m)
        return m
