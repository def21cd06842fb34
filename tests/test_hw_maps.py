"""The NIC's hardware map units against sw/maps.py: random operation sequences from programs and the host, with
random stalls on the command and result streams, checking return codes, lookup offsets, host reads, and the
value memory's contents word by word; byte accesses through the value port at random sizes and offsets;
host updates atomic for programs; every unit converts to Verilog."""

from __future__ import annotations

import errno
import random
from pathlib import Path

import pytest
from amaranth.back import verilog
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib.memory import Memory, MemoryData
from amaranth.sim import Simulator

from bpfnic.hw.pipeline import map_config
from bpfnic.hw.pipeline.map_array import ArrayMapUnit
from bpfnic.hw.pipeline.helper_unit import HelperUnit
from bpfnic.hw.pipeline.map_config import MapOp, MapSlotConfig, NicMapConfig
from bpfnic.hw.pipeline.map_devmap import DevMapUnit
from bpfnic.hw.pipeline.map_hash import HashMapUnit, HashUnitModel, bucket_of, crc32c
from bpfnic.hw.pipeline.map_lpm import LpmMapUnit
from bpfnic.hw.pipeline.map_progarray import ProgArrayUnit, ProgramEntry
from bpfnic.sw import capabilities, maps
from bpfnic.sw.compile import compile_c, declared_mcpu
from bpfnic.sw.elf_loader import MapDef, load_object

M64 = (1 << 64) - 1


# -- bench ----------------------------------------------------------------------------------------------------
def port_signals(component):
    """The component's port signals, for Verilog conversion (an always-ready stream's ready is a constant)."""
    return [value for _, _, value in component.signature.flatten(component) if isinstance(value, Signal)]


class Harness(Elaboratable):
    """A map unit and the caller's value buffer it reads program updates from (a block RAM, as in the helper
    unit), whose contents the testbench sets directly."""

    def __init__(self, unit, buffer_words: int):
        self.unit = unit
        self.buffer = MemoryData(shape=64, depth=buffer_words, init=[])

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = self.unit
        m.submodules.buffer = buffer = Memory(data=self.buffer)
        read = buffer.read_port()
        m.d.comb += [read.addr.eq(self.unit.program.value_address), self.unit.program.value_data.eq(read.data)]
        return m


def to_words(value: bytes, count: int) -> list[int]:
    value = bytes(value) + bytes(8 * count - len(value))
    return [int.from_bytes(value[8 * i:8 * i + 8], "little") for i in range(count)]


class Bench:
    """Transaction-level access to a map unit: program commands, host commands with the staging buffer, and
    value-port accesses, each with random stalls."""

    def __init__(self, config: MapSlotConfig, unit, rng: random.Random, stall: float = 0.3):
        self.config = config
        self.unit = unit
        self.rng = rng
        self.stall = stall
        self.harness = Harness(unit, max(config.value_words, 1))

    async def _pause(self, ctx):
        while self.rng.random() < self.stall:
            await ctx.tick()

    async def put(self, ctx, port, payload):
        await self._pause(ctx)
        ctx.set(port.valid, 1)
        ctx.set(port.payload, payload)
        await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)

    async def get(self, ctx, port):
        await self._pause(ctx)
        ctx.set(port.ready, 1)
        payload, = await ctx.tick().sample(port.payload).until(port.valid)
        ctx.set(port.ready, 0)
        return payload

    async def program(self, ctx, op, key: bytes, *, flags=0, cpu=0, value: bytes | None = None):
        if value is not None:
            for index, word in enumerate(to_words(value, self.config.value_words)):
                ctx.set(self.harness.buffer[index], word)
        await self.put(ctx, self.unit.program.command, {
            "op": op, "key": int.from_bytes(key, "little"), "flags": flags & M64, "cpu": cpu})
        result = await self.get(ctx, self.unit.program.result)
        return result.rc, result.found, result.offset, result.data

    async def staging_write(self, ctx, words):
        host = self.unit.host
        for index, word in enumerate(words):
            ctx.set(host.staging_write_enable, 1)
            ctx.set(host.staging_write_address, index)
            ctx.set(host.staging_write_data, word)
            await ctx.tick()
        ctx.set(host.staging_write_enable, 0)

    async def staging_read(self, ctx, count):
        host = self.unit.host
        words = []
        for index in range(count):
            ctx.set(host.staging_read_address, index)
            await ctx.tick()
            words.append(ctx.get(host.staging_read_data))
        return words

    async def host(self, ctx, op, key: bytes = b"", *, flags=0, index=0, staging=None):
        if staging is not None:
            await self.staging_write(ctx, staging)
        await self.put(ctx, self.unit.host.command, {
            "op": op, "key": int.from_bytes(key, "little"), "flags": flags & M64, "index": index})
        result = await self.get(ctx, self.unit.host.result)
        key_bytes = self.config.key_size
        return result.rc, result.found, int(result.key).to_bytes(key_bytes, "little")

    async def host_lookup_values(self, ctx, key: bytes):
        """(rc, values): per-CPU maps a list of one value per CPU."""
        rc, found, _ = await self.host(ctx, MapOp.LOOKUP, key)
        if rc or not found:
            return rc, None
        config = self.config
        words = await self.staging_read(ctx, config.staging_words)
        raw = b"".join(word.to_bytes(8, "little") for word in words)
        values = [raw[c * config.value_stride:c * config.value_stride + config.value_size]
                  for c in range(config.copies)]
        return 0, (values if config.per_cpu else values[0])

    async def value_write(self, ctx, offset, size, value):
        await self.put(ctx, self.unit.value.request, {"offset": offset, "size": size.bit_length() - 1,
                                                      "write": 1, "data": value})

    async def value_read(self, ctx, offset, size):
        await self.put(ctx, self.unit.value.request, {"offset": offset, "size": size.bit_length() - 1,
                                                      "write": 0, "data": 0})
        data, = await ctx.tick().sample(self.unit.value.response.payload).until(self.unit.value.response.valid)
        return data & ((1 << (8 * size)) - 1)

    def value_memory(self, ctx) -> bytes:
        data = self.unit.value_data
        return b"".join(ctx.get(data[i]).to_bytes(8, "little") for i in range(data.depth))

    def run(self, testbench, deadline_cycles=200_000):
        run_simulation(self.harness, testbench, deadline_cycles)


def run_simulation(design, testbench, deadline_cycles=200_000):
    """Run `testbench` against `design`; a watchdog fails the test if it has not finished by the deadline (a unit
    that stopped answering)."""
    sim = Simulator(design)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)

    async def watchdog(ctx):
        await ctx.delay(deadline_cycles * 1e-8)
        raise AssertionError(f"the testbench did not finish in {deadline_cycles} cycles: a unit stopped answering")

    sim.add_testbench(watchdog, background=True)
    sim.run()


def model_call(function, *args):
    """A sw/maps.py call as the unit answers it: MapError (e.g. a host read of a BPF_F_WRONLY map) -> -errno."""
    try:
        return function(*args)
    except maps.MapError as error:
        return -error.errno


FLAG_CHOICES = (maps.BPF_ANY, maps.BPF_ANY, maps.BPF_NOEXIST, maps.BPF_EXIST, maps.BPF_F_LOCK,
                maps.BPF_F_LOCK | maps.BPF_NOEXIST, 3, 8, 1 << 40)


async def value_port_round(ctx, bench, bpf_map, rng):
    """A random program access through the value port, mirrored on the model's value memory."""
    total = len(bpf_map.value_memory)
    size = rng.choice((1, 2, 4, 8))
    offset = rng.randrange(0, total - size + 1)
    if rng.random() < 0.5:
        value = rng.getrandbits(8 * size)
        await bench.value_write(ctx, offset, size, value)
        bpf_map.value_memory[offset:offset + size] = value.to_bytes(size, "little")
    else:
        got = await bench.value_read(ctx, offset, size)
        expected = int.from_bytes(bpf_map.value_memory[offset:offset + size], "little")
        assert got == expected, f"value read at {offset} size {size}: {got:#x} != {expected:#x}"


# -- arrays ---------------------------------------------------------------------------------------------------
ARRAY_CONFIGS = [
    dict(map_type=maps.BPF_MAP_TYPE_ARRAY, key_size=4, value_size=12, max_entries=9),
    dict(map_type=maps.BPF_MAP_TYPE_ARRAY, key_size=4, value_size=8, max_entries=4, flags=maps.BPF_F_RDONLY),
    dict(map_type=maps.BPF_MAP_TYPE_PERCPU_ARRAY, key_size=4, value_size=5, max_entries=6, ncpus=3),
    dict(map_type=maps.BPF_MAP_TYPE_ARRAY, key_size=4, value_size=20, max_entries=3, flags=maps.BPF_F_WRONLY),
]


def random_array_key(rng, config):
    return rng.choice([rng.randrange(config.max_entries), rng.randrange(config.max_entries),
                       config.max_entries, rng.getrandbits(32)]).to_bytes(4, "little")


async def array_like_round(ctx, bench, bpf_map, rng, random_key, random_value):
    """One random operation on an array-shaped map (array, LPM, hash: any map whose model is bpf_map)."""
    config = bench.config
    choice = rng.random()
    key = random_key()
    cpu = rng.randrange(config.ncpus)
    if choice < 0.25:
        rc, found, offset, _ = await bench.program(ctx, MapOp.LOOKUP, key, cpu=cpu)
        expected = bpf_map.lookup_slot(key, cpu)
        assert (found, offset if found else None) == (expected is not None, expected), key.hex()
    elif choice < 0.5:
        value, flags = random_value(), rng.choice(FLAG_CHOICES)
        rc, *_ = await bench.program(ctx, MapOp.UPDATE, key, flags=flags, cpu=cpu, value=value)
        assert rc == bpf_map.update(key, value, flags, cpu), (key.hex(), flags)
    elif choice < 0.6:
        rc, *_ = await bench.program(ctx, MapOp.DELETE, key, cpu=cpu)
        assert rc == bpf_map.delete(key, cpu), key.hex()
    elif choice < 0.7:
        rc, values = await bench.host_lookup_values(ctx, key)
        expected = model_call(bpf_map.lookup, key)
        if isinstance(expected, int):
            assert rc == expected
        else:
            assert values == expected, key.hex()
    elif choice < 0.85:
        values = [random_value() for _ in range(config.copies)]
        staging = [w for v in values for w in to_words(v, config.value_words)]
        flags = rng.choice(FLAG_CHOICES)
        rc, _, _ = await bench.host(ctx, MapOp.UPDATE, key, flags=flags, staging=staging)
        assert rc == bpf_map.update(key, values if config.per_cpu else values[0], flags, None), \
            (key.hex(), flags)
    elif choice < 0.9:
        rc, _, _ = await bench.host(ctx, MapOp.DELETE, key)
        assert rc == bpf_map.delete(key, None), key.hex()
    elif config.value_memory_bytes:
        await value_port_round(ctx, bench, bpf_map, rng)


@pytest.mark.parametrize("parameters", ARRAY_CONFIGS, ids=lambda p: maps.map_type_name(p["map_type"]) +
                         f"-{p['value_size']}-{p.get('flags', 0)}")
def test_array_unit_matches_model(parameters):
    rng = random.Random(repr(parameters))
    config = MapSlotConfig(index=0, name="a", **parameters)
    bench = Bench(config, ArrayMapUnit(config, config.value_words), rng)
    bpf_map = config.model()

    async def testbench(ctx):
        for _ in range(400):
            await array_like_round(ctx, bench, bpf_map, rng, lambda: random_array_key(rng, config),
                                   lambda: rng.randbytes(config.value_size))
        for index in range(config.max_entries + 1):
            rc, found, key = await bench.host(ctx, MapOp.READ_ENTRY, index=index)
            assert (found, key) == (index < config.max_entries, index.to_bytes(4, "little") if found else bytes(4))
        rc, _, _ = await bench.host(ctx, MapOp.FREEZE)
        assert rc == bpf_map.freeze()
        rc, _, _ = await bench.host(ctx, MapOp.UPDATE, bytes(4), staging=[0] * config.staging_words)
        assert rc == bpf_map.update(bytes(4), bytes(config.value_size) if not config.per_cpu
                                    else [bytes(config.value_size)] * config.ncpus)
        assert bench.value_memory(ctx) == bytes(bpf_map.value_memory)

    bench.run(testbench)


def test_global_data_array_starts_with_its_section_and_frozen():
    section = bytes(range(1, 30))
    config = NicMapConfig.from_map_defs([MapDef(".rodata", maps.BPF_MAP_TYPE_ARRAY, 4, len(section), 1,
                                                 initial_data=section, readonly=True)]).slots[0]
    rng = random.Random(7)
    bench = Bench(config, ArrayMapUnit(config, config.value_words), rng)
    bpf_map = config.model()

    async def testbench(ctx):
        assert bench.value_memory(ctx)[:len(section)] == section
        rc, values = await bench.host_lookup_values(ctx, bytes(4))
        assert (rc, values) == (0, section)
        rc, _, _ = await bench.host(ctx, MapOp.UPDATE, bytes(4), staging=[0] * config.staging_words)
        assert rc == bpf_map.update(bytes(4), bytes(len(section))) == -errno.EPERM
        for offset in (0, 3, 7, 21):
            assert await bench.value_read(ctx, offset, 8) == int.from_bytes(section[offset:offset + 8], "little")

    bench.run(testbench)




# -- hashes ---------------------------------------------------------------------------------------------------
def test_hash_functions_are_the_crcs():
    assert crc32c(b"123456789") == 0xE3069283          # the CRC-32C check value (RFC 3720 B.4)
    assert bucket_of(0, b"123456789", 1 << 32) == 0xCBF43926


HASH_CONFIGS = [
    dict(map_type=maps.BPF_MAP_TYPE_HASH, key_size=6, value_size=12, max_entries=12, hash_ways=2),
    dict(map_type=maps.BPF_MAP_TYPE_HASH, key_size=3, value_size=8, max_entries=16, hash_ways=2, hash_buckets=2),
    dict(map_type=maps.BPF_MAP_TYPE_HASH, key_size=4, value_size=4, max_entries=6, flags=maps.BPF_F_RDONLY),
    dict(map_type=maps.BPF_MAP_TYPE_HASH, key_size=4, value_size=9, max_entries=6, flags=maps.BPF_F_WRONLY),
    dict(map_type=maps.BPF_MAP_TYPE_PERCPU_HASH, key_size=8, value_size=10, max_entries=8, ncpus=2),
    dict(map_type=maps.BPF_MAP_TYPE_LRU_HASH, key_size=4, value_size=8, max_entries=8, hash_ways=2),
    dict(map_type=maps.BPF_MAP_TYPE_LRU_HASH, key_size=2, value_size=16, max_entries=8, hash_ways=1, hash_buckets=2),
    dict(map_type=maps.BPF_MAP_TYPE_LRU_PERCPU_HASH, key_size=5, value_size=4, max_entries=6, ncpus=3,
         hash_ways=2, hash_buckets=2),
    dict(map_type=maps.BPF_MAP_TYPE_LRU_HASH, key_size=1, value_size=1, max_entries=1, hash_ways=1),
]


def _config_id(parameters):
    extra = "-".join(f"{k}{v}" for k, v in parameters.items() if k in ("hash_ways", "hash_buckets", "ncpus", "flags"))
    return f"{maps.map_type_name(parameters['map_type'])}-{extra}"


@pytest.mark.parametrize("parameters", HASH_CONFIGS, ids=_config_id)
def test_hash_unit_matches_model(parameters):
    rng = random.Random(repr(parameters))
    config = MapSlotConfig(index=0, name="h", **parameters)
    unit = HashMapUnit(config, config.value_words)
    bench = Bench(config, unit, rng)
    model = HashUnitModel(config)
    keys = [rng.randbytes(config.key_size) for _ in range(2 * config.max_entries)]

    async def testbench(ctx):
        for _ in range(400):
            await array_like_round(ctx, bench, model, rng, lambda: rng.choice(keys),
                                   lambda: rng.randbytes(config.value_size))
        for index in range(unit.entry_positions + 1):
            rc, found, key = await bench.host(ctx, MapOp.READ_ENTRY, index=index)
            expected = model.entry(index)
            assert (rc, found, key) == (0, expected is not None, expected or bytes(config.key_size)), index
        assert bench.value_memory(ctx) == bytes(model.value_memory)
        if unit.entry_positions < config.max_entries:
            assert model.bucket_evictions if config.lru else model.bucket_refusals, "no bucket ever filled up"
        elif config.lru:
            assert model.head_evictions, "the sequence never filled the LRU map"

    bench.run(testbench)


# -- LPM tries ------------------------------------------------------------------------------------------------
LPM_CONFIGS = [
    dict(key_size=8, value_size=12, max_entries=10, lpm_lanes=4),
    dict(key_size=5, value_size=8, max_entries=6, lpm_lanes=1),
    dict(key_size=5, value_size=1, max_entries=1, lpm_lanes=1),
    dict(key_size=20, value_size=5, max_entries=8, lpm_lanes=8, flags=maps.BPF_F_NO_PREALLOC | maps.BPF_F_RDONLY),
]


@pytest.mark.parametrize("parameters", LPM_CONFIGS,
                         ids=lambda p: f"key{p['key_size']}-entries{p['max_entries']}-lanes{p['lpm_lanes']}")
def test_lpm_unit_matches_model(parameters):
    parameters = dict(parameters)
    flags = parameters.pop("flags", maps.BPF_F_NO_PREALLOC)
    rng = random.Random(repr(parameters))
    config = MapSlotConfig(index=0, name="lpm", map_type=maps.BPF_MAP_TYPE_LPM_TRIE, flags=flags, **parameters)
    unit = LpmMapUnit(config, config.value_words)
    bench = Bench(config, unit, rng)
    bpf_map = config.model()
    data_size = config.key_size - 4
    bases = [rng.randbytes(data_size) for _ in range(3)]

    def random_key():
        base = bytearray(rng.choice(bases))
        base[rng.randrange(data_size)] ^= 1 << rng.randrange(8)       # a neighbour of a base address
        if rng.random() < 0.5:
            base = bytearray(rng.choice(bases))
        length = rng.choice([rng.randrange(8 * data_size + 1), 8 * data_size, 0, 8 * data_size + 1,
                             rng.getrandbits(32)])
        return length.to_bytes(4, "little") + bytes(base)

    async def testbench(ctx):
        for _ in range(300):
            await array_like_round(ctx, bench, bpf_map, rng, random_key, lambda: rng.randbytes(config.value_size))
        expected = {bpf_map.lookup_slot(key) // config.value_stride: key for key in bpf_map.keys()}
        for index in range(config.max_entries + 1):
            rc, found, key = await bench.host(ctx, MapOp.READ_ENTRY, index=index)
            assert (rc, found, key) == (0, index in expected, expected.get(index, bytes(config.key_size))), index
        assert bench.value_memory(ctx) == bytes(bpf_map.value_memory)

    bench.run(testbench)


def test_lpm_unit_finds_the_longest_prefix():
    """Nested IPv4 routes (the router example's shape): each address finds its most specific route."""
    config = MapSlotConfig(index=0, name="routes", map_type=maps.BPF_MAP_TYPE_LPM_TRIE, key_size=8, value_size=8,
                           max_entries=16, flags=maps.BPF_F_NO_PREALLOC, lpm_lanes=4)
    bench = Bench(config, LpmMapUnit(config, 1), random.Random(3))
    routes = {(0, "0.0.0.0"): 1, (8, "10.0.0.0"): 2, (16, "10.1.0.0"): 3, (24, "10.1.2.0"): 4,
              (32, "10.1.2.3"): 5, (12, "10.16.0.0"): 6}

    def key(length, address):
        return length.to_bytes(4, "little") + bytes(int(part) for part in address.split("."))

    async def testbench(ctx):
        for (length, address), route in routes.items():
            rc, _, _ = await bench.host(ctx, MapOp.UPDATE, key(length, address), staging=[route])
            assert rc == 0
        for address, route in [("10.1.2.3", 5), ("10.1.2.4", 4), ("10.1.3.1", 3), ("10.2.0.1", 2),
                               ("10.31.0.1", 6), ("11.0.0.1", 1), ("10.15.255.255", 2)]:
            rc, found, offset, _ = await bench.program(ctx, MapOp.LOOKUP, key(32, address))
            assert found and offset // 8 == route - 1, address
            assert await bench.value_read(ctx, offset, 8) == route
        rc, found, offset, _ = await bench.program(ctx, MapOp.LOOKUP, key(20, "10.1.2.3"))
        assert found and offset // 8 == 2        # a /20 lookup key sees routes up to /20 only

    bench.run(testbench)


# -- device maps ----------------------------------------------------------------------------------------------
DEVMAP_CONFIGS = [
    dict(map_type=maps.BPF_MAP_TYPE_DEVMAP, value_size=4, max_entries=6, valid_ifindexes=(1, 2, 7)),
    dict(map_type=maps.BPF_MAP_TYPE_DEVMAP, value_size=8, max_entries=5, valid_ifindexes=None),
    dict(map_type=maps.BPF_MAP_TYPE_DEVMAP_HASH, value_size=8, max_entries=4, valid_ifindexes=(3, 4)),
    dict(map_type=maps.BPF_MAP_TYPE_DEVMAP_HASH, value_size=4, max_entries=1, valid_ifindexes=(2,)),
    dict(map_type=maps.BPF_MAP_TYPE_DEVMAP_HASH, value_size=4, max_entries=6, valid_ifindexes=None,
         flags=maps.BPF_F_WRONLY),
]


@pytest.mark.parametrize("parameters", DEVMAP_CONFIGS,
                         ids=lambda p: f"{maps.map_type_name(p['map_type'])}-{p['value_size']}-{p['valid_ifindexes']}")
def test_devmap_unit_matches_model(parameters):
    rng = random.Random(repr(parameters))
    config = MapSlotConfig(index=0, name="ports", key_size=4, **parameters)
    bench = Bench(config, DevMapUnit(config, config.value_words), rng)
    bpf_map = config.model()
    keys = [rng.randrange(2 * config.max_entries) for _ in range(6)] + [rng.getrandbits(32)]

    def random_value():
        ifindex = rng.choice([0, 1, 2, 3, 4, 7, rng.getrandbits(32)])
        program = rng.choice([0, 0, -1, 1, 5]) & 0xFFFF_FFFF
        return (ifindex | program << 32).to_bytes(8, "little")[:config.value_size]

    async def testbench(ctx):
        for _ in range(300):
            key = rng.choice(keys).to_bytes(4, "little")
            choice = rng.random()
            if choice < 0.3:
                rc, found, offset, data = await bench.program(ctx, MapOp.LOOKUP, key)
                target = bpf_map.redirect_lookup(int.from_bytes(key, "little"))
                assert (found, offset if found else None) == (target is not None, bpf_map.lookup_slot(key))
                if found:
                    assert data == target[0]
            elif choice < 0.4:
                op = rng.choice([MapOp.UPDATE, MapOp.DELETE])
                value = random_value()
                rc, *_ = await bench.program(ctx, op, key, flags=0, value=value)
                expected = bpf_map.update(key, value, 0, 0) if op == MapOp.UPDATE else bpf_map.delete(key, 0)
                assert rc == expected == -errno.EOPNOTSUPP
            else:
                await array_like_round(ctx, bench, bpf_map, rng, lambda: key, random_value)
        for index in range(config.max_entries + 1):
            rc, found, key = await bench.host(ctx, MapOp.READ_ENTRY, index=index)
            if config.map_type == maps.BPF_MAP_TYPE_DEVMAP:
                assert (found, key) == (index < config.max_entries, (index if found else 0).to_bytes(4, "little"))
            elif found:
                assert bpf_map.lookup_slot(key) == index * config.value_stride
        assert bench.value_memory(ctx) == bytes(bpf_map.value_memory)

    bench.run(testbench)


# -- program arrays -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flags", [0, maps.BPF_F_RDONLY])
def test_progarray_unit_matches_model(flags):
    rng = random.Random(flags)
    config = MapSlotConfig(index=0, name="jmp_table", map_type=maps.BPF_MAP_TYPE_PROG_ARRAY, key_size=4,
                           value_size=4, max_entries=5, flags=flags)
    bench = Bench(config, ProgArrayUnit(config, 1), rng)
    bpf_map = config.model()
    programs = [ProgramEntry(rng.randrange(1 << 16), rng.randrange(1, 1 << 12)) for _ in range(4)]

    async def testbench(ctx):
        for _ in range(300):
            index = rng.choice([0, 1, 2, 3, 4, 4, 5, rng.getrandbits(32)])
            key = index.to_bytes(4, "little")
            choice = rng.random()
            if choice < 0.35:
                rc, found, _, data = await bench.program(ctx, MapOp.LOOKUP, key)
                program = bpf_map.get_program(index)
                assert (found, data if found else None) == (program is not None, program and program.word)
            elif choice < 0.45:
                rc, *_ = await bench.program(ctx, rng.choice([MapOp.UPDATE, MapOp.DELETE]), key)
                assert rc == -errno.EOPNOTSUPP
            elif choice < 0.7:
                program, flag = rng.choice(programs), rng.choice([0, 0, 1, 2, 4])
                rc, _, _ = await bench.host(ctx, MapOp.UPDATE, key, flags=flag, staging=[program.word])
                assert rc == bpf_map.update(key, program, flag)
            elif choice < 0.85:
                rc, _, _ = await bench.host(ctx, MapOp.DELETE, key)
                assert rc == bpf_map.delete(key)
            else:
                rc, found, _ = await bench.host(ctx, MapOp.LOOKUP, key)
                program = bpf_map.lookup(key)
                assert (rc, found) == ((0, 1) if program else (-errno.ENOENT, 0))
                if found:
                    assert (await bench.staging_read(ctx, 1))[0] == program.word

    bench.run(testbench)


# -- consistency ------------------------------------------------------------------------------------------------
def test_host_updates_are_atomic_for_program_loads():
    """While the host rewrites a 32-byte value with uniform patterns, a program's loads through the value port
    (8 bytes across a word boundary) never see two patterns at once; and every load is answered."""
    config = MapSlotConfig(index=0, name="a", map_type=maps.BPF_MAP_TYPE_ARRAY, key_size=4, value_size=32,
                           max_entries=2)
    rng = random.Random(11)
    bench = Bench(config, ArrayMapUnit(config, 4), rng, stall=0.0)
    patterns = [bytes([b]) * 8 for b in (0x11, 0x22, 0x33, 0x44)]
    loads = []

    async def host_side(ctx):
        for round_ in range(30):
            pattern = patterns[round_ % len(patterns)]
            rc, _, _ = await bench.host(ctx, MapOp.UPDATE, (1).to_bytes(4, "little"),
                                        staging=to_words(pattern * 4, 4))
            assert rc == 0

    async def program_side(ctx):
        await ctx.tick()
        while len(loads) < 200:
            offset = 32 + rng.choice([4, 12, 20, 3])
            loads.append(await bench.value_read(ctx, offset, 8))

    async def both(ctx):
        pass

    sim = Simulator(bench.harness)
    sim.add_clock(1e-8)
    sim.add_testbench(host_side)
    sim.add_testbench(program_side)
    sim.run()
    assert len(loads) == 200
    mixed = [hex(load) for load in loads if len(set(load.to_bytes(8, "little"))) != 1]
    assert not mixed, f"loads saw a half-written value: {mixed[:4]}"
    assert len(set(loads)) > 2, "the loads never overlapped the updates"


# -- configuration ----------------------------------------------------------------------------------------------
def test_config_from_map_defs_checks_limits_and_names_the_map():
    ok = NicMapConfig.from_map_defs([MapDef("counts", maps.BPF_MAP_TYPE_ARRAY, 4, 8, 16),
                                     MapDef("flows", maps.BPF_MAP_TYPE_LRU_HASH, 12, 16, 100)])
    assert [slot.kind for slot in ok.slots] == ["array", "hash"]
    assert ok.total_value_bytes == 16 * 8 + 100 * 16
    assert ok.slots[1].hash_buckets == 32                      # 100 / 4 ways, rounded up to a power of two
    # The build described by sw/capabilities.py: what the verifier's offload check accepts, the units hold.
    assert map_config.DEFAULT_MAP_LIMITS.max_entries[maps.BPF_MAP_TYPE_LPM_TRIE] == \
        capabilities.DEFAULT_CAPABILITIES.max_entries[maps.BPF_MAP_TYPE_LPM_TRIE]
    with pytest.raises(map_config.MapConfigError, match="'rings'.*ringbuf.*no hardware unit"):
        NicMapConfig.from_map_defs([MapDef("rings", 27, 0, 0, 4096)])
    with pytest.raises(map_config.MapConfigError, match="'big'.*max_entries 100000"):
        NicMapConfig.from_map_defs([MapDef("big", maps.BPF_MAP_TYPE_HASH, 4, 8, 100000)])
    with pytest.raises(map_config.MapConfigError, match="map memory.*'huge'"):
        NicMapConfig.from_map_defs([MapDef("huge", maps.BPF_MAP_TYPE_ARRAY, 4, 256, 8192)])
    with pytest.raises(map_config.MapConfigError, match="'wide'.*value_size 300"):
        NicMapConfig.from_map_defs([MapDef("wide", maps.BPF_MAP_TYPE_ARRAY, 4, 300, 4)])
    with pytest.raises(map_config.MapConfigError, match="'bad'.*key_size must be 4"):
        NicMapConfig.from_map_defs([MapDef("bad", maps.BPF_MAP_TYPE_ARRAY, 8, 8, 4)])
    with pytest.raises(map_config.MapConfigError, match="'lpm'.*BPF_F_NO_PREALLOC"):
        NicMapConfig.from_map_defs([MapDef("lpm", maps.BPF_MAP_TYPE_LPM_TRIE, 8, 8, 4)])


VERILOG_CONFIGS = [
    dict(map_type=maps.BPF_MAP_TYPE_ARRAY, key_size=4, value_size=8, max_entries=4096),
    dict(map_type=maps.BPF_MAP_TYPE_PERCPU_ARRAY, key_size=4, value_size=8, max_entries=256, ncpus=2),
    dict(map_type=maps.BPF_MAP_TYPE_HASH, key_size=12, value_size=8, max_entries=1024),
    dict(map_type=maps.BPF_MAP_TYPE_LRU_HASH, key_size=2, value_size=8, max_entries=32),
    dict(map_type=maps.BPF_MAP_TYPE_LPM_TRIE, key_size=8, value_size=12, max_entries=256,
         flags=maps.BPF_F_NO_PREALLOC),
    dict(map_type=maps.BPF_MAP_TYPE_DEVMAP, key_size=4, value_size=4, max_entries=8),
    dict(map_type=maps.BPF_MAP_TYPE_DEVMAP_HASH, key_size=4, value_size=8, max_entries=16),
    dict(map_type=maps.BPF_MAP_TYPE_PROG_ARRAY, key_size=4, value_size=4, max_entries=4),
]


@pytest.mark.parametrize("parameters", VERILOG_CONFIGS, ids=lambda p: maps.map_type_name(p["map_type"]))
def test_unit_converts_to_verilog(parameters):
    """The examples' map shapes (xdp_vlan's array, xdp_firewall's hash, xdp_router's LPM trie and devmap...)."""
    slots = [MapSlotConfig(index=0, name="m", **parameters)]
    nic = NicMapConfig(slots, ncpus=slots[0].ncpus, limits=map_config.MapLimits(max_cpus=2))
    unit = nic.build_unit(0)
    text = verilog.convert(unit, name="map_unit", ports=port_signals(unit))
    assert "module map_unit" in text


# -- the examples -----------------------------------------------------------------------------------------------
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def example_objects(tmp_path_factory):
    folder = tmp_path_factory.mktemp("examples")
    return {source.stem: load_object(compile_c(source, folder / f"{source.stem}.o", declared_mcpu(source) or "v3"))
            for source in sorted(EXAMPLES.glob("*.c"))}


def test_every_example_gets_its_map_units(example_objects):
    """The default build (sw/capabilities.py) holds the maps of every example, each in a unit of its kind."""
    kinds = {}
    for name, obj in example_objects.items():
        config = NicMapConfig.from_object(obj)
        assert [slot.name for slot in config.slots] == [m.name for m in obj.maps], name
        kinds.update({f"{name}:{slot.name}": slot.kind for slot in config.slots})
    assert kinds["xdp_router:routes"] == "lpm" and kinds["xdp_router:egress_ports"] == "devmap"
    assert kinds["xdp_firewall:blocked"] == "hash" and kinds["xdp_tailcall:jmp_table"] == "progarray"
    assert kinds["xdp_libbpf_style:ethertype_packets"] == "hash"


@pytest.mark.slow
def test_every_example_map_unit_and_helper_unit_converts_to_verilog(example_objects):
    for name, obj in example_objects.items():
        config = NicMapConfig.from_object(obj)
        for unit in config.build_units() + [HelperUnit(config)]:
            assert "module top" in verilog.convert(unit, name="top", ports=port_signals(unit)), name
