"""The packet buffer (hw/pipeline/packet_buffer.py) against its software model, with random stalls on every
stream: frames in, the core's unaligned accesses, completions to random outputs with moved start/end
(as adjust_head/tail leave them), drops when full, frames too long for a slot, and Verilog conversion."""

from __future__ import annotations

import gc
import random
import warnings

import pytest
from amaranth.back import verilog
from amaranth.hdl import Signal, UnusedElaboratable
from amaranth.sim import Simulator

from bpfnic.hw.pipeline.packet_buffer import HEADROOM, PacketBuffer, PacketBufferModel, TwoBankMemory

CLOCK_PERIOD = 1e-8


# -- stream helpers shared by the NIC tests ------------------------------------------------------------------

async def stall(ctx, rng: random.Random, probability: float, most: int = 3) -> None:
    """A random number of idle cycles (none with 1 - probability)."""
    if rng.random() < probability:
        for _ in range(rng.randint(1, most)):
            await ctx.tick()


# (Loops on `ctx.tick().sample(...)` rather than `.until(...)`: a background testbench left waiting in
# `until` when the simulation ends makes noise as it is garbage-collected.)

async def wait_until(ctx, condition, *values):
    """Tick until `condition` is true at a clock edge; the `values` sampled at that edge."""
    while True:
        _, _, done, *sampled = await ctx.tick().sample(condition, *values)
        if done:
            return sampled


async def put(ctx, stream, payload) -> None:
    """One transfer on `stream` (the testbench is the producer)."""
    ctx.set(stream.payload, payload)
    ctx.set(stream.valid, 1)
    await wait_until(ctx, stream.ready)
    ctx.set(stream.valid, 0)


async def get(ctx, stream):
    """One transfer from `stream` (the testbench is the consumer); the payload taken."""
    ctx.set(stream.ready, 1)
    payload, = await wait_until(ctx, stream.valid, stream.payload)
    ctx.set(stream.ready, 0)
    return payload


def frame_words(frame: bytes, port: int) -> list[dict]:
    words = []
    for offset in range(0, len(frame), 8):
        chunk = frame[offset:offset + 8]
        words.append({"data": int.from_bytes(chunk, "little"), "bytes": len(chunk), "first": offset == 0,
                      "last": offset + 8 >= len(frame), "port": port})
    return words


async def send_frame(ctx, stream, frame: bytes, port: int, rng: random.Random, stall_probability: float) -> None:
    for word in frame_words(frame, port):
        await stall(ctx, rng, stall_probability)
        await put(ctx, stream, word)


async def receive_output_frame(ctx, stream, rng: random.Random, stall_probability: float):
    """The next frame of an output stream: (bytes, info), checking its framing fields."""
    frame = b""
    first = True
    while True:
        await stall(ctx, rng, stall_probability)
        word = await get(ctx, stream)
        assert word.first == first, f"first flag {word.first} on word {len(frame) // 8}"
        first = False
        count = word.bytes
        assert 1 <= count <= 8
        frame += (word.data & ((1 << (8 * count)) - 1)).to_bytes(count, "little")
        if word.last:
            assert word.length == len(frame), f"length field {word.length}, frame of {len(frame)} bytes"
            return frame, word.info
        assert count == 8, "a word that is not last must be full"


def signal_ports(component) -> list[Signal]:
    return [value for _, _, value in component.signature.flatten(component) if isinstance(value, Signal)]


# -- the tests -----------------------------------------------------------------------------------------------

def run_buffer(seed: int, *, frames: int, stall_probability: float, slots: int = 4, slot_size: int = 1024,
               drop_probability: float = 0.2, accesses: int = 6, outputs: int = 3, ports: int = 2):
    rng = random.Random(seed)
    dut = PacketBuffer(slots=slots, slot_size=slot_size, ports=ports, outputs=outputs)
    model = PacketBufferModel(slots=slots, slot_size=slot_size, ports=ports, outputs=outputs)
    limit = slot_size - 320
    sent = [(bytes(rng.randrange(256) for _ in range(rng.choice([1, 8, 14, 60, rng.randint(1, model.max_frame_bytes)]))),
             rng.randrange(ports)) for _ in range(frames)]
    collected: list[list[tuple[bytes, int]]] = [[] for _ in range(outputs)]

    async def receive_side(ctx):
        for frame, port in sent:
            # Drops when full are timing-dependent: send only when a slot is free (tested on their own below).
            while not ctx.get(dut.free_slots):
                await ctx.tick()
            await send_frame(ctx, dut.receive, frame, port, rng, stall_probability)

    def output_side(index):
        async def bench(ctx):
            local = random.Random(seed * 31 + index)
            while True:
                collected[index].append(await receive_output_frame(ctx, dut.output[index], local,
                                                                    stall_probability))
        return bench

    async def dispatcher(ctx):
        for index, (frame, port) in enumerate(sent):
            await stall(ctx, rng, stall_probability, most=20)
            entry = await get(ctx, dut.received)
            assert (entry.length, entry.port) == (len(frame), port), f"frame {index}"
            model.store(entry.slot, frame, port)
            for _ in range(rng.randrange(accesses + 1)):
                size_log2 = rng.randrange(4)
                offset = rng.randrange(limit - (1 << size_log2) + 1)
                request = {"slot": entry.slot, "offset": offset, "size": size_log2}
                if rng.random() < 0.5:
                    value = rng.getrandbits(64)
                    await put(ctx, dut.access.request, {**request, "write": 1, "data": value})
                    model.write(entry.slot, offset, 1 << size_log2, value)
                else:
                    await put(ctx, dut.access.request, {**request, "write": 0, "data": 0})
                    value, = await wait_until(ctx, dut.access.response.valid, dut.access.response.payload)
                    size = 1 << size_log2
                    assert value & ((1 << (8 * size)) - 1) == model.read(entry.slot, offset, size), \
                        f"frame {index}: read of {size} bytes at offset {offset}"
            drop = rng.random() < drop_probability
            start = rng.randrange(HEADROOM - 40, HEADROOM + len(frame))
            end = rng.randrange(start + 1, limit + 1) if rng.random() < 0.3 else HEADROOM + len(frame)
            end = max(end, start + 1)
            completion = {"slot": entry.slot, "drop": drop, "output": rng.randrange(outputs), "start": start,
                          "end": end, "info": rng.randrange(256)}
            await stall(ctx, rng, stall_probability)
            await put(ctx, dut.complete, completion)
            model.complete(entry.slot, drop=drop, output=completion["output"], start=start, end=end,
                           info=completion["info"])
        for _ in range(20_000):
            if all(len(collected[k]) == len(model.outputs[k]) for k in range(outputs)) \
                    and ctx.get(dut.free_slots) == slots:
                break
            await ctx.tick()
        for k in range(outputs):
            assert collected[k] == model.outputs[k], f"output {k}"
        assert ctx.get(dut.free_slots) == slots, "every slot is free again"
        for port in range(ports):
            assert ctx.get(dut.counters[port].stored) == model.counters[port].stored
            assert ctx.get(dut.counters[port].dropped_full) == 0

    sim = Simulator(dut)
    sim.add_clock(CLOCK_PERIOD)
    sim.add_testbench(receive_side, background=True)
    for k in range(outputs):
        sim.add_testbench(output_side(k), background=True)
    sim.add_testbench(dispatcher)
    sim.run()
    return model


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_buffer_against_model_with_stalls(seed):
    model = run_buffer(seed, frames=40, stall_probability=0.3)
    assert sum(len(frames) for frames in model.outputs) > 10


def test_buffer_without_stalls():
    run_buffer(7, frames=30, stall_probability=0.0, drop_probability=0.0, accesses=2)


def test_full_buffer_drops_and_counts():
    """With no completion, the first `slots` frames are stored and the rest dropped and counted per port."""
    dut = PacketBuffer(slots=4, slot_size=1024, ports=2, outputs=1)
    rng = random.Random(5)
    frames = [(bytes([n]) * 60, n % 2) for n in range(7)]

    async def bench(ctx):
        for frame, port in frames:
            await send_frame(ctx, dut.receive, frame, port, rng, 0.2)
        for _ in range(3):
            await ctx.tick()
        assert ctx.get(dut.free_slots) == 0
        stored = [ctx.get(dut.counters[p].stored) for p in range(2)]
        dropped = [ctx.get(dut.counters[p].dropped_full) for p in range(2)]
        assert stored == [2, 2] and dropped == [2, 1]
        slots = []
        for _ in range(4):
            entry = await get(ctx, dut.received)
            slots.append(entry.slot)
            assert entry.length == 60
        assert sorted(slots) == [0, 1, 2, 3]
        assert not ctx.get(dut.received.valid)
        # freeing one slot lets the next frame in
        await put(ctx, dut.complete, {"slot": slots[0], "drop": 1, "output": 0, "start": 0, "end": 0, "info": 0})
        await send_frame(ctx, dut.receive, b"\xaa" * 64, 1, rng, 0.0)
        entry = await get(ctx, dut.received)
        assert entry.slot == slots[0] and entry.length == 64

    sim = Simulator(dut)
    sim.add_clock(CLOCK_PERIOD)
    sim.add_testbench(bench)
    sim.run()


def test_too_long_frame_is_dropped_and_its_slot_freed():
    dut = PacketBuffer(slots=2, slot_size=1024, ports=1, outputs=1)   # frames of up to 448 bytes
    rng = random.Random(9)

    async def bench(ctx):
        await send_frame(ctx, dut.receive, bytes(449), 0, rng, 0.1)
        await send_frame(ctx, dut.receive, bytes(range(256)) + bytes(192), 0, rng, 0.1)
        entry = await get(ctx, dut.received)
        assert entry.length == 448
        for _ in range(2):
            await ctx.tick()
        assert ctx.get(dut.counters[0].dropped_too_long) == 1
        assert ctx.get(dut.counters[0].stored) == 1
        assert ctx.get(dut.free_slots) == 1

    sim = Simulator(dut)
    sim.add_clock(CLOCK_PERIOD)
    sim.add_testbench(bench)
    sim.run()


def test_two_bank_memory_unaligned():
    """Every size at every alignment, across word boundaries, against a bytearray."""
    dut = TwoBankMemory(64)
    rng = random.Random(3)
    shadow = bytearray(64)

    async def bench(ctx):
        for _ in range(300):
            size = 1 << rng.randrange(4)
            address = rng.randrange(64 - size + 1)
            if rng.random() < 0.5:
                value = rng.getrandbits(64)
                ctx.set(dut.write_valid, 1)
                ctx.set(dut.write_address, address)
                ctx.set(dut.write_data, value)
                ctx.set(dut.write_size, size.bit_length() - 1)
                await ctx.tick()
                ctx.set(dut.write_valid, 0)
                shadow[address:address + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
            else:
                ctx.set(dut.read_address, address)
                await ctx.tick()
                got = ctx.get(dut.read_data) & ((1 << (8 * size)) - 1)
                assert got == int.from_bytes(shadow[address:address + size], "little"), (address, size)

    sim = Simulator(dut)
    sim.add_clock(CLOCK_PERIOD)
    sim.add_testbench(bench)
    sim.run()


def refused(component_class, match: str, **parameters) -> None:
    """`component_class(**parameters)` raises ValueError matching `match` (the half-built component, which
    Amaranth would report as unused when collected, is collected here with that warning off)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match=match):
            component_class(**parameters)
        gc.collect()


def test_bad_parameters_are_named():
    refused(PacketBuffer, "slots must be a power of two", slots=3)
    refused(PacketBuffer, "slot_size", slot_size=1000)
    refused(PacketBuffer, "tailroom", slot_size=512, tailroom=320)


def test_converts_to_verilog():
    dut = PacketBuffer(slots=4, slot_size=1024)
    assert "module" in verilog.convert(dut, name="packet_buffer", ports=signal_ports(dut))


# -- the memory system (hw/pipeline/memory_system.py) ---------------------------------------------------------

from bpfnic.hw.pipeline.memory_system import MemorySystem, MemorySystemModel  # noqa: E402
from bpfnic.sw import memory as pointer_map  # noqa: E402


def serve(memory_bytes: bytearray, port, rng: random.Random, stall_probability: float, *,
          expected_slot: int | None = None):
    """A testbench target for a byte-access port (the packet buffer's or a map unit's): random ready,
    random latency, answers in order; a packet port's requests must name `expected_slot`."""
    async def bench(ctx):
        answers: list[tuple[int, int]] = []     # (cycle due, value)
        cycle = 0
        while True:
            ctx.set(port.request.ready, rng.random() >= stall_probability)
            if answers and answers[0][0] <= cycle:
                ctx.set(port.response.valid, 1)
                ctx.set(port.response.payload, answers[0][1])
            else:
                ctx.set(port.response.valid, 0)
            _, _, valid, ready, request, response_valid = await ctx.tick().sample(
                port.request.valid, port.request.ready, port.request.payload, port.response.valid)
            cycle += 1
            if response_valid:
                answers.pop(0)
            if valid and ready:
                size = 1 << request.size
                offset = request.offset
                if expected_slot is not None:
                    assert request.slot == expected_slot, f"packet access in slot {request.slot}"
                if request.write:
                    memory_bytes[offset:offset + size] = (request.data & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
                else:
                    value = int.from_bytes(memory_bytes[offset:offset + size], "little")
                    due = max(cycle + rng.choice([0, 0, 1, 3]), answers[-1][0] + 1 if answers else 0)
                    answers.append((due, value))
    return bench


@pytest.mark.parametrize("seed", [1, 2])
def test_memory_system_routes_and_orders(seed):
    """Two initiators (core and helper) with random requests to every region, targets with random stalls and
    latencies: every read answers what the model says, in order, to the initiator that asked."""
    rng = random.Random(seed)
    dut = MemorySystem(slot_bits=2, map_values=[True, True, False])
    packet = bytearray(1024)
    map_values = [bytearray(256), bytearray(64)]
    model = MemorySystemModel(packet, map_values)
    hardware_packet = bytearray(packet)
    hardware_maps = [bytearray(values) for values in map_values]
    model.data, model.data_end, model.data_meta = 256 + 2, 256 + 300, 256 - 8
    model.ingress_ifindex, model.rx_queue_index = 0x12345678, 3
    regions_seen = []
    sizes = {pointer_map.TAG_PACKET: 1024, pointer_map.TAG_STACK: 4096, 0x80: 256, 0x81: 64,
             pointer_map.TAG_CONTEXT: 24, 0x07: 64, 0x82: 64}   # 0x82: a map without values, no memory
    done = []

    def initiator(port, half: int, count: int):
        async def bench(ctx):
            expected: list[tuple[int, int, int]] = []
            local = random.Random(seed * 7 + half)
            issued = 0

            while issued < count or expected:
                if issued < count and local.random() < 0.7:
                    tag = local.choice(list(sizes))
                    size = 1 << local.randrange(4)
                    region = sizes[tag]
                    low, high = (0, region // 2) if half == 0 else (region // 2, region)
                    write = tag not in (pointer_map.TAG_CONTEXT,) and local.random() < 0.4
                    if tag == pointer_map.TAG_CONTEXT:
                        low, high = 0, 24
                    offset = local.randrange(low, high - size + 1)
                    address = pointer_map.make_pointer(tag, offset)
                    value = local.getrandbits(64)
                    ctx.set(port.request.payload, {"address": address, "size": size.bit_length() - 1,
                                                   "write": write, "data": value})
                    ctx.set(port.request.valid, 1)
                    _, _, ready, response_valid, response = await ctx.tick().sample(
                        port.request.ready, port.response.valid, port.response.payload)
                    if ready:
                        ctx.set(port.request.valid, 0)
                        issued += 1
                        if write:
                            model.write(address, size, value)
                        else:
                            expected.append((address, size, model.read(address, size)))
                else:
                    ctx.set(port.request.valid, 0)
                    _, _, response_valid, response = await ctx.tick().sample(port.response.valid,
                                                                             port.response.payload)
                if response_valid:
                    assert expected, "a response nobody asked for"
                    address, size, value = expected.pop(0)
                    if address >> 32 != pointer_map.TAG_CONTEXT:
                        response &= (1 << (8 * size)) - 1
                    assert response == value, f"read of {size} bytes at 0x{address:x}: 0x{response:x} != 0x{value:x}"
            done.append(half)
        return bench

    async def regions(ctx):
        ctx.set(dut.regions.ready, 1)
        while True:
            _, _, valid, payload = await ctx.tick().sample(dut.regions.valid, dut.regions.payload)
            if valid:
                regions_seen.append((payload.tag, payload.size, payload.writable, payload.computed))

    async def main(ctx):
        ctx.set(dut.frame.payload, {"slot": 1, "pointers": {"data": model.data, "data_end": model.data_end,
                                                            "data_meta": model.data_meta},
                                    "ingress_ifindex": model.ingress_ifindex, "rx_queue_index": model.rx_queue_index})
        ctx.set(dut.regions.ready, 1)
        ctx.set(dut.frame.valid, 1)
        await ctx.tick()
        ctx.set(dut.frame.valid, 0)
        await wait_until(ctx, dut.settled)
        # the packet descriptor in the cycle of the load; the context descriptor once after reset
        assert regions_seen[-2:] == [(pointer_map.TAG_PACKET, 256 + 300, 1, 0), (pointer_map.TAG_CONTEXT, 24, 0, 1)]
        while len(done) < 2:
            await ctx.tick()
        # an adjust of data_end rewrites the packet region
        ctx.set(dut.adjust.payload, {"data": 250, "data_end": 400, "data_meta": 250})
        ctx.set(dut.adjust.valid, 1)
        await ctx.tick()
        ctx.set(dut.adjust.valid, 0)
        await wait_until(ctx, dut.settled)
        assert regions_seen[-1] == (pointer_map.TAG_PACKET, 400, 1, 0)
        assert ctx.get(dut.context.pointers.data) == 250

    sim = Simulator(dut)
    sim.add_clock(CLOCK_PERIOD)
    sim.add_testbench(serve(hardware_packet, dut.packet, random.Random(seed + 100), 0.3, expected_slot=1),
                      background=True)
    for index in range(2):
        sim.add_testbench(serve(hardware_maps[index], dut.map_port(index), random.Random(seed + 200 + index), 0.3,
                                ), background=True)
    sim.add_testbench(regions, background=True)
    sim.add_testbench(initiator(dut.core, 0, 150), background=True)
    sim.add_testbench(initiator(dut.helper, 1, 150), background=True)
    sim.add_testbench(main)
    sim.run()
    assert hardware_packet == packet and hardware_maps == map_values
