"""eBPF maps with the Linux kernel's semantics: the software model of every map type bpfnic supports.

Ref: include/uapi/linux/bpf.h (enum bpf_map_type, the BPF_F_* map and update flags, struct
bpf_lpm_trie_key_u8, struct bpf_devmap_val); man bpf(2) (BPF_MAP_CREATE, BPF_MAP_LOOKUP_ELEM,
BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM, BPF_MAP_GET_NEXT_KEY, BPF_MAP_FREEZE); docs.kernel.org/bpf/
map_array.html, map_hash.html, map_lpm_trie.html, map_devmap.html; and the behaviour of Linux 6.18's
kernel/bpf/arraymap.c, hashtab.c, lpm_trie.c, devmap.c and syscall.c (return codes and their order).
tests/test_maps_kernel.py runs the same operation sequences against the running kernel and compares.

One model serves three users: the golden VM (programs call bpf_map_lookup_elem & co. through helpers),
the host-side API (users fill and read maps), and the hardware map units, which are checked against it.

Value memory (hardware-shaped). Every value lives in one flat `bytearray`, `value_memory`, at a *slot*.
A slot is `value_stride` bytes: value_size rounded up to 8, the kernel's element size, so every value
starts 8-byte aligned and 64-bit atomics inside a value are aligned. A program's lookup returns the byte
offset of the value (`lookup_slot`); the VM turns it into a pointer (region base + offset) and the
program reads, writes and runs atomics on the value in place. Per-CPU maps hold `ncpus` regions of
`cpu_region_size = max_entries * value_stride` bytes each, CPU-major: CPU c's copy of slot s is at
`c * cpu_region_size + s * value_stride`.

Who is calling. `update` and `delete` take `cpu`: None means the host (BPF_MAP_*_ELEM syscall
semantics: BPF_F_RDONLY and frozen maps refuse writes, per-CPU values come for every CPU); an int means
a program running on that CPU (helper semantics: per-CPU maps write that CPU's copy only). Both return
0 or -errno exactly as the kernel would. Bad arguments that the kernel could never see (a key of the
wrong length, a value that is not bytes, a CPU out of range) raise MapError instead.

Where the model differs from the kernel, on purpose (each is invisible to a program that does not keep
a value pointer across an update of the same key, or that does not rely on LRU victim choice):
- HASH, LRU_HASH and LPM_TRIE updates of an existing key write the new value into the entry's existing
  slot, so a program holding a pointer to it sees the new value. The kernel builds a new element and
  unlinks the old one (a pointer taken before keeps seeing the old value until the memory is reused);
  the kernel updates in place only for per-CPU hashes and with BPF_F_LOCK. In-place keeps the hardware
  map unit to one slot per entry and no pointer swap.
- LRU_HASH / LRU_PERCPU_HASH keep exact least-recently-used order: a program lookup (`lookup_slot`) and
  every successful update make the entry the most recent; host lookups do not (as in the kernel, whose
  syscall lookup does not set the reference bit). When the map is full, inserting a new key evicts the
  least recently used entry. The kernel approximates LRU with active/inactive lists, reference bits and
  per-CPU free lists (BPF_F_NO_COMMON_LRU: per-CPU lists): it may evict before the map is full, picks
  victims only roughly in LRU order, and takes a free node before looking the key up, so updating an
  existing key of a full map (or a failed BPF_NOEXIST update) can evict another entry. The model does
  none of that; what is deterministic in the kernel (the updated key is present afterwards, never more
  than max_entries entries) holds in both.
- Iteration order (`keys`, `items`) is the model's own; every key comes exactly once.
- Map names may be longer than the kernel's 15 characters (the ELF loader keeps full names); the
  character set is the kernel's ([A-Za-z0-9_.]).
"""

from __future__ import annotations

import errno
import re
from collections import OrderedDict
from typing import Any, Callable, Container, Iterator

# -- enum bpf_map_type (include/uapi/linux/bpf.h) --------------------------------------------------
BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PROG_ARRAY = 3
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_HASH = 9
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_LPM_TRIE = 11
BPF_MAP_TYPE_DEVMAP = 14
BPF_MAP_TYPE_DEVMAP_HASH = 25

# Every type the kernel knows, by the names bpftool and libbpf use, so errors can name what they refuse.
MAP_TYPE_NAMES: dict[int, str] = {
    1: "hash", 2: "array", 3: "prog_array", 4: "perf_event_array", 5: "percpu_hash",
    6: "percpu_array", 7: "stack_trace", 8: "cgroup_array", 9: "lru_hash", 10: "lru_percpu_hash",
    11: "lpm_trie", 12: "array_of_maps", 13: "hash_of_maps", 14: "devmap", 15: "sockmap",
    16: "cpumap", 17: "xskmap", 18: "sockhash", 19: "cgroup_storage", 20: "reuseport_sockarray",
    21: "percpu_cgroup_storage", 22: "queue", 23: "stack", 24: "sk_storage", 25: "devmap_hash",
    26: "struct_ops", 27: "ringbuf", 28: "inode_storage", 29: "task_storage", 30: "bloom_filter",
    31: "user_ringbuf", 32: "cgrp_storage", 33: "arena",
}

# -- BPF_MAP_CREATE map_flags ----------------------------------------------------------------------
BPF_F_NO_PREALLOC = 1 << 0
BPF_F_NO_COMMON_LRU = 1 << 1
BPF_F_NUMA_NODE = 1 << 2
BPF_F_RDONLY = 1 << 3        # the host (syscall side) may only read
BPF_F_WRONLY = 1 << 4        # the host may only write
BPF_F_STACK_BUILD_ID = 1 << 5
BPF_F_ZERO_SEED = 1 << 6
BPF_F_RDONLY_PROG = 1 << 7   # programs may only read (.rodata, devmaps)
BPF_F_WRONLY_PROG = 1 << 8   # programs may only write
BPF_F_CLONE = 1 << 9
BPF_F_MMAPABLE = 1 << 10
BPF_F_PRESERVE_ELEMS = 1 << 11
BPF_F_INNER_MAP = 1 << 12
BPF_F_ACCESS_MASK = BPF_F_RDONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY | BPF_F_WRONLY_PROG

FLAG_NAMES = {
    BPF_F_NO_PREALLOC: "BPF_F_NO_PREALLOC", BPF_F_NO_COMMON_LRU: "BPF_F_NO_COMMON_LRU",
    BPF_F_NUMA_NODE: "BPF_F_NUMA_NODE", BPF_F_RDONLY: "BPF_F_RDONLY", BPF_F_WRONLY: "BPF_F_WRONLY",
    BPF_F_STACK_BUILD_ID: "BPF_F_STACK_BUILD_ID", BPF_F_ZERO_SEED: "BPF_F_ZERO_SEED",
    BPF_F_RDONLY_PROG: "BPF_F_RDONLY_PROG", BPF_F_WRONLY_PROG: "BPF_F_WRONLY_PROG",
    BPF_F_CLONE: "BPF_F_CLONE", BPF_F_MMAPABLE: "BPF_F_MMAPABLE",
    BPF_F_PRESERVE_ELEMS: "BPF_F_PRESERVE_ELEMS", BPF_F_INNER_MAP: "BPF_F_INNER_MAP",
}

# -- BPF_MAP_UPDATE_ELEM flags ---------------------------------------------------------------------
BPF_ANY = 0        # create or update
BPF_NOEXIST = 1    # create only
BPF_EXIST = 2      # update only
BPF_F_LOCK = 4     # take the value's bpf_spin_lock while copying
FLAG_ANY, FLAG_NOEXIST, FLAG_EXIST, FLAG_LOCK = BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK

# The kernel's internal "not supported" code (include/linux/errno.h); Python's errno module lacks it.
ENOTSUPP = 524

U32_MAX = 0xFFFF_FFFF
KMALLOC_MAX_SIZE = 4 << 20             # x86-64 with 4 KiB pages: the largest kmalloc()
HTAB_ELEM_HEADER = 48                  # sizeof(struct htab_elem) on x86-64, before key and value
PCPU_MIN_UNIT_SIZE = 32 << 10          # a per-CPU value (rounded up to 8) must fit one percpu unit
LPM_DATA_SIZE_MIN, LPM_DATA_SIZE_MAX = 1, 256
LPM_PREFIXLEN_SIZE = 4                 # struct bpf_lpm_trie_key_u8 { __u32 prefixlen; __u8 data[]; }
DEVMAP_VALUE_SIZES = (4, 8)            # struct bpf_devmap_val: ifindex, then the program fd/id
# The model's own bound on one map's value memory (the kernel would answer ENOMEM much later).
MAX_VALUE_MEMORY = 256 << 20

_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.]*")


class MapError(ValueError):
    """Bad map parameters or arguments. `.errno` is what the kernel answers for the same mistake
    (EINVAL, E2BIG, ENOTSUPP...) so callers and differential tests can compare."""

    def __init__(self, message: str, error_number: int = errno.EINVAL):
        super().__init__(message)
        self.errno = error_number


def map_type_from_name(name: str) -> int:
    """The BPF_MAP_TYPE_* number of a name: "hash", "BPF_MAP_TYPE_HASH", "lpm-trie"..."""
    if not isinstance(name, str):
        raise MapError(f"map type name must be a string, got {type(name).__name__}")
    normalized = name.strip().lower().replace("-", "_")
    if normalized.startswith("bpf_map_type_"):
        normalized = normalized[len("bpf_map_type_"):]
    for number, known in MAP_TYPE_NAMES.items():
        if known == normalized:
            return number
    supported = ", ".join(MAP_TYPE_NAMES[t] for t in sorted(SUPPORTED_MAP_TYPES))
    raise MapError(f"unknown map type name {name!r}; bpfnic supports: {supported}")


def map_type_name(map_type: int) -> str:
    return MAP_TYPE_NAMES.get(map_type, f"type {map_type}")


def _round_up_8(size: int) -> int:
    return (size + 7) & ~7


def _flag_names(flags: int) -> str:
    names = [name for bit, name in FLAG_NAMES.items() if flags & bit]
    unknown = flags & ~sum(FLAG_NAMES)
    if unknown:
        names.append(f"{unknown:#x}")
    return "|".join(names) or "0"


class _SlotPool:
    """Free value slots. Fresh slots are handed out in order 0, 1, 2...; a freed slot is reused first
    (last freed, first reused), the way the kernel's preallocated free list recycles elements."""

    __slots__ = ("count", "_next_fresh", "_freed")

    def __init__(self, count: int):
        self.count = count
        self._next_fresh = 0
        self._freed: list[int] = []

    def take(self) -> int | None:
        if self._freed:
            return self._freed.pop()
        if self._next_fresh < self.count:
            self._next_fresh += 1
            return self._next_fresh - 1
        return None

    def give_back(self, slot: int) -> None:
        self._freed.append(slot)


class BpfMap:
    """A map: its parameters, its value memory, and the kernel's operations on it.

    Attributes: `map_type` (BPF_MAP_TYPE_* number), `name`, `key_size`, `value_size`, `max_entries`,
    `flags` (map_flags as the kernel keeps them), `ncpus`, `value_stride`, `cpu_region_size`,
    `value_memory`, `frozen`, `spin_lock_offset` (offset of the value's struct bpf_spin_lock, or None).
    Class attributes: `per_cpu`, and `program_helpers`, the map helpers the kernel verifier lets a
    program call with a map of this type.
    """

    map_type: int = 0
    per_cpu = False
    program_helpers: frozenset[str] = frozenset({"map_lookup_elem", "map_update_elem",
                                                 "map_delete_elem"})
    _allowed_extra: frozenset[str] = frozenset()

    def __init__(self, key_size: int, value_size: int, max_entries: int, flags: int = 0,
                 name: str = "", ncpus: int = 1, **extra: Any):
        self.name = name if isinstance(name, str) else ""
        for what, number in (("key_size", key_size), ("value_size", value_size),
                             ("max_entries", max_entries), ("flags", flags)):
            if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= U32_MAX:
                raise MapError(f"{self._label()}: {what} must be an integer in 0..{U32_MAX} "
                               f"(a u32 of BPF_MAP_CREATE), got {number!r}")
        if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
            raise MapError(f"map name {name!r}: the kernel accepts only letters, digits, '_' and '.'")
        if isinstance(ncpus, bool) or not isinstance(ncpus, int) or ncpus < 1:
            raise MapError(f"{self._label()}: ncpus must be a positive integer, got {ncpus!r}")
        unknown = sorted(set(extra) - self._allowed_extra)
        if unknown:
            allowed = ", ".join(sorted(self._allowed_extra)) or "none"
            raise MapError(f"{self._label()}: unknown parameter(s) {', '.join(unknown)} "
                           f"for a {map_type_name(self.map_type)} map (accepted: {allowed})")
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.flags = flags
        self.ncpus = ncpus
        self.frozen = False
        self.spin_lock_offset: int | None = None
        # Checks every map_create does before the type's own (kernel/bpf/syscall.c).
        if flags & BPF_F_RDONLY and flags & BPF_F_WRONLY:
            self._refuse("BPF_F_RDONLY and BPF_F_WRONLY exclude each other")
        if flags & BPF_F_RDONLY_PROG and flags & BPF_F_WRONLY_PROG:
            self._refuse("BPF_F_RDONLY_PROG and BPF_F_WRONLY_PROG exclude each other")
        self._check_attributes()
        self._configure(extra)
        self.value_stride = _round_up_8(value_size)
        self.cpu_region_size = self._value_slots() * self.value_stride
        total = self.cpu_region_size * (ncpus if self.per_cpu else 1)
        if total > MAX_VALUE_MEMORY:
            raise MapError(f"{self._label()}: {total} bytes of value memory "
                           f"({self._value_slots()} slots of {self.value_stride} bytes"
                           f"{f' x {ncpus} CPUs' if self.per_cpu else ''}) exceed the model's "
                           f"limit of {MAX_VALUE_MEMORY} bytes", errno.ENOMEM)
        self.value_memory = bytearray(total)

    # -- parameters ---------------------------------------------------------------------------------
    def _check_attributes(self) -> None:
        """The type's BPF_MAP_CREATE checks; raise through _refuse with the kernel's errno."""
        raise NotImplementedError

    def _configure(self, extra: dict[str, Any]) -> None:
        """Take the type's extra parameters (already checked to be among _allowed_extra)."""

    def _value_slots(self) -> int:
        return self.max_entries

    def _refuse(self, reason: str, error_number: int = errno.EINVAL) -> None:
        raise MapError(f"{self._label()}: {reason} (key_size {self.key_size}, value_size "
                       f"{self.value_size}, max_entries {self.max_entries}, flags "
                       f"{_flag_names(self.flags)})", error_number)

    def _check_per_cpu_value_size(self) -> None:
        if self.per_cpu and _round_up_8(self.value_size) > PCPU_MIN_UNIT_SIZE:
            self._refuse(f"a per-CPU value (rounded up to 8) must fit {PCPU_MIN_UNIT_SIZE} bytes",
                         errno.E2BIG)

    def _configure_spin_lock(self, extra: dict[str, Any], plain_type: int) -> None:
        """A bpf_spin_lock in the value: only the plain (not per-CPU, not LRU) variant of the type has one."""
        offset = extra.get("spin_lock_offset")
        if offset is not None and self.map_type != plain_type:
            self._refuse("a bpf_spin_lock is allowed only in hash, array and storage maps",
                         errno.EOPNOTSUPP)
        self.spin_lock_offset = _check_spin_lock_offset(self, offset)

    def _check_flags(self, allowed: int) -> None:
        if self.flags & ~allowed:
            self._refuse(f"flag(s) {_flag_names(self.flags & ~allowed)} not accepted by this map type")

    def _label(self) -> str:
        kind = map_type_name(self.map_type)
        return f"map {self.name!r} ({kind})" if self.name else f"{kind} map"

    @property
    def type_name(self) -> str:
        return map_type_name(self.map_type)

    @property
    def readonly_for_program(self) -> bool:
        """Programs may read values but not write them (BPF_F_RDONLY_PROG; .rodata, devmaps)."""
        return bool(self.flags & BPF_F_RDONLY_PROG)

    @property
    def writeonly_for_program(self) -> bool:
        return bool(self.flags & BPF_F_WRONLY_PROG)

    def value_offset(self, slot: int, cpu: int = 0) -> int:
        """Byte offset in value_memory of `slot`'s value (CPU `cpu`'s copy for per-CPU maps)."""
        return (cpu * self.cpu_region_size if self.per_cpu else 0) + slot * self.value_stride

    # -- argument checks ----------------------------------------------------------------------------
    def _key(self, key: Any) -> bytes:
        if not isinstance(key, (bytes, bytearray, memoryview)):
            raise MapError(f"{self._label()}: key must be bytes, got {type(key).__name__}")
        key = bytes(key)
        if len(key) != self.key_size:
            raise MapError(f"{self._label()}: key must be {self.key_size} bytes (key_size), "
                           f"got {len(key)}: {key.hex()}")
        return key

    def _value(self, value: Any) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise MapError(f"{self._label()}: value must be bytes, got {type(value).__name__}")
        value = bytes(value)
        if len(value) != self.value_size:
            raise MapError(f"{self._label()}: value must be {self.value_size} bytes (value_size), "
                           f"got {len(value)}")
        return value

    def _cpu(self, cpu: Any) -> int | None:
        if cpu is None:
            return None
        if isinstance(cpu, bool) or not isinstance(cpu, int) or cpu < 0:
            raise MapError(f"{self._label()}: cpu must be None (host) or a CPU number, got {cpu!r}")
        if self.per_cpu and cpu >= self.ncpus:
            raise MapError(f"{self._label()}: cpu {cpu} out of range: the map has {self.ncpus} CPUs")
        return cpu

    def _values(self, value: Any, cpu: int | None) -> list[bytes]:
        """The value(s) to store: one per CPU for a host update of a per-CPU map, else one."""
        if not self.per_cpu or cpu is not None:
            return [self._value(value)]
        if isinstance(value, (list, tuple)):
            if len(value) != self.ncpus:
                raise MapError(f"{self._label()}: a per-CPU update from the host takes one value "
                               f"for all CPUs or a list of {self.ncpus} (one per CPU), "
                               f"got a list of {len(value)}")
            return [self._value(v) for v in value]
        return [self._value(value)] * self.ncpus

    def _host_write_error(self, cpu: int | None, flags: int = 0) -> int:
        """The syscall layer's refusals before the map's own update/delete (0 if none)."""
        if cpu is not None:
            return 0
        if self.frozen or self.flags & BPF_F_RDONLY:
            return -errno.EPERM
        if flags & BPF_F_LOCK and self.spin_lock_offset is None:
            return -errno.EINVAL
        return 0

    def _check_host_read(self) -> None:
        if self.flags & BPF_F_WRONLY:
            raise MapError(f"{self._label()}: the host may not read this map: it was created with "
                           f"BPF_F_WRONLY", errno.EPERM)

    def _check_flag_value(self, flags: Any) -> int:
        if isinstance(flags, bool) or not isinstance(flags, int) or not 0 <= flags < 1 << 64:
            raise MapError(f"{self._label()}: update flags must be a u64, got {flags!r}")
        return flags

    # -- value memory -------------------------------------------------------------------------------
    def _store(self, offset: int, value: bytes) -> None:
        lock = self.spin_lock_offset
        if lock is None:
            self.value_memory[offset:offset + len(value)] = value
        else:  # copies never touch the bpf_spin_lock word (the kernel's copy_map_value)
            self.value_memory[offset:offset + lock] = value[:lock]
            self.value_memory[offset + lock + 4:offset + len(value)] = value[lock + 4:]

    def _write(self, slot: int, values: list[bytes], cpu: int | None, new: bool) -> None:
        if not self.per_cpu:
            self._store(self.value_offset(slot), values[0])
        elif cpu is None:
            for each_cpu, value in enumerate(values):
                self._store(self.value_offset(slot, each_cpu), value)
        else:
            # A program writes its own CPU's copy; a new element starts zeroed on the other CPUs.
            for each_cpu in range(self.ncpus):
                if each_cpu == cpu:
                    self._store(self.value_offset(slot, cpu), values[0])
                elif new:
                    self._store(self.value_offset(slot, each_cpu), bytes(self.value_size))

    def _read_one(self, offset: int) -> bytes:
        value = bytearray(self.value_memory[offset:offset + self.value_size])
        if self.spin_lock_offset is not None:  # the kernel hands the lock word out as zeros
            value[self.spin_lock_offset:self.spin_lock_offset + 4] = bytes(4)
        return bytes(value)

    def _read(self, slot: int) -> bytes | list[bytes]:
        if self.per_cpu:
            return [self._read_one(self.value_offset(slot, cpu)) for cpu in range(self.ncpus)]
        return self._read_one(self.value_offset(slot))

    # -- operations ---------------------------------------------------------------------------------
    def lookup_slot(self, key: bytes, cpu: int = 0) -> int | None:
        """Program-side lookup (bpf_map_lookup_elem): the value's offset in value_memory, or None."""
        raise NotImplementedError

    def update(self, key: bytes, value: Any, flags: int = BPF_ANY, cpu: int | None = None) -> int:
        """Insert or replace; 0 or -errno. cpu=None: from the host; an int: from a program on that CPU.
        A host update of a per-CPU map takes one value for all CPUs or a list of ncpus values."""
        raise NotImplementedError

    def delete(self, key: bytes, cpu: int | None = None) -> int:
        """Remove an entry; 0 or -errno (-ENOENT if absent; arrays: -EINVAL)."""
        raise NotImplementedError

    def lookup(self, key: bytes) -> bytes | list[bytes] | Any | None:
        """Host-side lookup: a copy of the value (per-CPU maps: a list, one per CPU) or None."""
        raise NotImplementedError

    def keys(self) -> Iterator[bytes]:
        """The keys BPF_MAP_GET_NEXT_KEY walks through, each once (a snapshot: deleting while
        iterating is fine)."""
        raise NotImplementedError

    def items(self) -> Iterator[tuple[bytes, Any]]:
        """(key, value) for every entry a host lookup finds."""
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:
                yield key, value

    def __len__(self) -> int:
        """Entries present."""
        raise NotImplementedError

    def freeze(self) -> int:
        """BPF_MAP_FREEZE: from now on the host may not write (programs still may, unless
        BPF_F_RDONLY_PROG). 0, or -EPERM if the host cannot write anyway (frozen already, or
        BPF_F_RDONLY: the kernel checks write permission first), -ENOTSUPP with a bpf_spin_lock."""
        if self.frozen or self.flags & BPF_F_RDONLY:
            return -errno.EPERM
        if self.spin_lock_offset is not None:  # maps with special fields in values cannot freeze
            return -ENOTSUPP
        self.frozen = True
        return 0

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, key_size={self.key_size}, "
                f"value_size={self.value_size}, max_entries={self.max_entries}, "
                f"flags={_flag_names(self.flags)}, entries={len(self)})")


def _check_spin_lock_offset(owner: BpfMap, offset: Any) -> int | None:
    if offset is None:
        return None
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0 or offset % 4 \
            or offset + 4 > owner.value_size:
        raise MapError(f"{owner._label()}: spin_lock_offset {offset!r} must be a multiple of 4 with "
                       f"the 4-byte lock inside the {owner.value_size}-byte value")
    return offset


# -- arrays (kernel/bpf/arraymap.c) ----------------------------------------------------------------
class ArrayMap(BpfMap):
    """BPF_MAP_TYPE_ARRAY: key = u32 index (little-endian); every entry exists and starts zeroed.
    Update with BPF_NOEXIST: -EEXIST; index >= max_entries: -E2BIG on update, None on lookup;
    delete: -EINVAL. Extra parameter: spin_lock_offset (a struct bpf_spin_lock in the value, for
    BPF_F_LOCK)."""

    map_type = BPF_MAP_TYPE_ARRAY
    _allowed_extra = frozenset({"spin_lock_offset"})
    _create_flags = (BPF_F_NUMA_NODE | BPF_F_MMAPABLE | BPF_F_ACCESS_MASK | BPF_F_PRESERVE_ELEMS
                     | BPF_F_INNER_MAP)

    def _check_attributes(self) -> None:
        if self.max_entries == 0:
            self._refuse("max_entries must be at least 1")
        if self.key_size != 4:
            self._refuse("an array's key is a u32 index: key_size must be 4")
        if self.value_size == 0:
            self._refuse("value_size must be at least 1")
        self._check_flags(self._create_flags)
        if self.map_type != BPF_MAP_TYPE_ARRAY and self.flags & (BPF_F_MMAPABLE | BPF_F_INNER_MAP):
            self._refuse("BPF_F_MMAPABLE and BPF_F_INNER_MAP are for plain arrays only")
        if self.flags & BPF_F_PRESERVE_ELEMS:
            self._refuse("BPF_F_PRESERVE_ELEMS is for perf event arrays only")
        if self.per_cpu and self.flags & BPF_F_NUMA_NODE:
            self._refuse("a per-CPU array cannot be bound to a NUMA node")
        self._check_per_cpu_value_size()

    def _configure(self, extra: dict[str, Any]) -> None:
        self._configure_spin_lock(extra, BPF_MAP_TYPE_ARRAY)

    def _index(self, key: Any) -> int:
        return int.from_bytes(self._key(key), "little")

    def lookup_slot(self, key: bytes, cpu: int = 0) -> int | None:
        index = self._index(key)
        cpu = self._cpu(cpu) or 0
        if index >= self.max_entries:
            return None
        return self.value_offset(index, cpu)

    def update(self, key: bytes, value: Any, flags: int = BPF_ANY, cpu: int | None = None) -> int:
        index = self._index(key)
        cpu = self._cpu(cpu)
        values = self._values(value, cpu)
        flags = self._check_flag_value(flags)
        refused = self._host_write_error(cpu, flags)
        if refused:
            return refused
        if self.per_cpu and cpu is None:  # bpf_percpu_array_update
            if flags > BPF_EXIST:
                return -errno.EINVAL
        elif flags & ~BPF_F_LOCK > BPF_EXIST:  # array_map_update_elem
            return -errno.EINVAL
        if index >= self.max_entries:
            return -errno.E2BIG
        if flags & BPF_NOEXIST:  # every element always exists
            return -errno.EEXIST
        if flags & BPF_F_LOCK and self.spin_lock_offset is None:
            return -errno.EINVAL
        self._write(index, values, cpu, new=False)
        return 0

    def delete(self, key: bytes, cpu: int | None = None) -> int:
        self._index(key)
        refused = self._host_write_error(self._cpu(cpu))
        return refused or -errno.EINVAL

    def lookup(self, key: bytes) -> bytes | list[bytes] | None:
        self._check_host_read()
        index = self._index(key)
        if index >= self.max_entries:
            return None
        return self._read(index)

    def keys(self) -> Iterator[bytes]:
        self._check_host_read()
        for index in range(self.max_entries):
            yield index.to_bytes(4, "little")

    def __len__(self) -> int:
        return self.max_entries


class PerCpuArrayMap(ArrayMap):
    """BPF_MAP_TYPE_PERCPU_ARRAY: an array with one copy of every value per CPU (layout: see module)."""

    map_type = BPF_MAP_TYPE_PERCPU_ARRAY
    per_cpu = True


# -- hash tables (kernel/bpf/hashtab.c) ------------------------------------------------------------
class HashMap(BpfMap):
    """BPF_MAP_TYPE_HASH: BPF_NOEXIST on an existing key -> -EEXIST, BPF_EXIST on a missing key ->
    -ENOENT, a new key in a full map -> -E2BIG; delete of a missing key -> -ENOENT. Deleting frees
    the entry's slot, and the next insert reuses it. Updating an existing key writes its existing
    slot (see the module docstring). Extra parameter: spin_lock_offset (plain HASH only)."""

    map_type = BPF_MAP_TYPE_HASH
    lru = False
    _allowed_extra = frozenset({"spin_lock_offset"})
    _create_flags = (BPF_F_NO_PREALLOC | BPF_F_NO_COMMON_LRU | BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK
                     | BPF_F_ZERO_SEED)

    def _check_attributes(self) -> None:
        self._check_flags(self._create_flags)
        if self.flags & BPF_F_NO_COMMON_LRU and not self.lru:
            self._refuse("BPF_F_NO_COMMON_LRU is for LRU hashes only")
        if self.lru and self.flags & BPF_F_NO_PREALLOC:
            self._refuse("LRU hashes are always preallocated: BPF_F_NO_PREALLOC is not supported",
                         ENOTSUPP)
        if self.max_entries == 0 or self.key_size == 0 or self.value_size == 0:
            self._refuse("max_entries, key_size and value_size must all be at least 1")
        if self.key_size + self.value_size >= KMALLOC_MAX_SIZE - HTAB_ELEM_HEADER:
            self._refuse(f"an element (key, value and a {HTAB_ELEM_HEADER}-byte header) must fit "
                         f"one {KMALLOC_MAX_SIZE}-byte kmalloc()", errno.E2BIG)
        self._check_per_cpu_value_size()

    def _configure(self, extra: dict[str, Any]) -> None:
        self._configure_spin_lock(extra, BPF_MAP_TYPE_HASH)
        # key -> slot; for LRU maps the order is recency, least recently used first.
        self._slots: OrderedDict[bytes, int] | dict[bytes, int] = OrderedDict() if self.lru else {}
        self._pool = _SlotPool(self.max_entries)

    def lookup_slot(self, key: bytes, cpu: int = 0) -> int | None:
        key = self._key(key)
        cpu = self._cpu(cpu) or 0
        slot = self._slots.get(key)
        if slot is None:
            return None
        if self.lru:
            self._slots.move_to_end(key)
        return self.value_offset(slot, cpu)

    def update(self, key: bytes, value: Any, flags: int = BPF_ANY, cpu: int | None = None) -> int:
        key = self._key(key)
        cpu = self._cpu(cpu)
        values = self._values(value, cpu)
        flags = self._check_flag_value(flags)
        refused = self._host_write_error(cpu, flags)
        if refused:
            return refused
        if self.lru or self.per_cpu:
            if flags > BPF_EXIST:  # no BPF_F_LOCK for these types
                return -errno.EINVAL
        elif flags & ~BPF_F_LOCK > BPF_EXIST:
            return -errno.EINVAL
        elif flags & BPF_F_LOCK and self.spin_lock_offset is None:
            return -errno.EINVAL
        slot = self._slots.get(key)
        mode = flags & ~BPF_F_LOCK
        if slot is not None and mode == BPF_NOEXIST:
            return -errno.EEXIST
        if slot is None and mode == BPF_EXIST:
            return -errno.ENOENT
        new = slot is None
        if new:
            slot = self._pool.take()
            if slot is None:
                if not self.lru:
                    return -errno.E2BIG
                _, slot = self._slots.popitem(last=False)  # evict the least recently used
            self._slots[key] = slot
        elif self.lru:
            self._slots.move_to_end(key)
        self._write(slot, values, cpu, new)
        return 0

    def delete(self, key: bytes, cpu: int | None = None) -> int:
        key = self._key(key)
        refused = self._host_write_error(self._cpu(cpu))
        if refused:
            return refused
        slot = self._slots.pop(key, None)
        if slot is None:
            return -errno.ENOENT
        self._pool.give_back(slot)
        return 0

    def lookup(self, key: bytes) -> bytes | list[bytes] | None:
        self._check_host_read()
        slot = self._slots.get(self._key(key))
        return None if slot is None else self._read(slot)

    def keys(self) -> Iterator[bytes]:
        self._check_host_read()
        yield from list(self._slots)

    def __len__(self) -> int:
        return len(self._slots)

    def slot_of(self, key: bytes) -> int | None:
        """The slot holding `key`'s value, or None; unlike lookup_slot it leaves LRU order alone
        (for checkers, such as the hardware map unit's testbench)."""
        return self._slots.get(self._key(key))

    def lru_order(self) -> list[bytes]:
        """LRU maps: the keys from least to most recently used (the eviction order)."""
        if not self.lru:
            raise MapError(f"{self._label()}: not an LRU map")
        return list(self._slots)


class PerCpuHashMap(HashMap):
    """BPF_MAP_TYPE_PERCPU_HASH: a hash with one copy of every value per CPU. A program's insert of a
    new key sets its CPU's copy and zeroes the others; its update of an existing key writes only its
    CPU's copy."""

    map_type = BPF_MAP_TYPE_PERCPU_HASH
    per_cpu = True


class LruHashMap(HashMap):
    """BPF_MAP_TYPE_LRU_HASH: a hash that evicts the least recently used entry instead of failing
    with -E2BIG when full (recency model: see the module docstring)."""

    map_type = BPF_MAP_TYPE_LRU_HASH
    lru = True


class LruPerCpuHashMap(HashMap):
    """BPF_MAP_TYPE_LRU_PERCPU_HASH: LRU eviction and per-CPU values."""

    map_type = BPF_MAP_TYPE_LRU_PERCPU_HASH
    lru = True
    per_cpu = True


# -- longest-prefix-match trie (kernel/bpf/lpm_trie.c) ---------------------------------------------
class LpmTrieMap(BpfMap):
    """BPF_MAP_TYPE_LPM_TRIE. Key = struct bpf_lpm_trie_key_u8: u32 prefixlen (little-endian, host
    order) then key_size - 4 data bytes, most significant bit first (network order for addresses).
    Lookups (program and host) find the entry with the longest prefix that matches the key's data on
    at most the key's prefixlen bits. Update and delete act on the exact prefix (prefixlen and its
    leading bits; bits past the prefix do not matter). prefixlen > 8 * data size: -EINVAL on update
    and delete, no match on lookup. A new prefix in a full trie: -ENOSPC (not -E2BIG).
    BPF_NOEXIST/BPF_EXIST as for hashes. Requires BPF_F_NO_PREALLOC, like the kernel. keys()
    returns each entry's key as last written, bits past the prefix included (the kernel keeps
    them too)."""

    map_type = BPF_MAP_TYPE_LPM_TRIE
    program_helpers = frozenset({"map_lookup_elem", "map_update_elem", "map_delete_elem"})

    def _check_attributes(self) -> None:
        if self.max_entries == 0:
            self._refuse("max_entries must be at least 1")
        if not self.flags & BPF_F_NO_PREALLOC:
            self._refuse("an LPM trie must be created with BPF_F_NO_PREALLOC")
        self._check_flags(BPF_F_NO_PREALLOC | BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK)
        low = LPM_PREFIXLEN_SIZE + LPM_DATA_SIZE_MIN
        high = LPM_PREFIXLEN_SIZE + LPM_DATA_SIZE_MAX
        if not low <= self.key_size <= high:
            self._refuse(f"key_size must be {low}..{high}: a u32 prefixlen and "
                         f"{LPM_DATA_SIZE_MIN}..{LPM_DATA_SIZE_MAX} data bytes")
        if self.value_size == 0:
            self._refuse("value_size must be at least 1")

    def _configure(self, extra: dict[str, Any]) -> None:
        self.data_size = self.key_size - LPM_PREFIXLEN_SIZE
        self.max_prefixlen = 8 * self.data_size
        # (prefixlen, the prefix's leading bits as an int) -> (key as last written, slot)
        self._entries: dict[tuple[int, int], tuple[bytes, int]] = {}
        self._prefixlen_counts: dict[int, int] = {}
        self._prefixlens_longest_first: list[int] = []
        self._pool = _SlotPool(self.max_entries)

    def _split(self, key: Any) -> tuple[bytes, int, int]:
        key = self._key(key)
        prefixlen = int.from_bytes(key[:LPM_PREFIXLEN_SIZE], "little")
        return key, prefixlen, int.from_bytes(key[LPM_PREFIXLEN_SIZE:], "big")

    def _prefix(self, data: int, prefixlen: int) -> tuple[int, int]:
        return prefixlen, data >> (self.max_prefixlen - prefixlen)

    def _match(self, key: Any) -> tuple[bytes, int] | None:
        _, prefixlen, data = self._split(key)
        if prefixlen > self.max_prefixlen:  # Linux 6.18 finds nothing (older kernels clamped)
            return None
        for length in self._prefixlens_longest_first:
            if length <= prefixlen:
                entry = self._entries.get(self._prefix(data, length))
                if entry is not None:
                    return entry
        return None

    def _count_prefixlen(self, prefixlen: int, change: int) -> None:
        count = self._prefixlen_counts.get(prefixlen, 0) + change
        if count:
            self._prefixlen_counts[prefixlen] = count
        else:
            del self._prefixlen_counts[prefixlen]
        if count in (0, 1):
            self._prefixlens_longest_first = sorted(self._prefixlen_counts, reverse=True)

    def lookup_slot(self, key: bytes, cpu: int = 0) -> int | None:
        self._cpu(cpu)
        entry = self._match(key)
        return None if entry is None else self.value_offset(entry[1])

    def update(self, key: bytes, value: Any, flags: int = BPF_ANY, cpu: int | None = None) -> int:
        key, prefixlen, data = self._split(key)
        cpu = self._cpu(cpu)
        value = self._value(value)
        flags = self._check_flag_value(flags)
        refused = self._host_write_error(cpu, flags)
        if refused:
            return refused
        if flags > BPF_EXIST or prefixlen > self.max_prefixlen:
            return -errno.EINVAL
        prefix = self._prefix(data, prefixlen)
        entry = self._entries.get(prefix)
        if entry is not None:
            if flags == BPF_NOEXIST:
                return -errno.EEXIST
            slot = entry[1]
        else:
            if flags == BPF_EXIST:
                return -errno.ENOENT
            slot = self._pool.take()
            if slot is None:
                return -errno.ENOSPC
            self._count_prefixlen(prefixlen, +1)
        self._entries[prefix] = (key, slot)
        self._store(self.value_offset(slot), value)
        return 0

    def delete(self, key: bytes, cpu: int | None = None) -> int:
        key, prefixlen, data = self._split(key)
        refused = self._host_write_error(self._cpu(cpu))
        if refused:
            return refused
        if prefixlen > self.max_prefixlen:
            return -errno.EINVAL
        entry = self._entries.pop(self._prefix(data, prefixlen), None)
        if entry is None:
            return -errno.ENOENT
        self._pool.give_back(entry[1])
        self._count_prefixlen(prefixlen, -1)
        return 0

    def lookup(self, key: bytes) -> bytes | None:
        self._check_host_read()
        entry = self._match(key)
        return None if entry is None else self._read_one(self.value_offset(entry[1]))

    def keys(self) -> Iterator[bytes]:
        self._check_host_read()
        yield from [stored for stored, _ in self._entries.values()]

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        self._check_host_read()
        for stored, slot in list(self._entries.values()):
            yield stored, self._read_one(self.value_offset(slot))

    def __len__(self) -> int:
        return len(self._entries)


# -- device maps for bpf_redirect_map (kernel/bpf/devmap.c) ----------------------------------------
class _DevMapBase(BpfMap):
    """Common to DEVMAP and DEVMAP_HASH. Value: struct bpf_devmap_val, u32 ifindex, then (8-byte
    values) the program to run on frames redirected there: the host writes a program number, which
    `resolve_program` turns into a program object (a number it does not know, or no resolver: -EINVAL);
    lookups return the same number (the kernel writes an fd and reads back an id; bpfnic has one
    numbering). A number <= 0 (as a signed 32-bit fd) means no program. The target ifindex must be
    in `valid_ifindexes` (None: any non-zero ifindex; the kernel requires an existing netdevice).
    Programs may only read the values (the kernel sets BPF_F_RDONLY_PROG) and may not update or delete
    (the verifier refuses the call; the model answers -EOPNOTSUPP)."""

    program_helpers = frozenset({"map_lookup_elem", "redirect_map"})
    _allowed_extra = frozenset({"valid_ifindexes", "resolve_program"})

    def _check_attributes(self) -> None:
        if self.max_entries == 0:
            self._refuse("max_entries must be at least 1")
        if self.key_size != 4:
            self._refuse("a device map's key is a u32: key_size must be 4")
        if self.value_size not in DEVMAP_VALUE_SIZES:
            self._refuse("value_size must be 4 (ifindex) or 8 (ifindex and program: struct "
                         "bpf_devmap_val)")
        self._check_flags(BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY)
        if self.map_type == BPF_MAP_TYPE_DEVMAP_HASH and self.max_entries > 1 << 31:
            self._refuse("a devmap_hash has at most 2**31 entries (its bucket count is a power of 2)")
        self.flags |= BPF_F_RDONLY_PROG

    def _configure(self, extra: dict[str, Any]) -> None:
        self.valid_ifindexes: Container[int] | None = extra.get("valid_ifindexes")
        self.resolve_program: Callable[[int], Any] | None = extra.get("resolve_program")
        self._programs: dict[int, Any] = {}  # slot -> program object

    def _parse_value(self, value: Any) -> tuple[int, int]:
        """(ifindex, program fd as a signed 32-bit number) of a host-written value."""
        value = self._value(value)
        ifindex = int.from_bytes(value[:4], "little")
        program = int.from_bytes(value[4:8], "little", signed=True) if self.value_size == 8 else 0
        return ifindex, program

    def _make_entry(self, ifindex: int, program_number: int) -> tuple[bytes, Any] | int:
        """The stored value and program object of an entry, or -EINVAL (no such device/program)."""
        if self.valid_ifindexes is not None and ifindex not in self.valid_ifindexes:
            return -errno.EINVAL
        program = None
        if program_number > 0:
            program = self.resolve_program(program_number) if self.resolve_program else None
            if program is None:
                return -errno.EINVAL
        stored = ifindex.to_bytes(4, "little")
        if self.value_size == 8:
            stored += (program_number if program is not None else 0).to_bytes(4, "little")
        return stored, program

    def _install(self, slot: int, entry: tuple[bytes, Any]) -> None:
        stored, program = entry
        self._store(self.value_offset(slot), stored)
        if program is None:
            self._programs.pop(slot, None)
        else:
            self._programs[slot] = program

    def _slot_of(self, index: int) -> int | None:
        raise NotImplementedError

    def lookup_slot(self, key: bytes, cpu: int = 0) -> int | None:
        self._cpu(cpu)
        slot = self._slot_of(int.from_bytes(self._key(key), "little"))
        return None if slot is None else self.value_offset(slot)

    def lookup(self, key: bytes) -> bytes | None:
        self._check_host_read()
        slot = self._slot_of(int.from_bytes(self._key(key), "little"))
        return None if slot is None else self._read_one(self.value_offset(slot))

    def redirect_lookup(self, key: int) -> tuple[int, Any] | None:
        """bpf_redirect_map's lookup: (ifindex, program or None) of the entry, or None. `key` is the
        helper's register argument; the kernel uses its low 32 bits."""
        slot = self._slot_of(key & U32_MAX)
        if slot is None:
            return None
        offset = self.value_offset(slot)
        return int.from_bytes(self.value_memory[offset:offset + 4], "little"), \
            self._programs.get(slot)


class DevMap(_DevMapBase):
    """BPF_MAP_TYPE_DEVMAP: an array of redirect targets indexed by a u32 key (< max_entries).
    Update: BPF_NOEXIST always -EEXIST, index >= max_entries -E2BIG, ifindex 0 clears the entry
    (with a program number > 0: -EINVAL). Delete: index >= max_entries -EINVAL, else 0 (present or
    not). keys() walks every index, like the kernel; items() only the entries present."""

    map_type = BPF_MAP_TYPE_DEVMAP

    def _configure(self, extra: dict[str, Any]) -> None:
        super()._configure(extra)
        self._present = bytearray(self.max_entries)

    def _slot_of(self, index: int) -> int | None:
        return index if index < self.max_entries and self._present[index] else None

    def update(self, key: bytes, value: Any, flags: int = BPF_ANY, cpu: int | None = None) -> int:
        index = int.from_bytes(self._key(key), "little")
        cpu = self._cpu(cpu)
        ifindex, program_number = self._parse_value(value)
        flags = self._check_flag_value(flags)
        if cpu is not None:
            return -errno.EOPNOTSUPP
        refused = self._host_write_error(cpu, flags)
        if refused:
            return refused
        if flags > BPF_EXIST:
            return -errno.EINVAL
        if index >= self.max_entries:
            return -errno.E2BIG
        if flags == BPF_NOEXIST:
            return -errno.EEXIST
        if ifindex == 0:
            if program_number > 0:
                return -errno.EINVAL
            self._clear(index)
            return 0
        entry = self._make_entry(ifindex, program_number)
        if isinstance(entry, int):
            return entry
        self._install(index, entry)
        self._present[index] = 1
        return 0

    def _clear(self, index: int) -> None:
        self._present[index] = 0
        self._programs.pop(index, None)
        self._store(self.value_offset(index), bytes(self.value_size))

    def delete(self, key: bytes, cpu: int | None = None) -> int:
        index = int.from_bytes(self._key(key), "little")
        cpu = self._cpu(cpu)
        if cpu is not None:
            return -errno.EOPNOTSUPP
        refused = self._host_write_error(cpu)
        if refused:
            return refused
        if index >= self.max_entries:
            return -errno.EINVAL
        self._clear(index)
        return 0

    def keys(self) -> Iterator[bytes]:
        self._check_host_read()
        for index in range(self.max_entries):
            yield index.to_bytes(4, "little")

    def __len__(self) -> int:
        return sum(self._present)


class DevMapHash(_DevMapBase):
    """BPF_MAP_TYPE_DEVMAP_HASH: redirect targets under any u32 key. Update: ifindex 0 or unknown
    flags -EINVAL, BPF_NOEXIST on an existing key -EEXIST, a new key in a full map -E2BIG (BPF_EXIST
    on a missing key inserts, as in the kernel). Delete of a missing key: -ENOENT."""

    map_type = BPF_MAP_TYPE_DEVMAP_HASH

    def _configure(self, extra: dict[str, Any]) -> None:
        super()._configure(extra)
        self._slots: dict[int, int] = {}
        self._pool = _SlotPool(self.max_entries)

    def _slot_of(self, index: int) -> int | None:
        return self._slots.get(index)

    def update(self, key: bytes, value: Any, flags: int = BPF_ANY, cpu: int | None = None) -> int:
        index = int.from_bytes(self._key(key), "little")
        cpu = self._cpu(cpu)
        ifindex, program_number = self._parse_value(value)
        flags = self._check_flag_value(flags)
        if cpu is not None:
            return -errno.EOPNOTSUPP
        refused = self._host_write_error(cpu, flags)
        if refused:
            return refused
        if flags > BPF_EXIST or ifindex == 0:
            return -errno.EINVAL
        slot = self._slots.get(index)
        if slot is not None and flags & BPF_NOEXIST:
            return -errno.EEXIST
        entry = self._make_entry(ifindex, program_number)
        if isinstance(entry, int):
            return entry
        if slot is None:
            slot = self._pool.take()
            if slot is None:
                return -errno.E2BIG
            self._slots[index] = slot
        self._install(slot, entry)
        return 0

    def delete(self, key: bytes, cpu: int | None = None) -> int:
        index = int.from_bytes(self._key(key), "little")
        cpu = self._cpu(cpu)
        if cpu is not None:
            return -errno.EOPNOTSUPP
        refused = self._host_write_error(cpu)
        if refused:
            return refused
        slot = self._slots.pop(index, None)
        if slot is None:
            return -errno.ENOENT
        self._programs.pop(slot, None)
        self._pool.give_back(slot)
        return 0

    def keys(self) -> Iterator[bytes]:
        self._check_host_read()
        yield from [index.to_bytes(4, "little") for index in self._slots]

    def __len__(self) -> int:
        return len(self._slots)


# -- program array for bpf_tail_call (kernel/bpf/arraymap.c, fd arrays) ----------------------------
class ProgArrayMap(BpfMap):
    """BPF_MAP_TYPE_PROG_ARRAY: tail-call targets indexed by a u32 key. The values are program
    objects (whatever the loader uses as a program handle, e.g. its Program), not bytes: the host
    stores them with update(key, program) and reads them back with lookup(key). Programs cannot look
    entries up (the verifier allows only bpf_tail_call): `lookup_slot` raises, and the VM resolves
    tail calls with get_program(index). value_memory is empty. Host update: flags other than BPF_ANY
    -EINVAL, index >= max_entries -E2BIG. Delete: index >= max_entries -E2BIG, empty entry -ENOENT.
    keys() walks every index, like the kernel; items() only the entries present."""

    map_type = BPF_MAP_TYPE_PROG_ARRAY
    program_helpers = frozenset({"tail_call"})
    _create_flags = ArrayMap._create_flags

    def _check_attributes(self) -> None:
        if self.value_size != 4:
            self._refuse("a program array's value is a u32 program fd: value_size must be 4")
        if self.flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG):
            self._refuse("BPF_F_RDONLY_PROG/BPF_F_WRONLY_PROG do not apply to program arrays")
        ArrayMap._check_attributes(self)  # then the array checks, as the kernel does

    def _configure(self, extra: dict[str, Any]) -> None:
        self._programs: list[Any] = [None] * self.max_entries

    def _value_slots(self) -> int:
        return 0  # programs are objects, not bytes in value memory

    def _index(self, key: Any) -> int:
        return int.from_bytes(self._key(key), "little")

    def lookup_slot(self, key: bytes, cpu: int = 0) -> int | None:
        raise MapError(f"{self._label()}: programs cannot look up a program array (only "
                       f"bpf_tail_call may use it); use get_program(index)", errno.EOPNOTSUPP)

    def get_program(self, index: int) -> Any | None:
        """bpf_tail_call's lookup: the program at `index` (the low 32 bits are used), or None."""
        index &= U32_MAX
        return self._programs[index] if index < self.max_entries else None

    def update(self, key: bytes, value: Any, flags: int = BPF_ANY, cpu: int | None = None) -> int:
        index = self._index(key)
        cpu = self._cpu(cpu)
        if value is None or isinstance(value, (bytes, bytearray, memoryview, int)):
            raise MapError(f"{self._label()}: the value of a program array entry is a program "
                           f"object, got {type(value).__name__}")
        flags = self._check_flag_value(flags)
        if cpu is not None:
            return -errno.EOPNOTSUPP
        refused = self._host_write_error(cpu, flags)
        if refused:
            return refused
        if flags != BPF_ANY:
            return -errno.EINVAL
        if index >= self.max_entries:
            return -errno.E2BIG
        self._programs[index] = value
        return 0

    def delete(self, key: bytes, cpu: int | None = None) -> int:
        index = self._index(key)
        cpu = self._cpu(cpu)
        if cpu is not None:
            return -errno.EOPNOTSUPP
        refused = self._host_write_error(cpu)
        if refused:
            return refused
        if index >= self.max_entries:
            return -errno.E2BIG
        if self._programs[index] is None:
            return -errno.ENOENT
        self._programs[index] = None
        return 0

    def lookup(self, key: bytes) -> Any | None:
        self._check_host_read()
        return self.get_program(self._index(key))

    def keys(self) -> Iterator[bytes]:
        self._check_host_read()
        for index in range(self.max_entries):
            yield index.to_bytes(4, "little")

    def __len__(self) -> int:
        return sum(program is not None for program in self._programs)


# -- construction ----------------------------------------------------------------------------------
MAP_CLASSES: dict[int, type[BpfMap]] = {
    cls.map_type: cls for cls in (ArrayMap, PerCpuArrayMap, HashMap, PerCpuHashMap, LruHashMap,
                                  LruPerCpuHashMap, LpmTrieMap, DevMap, DevMapHash, ProgArrayMap)
}
SUPPORTED_MAP_TYPES = frozenset(MAP_CLASSES)


def create_map(map_type: int | str, key_size: int, value_size: int, max_entries: int, flags: int = 0,
               name: str = "", ncpus: int = 1, **extra: Any) -> BpfMap:
    """BPF_MAP_CREATE: a new map of `map_type` (a BPF_MAP_TYPE_* number or a name such as "hash").

    `ncpus` is the number of CPUs of per-CPU maps. `extra`: spin_lock_offset (ARRAY, HASH);
    valid_ifindexes and resolve_program (DEVMAP, DEVMAP_HASH). Raises MapError, with the kernel's
    errno, for parameters the kernel would refuse and for types bpfnic does not implement."""
    if isinstance(map_type, str):
        map_type = map_type_from_name(map_type)
    label = f"map {name!r}" if name else "map"
    if isinstance(map_type, bool) or not isinstance(map_type, int):
        raise MapError(f"{label}: map type must be a BPF_MAP_TYPE_* number or name, got {map_type!r}")
    cls = MAP_CLASSES.get(map_type)
    if cls is None:
        supported = ", ".join(f"{MAP_TYPE_NAMES[t]} ({t})" for t in sorted(SUPPORTED_MAP_TYPES))
        if map_type in MAP_TYPE_NAMES:
            raise MapError(f"{label}: map type {map_type} ({MAP_TYPE_NAMES[map_type]}) is not "
                           f"supported by bpfnic; supported: {supported}")
        raise MapError(f"{label}: unknown map type {map_type}; supported: {supported}")
    return cls(key_size, value_size, max_entries, flags, name, ncpus, **extra)


def create_global_data_map(name: str, data: bytes, readonly: bool) -> ArrayMap:
    """The map behind a global-data section (.rodata, .data, .bss), as libbpf makes it: a one-entry
    ARRAY (key 0) whose value is the section's bytes, BPF_F_MMAPABLE. A read-only section gets
    BPF_F_RDONLY_PROG and is frozen once filled, so neither programs nor the host can change it."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MapError(f"global data map {name!r}: data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise MapError(f"global data map {name!r}: the section is empty; libbpf makes no map for it")
    flags = BPF_F_MMAPABLE | (BPF_F_RDONLY_PROG if readonly else 0)
    array = ArrayMap(4, len(data), 1, flags, name)
    array._store(array.value_offset(0), data)
    if readonly:
        array.freeze()
    return array
