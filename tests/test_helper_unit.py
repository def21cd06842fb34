"""The helper unit against the golden VM's helpers (sw/xdp.py through hw/pipeline/helper_model.py): random
helper calls with random (good and bad) arguments on a unit wired to real map units, a stack and a packet
buffer, with random stalls on the helper port; r0, status, tail calls, redirects, packet pointers, packet
bytes, map contents and the trace records are compared call by call. Also: the tail-call limit, the clock's
rate, a full trace FIFO, and conversion to Verilog."""

from __future__ import annotations

import random

from amaranth.back import verilog
from amaranth.hdl import Cat, Elaboratable, Module, Signal
from amaranth.lib import wiring

from bpfnic.hw.core.interfaces import HelperStatus
from bpfnic.hw.pipeline.helper_model import HelperModel
from bpfnic.hw.pipeline.helper_unit import (HelperUnit, PacketPointers, XorShift32, decode_trace_records,
                                            format_trace_record)
from bpfnic.hw.pipeline.map_array import ValueMemory
from bpfnic.hw.pipeline.map_config import MapLimits, MapOp, MapSlotConfig, NicMapConfig
from bpfnic.hw.pipeline.map_progarray import ProgramEntry
from bpfnic.sw import maps, memory, xdp

from test_hw_maps import port_signals, run_simulation

M64 = (1 << 64) - 1
STACK = memory.TAG_STACK
PACKET = memory.TAG_PACKET


def pointer(tag, offset):
    return memory.make_pointer(tag, offset)


def handle(index):
    return memory.map_handle(index)


def nic_config() -> NicMapConfig:
    slots = [
        dict(name="counts", map_type=maps.BPF_MAP_TYPE_ARRAY, key_size=4, value_size=12, max_entries=6),
        dict(name="flows", map_type=maps.BPF_MAP_TYPE_HASH, key_size=6, value_size=8, max_entries=8, hash_ways=2),
        dict(name="recent", map_type=maps.BPF_MAP_TYPE_LRU_HASH, key_size=4, value_size=8, max_entries=4),
        dict(name="routes", map_type=maps.BPF_MAP_TYPE_LPM_TRIE, key_size=8, value_size=4, max_entries=8,
             flags=maps.BPF_F_NO_PREALLOC, lpm_lanes=4),
        dict(name="ports", map_type=maps.BPF_MAP_TYPE_DEVMAP, key_size=4, value_size=4, max_entries=4,
             valid_ifindexes=(1, 2, 3)),
        dict(name="hashed_ports", map_type=maps.BPF_MAP_TYPE_DEVMAP_HASH, key_size=4, value_size=8, max_entries=4),
        dict(name="jmp_table", map_type=maps.BPF_MAP_TYPE_PROG_ARRAY, key_size=4, value_size=4, max_entries=4),
        dict(name=".rodata", map_type=maps.BPF_MAP_TYPE_ARRAY, key_size=4, value_size=21, max_entries=1,
             flags=maps.BPF_F_MMAPABLE | maps.BPF_F_RDONLY_PROG, frozen=True,
             initial_data=b"hello %d\n\x00\x00fmt %x %u\x00"),
    ]
    return NicMapConfig([MapSlotConfig(index=i, **s) for i, s in enumerate(slots)], limits=MapLimits())


class HelperHarness(Elaboratable):
    """The helper unit, the map units on its map ports, and a memory system for its data port: the stack and
    the packet buffer (byte-addressed block RAMs, map_array.ValueMemory) and the map units' value ports,
    chosen by the pointer's tag; a read of any other tag answers 0 (as the NIC's memory system does). The
    packet pointers are registers that `adjust` rewrites."""

    def __init__(self, config: NicMapConfig, **helper_parameters):
        self.config = config
        self.helper = HelperUnit(config, **helper_parameters)
        self.units = config.build_units()
        self.stack = ValueMemory(value_size=memory.STACK_REGION_SIZE, entries=1, copies=1, ncpus=1, program_words=1)
        self.packet = ValueMemory(value_size=xdp.FRAME_SIZE, entries=1, copies=1, ncpus=1, program_words=1)
        self.pointers = Signal(PacketPointers)

    def elaborate(self, platform):
        m = Module()
        helper = self.helper
        m.submodules.helper = helper
        m.submodules.stack = self.stack
        m.submodules.packet = self.packet
        for index, unit in enumerate(self.units):
            m.submodules[f"map{index}"] = unit
            wiring.connect(m, helper.map_ports[index], unit.program)
        m.d.comb += helper.pointers.eq(self.pointers)
        with m.If(helper.adjust.valid):
            m.d.sync += self.pointers.eq(helper.adjust.payload)

        request = helper.memory.request
        address = request.payload.address
        targets = [(STACK, self.stack.value), (PACKET, self.packet.value)]
        targets += [(memory.TAG_MAP_VALUE_BASE + i, unit.value) for i, unit in enumerate(self.units)
                    if hasattr(unit, "value")]
        known = Signal()
        answer_zero = Signal()
        response_valid = []
        for tag, port in targets:
            chosen = address[32:40] == tag
            m.d.comb += [
                port.request.valid.eq(request.valid & chosen),
                port.request.payload.offset.eq(address[0:32]),
                port.request.payload.size.eq(request.payload.size),
                port.request.payload.write.eq(request.payload.write),
                port.request.payload.data.eq(request.payload.data),
            ]
            with m.If(chosen):
                m.d.comb += [known.eq(1), request.ready.eq(port.request.ready)]
            with m.If(port.response.valid):
                m.d.comb += helper.memory.response.payload.eq(port.response.payload)
            response_valid.append(port.response.valid)
        with m.If(~known):
            m.d.comb += request.ready.eq(1)
        m.d.sync += answer_zero.eq(request.valid & ~known & ~request.payload.write)
        m.d.comb += helper.memory.response.valid.eq(answer_zero | Cat(*response_valid).any())
        return m


class HelperBench:
    def __init__(self, config: NicMapConfig, rng: random.Random, stall: float = 0.3, **helper_parameters):
        self.config = config
        self.rng = rng
        self.stall = stall
        self.harness = HelperHarness(config, **helper_parameters)
        self.helper = self.harness.helper
        self.model = HelperModel(config, prandom_seed=self.helper.prandom_seed)
        self.model_trace: list[str] = []          # the golden VM's trace lines of earlier frames

    async def _pause(self, ctx):
        while self.rng.random() < self.stall:
            await ctx.tick()

    async def call(self, ctx, helper_id, args):
        args = [arg & M64 for arg in args] + [0] * (5 - len(args))
        port = self.helper.helper
        await self._pause(ctx)
        ctx.set(port.request.valid, 1)
        ctx.set(port.request.payload, {"id": helper_id & 0xFFFF_FFFF, "args": args})
        await ctx.tick().until(port.request.ready)
        ctx.set(port.request.valid, 0)
        response, tail = await ctx.tick().sample(port.response.payload, self.helper.tail_call) \
            .until(port.response.valid)
        return response.status, response.r0, (ProgramEntry(tail.entry_pc, tail.length) if tail.taken else None)

    async def host(self, ctx, map_index, op, key: bytes, staging=(), flags=0):
        unit = self.harness.units[map_index]
        host = unit.host
        for index, word in enumerate(staging):
            ctx.set(host.staging_write_enable, 1)
            ctx.set(host.staging_write_address, index)
            ctx.set(host.staging_write_data, word)
            await ctx.tick()
        ctx.set(host.staging_write_enable, 0)
        ctx.set(host.command.valid, 1)
        ctx.set(host.command.payload, {"op": op, "key": int.from_bytes(key, "little"), "flags": flags, "index": 0})
        await ctx.tick().until(host.command.ready)
        ctx.set(host.command.valid, 0)
        ctx.set(host.result.ready, 1)
        result, = await ctx.tick().sample(host.result.payload).until(host.result.valid)
        ctx.set(host.result.ready, 0)
        return result.rc

    def write_stack(self, ctx, offset, data: bytes):
        self.model.stack[offset:offset + len(data)] = data
        self._write_words(ctx, self.harness.stack.value_data, offset, len(data), self.model.stack)

    def _write_words(self, ctx, memory_data, offset, length, image):
        for word in range(offset // 8, (offset + length + 7) // 8):
            ctx.set(memory_data[word], int.from_bytes(image[8 * word:8 * word + 8], "little"))

    async def start_frame(self, ctx, frame: bytes):
        self.model_trace.extend(self.model.trace)
        self.model.start(frame)
        buffer = self.model.packet
        self._write_words(ctx, self.harness.packet.value_data, 0, len(buffer.buf), buffer.buf)
        ctx.set(self.harness.pointers, {"data": buffer.data, "data_end": buffer.data_end,
                                        "data_meta": buffer.data_meta})
        ctx.set(self.helper.run_start, 1)
        await ctx.tick()
        ctx.set(self.helper.run_start, 0)

    def check_state(self, ctx, what):
        buffer = self.model.packet
        pointers = ctx.get(self.harness.pointers)
        assert (pointers.data, pointers.data_end, pointers.data_meta) == \
            (buffer.data, buffer.data_end, buffer.data_meta), what
        redirect = ctx.get(self.helper.redirect)
        assert (redirect.ifindex if redirect.valid else None) == self.model.redirect, what

    def packet_bytes(self, ctx) -> bytes:
        data = self.harness.packet.value_data
        return b"".join(ctx.get(data[i]).to_bytes(8, "little") for i in range(data.depth))

    def map_bytes(self, ctx, index) -> bytes:
        data = self.harness.units[index].value_data
        return b"".join(ctx.get(data[i]).to_bytes(8, "little") for i in range(data.depth))

    async def drain_trace(self, ctx) -> list[int]:
        """Read the trace FIFO until it has been empty for two cycles."""
        words = []
        trace = self.helper.trace
        ctx.set(trace.ready, 1)
        idle = 0
        while idle < 2:
            *_, valid, word = await ctx.tick().sample(trace.valid, trace.payload)
            if valid:
                words.append(word)
                idle = 0
            else:
                idle += 1
        ctx.set(trace.ready, 0)
        return words


async def set_up_maps(ctx, bench):
    """Program array entries and redirect targets, written by the host into the units and the model alike."""
    model = bench.model
    for index, entry in [(0, ProgramEntry(100, 20)), (1, ProgramEntry(200, 31)), (3, ProgramEntry(7, 1))]:
        assert await bench.host(ctx, 6, MapOp.UPDATE, index.to_bytes(4, "little"), [entry.word]) == 0
        assert model.set_program(6, index, entry) == 0
    for index, ifindex in [(0, 1), (2, 3)]:
        assert await bench.host(ctx, 4, MapOp.UPDATE, index.to_bytes(4, "little"), [ifindex]) == 0
        assert model.maps[4].update(index.to_bytes(4, "little"), ifindex.to_bytes(4, "little")) == 0
    for key, ifindex in [(10, 2), (77, 5)]:
        assert await bench.host(ctx, 5, MapOp.UPDATE, key.to_bytes(4, "little"), [ifindex]) == 0
        assert model.maps[5].update(key.to_bytes(4, "little"), ifindex.to_bytes(8, "little")) == 0


FORMATS = [b"x=%d\n\x00", b"%u and %x\x00junk", b"plain text\x00", b"%lld %llx %c\x00", b"no terminator",
           b"100%% %d\x00"]


class CallMaker:
    """Random helper calls with good and bad arguments, writing what they point at into the stack."""

    def __init__(self, bench: HelperBench, rng: random.Random):
        self.bench, self.rng = bench, rng
        config = bench.config
        self.keys = {i: [rng.randbytes(slot.key_size) for _ in range(6)] for i, slot in enumerate(config.slots)}
        self.keys[0] = [i.to_bytes(4, "little") for i in (0, 1, 5, 6, 1000)]
        self.keys[3] = [bytes([rng.choice([0, 8, 16, 24, 32, 33])]) + bytes(3) + bytes([10, rng.randrange(3), 0, 1])
                        for _ in range(8)]
        self.map_pointers: list[int] = []    # value pointers lookups returned: keys and values can live there

    def stack_pointer(self, ctx, data: bytes) -> int:
        offset = self.rng.randrange(0, memory.STACK_REGION_SIZE - len(data) + 1)
        self.bench.write_stack(ctx, offset, data)
        return pointer(STACK, offset)

    def data_pointer(self, ctx, data: bytes) -> int:
        roll = self.rng.random()
        if roll < 0.04:
            return self.rng.choice([0, pointer(STACK, memory.STACK_REGION_SIZE - len(data) + 1),
                                    pointer(memory.TAG_CONTEXT, 0), pointer(0x90, 0), 1 << 40 | pointer(STACK, 0)])
        if roll < 0.1 and self.map_pointers:
            return self.rng.choice(self.map_pointers)          # whatever a map value holds
        if roll < 0.14:
            buffer = self.bench.model.packet
            return pointer(PACKET, self.rng.randrange(0, buffer.data_end + 4))
        if roll < 0.18:                                        # flush with the end of the stack
            offset = memory.STACK_REGION_SIZE - len(data)
            self.bench.write_stack(ctx, offset, data)
            return pointer(STACK, offset)
        return self.stack_pointer(ctx, data)

    def map_index(self, kinds=None) -> int:
        candidates = [i for i, slot in enumerate(self.bench.config.slots) if kinds is None or slot.kind in kinds]
        if self.rng.random() < 0.08:
            return -1
        return self.rng.choice(candidates if self.rng.random() < 0.9 else range(len(self.bench.config.slots)))

    def map_handle(self, kinds=None) -> int:
        index = self.map_index(kinds)
        if index < 0:
            return self.rng.choice([handle(len(self.bench.config.slots)), pointer(STACK, 0), 0, handle(0) | 1 << 40])
        return handle(index)

    def make(self, ctx):
        rng, config = self.rng, self.bench.config
        kind = rng.choices(["lookup", "update", "delete", "tail_call", "redirect", "redirect_map", "csum", "head",
                            "meta", "tail", "ktime", "prandom", "smp", "trace", "unknown"],
                           [12, 10, 5, 4, 2, 4, 5, 4, 4, 4, 1, 1, 1, 3, 1])[0]
        if kind in ("lookup", "update", "delete"):
            map_handle = self.map_handle()
            index = map_handle & 0xFF if map_handle >> 32 == memory.TAG_MAP_HANDLE else 0
            slot = config.slots[min(index, len(config.slots) - 1)]
            key = rng.choice(self.keys[min(index, len(config.slots) - 1)])
            key_pointer = self.data_pointer(ctx, key)
            if kind == "lookup":
                return xdp.HELPER_MAP_LOOKUP_ELEM, [map_handle, key_pointer]
            if kind == "delete":
                return xdp.HELPER_MAP_DELETE_ELEM, [map_handle, key_pointer]
            value = rng.randbytes(slot.value_size)
            if slot.kind == "devmap":
                value = bytes([rng.choice([0, 1, 2, 9])]) + value[1:]
            flags = rng.choice([0, 0, 0, 0, 0, 0, 1, 2, 4, 3, 1 << 33])
            return xdp.HELPER_MAP_UPDATE_ELEM, [map_handle, key_pointer, self.data_pointer(ctx, value), flags]
        if kind == "tail_call":
            return xdp.HELPER_TAIL_CALL, [pointer(memory.TAG_CONTEXT, 0), self.map_handle({"progarray"}),
                                          rng.choice([0, 1, 2, 3, 4, 1 << 32 | 1, 0xFFFF_FFFF])]
        if kind == "redirect":
            return xdp.HELPER_REDIRECT, [rng.choice([1, 2, 0x1_0000_0003]), rng.choice([0, 0, 0, 1])]
        if kind == "redirect_map":
            return xdp.HELPER_REDIRECT_MAP, [self.map_handle({"devmap"}), rng.choice([0, 1, 2, 10, 77, 1 << 32]),
                                             rng.choice([0, 0, 1, 2, 3, 6, xdp.BPF_F_BROADCAST])]
        if kind == "csum":
            sizes = [rng.choice([0, 4, 8, 12, 20, 64, 256, 6, 600]) for _ in range(2)]
            from_pointer = self.stack_pointer(ctx, rng.randbytes(min(sizes[0], 600))) if sizes[0] else 0
            to_pointer = self.data_pointer(ctx, rng.randbytes(min(sizes[1], 600))) if sizes[1] else 0
            return xdp.HELPER_CSUM_DIFF, [from_pointer, sizes[0], to_pointer, sizes[1], rng.getrandbits(64)]
        if kind == "head":
            return xdp.HELPER_XDP_ADJUST_HEAD, [0, rng.choice([rng.randrange(-300, 300), -216, -4, 8, 14,
                                                               0xFFFF_FFFF_0000_0004])]
        if kind == "meta":
            return xdp.HELPER_XDP_ADJUST_META, [0, rng.choice([-4, -8, -16, -32, -36, -6, 4, 8, rng.randrange(-40, 40)])]
        if kind == "tail":
            return xdp.HELPER_XDP_ADJUST_TAIL, [0, rng.choice([rng.randrange(-120, 200), 3500, -3, 17, 4000])]
        if kind == "ktime":
            return rng.choice([xdp.HELPER_KTIME_GET_NS, xdp.HELPER_KTIME_GET_BOOT_NS]), []
        if kind == "prandom":
            return xdp.HELPER_GET_PRANDOM_U32, []
        if kind == "smp":
            return xdp.HELPER_GET_SMP_PROCESSOR_ID, []
        if kind == "trace":
            text = rng.choice(FORMATS)
            return xdp.HELPER_TRACE_PRINTK, [self.data_pointer(ctx, text), rng.choice([len(text), len(text), 3]),
                                             rng.getrandbits(64), rng.getrandbits(64), rng.getrandbits(64)]
        return rng.choice([4, 9, 99, 0x7FFF_FFFF, 0xFFFF_FFFF]), [rng.getrandbits(64)]


def test_helper_unit_matches_golden_vm():
    rng = random.Random(2024)
    config = nic_config()
    bench = HelperBench(config, rng)
    maker = CallMaker(bench, rng)
    helper_names = {**xdp.HELPER_NAMES}
    hardware_trace: list[int] = []
    last_time = [0]

    async def testbench(ctx):
        await bench.start_frame(ctx, bytes(range(64)) * 2)
        await set_up_maps(ctx, bench)
        for number in range(500):
            if rng.random() < 0.04:
                await bench.start_frame(ctx, rng.randbytes(rng.choice([14, 60, 200, 1500])))
            helper_id, args = maker.make(ctx)
            what = f"call {number}: {helper_names.get(helper_id, helper_id)}{tuple(hex(a) for a in args)}"
            expected = bench.model.call(helper_id, args + [0] * (5 - len(args)))
            status, r0, tail = await bench.call(ctx, helper_id, args)
            assert status == expected.status, what
            if helper_id in (xdp.HELPER_KTIME_GET_NS, xdp.HELPER_KTIME_GET_BOOT_NS):
                assert r0 >= last_time[0] and r0 % 8 == 0, what     # 125 MHz: 8 ns a cycle
                last_time[0] = r0
            elif helper_id == xdp.HELPER_TRACE_PRINTK and expected.status == HelperStatus.OK \
                    and expected.r0 < 1 << 63:
                # The unit answers the format's length; the golden VM the formatted line's.
                assert r0 == bench.model.session.vm.read(args[0], args[1]).index(0), what
            else:
                assert (r0, tail) == (expected.r0, expected.tail_call), what
            if helper_id == xdp.HELPER_MAP_LOOKUP_ELEM and r0:
                maker.map_pointers.append(r0)
            bench.check_state(ctx, what)
            if helper_id in (xdp.HELPER_XDP_ADJUST_HEAD, xdp.HELPER_XDP_ADJUST_TAIL):
                assert bench.packet_bytes(ctx) == bytes(bench.model.packet.buf), what
            if rng.random() < 0.1:
                hardware_trace.extend(await bench.drain_trace(ctx))
        hardware_trace.extend(await bench.drain_trace(ctx))
        assert bench.packet_bytes(ctx) == bytes(bench.model.packet.buf)
        for index, bpf_map in enumerate(bench.model.maps):
            if config.slots[index].value_memory_bytes:
                assert bench.map_bytes(ctx, index) == bytes(bpf_map.value_memory), config.slots[index].name
        lines = [format_trace_record(record) for record in decode_trace_records(hardware_trace)]
        assert lines and lines == bench.model_trace + bench.model.trace

    run_simulation(bench.harness, testbench, deadline_cycles=400_000)


def test_adjust_helpers_move_metadata_and_zero_grown_tail():
    """adjust_meta then adjust_head: the metadata bytes move with data; adjust_tail shrinks, then grows over
    the old bytes, which must read as zeros."""
    bench = HelperBench(nic_config(), random.Random(5), stall=0.0)
    frame = bytes(range(1, 101))
    calls = [(xdp.HELPER_XDP_ADJUST_META, -16), (xdp.HELPER_XDP_ADJUST_HEAD, -40), (xdp.HELPER_XDP_ADJUST_HEAD, 22),
             (xdp.HELPER_XDP_ADJUST_TAIL, -30), (xdp.HELPER_XDP_ADJUST_TAIL, 13), (xdp.HELPER_XDP_ADJUST_TAIL, 3),
             (xdp.HELPER_XDP_ADJUST_META, -40), (xdp.HELPER_XDP_ADJUST_META, -6)]

    async def testbench(ctx):
        await bench.start_frame(ctx, frame)
        for helper_id, delta in calls:
            if helper_id == xdp.HELPER_XDP_ADJUST_HEAD:     # give the metadata recognisable bytes
                buffer = bench.model.packet
                meta = bytes(range(200, 200 + buffer.data - buffer.data_meta))
                buffer.buf[buffer.data_meta:buffer.data] = meta
                bench._write_words(ctx, bench.harness.packet.value_data, 0, len(buffer.buf), buffer.buf)
            expected = bench.model.call(helper_id, [0, delta, 0, 0, 0])
            assert await bench.call(ctx, helper_id, [0, delta]) == (expected.status, expected.r0, None)
            bench.check_state(ctx, (helper_id, delta))
            assert bench.packet_bytes(ctx) == bytes(bench.model.packet.buf), (helper_id, delta)
        buffer = bench.model.packet
        assert buffer.buf[buffer.data_end - 16:buffer.data_end] == bytes(16)     # grown: zeros, not old bytes

    run_simulation(bench.harness, testbench)


def test_tail_calls_stop_after_33_and_restart_with_the_next_run():
    config = nic_config()
    bench = HelperBench(config, random.Random(1), stall=0.0)

    async def testbench(ctx):
        await bench.start_frame(ctx, bytes(60))
        await set_up_maps(ctx, bench)
        for run in range(2):
            outcomes = []
            for _ in range(35):
                status, r0, tail = await bench.call(ctx, xdp.HELPER_TAIL_CALL, [0, handle(6), 1])
                expected = bench.model.call(xdp.HELPER_TAIL_CALL, [0, handle(6), 1, 0, 0])
                assert (status, r0, tail) == (expected.status, expected.r0, expected.tail_call)
                outcomes.append(tail)
            assert outcomes[:33] == [ProgramEntry(200, 31)] * 33
            assert outcomes[33:] == [None, None]
            await bench.start_frame(ctx, bytes(60))

    run_simulation(bench.harness, testbench)


def test_ktime_counts_nanoseconds_at_the_clock_rate():
    for clock_hz, step in ((125e6, 8), (100e6, 10)):
        bench = HelperBench(nic_config(), random.Random(2), stall=0.0, clock_hz=clock_hz)
        times = []

        async def testbench(ctx):
            for gap in (1, 101, 1001):
                await ctx.tick().repeat(gap)
                times.append((await bench.call(ctx, xdp.HELPER_KTIME_GET_NS, []))[1])

        run_simulation(bench.harness, testbench)
        # the same call, `gap` cycles apart: the differences grow by exactly gap * step
        assert (times[2] - times[1]) - (times[1] - times[0]) == 900 * step, (clock_hz, times)


def test_prandom_is_xorshift32_from_the_seed():
    bench = HelperBench(nic_config(), random.Random(3), stall=0.0, prandom_seed=12345)
    model = XorShift32(12345)
    values = []

    async def testbench(ctx):
        for _ in range(5):
            values.append((await bench.call(ctx, xdp.HELPER_GET_PRANDOM_U32, []))[1])

    run_simulation(bench.harness, testbench)
    assert values == [model.getrandbits(32) for _ in range(5)]


def test_a_full_trace_fifo_drops_whole_records_and_counts_them():
    bench = HelperBench(nic_config(), random.Random(4), stall=0.0, trace_depth=16)
    text = b"n=%d\x00"                       # 1 format word: 5 words a record, 3 records fit in 16

    async def testbench(ctx):
        bench.write_stack(ctx, 64, text)
        for number in range(5):
            status, r0, _ = await bench.call(ctx, xdp.HELPER_TRACE_PRINTK, [pointer(STACK, 64), len(text), number])
            assert (status, r0) == (HelperStatus.OK, 4)
        assert ctx.get(bench.helper.trace_dropped) == 2
        records = decode_trace_records(await bench.drain_trace(ctx))
        assert [format_trace_record(record) for record in records] == ["n=0", "n=1", "n=2"]
        status, r0, _ = await bench.call(ctx, xdp.HELPER_TRACE_PRINTK, [pointer(STACK, 64), len(text), 7])
        assert [format_trace_record(r) for r in decode_trace_records(await bench.drain_trace(ctx))] == ["n=7"]

    run_simulation(bench.harness, testbench)


def test_helper_unit_converts_to_verilog():
    unit = HelperUnit(nic_config())
    text = verilog.convert(unit, name="helper_unit", ports=port_signals(unit))
    assert "module helper_unit" in text
