"""The map model (sw/maps.py): every type, update flags and return codes, full maps, slot reuse,
in-place values seen through value_memory, longest-prefix match, per-CPU layout, LRU eviction.

The kernel comparison of the same operations lives in tests/test_maps_kernel.py.
"""

from __future__ import annotations

import errno
import ipaddress
import struct

import pytest
from hypothesis import given, settings, strategies as st

from bpfnic.sw import maps
from bpfnic.sw.maps import (BPF_ANY, BPF_EXIST, BPF_F_LOCK, BPF_F_NO_PREALLOC, BPF_NOEXIST,
                            MapError, create_map)


def u32(number: int) -> bytes:
    return number.to_bytes(4, "little")


def u64(number: int) -> bytes:
    return number.to_bytes(8, "little")


def lpm_key(prefix: str) -> bytes:
    """struct bpf_lpm_trie_key_u8 of "address/prefixlen" (IPv4 or IPv6; prefixlen may be invalid)."""
    address, prefixlen = prefix.split("/")
    return u32(int(prefixlen)) + ipaddress.ip_address(address).packed


ipv4_key = ipv6_key = lpm_key


def read(map_, offset: int, size: int | None = None) -> bytes:
    size = map_.value_size if size is None else size
    return bytes(map_.value_memory[offset:offset + size])


# -- names and creation ----------------------------------------------------------------------------
def test_type_names_round_trip():
    for number in maps.SUPPORTED_MAP_TYPES:
        name = maps.MAP_TYPE_NAMES[number]
        assert maps.map_type_from_name(name) == number
        assert maps.map_type_from_name("BPF_MAP_TYPE_" + name.upper()) == number
    assert maps.map_type_from_name("lpm-trie") == maps.BPF_MAP_TYPE_LPM_TRIE
    assert maps.MAP_TYPE_NAMES[maps.BPF_MAP_TYPE_DEVMAP_HASH] == "devmap_hash"
    with pytest.raises(MapError, match="unknown map type name 'hashish'"):
        maps.map_type_from_name("hashish")


def test_create_by_name_and_number_agree():
    by_name = create_map("lru_percpu_hash", 4, 8, 16, ncpus=2)
    assert isinstance(by_name, maps.LruPerCpuHashMap) and by_name.map_type == 10
    assert by_name.type_name == "lru_percpu_hash"


@pytest.mark.parametrize("map_type, expected", [
    (27, r"map type 27 \(ringbuf\) is not supported by bpfnic"),
    (99, r"unknown map type 99"),
])
def test_unsupported_and_unknown_types_are_named(map_type, expected):
    with pytest.raises(MapError, match=expected) as raised:
        create_map(map_type, 4, 4, 1, name="m")
    assert raised.value.errno == errno.EINVAL


@pytest.mark.parametrize("map_type, key_size, value_size, max_entries, flags, error", [
    (2, 8, 4, 1, 0, errno.EINVAL),                                # array key must be 4
    (2, 4, 0, 1, 0, errno.EINVAL),                                # zero value
    (2, 4, 4, 0, 0, errno.EINVAL),                                # zero entries
    (6, 4, 32 * 1024 + 1, 1, 0, errno.E2BIG),                     # per-CPU value too big
    (6, 4, 4, 1, maps.BPF_F_MMAPABLE, errno.EINVAL),              # mmap is for plain arrays
    (2, 4, 4, 1, maps.BPF_F_NO_PREALLOC, errno.EINVAL),           # not an array flag
    (2, 4, 4, 1, maps.BPF_F_RDONLY | maps.BPF_F_WRONLY, errno.EINVAL),
    (2, 4, 4, 1, maps.BPF_F_RDONLY_PROG | maps.BPF_F_WRONLY_PROG, errno.EINVAL),
    (1, 0, 4, 1, 0, errno.EINVAL),                                # zero key
    (1, 4 << 20, 4, 1, 0, errno.E2BIG),                           # element beyond kmalloc()
    (1, 4, 4, 1, maps.BPF_F_NO_COMMON_LRU, errno.EINVAL),         # LRU flag on a plain hash
    (9, 4, 4, 1, BPF_F_NO_PREALLOC, maps.ENOTSUPP),               # LRU is always preallocated
    (11, 8, 4, 1, 0, errno.EINVAL),                               # LPM without NO_PREALLOC
    (11, 4, 4, 1, BPF_F_NO_PREALLOC, errno.EINVAL),               # LPM without data bytes
    (11, 261, 4, 1, BPF_F_NO_PREALLOC, errno.EINVAL),             # LPM data > 256 bytes
    (14, 4, 6, 1, 0, errno.EINVAL),                               # devmap value 4 or 8
    (25, 8, 4, 1, 0, errno.EINVAL),                               # devmap key is a u32
    (14, 4, 4, 1, maps.BPF_F_RDONLY_PROG, errno.EINVAL),          # not a devmap flag
    (3, 4, 8, 1, 0, errno.EINVAL),                                # prog array value is a u32
    (3, 4, 4, 1, maps.BPF_F_RDONLY_PROG, errno.EINVAL),
])
def test_bad_parameters_give_the_kernel_errno(map_type, key_size, value_size, max_entries, flags,
                                              error):
    with pytest.raises(MapError) as raised:
        create_map(map_type, key_size, value_size, max_entries, flags, name="bad")
    assert raised.value.errno == error
    assert "'bad'" in str(raised.value)


def test_bad_arguments_raise_named_errors():
    with pytest.raises(MapError, match="key_size must be an integer"):
        create_map("hash", -1, 4, 1)
    with pytest.raises(MapError, match="map name 'a b'"):
        create_map("hash", 4, 4, 1, name="a b")
    with pytest.raises(MapError, match="unknown parameter\\(s\\) colour"):
        create_map("hash", 4, 4, 1, colour="red")
    with pytest.raises(MapError, match="exceed the model's limit"):
        create_map("array", 4, 1 << 20, 1 << 10)
    hash_map = create_map("hash", 4, 8, 4, name="h")
    with pytest.raises(MapError, match=r"map 'h' \(hash\): key must be 4 bytes \(key_size\), got 3"):
        hash_map.update(b"abc", u64(1))
    with pytest.raises(MapError, match="value must be 8 bytes"):
        hash_map.update(u32(1), b"short")
    with pytest.raises(MapError, match="value must be bytes, got str"):
        hash_map.update(u32(1), "12345678")
    with pytest.raises(MapError, match="cpu must be None"):
        hash_map.update(u32(1), u64(1), cpu=-1)


# -- arrays ----------------------------------------------------------------------------------------
def test_array_entries_exist_zeroed_and_update_in_place():
    array = create_map("array", 4, 12, 3)
    assert array.value_stride == 16 and len(array.value_memory) == 48
    assert [array.lookup(key) for key in array.keys()] == [bytes(12)] * 3
    offset = array.lookup_slot(u32(2))
    assert offset == 32
    assert array.update(u32(2), b"A" * 12) == 0
    assert read(array, offset) == b"A" * 12
    array.value_memory[offset:offset + 4] = b"BBBB"  # a program store through its pointer
    assert array.lookup(u32(2)) == b"BBBB" + b"A" * 8
    assert array.update(u32(2), b"C" * 12, BPF_EXIST) == 0
    assert read(array, offset) == b"C" * 12


def test_array_return_codes():
    array = create_map("array", 4, 4, 2)
    assert array.update(u32(0), b"1234", BPF_NOEXIST) == -errno.EEXIST
    assert array.update(u32(2), b"1234") == -errno.E2BIG
    assert array.update(u32(2), b"1234", BPF_NOEXIST) == -errno.E2BIG  # index checked first
    assert array.update(u32(0), b"1234", 3) == -errno.EINVAL
    assert array.update(u32(0), b"1234", BPF_F_LOCK) == -errno.EINVAL  # no bpf_spin_lock
    assert array.update(u32(0), b"1234", BPF_F_LOCK, cpu=0) == -errno.EINVAL
    assert array.lookup(u32(2)) is None and array.lookup_slot(u32(2)) is None
    assert array.lookup_slot(u32(0xFFFFFFFF)) is None
    assert array.delete(u32(0)) == -errno.EINVAL
    assert array.delete(u32(0), cpu=0) == -errno.EINVAL
    assert len(array) == 2


def test_array_spin_lock_word_is_never_copied():
    array = create_map("array", 4, 8, 1, spin_lock_offset=0)
    offset = array.lookup_slot(u32(0))
    array.value_memory[offset:offset + 4] = u32(1)  # a held lock
    assert array.update(u32(0), b"\xff" * 8, BPF_F_LOCK) == 0
    assert read(array, offset) == u32(1) + b"\xff" * 4
    assert array.lookup(u32(0)) == bytes(4) + b"\xff" * 4  # handed out as zeros
    assert array.freeze() == -maps.ENOTSUPP
    with pytest.raises(MapError, match="spin_lock_offset 6"):
        create_map("array", 4, 8, 1, spin_lock_offset=6)
    with pytest.raises(MapError) as raised:
        create_map("percpu_array", 4, 8, 1, spin_lock_offset=0)
    assert raised.value.errno == errno.EOPNOTSUPP


def test_percpu_array_layout_and_program_writes():
    array = create_map("percpu_array", 4, 4, 3, ncpus=2)
    assert array.cpu_region_size == 24 and len(array.value_memory) == 48
    assert array.lookup_slot(u32(1), cpu=0) == 8
    assert array.lookup_slot(u32(1), cpu=1) == 24 + 8
    assert array.update(u32(1), [b"c0c0", b"c1c1"]) == 0  # host: one value per CPU
    assert read(array, 8) == b"c0c0" and read(array, 32) == b"c1c1"
    assert array.update(u32(1), b"PPPP", cpu=1) == 0      # program on CPU 1: its copy only
    assert array.lookup(u32(1)) == [b"c0c0", b"PPPP"]
    assert array.update(u32(2), b"all!") == 0             # host: one value for all CPUs
    assert array.lookup(u32(2)) == [b"all!", b"all!"]
    assert array.update(u32(0), b"xxxx", BPF_F_LOCK) == -errno.EINVAL
    with pytest.raises(MapError, match="list of 2"):
        array.update(u32(0), [b"1111"])
    with pytest.raises(MapError, match="cpu 2 out of range"):
        array.lookup_slot(u32(0), cpu=2)


# -- hashes ----------------------------------------------------------------------------------------
def test_hash_flags_full_and_delete():
    table = create_map("hash", 4, 8, 2)
    assert table.update(u32(1), u64(10), BPF_EXIST) == -errno.ENOENT
    assert table.update(u32(1), u64(10), BPF_NOEXIST) == 0
    assert table.update(u32(1), u64(11), BPF_NOEXIST) == -errno.EEXIST
    assert table.update(u32(1), u64(12), BPF_EXIST) == 0
    assert table.update(u32(2), u64(20)) == 0
    assert table.update(u32(3), u64(30)) == -errno.E2BIG      # full
    assert table.update(u32(2), u64(21)) == 0                 # replacing still works when full
    assert table.update(u32(3), u64(30), 3) == -errno.EINVAL
    assert table.update(u32(1), u64(1), BPF_F_LOCK) == -errno.EINVAL
    assert table.lookup(u32(1)) == u64(12) and table.lookup(u32(3)) is None
    assert table.delete(u32(3)) == -errno.ENOENT
    assert table.delete(u32(1)) == 0 and table.lookup(u32(1)) is None
    assert sorted(table.keys()) == [u32(2)]
    assert dict(table.items()) == {u32(2): u64(21)}


def test_hash_frees_and_reuses_slots():
    table = create_map("hash", 4, 8, 3)
    offsets = {}
    for key in (1, 2, 3):
        assert table.update(u32(key), u64(key)) == 0
        offsets[key] = table.lookup_slot(u32(key))
    assert sorted(offsets.values()) == [0, 8, 16]
    assert table.delete(u32(2)) == 0
    assert table.update(u32(4), u64(4)) == 0
    assert table.lookup_slot(u32(4)) == offsets[2]   # the freed slot, reused
    assert table.update(u32(5), u64(5)) == -errno.E2BIG


def test_hash_update_writes_the_existing_slot():
    table = create_map("hash", 8, 16, 4)
    key = b"flow0001"
    assert table.update(key, b"a" * 16) == 0
    pointer = table.lookup_slot(key)
    assert table.update(key, b"b" * 16, BPF_EXIST, cpu=0) == 0
    assert read(table, pointer) == b"b" * 16  # a program holding the pointer sees the new value
    table.value_memory[pointer:pointer + 8] = u64(7)  # an atomic add done in place
    assert table.lookup(key) == u64(7) + b"b" * 8


def test_hash_spin_lock_and_bpf_f_lock():
    table = create_map("hash", 4, 16, 2, spin_lock_offset=8)
    assert table.update(u32(1), b"x" * 16, BPF_F_LOCK | BPF_EXIST) == -errno.ENOENT
    assert table.update(u32(1), b"x" * 16, BPF_F_LOCK) == 0
    assert table.update(u32(1), b"y" * 16, BPF_F_LOCK | BPF_NOEXIST) == -errno.EEXIST
    assert table.lookup(u32(1)) == b"x" * 8 + bytes(4) + b"x" * 4


def test_percpu_hash_program_and_host_values():
    table = create_map("percpu_hash", 4, 8, 4, ncpus=3)
    assert table.update(u32(7), [u64(1), u64(2), u64(3)]) == 0
    assert table.update(u32(7), u64(9), cpu=2) == 0           # existing: CPU 2's copy only
    assert table.lookup(u32(7)) == [u64(1), u64(2), u64(9)]
    assert table.update(u32(8), u64(5), cpu=1) == 0           # new: other CPUs start zeroed
    assert table.lookup(u32(8)) == [u64(0), u64(5), u64(0)]
    offset = table.lookup_slot(u32(8), cpu=1)
    assert offset == table.cpu_region_size + table.lookup_slot(u32(8), cpu=0)
    assert read(table, offset) == u64(5)
    assert table.update(u32(8), u64(1), BPF_F_LOCK) == -errno.EINVAL
    assert dict(table.items())[u32(7)] == [u64(1), u64(2), u64(9)]


def test_percpu_hash_reused_slot_is_zeroed_for_a_program_insert():
    table = create_map("percpu_hash", 4, 8, 1, ncpus=2)
    assert table.update(u32(1), [u64(0xAA), u64(0xBB)]) == 0
    assert table.delete(u32(1)) == 0
    assert table.update(u32(2), u64(0xCC), cpu=0) == 0
    assert table.lookup(u32(2)) == [u64(0xCC), u64(0)]


# -- LRU -------------------------------------------------------------------------------------------
def test_lru_evicts_least_recently_used():
    lru = create_map("lru_hash", 4, 8, 3)
    for key in (1, 2, 3):
        assert lru.update(u32(key), u64(key)) == 0
    assert lru.lru_order() == [u32(1), u32(2), u32(3)]
    assert lru.lookup_slot(u32(1)) is not None            # program lookup: 1 is now the newest
    assert lru.lookup(u32(2)) == u64(2)                   # host lookup: recency unchanged
    assert lru.slot_of(u32(2)) is not None                # and so is a checker's peek
    assert lru.update(u32(4), u64(4)) == 0                # full: evicts 2
    assert sorted(lru.keys()) == [u32(1), u32(3), u32(4)]
    assert lru.update(u32(3), u64(33), BPF_EXIST) == 0     # an update also refreshes
    assert lru.update(u32(5), u64(5)) == 0                # evicts 1
    assert sorted(lru.keys()) == [u32(3), u32(4), u32(5)]
    assert len(lru) == 3


def test_lru_flags_and_evicted_slot_reuse():
    lru = create_map("lru_hash", 4, 8, 2)
    assert lru.update(u32(1), u64(1)) == 0
    pointer = lru.lookup_slot(u32(1))
    assert lru.update(u32(1), u64(2), BPF_NOEXIST) == -errno.EEXIST
    assert lru.update(u32(9), u64(9), BPF_EXIST) == -errno.ENOENT
    assert lru.update(u32(1), u64(1), BPF_F_LOCK) == -errno.EINVAL  # no BPF_F_LOCK for LRU
    assert lru.update(u32(2), u64(2)) == 0
    assert lru.update(u32(3), u64(3)) == 0                 # evicts 1 and takes its slot
    assert lru.lookup(u32(1)) is None
    assert lru.lookup_slot(u32(3)) == pointer
    assert lru.delete(u32(1)) == -errno.ENOENT
    assert lru.delete(u32(2)) == 0
    assert lru.update(u32(4), u64(4)) == 0                 # free slot: nothing evicted
    assert sorted(lru.keys()) == [u32(3), u32(4)]


def test_lru_percpu_hash():
    lru = create_map("lru_percpu_hash", 4, 4, 2, ncpus=2)
    assert lru.update(u32(1), b"aaaa", cpu=0) == 0
    assert lru.update(u32(2), [b"b0b0", b"b1b1"]) == 0
    assert lru.lookup_slot(u32(1), cpu=1) is not None      # 1 is now the newest
    assert lru.update(u32(3), b"cccc", cpu=1) == 0         # evicts 2
    assert lru.lookup(u32(2)) is None
    assert lru.lookup(u32(3)) == [bytes(4), b"cccc"]
    assert lru.lookup(u32(1)) == [b"aaaa", bytes(4)]
    with pytest.raises(MapError, match="not an LRU map"):
        create_map("hash", 4, 4, 1).lru_order()


# -- LPM trie --------------------------------------------------------------------------------------
def make_ipv4_trie(max_entries: int = 16) -> maps.LpmTrieMap:
    return create_map("lpm_trie", 8, 4, max_entries, BPF_F_NO_PREALLOC)


def test_lpm_ipv4_longest_prefix_match():
    trie = make_ipv4_trie()
    for prefix, tag in (("10.0.0.0/8", 8), ("10.1.0.0/16", 16), ("10.1.2.0/24", 24),
                        ("10.1.2.3/32", 32)):
        assert trie.update(ipv4_key(prefix), u32(tag)) == 0
    def match(address: str, prefixlen: int = 32):
        value = trie.lookup(ipv4_key(f"{address}/{prefixlen}"))
        return None if value is None else int.from_bytes(value, "little")
    assert match("10.1.2.3") == 32
    assert match("10.1.2.4") == 24
    assert match("10.1.3.1") == 16
    assert match("10.2.0.1") == 8
    assert match("11.0.0.1") is None
    assert match("10.1.2.3", 24) == 24   # the key's prefixlen bounds the match
    assert match("10.1.2.3", 7) is None
    assert match("10.1.2.3", 33) is None  # past the maximum prefix length: no match
    offset = trie.lookup_slot(ipv4_key("10.1.2.200/32"))
    assert read(trie, offset) == u32(24)
    assert trie.update(ipv4_key("0.0.0.0/0"), u32(0)) == 0  # default route
    assert match("11.0.0.1") == 0


def test_lpm_exact_prefix_update_and_delete():
    trie = make_ipv4_trie(max_entries=2)
    assert trie.update(ipv4_key("192.168.0.0/16"), u32(1), BPF_NOEXIST) == 0
    # Same prefix, other bits past it: the same entry.
    assert trie.update(ipv4_key("192.168.7.7/16"), u32(2), BPF_NOEXIST) == -errno.EEXIST
    pointer = trie.lookup_slot(ipv4_key("192.168.1.1/32"))
    assert trie.update(ipv4_key("192.168.7.7/16"), u32(2), BPF_EXIST) == 0
    assert read(trie, pointer) == u32(2)  # written in place
    assert list(trie.keys()) == [ipv4_key("192.168.7.7/16")]  # the key as last written
    assert trie.update(ipv4_key("192.169.0.0/16"), u32(3), BPF_EXIST) == -errno.ENOENT
    assert trie.update(ipv4_key("192.169.0.0/16"), u32(3)) == 0
    assert trie.update(ipv4_key("10.0.0.0/8"), u32(4)) == -errno.ENOSPC  # full
    assert trie.update(ipv4_key("192.169.0.0/16"), u32(5)) == 0          # replacing works
    assert trie.update(ipv4_key("10.0.0.0/33"), u32(4)) == -errno.EINVAL
    assert trie.update(ipv4_key("10.0.0.0/8"), u32(4), BPF_F_LOCK) == -errno.EINVAL
    assert trie.update(ipv4_key("10.0.0.0/8"), u32(4), BPF_F_LOCK, cpu=0) == -errno.EINVAL
    assert trie.delete(ipv4_key("192.168.0.0/24")) == -errno.ENOENT    # not the exact prefix
    assert trie.delete(ipv4_key("192.168.0.0/33")) == -errno.EINVAL
    assert trie.delete(ipv4_key("192.168.99.0/16")) == 0
    assert trie.lookup(ipv4_key("192.168.1.1/32")) is None
    assert trie.update(ipv4_key("10.0.0.0/8"), u32(4)) == 0            # room again
    assert len(trie) == 2


def test_lpm_ipv6():
    trie = create_map("lpm_trie", 20, 8, 8, BPF_F_NO_PREALLOC)
    assert trie.max_prefixlen == 128
    for prefix, tag in (("2001:db8::/32", 32), ("2001:db8:1::/48", 48),
                        ("2001:db8:1:2::/64", 64), ("2001:db8:1:2::99/128", 128)):
        assert trie.update(ipv6_key(prefix), u64(tag)) == 0
    def match(address: str):
        value = trie.lookup(ipv6_key(f"{address}/128"))
        return None if value is None else int.from_bytes(value, "little")
    assert match("2001:db8:1:2::99") == 128
    assert match("2001:db8:1:2::98") == 64
    assert match("2001:db8:1:3::1") == 48
    assert match("2001:db8:2::1") == 32
    assert match("2001:db9::1") is None
    assert trie.update(ipv6_key("2001:db8::/129"), u64(0)) == -errno.EINVAL


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(0, 32)), max_size=20),
       st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=20))
def test_lpm_matches_a_brute_force_search(prefixes, addresses):
    # Addresses are narrowed to a few high bits' worth of variety so prefixes overlap often.
    trie = make_ipv4_trie(max_entries=64)
    expected: dict[ipaddress.IPv4Network, int] = {}
    for tag, (address, prefixlen) in enumerate(prefixes):
        address &= 0xFF0F0300
        key = u32(prefixlen) + address.to_bytes(4, "big")
        assert trie.update(key, u32(tag)) == 0
        expected[ipaddress.ip_network((address, prefixlen), strict=False)] = tag
    for address in addresses:
        address &= 0xFF0F0303
        ip = ipaddress.ip_address(address)
        covering = [network for network in expected if ip in network]
        best = max(covering, key=lambda network: network.prefixlen, default=None)
        value = trie.lookup(u32(32) + ip.packed)
        assert (None if value is None else int.from_bytes(value, "little")) == \
            (None if best is None else expected[best])


# -- device maps -----------------------------------------------------------------------------------
def test_devmap_update_delete_and_redirect():
    programs = {5: "devmap_prog"}
    devmap = create_map("devmap", 4, 8, 4, valid_ifindexes={1, 2, 3},
                        resolve_program=programs.get)
    assert devmap.readonly_for_program
    assert devmap.program_helpers == {"map_lookup_elem", "redirect_map"}
    assert devmap.lookup(u32(0)) is None and devmap.lookup_slot(u32(0)) is None
    assert devmap.update(u32(0), u32(2) + u32(0)) == 0
    assert devmap.update(u32(1), u32(3) + u32(5)) == 0
    assert devmap.lookup(u32(1)) == u32(3) + u32(5)
    assert read(devmap, devmap.lookup_slot(u32(0))) == u32(2) + u32(0)
    assert devmap.redirect_lookup(1) == (3, "devmap_prog")
    assert devmap.redirect_lookup((1 << 32) | 0) == (2, None)   # the low 32 bits are the key
    assert devmap.redirect_lookup(2) is None
    assert devmap.update(u32(2), u32(9) + u32(0)) == -errno.EINVAL    # no such device
    assert devmap.update(u32(2), u32(1) + u32(6)) == -errno.EINVAL    # no such program
    assert devmap.update(u32(2), u32(1) + u32(0xFFFFFFFF)) == 0       # fd -1: no program
    assert devmap.update(u32(3), u32(1) + u32(0), BPF_NOEXIST) == -errno.EEXIST  # always
    assert devmap.update(u32(4), u32(1) + u32(0)) == -errno.E2BIG
    assert devmap.update(u32(3), u32(1) + u32(0), 4) == -errno.EINVAL
    assert devmap.update(u32(0), u32(0) + u32(5)) == -errno.EINVAL    # program without device
    assert devmap.update(u32(0), u32(0) + u32(0)) == 0                # ifindex 0 clears
    assert devmap.lookup(u32(0)) is None
    assert devmap.delete(u32(0)) == 0                                 # empty: still 0
    assert devmap.delete(u32(4)) == -errno.EINVAL
    assert devmap.delete(u32(1)) == 0 and devmap.redirect_lookup(1) is None
    assert len(list(devmap.keys())) == 4 and dict(devmap.items()) == {u32(2): u32(1) + u32(0)}
    assert devmap.update(u32(2), u32(1) + u32(0), cpu=0) == -errno.EOPNOTSUPP
    assert devmap.delete(u32(2), cpu=0) == -errno.EOPNOTSUPP


def test_devmap_four_byte_values_accept_any_ifindex_without_a_list():
    devmap = create_map("devmap", 4, 4, 2)
    assert devmap.update(u32(1), u32(77)) == 0
    assert devmap.lookup(u32(1)) == u32(77)
    assert devmap.redirect_lookup(1) == (77, None)


def test_devmap_hash():
    devmap = create_map("devmap_hash", 4, 8, 2, valid_ifindexes=range(1, 10))
    assert devmap.update(u32(1000), u32(4) + u32(0), BPF_EXIST) == 0   # EXIST does not check
    assert devmap.update(u32(1000), u32(5) + u32(0), BPF_NOEXIST) == -errno.EEXIST
    assert devmap.update(u32(7), u32(0) + u32(0)) == -errno.EINVAL     # ifindex 0
    assert devmap.update(u32(7), u32(50) + u32(0)) == -errno.EINVAL    # no such device
    assert devmap.update(u32(7), u32(1) + u32(3)) == -errno.EINVAL     # no program resolver
    assert devmap.update(u32(7), u32(5) + u32(0)) == 0
    assert devmap.update(u32(8), u32(6) + u32(0)) == -errno.E2BIG
    assert devmap.update(u32(8), u32(60) + u32(0)) == -errno.EINVAL    # device checked first
    assert devmap.redirect_lookup(1000) == (4, None)
    assert sorted(devmap.keys()) == [u32(7), u32(1000)]
    assert devmap.delete(u32(8)) == -errno.ENOENT
    assert devmap.delete(u32(1000)) == 0
    assert devmap.update(u32(8), u32(6) + u32(0)) == 0                 # slot reused
    assert len(devmap) == 2


# -- program array ---------------------------------------------------------------------------------
def test_prog_array():
    progs = create_map("prog_array", 4, 4, 3)
    handler = object()
    assert progs.update(u32(1), handler) == 0
    assert progs.get_program(1) is handler and progs.lookup(u32(1)) is handler
    assert progs.get_program((5 << 32) | 1) is handler   # bpf_tail_call's index is a u32
    assert progs.get_program(0) is None and progs.get_program(3) is None
    assert progs.update(u32(1), handler, BPF_NOEXIST) == -errno.EINVAL
    assert progs.update(u32(1), handler, BPF_EXIST) == -errno.EINVAL
    assert progs.update(u32(3), handler) == -errno.E2BIG
    assert progs.update(u32(0), handler, cpu=0) == -errno.EOPNOTSUPP
    assert progs.delete(u32(3)) == -errno.E2BIG
    assert progs.delete(u32(0)) == -errno.ENOENT
    assert len(list(progs.keys())) == 3 and list(progs.items()) == [(u32(1), handler)]
    assert progs.delete(u32(1)) == 0 and progs.get_program(1) is None
    assert progs.program_helpers == {"tail_call"}
    assert len(progs.value_memory) == 0
    with pytest.raises(MapError, match="program object, got bytes"):
        progs.update(u32(0), u32(3))
    with pytest.raises(MapError, match="programs cannot look up a program array"):
        progs.lookup_slot(u32(0))


# -- global data, access flags, freezing -----------------------------------------------------------
def test_global_data_maps():
    rodata = maps.create_global_data_map("prog.rodata", b"\x01\x02\x03", readonly=True)
    assert rodata.map_type == maps.BPF_MAP_TYPE_ARRAY and rodata.max_entries == 1
    assert rodata.readonly_for_program and rodata.frozen
    assert rodata.lookup(u32(0)) == b"\x01\x02\x03"
    assert rodata.lookup_slot(u32(0)) == 0 and read(rodata, 0) == b"\x01\x02\x03"
    assert rodata.update(u32(0), b"xyz") == -errno.EPERM    # frozen for the host
    data = maps.create_global_data_map("prog.data", b"\x00" * 8, readonly=False)
    assert not data.readonly_for_program and not data.frozen
    assert data.update(u32(0), u64(5)) == 0
    with pytest.raises(MapError, match="the section is empty"):
        maps.create_global_data_map("prog.bss", b"", readonly=False)


def test_access_flags_and_freeze():
    readonly = create_map("hash", 4, 4, 2, maps.BPF_F_RDONLY)
    assert readonly.update(u32(1), u32(1)) == -errno.EPERM
    assert readonly.update(u32(1), u32(1), cpu=0) == 0      # programs still write
    assert readonly.delete(u32(1)) == -errno.EPERM
    assert readonly.lookup(u32(1)) == u32(1)
    assert readonly.freeze() == -errno.EPERM
    writeonly = create_map("array", 4, 4, 2, maps.BPF_F_WRONLY)
    assert writeonly.update(u32(1), u32(1)) == 0
    with pytest.raises(MapError, match="BPF_F_WRONLY") as raised:
        writeonly.lookup(u32(1))
    assert raised.value.errno == errno.EPERM
    table = create_map("hash", 4, 4, 2)
    assert table.freeze() == 0 and table.freeze() == -errno.EPERM
    assert table.update(u32(1), u32(1)) == -errno.EPERM
    assert table.update(u32(1), u32(1), cpu=0) == 0
    assert table.delete(u32(1)) == -errno.EPERM
    assert table.delete(u32(1), cpu=0) == 0
    assert create_map("array", 4, 4, 1, maps.BPF_F_WRONLY_PROG).writeonly_for_program


# -- invariants under random operations ------------------------------------------------------------
operation = st.tuples(st.sampled_from(["update", "delete", "program_lookup"]),
                      st.integers(0, 9), st.integers(0, 2 ** 64 - 1),
                      st.sampled_from([BPF_ANY, BPF_NOEXIST, BPF_EXIST]))


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(["hash", "lru_hash", "percpu_hash"]), st.lists(operation, max_size=40))
def test_hash_slots_stay_distinct_and_values_stay_put(kind, operations):
    table = create_map(kind, 4, 8, 4, ncpus=2)
    expected: dict[bytes, bytes] = {}
    for action, key_number, number, flags in operations:
        key = u32(key_number)
        if action == "update":
            if flags == BPF_NOEXIST and key in expected:
                want = -errno.EEXIST
            elif flags == BPF_EXIST and key not in expected:
                want = -errno.ENOENT
            elif key not in expected and len(expected) == 4 and kind != "lru_hash":
                want = -errno.E2BIG
            else:
                want = 0
            assert table.update(key, u64(number), flags, cpu=0) == want
            if want == 0:
                expected[key] = u64(number)
        elif action == "delete":
            assert table.delete(key) == (0 if expected.pop(key, None) is not None
                                         else -errno.ENOENT)
        else:
            table.lookup_slot(key, cpu=0)
        if kind == "lru_hash":  # evicted keys disappear from the expectation
            expected = {k: v for k, v in expected.items() if table.lookup(k) is not None}
        present = set(table.keys())
        assert present == set(expected) and len(present) <= 4
        offsets = [table.value_offset(table.slot_of(k)) for k in present]
        assert len(set(offsets)) == len(offsets)
        assert all(0 <= offset < table.cpu_region_size for offset in offsets)
        for k, value in expected.items():
            assert read(table, table.value_offset(table.slot_of(k))) == value
