"""The map model (sw/maps.py) against the running kernel's maps (through sw/kernel_bpf.py).

The same operations go to a model map and a kernel map of the same parameters; return codes (0 or
-errno) and contents must agree. Sequences come from hypothesis for hash, per-CPU hash, array,
per-CPU array, LPM trie (IPv4 and IPv6 keys), devmap and devmap_hash; creation parameters, access
flags, freezing and program arrays are compared case by case. LRU hashes are compared only where the
kernel is deterministic (module docstring of sw/maps.py): exactly until the map is first full, then
by the properties both guarantee. Every test skips, with the reason, where bpf() is refused.
"""

from __future__ import annotations

import errno
import os
import socket

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from bpfnic.sw import kernel_bpf as kb
from bpfnic.sw import maps
from bpfnic.sw.maps import BPF_F_NO_PREALLOC, MapError, create_map

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(kb.bpf_unavailable_reason() is not None,
                       reason=kb.bpf_unavailable_reason() or ""),
]

UPDATE_FLAGS = [maps.BPF_ANY, maps.BPF_NOEXIST, maps.BPF_EXIST, 3, maps.BPF_F_LOCK, 8]
# Mostly valid flags, so sequences reach full maps and replacements, with the invalid ones mixed in.
FLAG_CHOICES = st.sampled_from([maps.BPF_ANY] * 4 + [maps.BPF_NOEXIST] * 2 + [maps.BPF_EXIST] * 2
                               + UPDATE_FLAGS[3:])
VALID_FLAG_CHOICES = st.sampled_from([maps.BPF_ANY] * 3 + [maps.BPF_NOEXIST, maps.BPF_EXIST])
HYPOTHESIS = settings(max_examples=100, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow])


def u32(number: int) -> bytes:
    return number.to_bytes(4, "little")


def kernel_result(call, *args) -> int:
    """0, or -errno of the BpfError the kernel raised."""
    try:
        call(*args)
    except kb.BpfError as error:
        return -error.errno
    return 0


class MapPair:
    """A model map and a kernel map made with the same parameters, driven in step."""

    def __init__(self, map_type: int, key_size: int, value_size: int, max_entries: int,
                 flags: int = 0, **extra):
        self.model = create_map(map_type, key_size, value_size, max_entries, flags,
                                ncpus=kb.possible_cpus(), **extra)
        self.kernel = kb.KernelMap.create(map_type, key_size, value_size, max_entries, flags)
        self.per_cpu = self.model.per_cpu

    def __enter__(self) -> MapPair:
        return self

    def __exit__(self, *exc_info) -> None:
        self.kernel.close()

    def update(self, key: bytes, value, flags: int) -> int:
        kernel_update = self.kernel.update_percpu if self.per_cpu else self.kernel.update
        expected = kernel_result(kernel_update, key, value, flags)
        got = self.model.update(key, value, flags)
        assert got == expected, f"update key {key.hex()} flags {flags}: model {got}, kernel {expected}"
        return got

    def delete(self, key: bytes) -> int:
        try:
            expected = 0 if self.kernel.delete(key) else -errno.ENOENT
        except kb.BpfError as error:
            expected = -error.errno
        got = self.model.delete(key)
        assert got == expected, f"delete key {key.hex()}: model {got}, kernel {expected}"
        return got

    def lookup(self, key: bytes):
        expected = self.kernel.lookup_percpu(key) if self.per_cpu else self.kernel.lookup(key)
        got = self.model.lookup(key)
        assert got == expected, f"lookup key {key.hex()}: model {got!r}, kernel {expected!r}"
        return got

    def check_contents(self) -> None:
        kernel_keys = sorted(self.kernel.keys())
        assert sorted(self.model.keys()) == kernel_keys
        for key in kernel_keys:
            self.lookup(key)


def per_cpu_value(number: int, size: int) -> list[bytes]:
    return [((number + cpu) % (1 << 64)).to_bytes(8, "little")[:size].ljust(size, b"\0")
            for cpu in range(kb.possible_cpus())]


def run_operations(pair: MapPair, operations, make_key, make_value) -> None:
    used_keys: list[bytes] = []
    for action, key_choice, value_choice, flags in operations:
        if isinstance(key_choice, Again) and used_keys:
            key = used_keys[key_choice.index % len(used_keys)]
        else:
            key = make_key(key_choice.fallback if isinstance(key_choice, Again) else key_choice)
            used_keys.append(key)
        if action == "update":
            pair.update(key, make_value(value_choice), flags)
        elif action == "delete":
            pair.delete(key)
        else:
            pair.lookup(key)
    pair.check_contents()


class Again:
    """A key choice meaning: a key this sequence used before (so deletes and lookups often hit);
    `fallback` is the fresh choice used while there is none."""

    def __init__(self, index: int, fallback):
        self.index, self.fallback = index, fallback

    def __repr__(self) -> str:
        return f"Again({self.index}, {self.fallback!r})"


def operations(keys, values=st.integers(0, 2 ** 64 - 1), flags=FLAG_CHOICES):
    key_choices = st.one_of(keys, st.builds(Again, st.integers(0, 63), keys))
    return st.lists(st.tuples(st.sampled_from(["update"] * 3 + ["delete", "lookup"]),
                              key_choices, values, flags), min_size=5, max_size=50)


# -- hash and array maps ---------------------------------------------------------------------------
@pytest.mark.parametrize("map_type, flags", [(maps.BPF_MAP_TYPE_HASH, 0),
                                             (maps.BPF_MAP_TYPE_HASH, BPF_F_NO_PREALLOC),
                                             (maps.BPF_MAP_TYPE_PERCPU_HASH, 0)])
@HYPOTHESIS
@given(sequence=operations(st.integers(0, 5)))
def test_hash_sequences_match_the_kernel(map_type, flags, sequence):
    with MapPair(map_type, 4, 8, 3, flags) as pair:
        if pair.per_cpu:
            make_value = lambda number: per_cpu_value(number, 8)
        else:
            make_value = lambda number: number.to_bytes(8, "little")
        run_operations(pair, sequence, u32, make_value)


@pytest.mark.parametrize("map_type", [maps.BPF_MAP_TYPE_ARRAY, maps.BPF_MAP_TYPE_PERCPU_ARRAY])
@HYPOTHESIS
@given(sequence=operations(st.sampled_from([0, 1, 2, 3, 4, 5, 0xFFFFFFFF])))
def test_array_sequences_match_the_kernel(map_type, sequence):
    with MapPair(map_type, 4, 12, 4) as pair:
        if pair.per_cpu:
            make_value = lambda number: per_cpu_value(number, 12)
        else:
            make_value = lambda number: number.to_bytes(12, "little")
        run_operations(pair, sequence, u32, make_value)


# -- LPM trie --------------------------------------------------------------------------------------
IPV4_BASES = [0x0A000000, 0x0A010000, 0x0A010200, 0x0A010203, 0xC0A80000, 0x00000000, 0xFFFFFFFF]
IPV6_BASES = [0x20010DB8 << 96, (0x20010DB8 << 96) | (1 << 80), (0x20010DB8_0001_0002 << 64) | 0x99,
              0xFE80 << 112, 0]


def lpm_keys(bases, address_bits: int, valid_lengths: list[int]):
    """Keys near a few overlapping prefixes: a base, sometimes with low bits flipped, and a prefix
    length that is usually valid, sometimes one past the maximum (-EINVAL)."""
    prefixlen = st.one_of(st.sampled_from(valid_lengths), st.integers(0, address_bits + 8))
    noise = st.sampled_from([0, 0, 1, 0xFF, 0x10000])
    return st.builds(lambda base, flip, length: u32(length) +
                     ((base ^ flip) % (1 << address_bits)).to_bytes(address_bits // 8, "big"),
                     st.sampled_from(bases), noise, prefixlen)


@HYPOTHESIS
@given(operations(lpm_keys(IPV4_BASES, 32, [0, 8, 16, 24, 32, 33])))
def test_ipv4_lpm_sequences_match_the_kernel(sequence):
    with MapPair(maps.BPF_MAP_TYPE_LPM_TRIE, 8, 4, 3, BPF_F_NO_PREALLOC) as pair:
        run_operations(pair, sequence, lambda key: key,
                       lambda number: (number % (1 << 32)).to_bytes(4, "little"))


@HYPOTHESIS
@given(operations(lpm_keys(IPV6_BASES, 128, [0, 32, 48, 64, 128, 129]), flags=VALID_FLAG_CHOICES))
def test_ipv6_lpm_sequences_match_the_kernel(sequence):
    with MapPair(maps.BPF_MAP_TYPE_LPM_TRIE, 20, 8, 4, BPF_F_NO_PREALLOC) as pair:
        run_operations(pair, sequence, lambda key: key,
                       lambda number: number.to_bytes(8, "little"))


# -- device maps -----------------------------------------------------------------------------------
EXISTING_IFINDEXES = sorted(index for index, _ in socket.if_nameindex()) or [1]
MISSING_IFINDEX = max(EXISTING_IFINDEXES) + 1000
NOT_A_PROGRAM_FD = 100_000  # bpf_prog_get fails on it: the kernel answers -EINVAL


def devmap_values(value_size: int):
    ifindex = st.sampled_from([0, MISSING_IFINDEX] + [EXISTING_IFINDEXES[0],
                                                       EXISTING_IFINDEXES[-1]] * 3)
    if value_size == 4:
        return st.builds(u32, ifindex)
    program = st.sampled_from([0] * 4 + [0xFFFFFFFF, NOT_A_PROGRAM_FD])  # none, fd -1, bad fd
    return st.builds(lambda index, prog: u32(index) + u32(prog), ifindex, program)


@pytest.mark.parametrize("map_type", [maps.BPF_MAP_TYPE_DEVMAP, maps.BPF_MAP_TYPE_DEVMAP_HASH])
@pytest.mark.parametrize("value_size", [4, 8])
@HYPOTHESIS
@given(data=st.data())
def test_devmap_sequences_match_the_kernel(map_type, value_size, data):
    keys = st.sampled_from([0, 1, 2, 3, 7, 0x10000])
    sequence = data.draw(operations(keys, devmap_values(value_size)))
    with MapPair(map_type, 4, value_size, 3, valid_ifindexes=set(EXISTING_IFINDEXES)) as pair:
        run_operations(pair, sequence, u32, lambda value: value)


# -- LRU hash: exact until first full, then what both guarantee ------------------------------------
@pytest.fixture
def one_cpu():
    """Pin this process to one CPU for the whole test (all its examples): the kernel's LRU free
    lists are per CPU, and a migration between two updates can make it evict early."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@settings(HYPOTHESIS, suppress_health_check=[HealthCheck.too_slow,
                                             HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["update", "lookup"]), st.integers(0, 9),
                          st.integers(0, 2 ** 64 - 1)), max_size=40))
def test_lru_hash_agrees_where_the_kernel_is_deterministic(one_cpu, sequence):
    capacity = 4
    with MapPair(maps.BPF_MAP_TYPE_LRU_HASH, 4, 8, capacity) as pair:
        exact = True
        for action, key_number, number in sequence:
            key = u32(key_number)
            if action == "lookup":
                if exact:
                    pair.lookup(key)
                continue
            exact = exact and len(pair.model) < capacity
            value = number.to_bytes(8, "little")
            if exact:
                pair.update(key, value, maps.BPF_ANY)
                pair.check_contents()
            else:
                assert pair.model.update(key, value) == 0
                pair.kernel.update(key, value)
                assert pair.model.lookup(key) == pair.kernel.lookup(key) == value
                assert len(list(pair.kernel.keys())) <= capacity
                assert len(pair.model) == capacity


# -- updates from a program (helper semantics, per-CPU copies) -------------------------------------
HELPER_MAP_UPDATE_ELEM = 2


def insn(opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """struct bpf_insn (include/uapi/linux/bpf.h); imm is taken modulo 2**32."""
    return bytes([opcode, dst | src << 4]) + off.to_bytes(2, "little", signed=True) + \
        (imm % (1 << 32)).to_bytes(4, "little")


def update_program(map_fd: int, key: int, value: int, flags: int) -> bytes:
    """An XDP program: bpf_map_update_elem(map, &key (u32), &value (u64), flags); return its result."""
    return b"".join([
        insn(0x62, dst=10, off=-4, imm=key),                                 # *(u32 *)(r10-4) = key
        insn(0x18, dst=1, imm=value), insn(0x00, imm=value >> 32),           # r1 = value (lddw)
        insn(0x7B, dst=10, src=1, off=-16),                                  # *(u64 *)(r10-16) = r1
        insn(0x18, dst=1, src=kb.BPF_PSEUDO_MAP_FD, imm=map_fd), insn(0x00),  # r1 = map
        insn(0xBF, dst=2, src=10), insn(0x07, dst=2, imm=-4),                # r2 = &key
        insn(0xBF, dst=3, src=10), insn(0x07, dst=3, imm=-16),               # r3 = &value
        insn(0xB7, dst=4, imm=flags),                                        # r4 = flags
        insn(0x85, imm=HELPER_MAP_UPDATE_ELEM),
        insn(0x95),                                                          # return r0
    ])


PROGRAM_UPDATES = [  # (key, value, flags): inserts, replacements, every refusal
    (1, 0x1111, maps.BPF_ANY), (1, 0x2222, maps.BPF_NOEXIST), (2, 0x3333, maps.BPF_EXIST),
    (2, 0x3333, maps.BPF_NOEXIST), (1, 0x4444, maps.BPF_EXIST), (0, 0x5555, maps.BPF_ANY),
    (3, 0x6666, maps.BPF_ANY), (0, 0x7777, maps.BPF_F_LOCK), (0, 0x8888, 3),
    (1, 0xFFFF_0000_1234_5678, maps.BPF_ANY),
]


@pytest.mark.parametrize("map_type", [maps.BPF_MAP_TYPE_HASH, maps.BPF_MAP_TYPE_PERCPU_HASH,
                                      maps.BPF_MAP_TYPE_ARRAY, maps.BPF_MAP_TYPE_PERCPU_ARRAY,
                                      maps.BPF_MAP_TYPE_LRU_PERCPU_HASH])
def test_program_updates_match_the_kernel(map_type):
    """The same updates from a program alternating between CPUs: return codes and, for per-CPU
    maps, which CPU's copy changes (a new element starts zeroed on the other CPUs)."""
    allowed = sorted(os.sched_getaffinity(0))
    cpus = [cpu for cpu in allowed if cpu < kb.possible_cpus()][:2]
    capacity = 3
    if map_type == maps.BPF_MAP_TYPE_LRU_PERCPU_HASH:
        # The kernel's LRU is approximate: its free lists are per CPU, and refused updates still
        # take a node and give it back, so it can evict early. One CPU, far below capacity.
        cpus, capacity = cpus[:1], 16
    try:
        with MapPair(map_type, 4, 8, capacity) as pair:
            # Leave non-zero bytes behind: in a freed element (hashes) or in the entry (arrays).
            host_value = per_cpu_value(0xAB00, 8) if pair.per_cpu else u32(0xAB00) + bytes(4)
            hash_map = map_type not in (maps.BPF_MAP_TYPE_ARRAY, maps.BPF_MAP_TYPE_PERCPU_ARRAY)
            pair.update(u32(2 if hash_map else 0), host_value, maps.BPF_ANY)
            if hash_map:
                pair.delete(u32(2))
            for step, (key, value, flags) in enumerate(PROGRAM_UPDATES):
                cpu = cpus[step % len(cpus)]
                os.sched_setaffinity(0, {cpu})
                with kb.KernelProgram.load(kb.BPF_PROG_TYPE_XDP,
                                           update_program(pair.kernel.fd, key, value, flags),
                                           name="update", log_level=0) as program:
                    retval = program.test_run(bytes(64)).retval
                expected = retval - (1 << 32) if retval >= 1 << 31 else retval
                got = pair.model.update(u32(key), value.to_bytes(8, "little"), flags, cpu=cpu)
                assert got == expected, f"step {step} on CPU {cpu}: model {got}, kernel {expected}"
                pair.check_contents()
    finally:
        os.sched_setaffinity(0, set(allowed))


# -- program array ---------------------------------------------------------------------------------
def test_prog_array_return_codes_match_the_kernel():
    pass_program = bytes([0xB7, 0, 0, 0]) + u32(2) + bytes([0x95]) + bytes(7)  # r0 = XDP_PASS; exit
    with kb.KernelProgram.load(kb.BPF_PROG_TYPE_XDP, pass_program, name="pass") as program, \
            kb.KernelMap.create(maps.BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 2) as kernel:
        model = create_map(maps.BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 2)
        handle = object()
        fd = u32(program.fd)

        def both_update(index: int, flags: int) -> None:
            expected = kernel_result(kernel.update, u32(index), fd, flags)
            assert model.update(u32(index), handle, flags) == expected, (index, flags)

        def both_delete(index: int) -> None:
            try:
                expected = 0 if kernel.delete(u32(index)) else -errno.ENOENT
            except kb.BpfError as error:
                expected = -error.errno
            assert model.delete(u32(index)) == expected, index

        for flags in (maps.BPF_NOEXIST, maps.BPF_EXIST, maps.BPF_F_LOCK):
            both_update(0, flags)
        both_update(2, maps.BPF_ANY)
        both_delete(0)
        both_delete(2)
        both_update(1, maps.BPF_ANY)
        assert (kernel.lookup(u32(1)) is not None) and model.lookup(u32(1)) is handle
        assert kernel.lookup(u32(0)) is None and model.lookup(u32(0)) is None
        assert sorted(kernel.keys()) == sorted(model.keys())
        both_delete(1)
        both_delete(1)


# -- creation parameters, access flags, freezing ---------------------------------------------------
CREATION_CASES = [
    # (type, key_size, value_size, max_entries, flags)
    (2, 4, 4, 1, 0), (2, 8, 4, 1, 0), (2, 4, 0, 1, 0), (2, 4, 4, 0, 0),
    (2, 4, 4, 1, maps.BPF_F_MMAPABLE), (2, 4, 4, 1, BPF_F_NO_PREALLOC),
    (2, 4, 4, 1, maps.BPF_F_RDONLY | maps.BPF_F_WRONLY),
    (2, 4, 4, 1, maps.BPF_F_RDONLY_PROG | maps.BPF_F_WRONLY_PROG),
    (2, 4, 4, 1, maps.BPF_F_PRESERVE_ELEMS), (2, 4, 4, 1, maps.BPF_F_ZERO_SEED),
    (6, 4, 32 * 1024, 1, 0), (6, 4, 32 * 1024 + 1, 1, 0), (6, 4, 4, 1, maps.BPF_F_MMAPABLE),
    (1, 4, 4, 1, 0), (1, 0, 4, 1, 0), (1, 4, 0, 1, 0), (1, 4, 4, 0, 0), (1, 513, 4, 1, 0),
    (1, 4, (4 << 20) - 52, 1, BPF_F_NO_PREALLOC), (1, 4, (4 << 20) - 53, 1, BPF_F_NO_PREALLOC),
    (1, 4, 4, 1, maps.BPF_F_NO_COMMON_LRU), (1, 4, 4, 1, maps.BPF_F_MMAPABLE),
    (1, 4, 4, 1, maps.BPF_F_ZERO_SEED | BPF_F_NO_PREALLOC),
    (5, 4, 32 * 1024 + 1, 1, 0), (9, 4, 4, 1, 0), (9, 4, 4, 1, BPF_F_NO_PREALLOC),
    (9, 4, 4, 1, maps.BPF_F_NO_COMMON_LRU), (10, 4, 4, 1, maps.BPF_F_NO_COMMON_LRU),
    (11, 8, 4, 1, 0), (11, 8, 4, 1, BPF_F_NO_PREALLOC), (11, 4, 4, 1, BPF_F_NO_PREALLOC),
    (11, 5, 1, 1, BPF_F_NO_PREALLOC), (11, 260, 4, 1, BPF_F_NO_PREALLOC),
    (11, 261, 4, 1, BPF_F_NO_PREALLOC), (11, 8, 0, 1, BPF_F_NO_PREALLOC),
    (11, 8, 4, 0, BPF_F_NO_PREALLOC), (11, 8, 4, 1, BPF_F_NO_PREALLOC | maps.BPF_F_MMAPABLE),
    (14, 4, 4, 1, 0), (14, 4, 8, 1, 0), (14, 4, 6, 1, 0), (14, 8, 4, 1, 0), (14, 4, 4, 0, 0),
    (14, 4, 4, 1, maps.BPF_F_RDONLY_PROG), (14, 4, 4, 1, maps.BPF_F_RDONLY),
    (25, 4, 8, 16, 0), (25, 4, 4, 1, BPF_F_NO_PREALLOC),
    (3, 4, 4, 1, 0), (3, 4, 8, 1, 0), (3, 4, 4, 1, maps.BPF_F_RDONLY_PROG),
    (3, 4, 4, 1, maps.BPF_F_MMAPABLE),
]


@pytest.mark.parametrize("map_type, key_size, value_size, max_entries, flags", CREATION_CASES)
def test_creation_checks_match_the_kernel(map_type, key_size, value_size, max_entries, flags):
    try:
        kb.KernelMap.create(map_type, key_size, value_size, max_entries, flags).close()
        expected = 0
    except kb.BpfError as error:
        expected = error.errno
    try:
        create_map(map_type, key_size, value_size, max_entries, flags, ncpus=kb.possible_cpus())
        got = 0
    except MapError as error:
        got = error.errno
    assert got == expected, f"model errno {got}, kernel errno {expected}"


def test_access_flags_and_freeze_match_the_kernel():
    with MapPair(maps.BPF_MAP_TYPE_HASH, 4, 4, 2, maps.BPF_F_RDONLY) as pair:
        pair.update(u32(1), u32(1), maps.BPF_ANY)
        pair.delete(u32(1))
        pair.lookup(u32(1))
    with MapPair(maps.BPF_MAP_TYPE_ARRAY, 4, 4, 2, maps.BPF_F_WRONLY) as pair:
        pair.update(u32(1), u32(7), maps.BPF_ANY)
        with pytest.raises(kb.BpfError) as kernel_refusal:
            pair.kernel.lookup(u32(1))
        with pytest.raises(MapError) as model_refusal:
            pair.model.lookup(u32(1))
        assert model_refusal.value.errno == kernel_refusal.value.errno == errno.EPERM
    with MapPair(maps.BPF_MAP_TYPE_HASH, 4, 4, 2) as pair:
        pair.update(u32(1), u32(1), maps.BPF_ANY)
        pair.kernel.freeze()
        assert pair.model.freeze() == 0
        with pytest.raises(kb.BpfError) as again:
            pair.kernel.freeze()
        assert pair.model.freeze() == -again.value.errno
        pair.update(u32(1), u32(2), maps.BPF_ANY)
        pair.update(u32(2), u32(2), maps.BPF_ANY)
        pair.delete(u32(1))
        pair.check_contents()
