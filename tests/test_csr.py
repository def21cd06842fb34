"""The CSR host interface (hw/pipeline/csr.py) through its driver, against models of what each register
operation must do on the NIC side: instruction and region writes, injected frames, passed frames read by the
host, trace words, counters, and map commands served by a map-unit stand-in built on sw/maps.py, with random
stalls on every stream."""

from __future__ import annotations

import errno
import random

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from bpfnic.hw.pipeline.csr import (COUNTERS_BASE, Csr, CsrDriver, CsrError, ID_VALUE, MapPortShape, Reg,
                                    SimulatedBus, register_table)
from bpfnic.hw.pipeline.helper_unit import TRACE_MARKER
from bpfnic.hw.pipeline.map_config import MapOp
from bpfnic.sw import maps

from test_packet_buffer import CLOCK_PERIOD, refused, signal_ports, stall

COUNTERS = ["port0_rx", "port0_tx", "verdict_drop", "trap_bad_access"]


def map_unit_stand_in(port, bpf_map: maps.BpfMap, staging_words: int, rng: random.Random):
    """A testbench serving a HostMapPort with sw/maps.py's semantics (the real units are tested against the
    same model in tests/test_hw_maps.py): staging buffer, one command at a time, random latency."""
    staging = [0] * staging_words
    key_size = bpf_map.key_size

    async def bench(ctx):
        pending = None
        delay = 0
        while True:
            ctx.set(port.command.ready, pending is None)
            if pending is not None and delay == 0:
                ctx.set(port.result.valid, 1)
                ctx.set(port.result.payload, pending)
            else:
                ctx.set(port.result.valid, 0)
            _, _, command_valid, command, result_ready, write_enable, write_address, write_data, read_address = \
                await ctx.tick().sample(port.command.valid, port.command.payload, port.result.ready,
                                        port.staging_write_enable, port.staging_write_address,
                                        port.staging_write_data, port.staging_read_address)
            if write_enable:
                staging[write_address] = write_data
            ctx.set(port.staging_read_data, staging[read_address])
            if pending is not None and delay == 0 and result_ready:
                pending = None
                continue
            if pending is not None:
                delay -= 1
                continue
            if command_valid:
                key = command.key.to_bytes(key_size, "little")
                op = MapOp(command.op)
                found, result_key, rc = 0, 0, 0
                value_bytes = b"".join(w.to_bytes(8, "little") for w in staging)[:bpf_map.value_size]
                if op == MapOp.LOOKUP:
                    value = bpf_map.lookup(key)
                    if value is None:
                        rc = -errno.ENOENT
                    else:
                        found = 1
                        padded = value + bytes(-len(value) % 8)
                        for index in range(len(padded) // 8):
                            staging[index] = int.from_bytes(padded[8 * index:8 * index + 8], "little")
                elif op == MapOp.UPDATE:
                    rc = bpf_map.update(key, value_bytes, command.flags)
                elif op == MapOp.DELETE:
                    rc = bpf_map.delete(key)
                elif op == MapOp.READ_ENTRY:
                    keys = list(bpf_map.keys())
                    if command.index < len(keys):
                        found, result_key = 1, int.from_bytes(keys[command.index], "little")
                    else:
                        rc = -errno.ENOENT
                pending = {"rc": rc, "found": found, "key": result_key}
                delay = rng.randrange(4)
    return bench


def run_csr(seed: int, stall_probability: float, operations: int):
    rng = random.Random(seed)
    hash_map = maps.create_map(maps.BPF_MAP_TYPE_HASH, 4, 12, 8, name="flows")
    array_map = maps.create_map(maps.BPF_MAP_TYPE_ARRAY, 4, 8, 4, name="stats")
    reference = {0: maps.create_map(maps.BPF_MAP_TYPE_HASH, 4, 12, 8), 1: maps.create_map(maps.BPF_MAP_TYPE_ARRAY, 4, 8, 4)}
    dut = Csr(ports=2, cores=1, slots=8, slot_size=4096, counter_names=COUNTERS, inject_words=32,
              map_ports=[MapPortShape(4, 2), MapPortShape(4, 1)])
    imem_writes, region_writes, injected, traces_sent = [], [], [], []
    host_frames = [(bytes(rng.randrange(256) for _ in range(rng.randint(1, 70))), rng.randrange(256))
                   for _ in range(6)]
    trace_records = []
    for _ in range(4):
        format_words = rng.randint(1, 3)
        header = TRACE_MARKER << 56 | format_words << 24 | rng.randrange(256) << 16 | rng.randrange(8 * format_words)
        trace_records.append([header] + [rng.getrandbits(64) for _ in range(format_words + 3)])
    counter_values = [rng.getrandbits(32) for _ in COUNTERS]

    def consumer(stream, sink, local):
        async def bench(ctx):
            while True:
                ready = local.random() >= stall_probability
                ctx.set(stream.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
                if valid and ready:
                    sink.append(payload)
        return bench

    def producer(stream, words, local):
        async def bench(ctx):
            for word in words:
                await stall(ctx, local, stall_probability)
                ctx.set(stream.payload, word)
                ctx.set(stream.valid, 1)
                while True:
                    _, _, ready = await ctx.tick().sample(stream.ready)
                    if ready:
                        break
                ctx.set(stream.valid, 0)
        return bench

    host_words = []
    for frame, info in host_frames:
        for offset in range(0, len(frame), 8):
            chunk = frame[offset:offset + 8]
            garbage = rng.getrandbits(64) & ~((1 << (8 * len(chunk))) - 1)   # stale bytes past the end
            host_words.append({"data": int.from_bytes(chunk, "little") | garbage, "bytes": len(chunk),
                               "first": offset == 0, "last": offset + 8 >= len(frame), "length": len(frame),
                               "info": info})
    trace_words = [word for record in trace_records for word in record]

    async def host(ctx):
        for index, value in enumerate(counter_values):
            ctx.set(dut.counters[index], value)
        ctx.set(dut.free_slots, 5)
        ctx.set(dut.dispatcher_idle, 1)
        bus = SimulatedBus(ctx, dut.bus)
        driver = CsrDriver(bus.read, bus.write, COUNTERS)
        await driver.check_identity()
        assert await bus.read(Reg.CONFIG) == 2 | 1 << 8 | 2 << 16 | 12 << 24
        assert await bus.read(Reg.BUFFER) == 8 | 5 << 16
        assert await bus.read(0x0FFC) == 0, "an unknown address reads 0"
        expected_imem, expected_regions, expected_frames = [], [], []
        received_frames, received_traces = [], []
        for _ in range(operations):
            choice = rng.randrange(8)
            if choice == 0:
                words = [rng.getrandbits(64) for _ in range(rng.randint(1, 5))]
                base = rng.randrange(100)
                await driver.load_program(words, entry=1, base=base, cycle_budget=1000)
                expected_imem += [(base + i, w) for i, w in enumerate(words)]
                assert await bus.read(Reg.PROG_ENTRY) == base + 1
                assert await bus.read(Reg.PROG_LENGTH) == base + len(words)
                assert ctx.get(dut.program.cycle_budget) == 1000
            elif choice == 1:
                tag, size = rng.choice([1, 2, 0x80, 0x81]), rng.getrandbits(16)
                writable, computed, present = (rng.random() < 0.5 for _ in range(3))
                await driver.set_region(tag, size, writable=writable, computed=computed, present=present)
                expected_regions.append((tag, size, writable, computed, present))
            elif choice == 2:
                frame = bytes(rng.randrange(256) for _ in range(rng.choice([1, 3, 4, 5, 8, 60, 200, 256])))
                port = rng.randrange(2)
                await driver.inject_frame(frame, port)
                expected_frames.append((frame, port))
            elif choice == 3:
                got = await driver.receive_frame()
                if got is not None:
                    received_frames.append(got)
            elif choice == 4:
                record = await driver.read_trace_record()
                if record is not None:
                    received_traces.append(record)
            elif choice == 5:
                index = rng.randrange(len(COUNTERS))
                assert await driver.counter(COUNTERS[index]) == counter_values[index]
            else:
                map_index = rng.randrange(2)
                model = reference[map_index]
                key = rng.randrange(6).to_bytes(4, "little")
                op = rng.choice(["update", "lookup", "delete", "entry"])
                if op == "update":
                    value = bytes(rng.randrange(256) for _ in range(model.value_size))
                    flags = rng.choice([maps.BPF_ANY, maps.BPF_NOEXIST, maps.BPF_EXIST])
                    assert await driver.map_update(map_index, key, value, flags) == model.update(key, value, flags)
                elif op == "lookup":
                    expected = model.lookup(key)
                    rc, value = await driver.map_lookup(map_index, key, model.value_size)
                    assert value == expected and rc == (0 if expected is not None else -errno.ENOENT)
                elif op == "delete":
                    assert await driver.map_delete(map_index, key) == model.delete(key)
                else:
                    keys = list(model.keys())
                    position = rng.randrange(len(keys) + 1)
                    rc, key_found = await driver.map_read_entry(map_index, position, 4)
                    assert key_found == (keys[position] if position < len(keys) else None)
        # drain what is left of the host queue and the trace queue
        while (got := await driver.receive_frame()) is not None:
            received_frames.append(got)
        while (record := await driver.read_trace_record()) is not None:
            received_traces.append(record)
        assert received_frames == host_frames
        assert received_traces == trace_records
        for _ in range(200):
            await ctx.tick()
        assert [(w.address, w.data) for w in imem_writes] == expected_imem
        assert [(w.tag, w.size, bool(w.writable), bool(w.computed), bool(w.present)) for w in region_writes] \
            == expected_regions
        frames, current = [], b""
        for word in injected:
            current += (word.data & ((1 << (8 * word.bytes)) - 1)).to_bytes(word.bytes, "little")
            assert word.data >> (8 * word.bytes) == 0, "lanes past the frame's end are zero"
            if word.last:
                frames.append((current, word.port))
                current = b""
        assert frames == expected_frames

    sim = Simulator(dut)
    sim.add_clock(CLOCK_PERIOD)
    sim.add_testbench(consumer(dut.imem_write, imem_writes, random.Random(seed + 1)), background=True)
    sim.add_testbench(consumer(dut.regions, region_writes, random.Random(seed + 2)), background=True)
    sim.add_testbench(consumer(dut.inject, injected, random.Random(seed + 3)), background=True)
    sim.add_testbench(producer(dut.host_rx, host_words, random.Random(seed + 4)), background=True)
    sim.add_testbench(producer(dut.trace, trace_words, random.Random(seed + 5)), background=True)
    for index, (bpf_map, words) in enumerate(((hash_map, 2), (array_map, 1))):
        sim.add_testbench(map_unit_stand_in(dut.map_port(index), bpf_map, words, random.Random(seed + 10 + index)),
                          background=True)
    sim.add_testbench(host)
    sim.run()


@pytest.mark.parametrize("seed", [1, 2])
def test_csr_operations_with_stalls(seed):
    run_csr(seed, stall_probability=0.3, operations=60)


def test_csr_without_stalls():
    run_csr(3, stall_probability=0.0, operations=40)


def test_injection_refusals_and_whole_frame_release():
    """A frame longer than the store, a frame of 0 bytes and a second frame started before the first ends are
    refused; a half-written frame is not released to the receive path."""
    dut = Csr(ports=2, inject_words=4)

    async def bench(ctx):
        bus = SimulatedBus(ctx, dut.bus)
        driver = CsrDriver(bus.read, bus.write)
        with pytest.raises(CsrError, match="refused to inject a frame of 33 bytes"):
            await driver.inject_frame(bytes(33), 0)
        with pytest.raises(CsrError, match="of 0 bytes"):
            await driver.inject_frame(b"", 0)
        await bus.write(Reg.INJECT_CONTROL, 10 | 1 << 16)
        await bus.write(Reg.INJECT_DATA, 0x04030201)
        await bus.write(Reg.INJECT_DATA, 0x08070605)
        assert await bus.read(Reg.INJECT_STATUS) & 3 == 1
        await bus.write(Reg.INJECT_CONTROL, 4)
        assert await bus.read(Reg.INJECT_STATUS) & 2, "a second frame while one is being written"
        for _ in range(5):
            await ctx.tick()
        assert not ctx.get(dut.inject.valid), "half a frame is not released"
        await bus.write(Reg.INJECT_DATA, 0xFFFF0B0A)
        assert await bus.read(Reg.INJECT_STATUS) & 1 == 0
        ctx.set(dut.inject.ready, 1)
        words = []
        while len(words) < 2:
            _, _, valid, payload = await ctx.tick().sample(dut.inject.valid, dut.inject.payload)
            if valid:
                words.append((payload.data, payload.bytes, payload.first, payload.last, payload.port))
        assert words == [(0x0807060504030201, 8, 1, 0, 1), (0x0B0A, 2, 0, 1, 1)]

    sim = Simulator(dut)
    sim.add_clock(CLOCK_PERIOD)
    sim.add_testbench(bench)
    sim.run()


def test_missing_map_answers_einval():
    dut = Csr(ports=1, map_ports=[])

    async def bench(ctx):
        bus = SimulatedBus(ctx, dut.bus)
        driver = CsrDriver(bus.read, bus.write)
        assert await driver.map_delete(3, b"\0\0\0\0") == -errno.EINVAL
        with pytest.raises(CsrError, match="no counter named 'nope'"):
            await driver.counter("nope")

    sim = Simulator(dut)
    sim.add_clock(CLOCK_PERIOD)
    sim.add_testbench(bench)
    sim.run()


def test_register_table_and_parameters():
    table = dict(register_table(COUNTERS))
    assert table[Reg.ID] == "ID" and table[COUNTERS_BASE + 4] == "port0_tx"
    assert len(set(table)) == len(table), "no two registers share an address"
    assert ID_VALUE == int.from_bytes(b"BNIC", "big")
    refused(Csr, "inject_words", ports=1, inject_words=3)
    refused(Csr, "key_size 65", ports=1, map_ports=[MapPortShape(65, 1)])


def test_csr_converts_to_verilog():
    dut = Csr(ports=2, map_ports=[MapPortShape(4, 2)], counter_names=COUNTERS)
    assert "module" in verilog.convert(dut, name="csr", ports=signal_ports(dut))
