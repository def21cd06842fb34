"""Array maps in hardware (BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY, global data), and the value memory and
command front end every map unit is built on.

Ref: kernel/bpf/arraymap.c (array_map_lookup_elem, array_map_update_elem, bpf_percpu_array_update,
array_map_delete_elem) as modelled by sw/maps.py (ArrayMap, PerCpuArrayMap, create_global_data_map), whose
return codes and their order the unit reproduces; the ports are described in map_config.py.

`ValueMemory` holds a map's values: one block RAM of 64-bit words (a write port with byte enables, a
synchronous read port) with the slot layout of sw/maps.py, plus the host's staging buffer. It serves the
program's byte accesses (1/2/4/8 bytes at any offset; one that crosses a word takes two reads or two writes)
and the unit's block operations (copy a value in from the caller's value buffer or the staging buffer, copy
it out to the staging buffer, zero it, read or write its first word). A block operation runs to its end
before the next program access is taken: that is what makes host updates and host reads atomic for programs.

`ArrayMapUnit`: the key is a u32 index; a lookup is arithmetic (offset = cpu * cpu_region + index * stride),
answered two cycles after the command, so an array costs no memory beyond its values.
"""

from __future__ import annotations

import errno

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory, MemoryData
from amaranth.lib.wiring import In, Out

from bpfnic.sw import maps

from .map_config import MapOp, MapResult, MapSlotConfig, ValuePort, cpu_bits


class BlockKind(enum.Enum, shape=3):
    COPY_IN = 0       # value <- the caller's value buffer (program) or the staging buffer (host)
    COPY_OUT = 1      # staging buffer <- value
    ZERO = 2          # value <- zeros (value_size bytes)
    READ_WORD = 3     # block_data <- the value's first word
    WRITE_WORD = 4    # the value's first value_size (<= 8) bytes <- BlockOp.data
    READ_STAGING = 5  # block_data <- staging word 0


class CpuSelect(enum.Enum, shape=2):
    ONE = 0           # the copy of BlockOp.cpu
    ALL = 1           # every copy (staging holds one value per copy, CPU-major)
    OTHERS = 2        # every copy but BlockOp.cpu's


def block_op_layout(ncpus: int) -> data.StructLayout:
    return data.StructLayout({
        "kind": BlockKind,
        "from_host": 1,            # COPY_IN: the source is the staging buffer (else the caller's value buffer)
        "slot_offset": 32,         # byte offset of the value's copy 0 (a multiple of 8)
        "cpu": cpu_bits(ncpus),
        "cpus": CpuSelect,
        "data": 64,
    })


def words_of(data_bytes: bytes, count: int) -> list[int]:
    """Little-endian 64-bit words of `data_bytes`, zero-padded to `count` words."""
    padded = bytes(data_bytes) + bytes(8 * count - len(data_bytes))
    return [int.from_bytes(padded[8 * i:8 * i + 8], "little") for i in range(count)]


class ValueMemory(wiring.Component):
    """A map's value memory: `copies` x `entries` slots of value_size rounded up to 8 bytes, CPU-major.

    Ports: `value` (program byte accesses), `block`/`block_done`/`block_data` (the owning unit's block
    operations: a transfer on `block` starts one, `block_done` pulses when it has finished),
    `program_value_address`/`program_value_data` (read port onto the caller's value buffer, for COPY_IN),
    and the staging buffer's host side. `value_data` and `staging_data` are the memories' contents (for
    testbenches). Memories: the value memory (1 read, 1 byte-enabled write port) and the staging buffer
    (1 read, 1 write port)."""

    def __init__(self, *, value_size: int, entries: int, copies: int, ncpus: int, program_words: int,
                 init: bytes = b""):
        self.value_size = value_size
        self.entries = entries
        self.copies = copies
        self.ncpus = ncpus
        self.stride_words = (value_size + 7) // 8
        self.region_words = entries * self.stride_words
        self.depth = copies * self.region_words
        self.staging_words = copies * self.stride_words
        self.program_words = program_words
        if len(init) > 8 * self.depth:
            raise ValueError(f"ValueMemory: {len(init)} bytes of initial contents for {8 * self.depth} bytes")
        self.value_data = MemoryData(shape=64, depth=self.depth, init=words_of(init, self.depth))
        self.staging_data = MemoryData(shape=64, depth=self.staging_words, init=[])
        staging_range = range(max(self.staging_words, 1))
        super().__init__({
            "value": In(ValuePort()),
            "block": In(stream.Signature(block_op_layout(ncpus))),
            "block_done": Out(1),
            "block_data": Out(64),
            "program_value_address": Out(range(max(program_words, 1))),
            "program_value_data": In(64),
            "staging_write_enable": In(1),
            "staging_write_address": In(staging_range),
            "staging_write_data": In(64),
            "staging_read_address": In(staging_range),
            "staging_read_data": Out(64),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.values = values = Memory(data=self.value_data)
        m.submodules.staging = staging = Memory(data=self.staging_data)
        read = values.read_port()
        write = values.write_port(granularity=8)
        staging_read = staging.read_port()
        staging_write = staging.write_port()

        # Host side of the staging buffer, unless a block operation is using it (see below).
        m.d.comb += [
            staging_read.addr.eq(self.staging_read_address),
            self.staging_read_data.eq(staging_read.data),
            staging_write.addr.eq(self.staging_write_address),
            staging_write.data.eq(self.staging_write_data),
            staging_write.en.eq(self.staging_write_enable),
        ]

        # -- program byte accesses ----------------------------------------------------------------------
        request = self.value.request.payload
        access_word = Signal.like(read.addr)
        access_byte = Signal(3)
        access_size = Signal(2)
        low_word = Signal(64)
        high_data = Signal(64)
        high_enable = Signal(8)
        size_bytes = Signal(4)
        m.d.comb += size_bytes.eq(Const(1, 4) << request.size)
        crosses = (request.offset[0:3] + size_bytes) > 8
        byte_enables = Signal(16)
        write_bytes = Signal(128)
        data_mask = Signal(64)
        with m.Switch(request.size):
            for size in range(4):
                with m.Case(size):
                    m.d.comb += data_mask.eq((1 << (8 << size)) - 1)
        m.d.comb += [
            byte_enables.eq(((1 << size_bytes) - 1) << request.offset[0:3]),
            write_bytes.eq((request.data & data_mask) << (request.offset[0:3] * 8)),
        ]
        answer_mask = Signal(64)
        with m.Switch(access_size):
            for size in range(4):
                with m.Case(size):
                    m.d.comb += answer_mask.eq((1 << (8 << size)) - 1)

        # -- block operations ---------------------------------------------------------------------------
        op = Signal(block_op_layout(self.ncpus))
        copy_index = Signal(range(self.copies + 1))      # the copy (CPU) being worked on
        target = Signal(range(max(self.depth, 1)))       # first word of that copy of the value
        source = Signal(range(max(self.staging_words, self.program_words, 1)))
        issued = Signal(range(self.stride_words + 1))    # words whose read (or zero) has been issued
        pending = Signal()                               # the word issued last cycle is to be written now
        pending_index = Signal(range(self.stride_words))
        last_bytes = self.value_size - 8 * (self.stride_words - 1)
        last_enable = (1 << last_bytes) - 1
        slot_word = op.slot_offset[3:]

        selected = Signal()
        if self.copies == 1:
            m.d.comb += selected.eq(op.cpus != CpuSelect.OTHERS)
        else:
            with m.Switch(op.cpus):
                with m.Case(CpuSelect.ONE):
                    m.d.comb += selected.eq(copy_index == op.cpu)
                with m.Case(CpuSelect.ALL):
                    m.d.comb += selected.eq(1)
                with m.Case(CpuSelect.OTHERS):
                    m.d.comb += selected.eq(copy_index != op.cpu)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [
                    self.block.ready.eq(1),
                    self.value.request.ready.eq(~self.block.valid),
                ]
                with m.If(self.block.valid):
                    m.d.sync += [op.eq(self.block.payload), copy_index.eq(0)]
                    m.next = "BLOCK_NEXT"
                with m.Elif(self.value.request.valid):
                    m.d.sync += [
                        access_word.eq(request.offset[3:]),
                        access_byte.eq(request.offset[0:3]),
                        access_size.eq(request.size),
                    ]
                    with m.If(request.write):
                        m.d.comb += [
                            write.addr.eq(request.offset[3:]),
                            write.data.eq(write_bytes[0:64]),
                            write.en.eq(byte_enables[0:8]),
                        ]
                        with m.If(crosses):
                            m.d.sync += [high_data.eq(write_bytes[64:128]), high_enable.eq(byte_enables[8:16])]
                            m.next = "WRITE_HIGH"
                    with m.Else():
                        m.d.comb += read.addr.eq(request.offset[3:])
                        with m.If(crosses):
                            m.next = "READ_LOW"
                        with m.Else():
                            m.next = "ANSWER_ONE"

            with m.State("WRITE_HIGH"):
                m.d.comb += [write.addr.eq(access_word + 1), write.data.eq(high_data), write.en.eq(high_enable)]
                m.next = "IDLE"

            with m.State("READ_LOW"):
                m.d.comb += read.addr.eq(access_word + 1)
                m.d.sync += low_word.eq(read.data)
                m.next = "ANSWER_TWO"

            with m.State("ANSWER_ONE"):
                m.d.comb += [
                    self.value.response.valid.eq(1),
                    self.value.response.payload.eq((read.data >> (access_byte * 8)) & answer_mask),
                ]
                m.next = "IDLE"

            with m.State("ANSWER_TWO"):
                m.d.comb += [
                    self.value.response.valid.eq(1),
                    self.value.response.payload.eq((Cat(low_word, read.data) >> (access_byte * 8))[0:64]
                                                   & answer_mask),
                ]
                m.next = "IDLE"

            with m.State("BLOCK_NEXT"):
                with m.Switch(op.kind):
                    with m.Case(BlockKind.READ_WORD):
                        m.d.comb += read.addr.eq(slot_word)
                        m.next = "BLOCK_READ_WORD"
                    with m.Case(BlockKind.READ_STAGING):
                        m.d.comb += staging_read.addr.eq(0)
                        m.next = "BLOCK_READ_STAGING"
                    with m.Case(BlockKind.WRITE_WORD):
                        m.d.comb += [write.addr.eq(slot_word), write.data.eq(op.data),
                                     write.en.eq(last_enable if self.stride_words == 1 else 0xFF)]
                        m.next = "BLOCK_DONE"
                    with m.Default():
                        with m.If(copy_index == self.copies):
                            m.next = "BLOCK_DONE"
                        with m.Elif(~selected):
                            m.d.sync += copy_index.eq(copy_index + 1)
                        with m.Else():
                            m.d.sync += [
                                target.eq(slot_word + copy_index * self.region_words),
                                source.eq(Mux(op.cpus == CpuSelect.ALL, copy_index * self.stride_words, 0)),
                                issued.eq(0),
                                pending.eq(0),
                            ]
                            m.next = "BLOCK_RUN"

            with m.State("BLOCK_RUN"):
                # Word `issued` is read (from the source or the value memory) this cycle and written the next.
                with m.If(issued != self.stride_words):
                    m.d.sync += [issued.eq(issued + 1), pending.eq(1), pending_index.eq(issued)]
                with m.Else():
                    m.d.sync += pending.eq(0)
                    with m.If(~pending):
                        m.d.sync += copy_index.eq(copy_index + 1)
                        m.next = "BLOCK_NEXT"
                enable = Mux(pending_index == self.stride_words - 1, last_enable, 0xFF)
                with m.Switch(op.kind):
                    with m.Case(BlockKind.COPY_IN):
                        m.d.comb += [
                            self.program_value_address.eq(source + issued),
                            write.addr.eq(target + pending_index),
                            write.en.eq(Mux(pending, enable, 0)),
                        ]
                        with m.If(op.from_host):
                            m.d.comb += [staging_read.addr.eq(source + issued), write.data.eq(staging_read.data)]
                        with m.Else():
                            m.d.comb += write.data.eq(self.program_value_data)
                    with m.Case(BlockKind.COPY_OUT):
                        m.d.comb += [
                            read.addr.eq(target + issued),
                            staging_write.addr.eq(source + pending_index),
                            staging_write.data.eq(read.data),
                            staging_write.en.eq(pending),
                        ]
                    with m.Case(BlockKind.ZERO):
                        m.d.comb += [
                            write.addr.eq(target + pending_index),
                            write.data.eq(0),
                            write.en.eq(Mux(pending, enable, 0)),
                        ]

            with m.State("BLOCK_READ_WORD"):
                m.d.sync += self.block_data.eq(read.data)
                m.next = "BLOCK_DONE"

            with m.State("BLOCK_READ_STAGING"):
                m.d.sync += self.block_data.eq(staging_read.data)
                m.next = "BLOCK_DONE"

            with m.State("BLOCK_DONE"):
                m.d.comb += self.block_done.eq(1)
                m.next = "IDLE"
        return m


class CommandFrontEnd:
    """The registers and the two states every map unit shares: IDLE takes one command (a waiting host command
    first) and latches it; ANSWER hands the result to whoever asked. Between them the unit's own states run;
    they end with `answer(...)`."""

    def __init__(self, unit: wiring.Component, key_size: int, ncpus: int):
        self.unit = unit
        self.from_host = Signal()
        self.op = Signal(MapOp)
        self.key = Signal(8 * key_size)
        self.flags = Signal(64)
        self.cpu = Signal(cpu_bits(ncpus))
        self.index = Signal(32)
        self.result = Signal(MapResult)
        self.result_key = Signal(8 * key_size)

    def idle_state(self, m: Module, next_state: str) -> None:
        host, program = self.unit.host.command, self.unit.program.command
        with m.State("IDLE"):
            m.d.comb += [host.ready.eq(1), program.ready.eq(~host.valid)]
            m.d.sync += [self.result.eq(0), self.result_key.eq(0)]
            with m.If(host.valid):
                m.d.sync += [
                    self.from_host.eq(1),
                    self.op.eq(host.payload.op),
                    self.key.eq(host.payload.key),
                    self.flags.eq(host.payload.flags),
                    self.cpu.eq(0),
                    self.index.eq(host.payload.index),
                ]
                m.next = next_state
            with m.Elif(program.valid):
                m.d.sync += [
                    self.from_host.eq(0),
                    self.op.eq(program.payload.op),
                    self.key.eq(program.payload.key),
                    self.flags.eq(program.payload.flags),
                    self.cpu.eq(program.payload.cpu),
                    self.index.eq(0),
                ]
                m.next = next_state

    def answer(self, m: Module, rc: int = 0, *, found=None, offset=None, data=None, key=None) -> None:
        """Set the result (rc is 0 or a positive errno, answered negated) and go to ANSWER."""
        statements = [self.result.rc.eq(-rc if isinstance(rc, int) else rc)]
        if found is not None:
            statements.append(self.result.found.eq(found))
        if offset is not None:
            statements.append(self.result.offset.eq(offset))
        if data is not None:
            statements.append(self.result.data.eq(data))
        if key is not None:
            statements.append(self.result_key.eq(key))
        m.d.sync += statements
        m.next = "ANSWER"

    def answer_state(self, m: Module) -> None:
        host, program = self.unit.host.result, self.unit.program.result
        with m.State("ANSWER"):
            m.d.comb += [
                program.payload.eq(self.result),
                host.payload.rc.eq(self.result.rc),
                host.payload.found.eq(self.result.found),
                host.payload.key.eq(self.result_key),
            ]
            with m.If(self.from_host):
                m.d.comb += host.valid.eq(1)
                with m.If(host.ready):
                    m.next = "IDLE"
            with m.Else():
                m.d.comb += program.valid.eq(1)
                with m.If(program.ready):
                    m.next = "IDLE"


def connect_staging(m: Module, unit: wiring.Component, values: ValueMemory) -> None:
    """The host port's staging signals onto the value memory's staging buffer."""
    m.d.comb += [
        values.staging_write_enable.eq(unit.host.staging_write_enable),
        values.staging_write_address.eq(unit.host.staging_write_address),
        values.staging_write_data.eq(unit.host.staging_write_data),
        values.staging_read_address.eq(unit.host.staging_read_address),
        unit.host.staging_read_data.eq(values.staging_read_data),
        values.program_value_data.eq(unit.program.value_data),
        unit.program.value_address.eq(values.program_value_address),
    ]
    wiring.connect(m, wiring.flipped(unit.value), values.value)


def block_states(m: Module, values: ValueMemory, op: Signal, then: str, name: str = "BLOCK") -> None:
    """States `name` (offer the block operation in `op`) and `name`_WAIT (until it is done), then `then`."""
    with m.State(name):
        m.d.comb += [values.block.valid.eq(1), values.block.payload.eq(op)]
        with m.If(values.block.ready):
            m.next = f"{name}_WAIT"
    with m.State(f"{name}_WAIT"):
        with m.If(values.block_done):
            m.next = then


class ArrayMapUnit(wiring.Component):
    """BPF_MAP_TYPE_ARRAY / PERCPU_ARRAY (and global data: a one-entry array with initial contents).

    READ_ENTRY (host): index < max_entries is found with key = index (every index exists, as keys() walks
    them all). FREEZE: BPF_MAP_FREEZE (-EPERM when already frozen or BPF_F_RDONLY)."""

    def __init__(self, config: MapSlotConfig, value_buffer_words: int):
        if config.kind != "array":
            raise ValueError(f"ArrayMapUnit: {config.label} is not an array")
        self.config = config
        super().__init__({
            "program": In(config.client_port(value_buffer_words)),
            "host": In(config.host_port()),
            "value": In(ValuePort()),
        })
        self.values = ValueMemory(value_size=config.value_size, entries=config.max_entries,
                                  copies=config.copies, ncpus=config.ncpus, program_words=value_buffer_words,
                                  init=config.initial_data or b"")
        self.value_data = self.values.value_data

    def elaborate(self, platform):
        m = Module()
        config = self.config
        m.submodules.values = values = self.values
        connect_staging(m, self, values)

        front = CommandFrontEnd(self, config.key_size, config.ncpus)
        frozen = Signal(init=int(config.frozen))
        block = Signal(block_op_layout(config.ncpus))
        stride = config.value_stride
        region = config.max_entries * stride
        index = Signal(32)
        m.d.comb += index.eq(front.key[0:32])
        in_range = index < config.max_entries
        slot_offset = index[0:max(1, (config.max_entries - 1).bit_length())] * stride
        host_refuses_writes = frozen | int(config.host_readonly)
        flags = front.flags

        with m.FSM():
            front.idle_state(m, "EXECUTE")
            with m.State("EXECUTE"):
                with m.If(front.from_host):
                    with m.Switch(front.op):
                        with m.Case(MapOp.LOOKUP):
                            if config.host_writeonly:
                                front.answer(m, errno.EPERM)
                            else:
                                with m.If(~in_range):
                                    front.answer(m, errno.ENOENT)
                                with m.Else():
                                    m.d.sync += [block.kind.eq(BlockKind.COPY_OUT), block.cpus.eq(CpuSelect.ALL),
                                                 block.slot_offset.eq(slot_offset),
                                                 front.result.found.eq(1)]
                                    m.next = "BLOCK"
                        with m.Case(MapOp.UPDATE):
                            with m.If(host_refuses_writes):
                                front.answer(m, errno.EPERM)
                            with m.Elif(flags > maps.BPF_EXIST):   # BPF_F_LOCK too: no bpf_spin_lock here
                                front.answer(m, errno.EINVAL)
                            with m.Elif(~in_range):
                                front.answer(m, errno.E2BIG)
                            with m.Elif(flags[0]):                 # BPF_NOEXIST: every element exists
                                front.answer(m, errno.EEXIST)
                            with m.Else():
                                m.d.sync += [block.kind.eq(BlockKind.COPY_IN), block.from_host.eq(1),
                                             block.cpus.eq(CpuSelect.ALL), block.slot_offset.eq(slot_offset)]
                                m.next = "BLOCK"
                        with m.Case(MapOp.DELETE):
                            front.answer(m, Mux(host_refuses_writes, -errno.EPERM, -errno.EINVAL))
                        with m.Case(MapOp.READ_ENTRY):
                            exists = front.index < config.max_entries
                            front.answer(m, 0, found=exists, key=Mux(exists, front.index, 0))
                        with m.Case(MapOp.FREEZE):
                            with m.If(host_refuses_writes):
                                front.answer(m, errno.EPERM)
                            with m.Else():
                                m.d.sync += frozen.eq(1)
                                front.answer(m, 0)
                        with m.Default():
                            front.answer(m, errno.EINVAL)
                with m.Else():
                    with m.Switch(front.op):
                        with m.Case(MapOp.LOOKUP):
                            cpu_offset = front.cpu * region if config.per_cpu else 0
                            front.answer(m, 0, found=in_range, offset=Mux(in_range, cpu_offset + slot_offset, 0))
                        with m.Case(MapOp.UPDATE):
                            with m.If((flags & ~maps.BPF_F_LOCK) > maps.BPF_EXIST):
                                front.answer(m, errno.EINVAL)
                            with m.Elif(~in_range):
                                front.answer(m, errno.E2BIG)
                            with m.Elif(flags[0]):
                                front.answer(m, errno.EEXIST)
                            with m.Elif(flags[2]):                 # BPF_F_LOCK without a bpf_spin_lock
                                front.answer(m, errno.EINVAL)
                            with m.Else():
                                m.d.sync += [block.kind.eq(BlockKind.COPY_IN), block.from_host.eq(0),
                                             block.cpus.eq(CpuSelect.ONE), block.cpu.eq(front.cpu),
                                             block.slot_offset.eq(slot_offset)]
                                m.next = "BLOCK"
                        with m.Default():                          # delete: arrays have no such thing
                            front.answer(m, errno.EINVAL)
            block_states(m, values, block, then="DONE")
            with m.State("DONE"):
                front.answer(m, 0)
            front.answer_state(m)
        return m
