"""Build parameters of the NIC's maps, and the ports every hardware map unit shares.

Ref: include/uapi/linux/bpf.h (enum bpf_map_type, BPF_MAP_CREATE attributes, the BPF_F_* map and update
flags); sw/maps.py (the semantics every unit implements, and its value-memory layout: slots of
`value_stride` = value_size rounded up to 8 bytes, per-CPU copies CPU-major); sw/memory.py (map n's value
memory is region tag 0x80 + n, a map handle is tag 0x05 with offset n).

A loaded object's maps (`sw/elf_loader.MapDef`) become one `MapSlotConfig` each, checked against the limits of
the build (`MapLimits`, read from sw/capabilities.py's HardwareCapabilities, the description the verifier's
offload check reads, so an object that passes that check gets its map units); `NicMapConfig` holds them all and
builds their units.

Every map unit (map_array, map_hash, map_lpm, map_devmap, map_progarray) has the same three ports:

  program  (MapClientPort, from the helper unit)   one command at a time: LOOKUP / UPDATE / DELETE with a key,
           update flags and the calling CPU; the answer is a `MapResult`: rc (0 or -errno, as sw/maps.py),
           found and the value's byte offset in the unit's value memory (lookups), and a data word (devmap:
           the target ifindex; program array: entry pc and length). An UPDATE reads the new value from the
           caller's value buffer through `value_address`/`value_data` (a synchronous read port: data arrive
           the cycle after the address), only while the command is in flight.
  host     (HostMapPort, from the CSR side)         LOOKUP / UPDATE / DELETE / READ_ENTRY / FREEZE with the
           syscall's semantics (cpu = None in sw/maps.py). Values travel through a staging buffer of 64-bit
           words that the host writes before an UPDATE and reads after a LOOKUP (per-CPU maps: one copy per CPU,
           CPU-major, each `value_stride` bytes). The host touches the staging buffer only while none of its
           commands is in flight.
  value    (ValuePort, from the NIC memory system)  the core's loads, stores and atomics (done by the core as
           read-modify-write) into the value memory: 1, 2, 4 or 8 bytes at any byte offset, reads answered in
           order. Absent for program arrays, whose values are not bytes.

Consistency: a unit executes one command at a time, host or program (a host command waiting wins the next
turn). While a command copies a value, the unit's `value` port accepts no request, so a program's load sees a
value entirely before or entirely after a host update, and a host lookup copies a consistent snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from amaranth.hdl import signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from bpfnic.sw import capabilities, maps, memory
from bpfnic.sw.verifier import MapInfo


class MapConfigError(ValueError):
    """A map the hardware cannot hold: names the map, its index and why."""


# -- command encodings --------------------------------------------------------------------------------------
class MapOp(enum.Enum, shape=3):
    """Program commands (the helpers' map operations) and host commands (BPF_MAP_*_ELEM, BPF_MAP_FREEZE)."""
    LOOKUP = 0
    UPDATE = 1
    DELETE = 2
    READ_ENTRY = 3   # host only: the key at entry position `index` (for iterating, see each unit)
    FREEZE = 4       # host only: BPF_MAP_FREEZE


RC_SHAPE = signed(32)


def cpu_bits(ncpus: int) -> int:
    return max(1, (ncpus - 1).bit_length())


def map_command_layout(key_size: int, ncpus: int) -> data.StructLayout:
    return data.StructLayout({
        "op": MapOp,
        "key": 8 * key_size,       # the key's bytes, byte 0 in bits 0..7
        "flags": 64,               # BPF_ANY / BPF_NOEXIST / BPF_EXIST (r4 of map_update_elem, unreduced)
        "cpu": cpu_bits(ncpus),    # the calling core (per-CPU maps)
    })


MapResult = data.StructLayout({
    "rc": RC_SHAPE,                # 0 or -errno, as sw/maps.py answers
    "found": 1,                    # lookups: an entry was found
    "offset": 32,                  # lookups: the value's byte offset in the unit's value memory
    "data": 64,                    # devmap: ifindex; program array: entry pc | length << 32
})


def host_command_layout(key_size: int) -> data.StructLayout:
    return data.StructLayout({
        "op": MapOp,
        "key": 8 * key_size,
        "flags": 64,
        "index": 32,               # READ_ENTRY: the entry position
    })


def host_result_layout(key_size: int) -> data.StructLayout:
    return data.StructLayout({
        "rc": RC_SHAPE,
        "found": 1,                # LOOKUP: the value is in the staging buffer; READ_ENTRY: `key` is valid
        "key": 8 * key_size,
    })


ValueRequest = data.StructLayout({
    "offset": 32,                  # byte offset in the value memory
    "size": 2,                     # log2 of the byte count
    "write": 1,
    "data": 64,                    # write data, right-aligned
})


class ValuePort(wiring.Signature):
    """Byte access to a value memory, as the memory system sees it (the unit takes `In(ValuePort())`).
    The protocol is the core's data port (hw/core/interfaces.py) with an offset instead of a pointer."""

    def __init__(self):
        super().__init__({
            "request": Out(stream.Signature(ValueRequest)),
            "response": In(stream.Signature(64, always_ready=True)),
        })


class MapClientPort(wiring.Signature):
    """The helper unit's side of one map unit (the unit takes `In(MapClientPort(...))`)."""

    def __init__(self, key_size: int, ncpus: int, value_words: int):
        self.key_size = key_size
        self.ncpus = ncpus
        self.value_words = value_words
        super().__init__({
            "command": Out(stream.Signature(map_command_layout(key_size, ncpus))),
            "result": In(stream.Signature(MapResult)),
            "value_address": In(range(max(value_words, 1))),   # word of the caller's value buffer
            "value_data": Out(64),                             # that word, one cycle after the address
        })

    def __eq__(self, other):
        return (isinstance(other, MapClientPort) and (self.key_size, self.ncpus, self.value_words)
                == (other.key_size, other.ncpus, other.value_words))

    def __hash__(self):
        return hash((MapClientPort, self.key_size, self.ncpus, self.value_words))


class HostMapPort(wiring.Signature):
    """The CSR side of one map unit (the unit takes `In(HostMapPort(...))`)."""

    def __init__(self, key_size: int, staging_words: int):
        self.key_size = key_size
        self.staging_words = staging_words
        words = range(max(staging_words, 1))
        super().__init__({
            "command": Out(stream.Signature(host_command_layout(key_size))),
            "result": In(stream.Signature(host_result_layout(key_size))),
            "staging_write_enable": Out(1),
            "staging_write_address": Out(words),
            "staging_write_data": Out(64),
            "staging_read_address": Out(words),
            "staging_read_data": In(64),        # one cycle after the address
        })

    def __eq__(self, other):
        return (isinstance(other, HostMapPort)
                and (self.key_size, self.staging_words) == (other.key_size, other.staging_words))

    def __hash__(self):
        return hash((HostMapPort, self.key_size, self.staging_words))


# -- limits -------------------------------------------------------------------------------------------------
#: The map types these units implement.
UNIT_MAP_TYPES = frozenset({
    maps.BPF_MAP_TYPE_ARRAY, maps.BPF_MAP_TYPE_PERCPU_ARRAY, maps.BPF_MAP_TYPE_HASH, maps.BPF_MAP_TYPE_PERCPU_HASH,
    maps.BPF_MAP_TYPE_LRU_HASH, maps.BPF_MAP_TYPE_LRU_PERCPU_HASH, maps.BPF_MAP_TYPE_LPM_TRIE,
    maps.BPF_MAP_TYPE_DEVMAP, maps.BPF_MAP_TYPE_DEVMAP_HASH, maps.BPF_MAP_TYPE_PROG_ARRAY,
})
#: LPM key data bytes after the u32 prefixlen (IPv6): the table compares this many bits per lane.
MAX_LPM_DATA_SIZE = 16


@dataclass(frozen=True)
class MapLimits:
    """What a build's map hardware holds: the map part of sw/capabilities.HardwareCapabilities (the description
    the verifier's offload check reads), `from_capabilities`. `max_map_memory` is counted as that check
    counts it (capabilities.map_memory); `NicMapConfig.total_value_bytes` is the value memory really built."""

    map_types: frozenset = UNIT_MAP_TYPES
    max_maps: int = 16
    max_cpus: int = 1
    max_key_size: int = 64
    max_value_size: int = 256
    max_entries: dict = field(default_factory=dict)     # by map type; a type left out has no limit of its own
    max_map_memory: int = 192 * 1024
    max_lpm_data_size: int = MAX_LPM_DATA_SIZE

    @classmethod
    def from_capabilities(cls, caps: capabilities.HardwareCapabilities) -> "MapLimits":
        return cls(map_types=frozenset(caps.map_types) & UNIT_MAP_TYPES, max_maps=caps.max_maps,
                   max_cpus=caps.cores, max_key_size=caps.max_key_size, max_value_size=caps.max_value_size,
                   max_entries=dict(caps.max_entries), max_map_memory=caps.total_map_memory)


DEFAULT_MAP_LIMITS = MapLimits.from_capabilities(capabilities.DEFAULT_CAPABILITIES)

#: Hash units: ways per bucket, and two tables (d-left), each with at least max_entries / ways buckets.
DEFAULT_HASH_WAYS = 4
#: LPM units: entries compared per cycle.
DEFAULT_LPM_LANES = 16

_HASH_TYPES = frozenset({maps.BPF_MAP_TYPE_HASH, maps.BPF_MAP_TYPE_PERCPU_HASH, maps.BPF_MAP_TYPE_LRU_HASH,
                         maps.BPF_MAP_TYPE_LRU_PERCPU_HASH})
_ARRAY_TYPES = frozenset({maps.BPF_MAP_TYPE_ARRAY, maps.BPF_MAP_TYPE_PERCPU_ARRAY})
_DEVMAP_TYPES = frozenset({maps.BPF_MAP_TYPE_DEVMAP, maps.BPF_MAP_TYPE_DEVMAP_HASH})


def _power_of_two_at_least(value: int) -> int:
    return 1 << max(0, (value - 1).bit_length())


@dataclass
class MapSlotConfig:
    """One map slot of the NIC: the map's BPF_MAP_CREATE parameters and the unit's build parameters.

    `index` is the map's number (LDDW map_idx, region tag 0x80 + index). `initial_data` is a global-data map's
    section bytes (None otherwise), and `frozen` says the host may no longer write it (read-only sections).
    `valid_ifindexes` are the ifindexes a devmap entry may name (None: any non-zero one)."""

    index: int
    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    ncpus: int = 1
    initial_data: bytes | None = None
    frozen: bool = False
    valid_ifindexes: tuple[int, ...] | None = None
    hash_ways: int = DEFAULT_HASH_WAYS
    hash_buckets: int = 0                  # per table; 0: chosen from max_entries
    lpm_lanes: int = DEFAULT_LPM_LANES

    def __post_init__(self):
        if self.map_type in _HASH_TYPES and not self.hash_buckets:
            self.hash_buckets = _power_of_two_at_least(-(-self.max_entries // self.hash_ways))
        if self.map_type == maps.BPF_MAP_TYPE_LPM_TRIE:
            self.lpm_lanes = min(self.lpm_lanes, _power_of_two_at_least(self.max_entries))

    # -- derived ------------------------------------------------------------------------------------------
    @property
    def label(self) -> str:
        return f"map {self.index} {self.name!r} ({maps.map_type_name(self.map_type)})"

    @property
    def kind(self) -> str:
        """Which unit implements the map: array, hash, lpm, devmap or progarray."""
        if self.map_type in _ARRAY_TYPES:
            return "array"
        if self.map_type in _HASH_TYPES:
            return "hash"
        if self.map_type == maps.BPF_MAP_TYPE_LPM_TRIE:
            return "lpm"
        if self.map_type in _DEVMAP_TYPES:
            return "devmap"
        if self.map_type == maps.BPF_MAP_TYPE_PROG_ARRAY:
            return "progarray"
        raise MapConfigError(f"{self.label}: no hardware unit for this map type")

    @property
    def per_cpu(self) -> bool:
        return self.map_type in (maps.BPF_MAP_TYPE_PERCPU_ARRAY, maps.BPF_MAP_TYPE_PERCPU_HASH,
                                 maps.BPF_MAP_TYPE_LRU_PERCPU_HASH)

    @property
    def lru(self) -> bool:
        return self.map_type in (maps.BPF_MAP_TYPE_LRU_HASH, maps.BPF_MAP_TYPE_LRU_PERCPU_HASH)

    @property
    def copies(self) -> int:
        """Copies of every value: ncpus for per-CPU maps, else 1."""
        return self.ncpus if self.per_cpu else 1

    @property
    def value_stride(self) -> int:
        return (self.value_size + 7) & ~7

    @property
    def value_words(self) -> int:
        """64-bit words of one value (the last one partly used when value_size is not a multiple of 8)."""
        return self.value_stride // 8

    @property
    def value_memory_bytes(self) -> int:
        """Size of the map's value memory (its region): 0 for program arrays, whose values are programs."""
        if self.kind == "progarray":
            return 0
        return self.copies * self.max_entries * self.value_stride

    @property
    def staging_words(self) -> int:
        """Words of the host's staging buffer: every copy of one value (program arrays: pc and length)."""
        return 1 if self.kind == "progarray" else self.copies * self.value_words

    @property
    def host_readonly(self) -> bool:
        return bool(self.flags & maps.BPF_F_RDONLY)

    @property
    def host_writeonly(self) -> bool:
        return bool(self.flags & maps.BPF_F_WRONLY)

    @property
    def readonly_for_program(self) -> bool:
        return bool(self.flags & maps.BPF_F_RDONLY_PROG) or self.kind == "devmap"

    def model(self, **extra) -> maps.BpfMap:
        """A fresh sw/maps.py map with the same parameters and contents as the unit has after reset."""
        if self.initial_data is not None:
            bpf_map = maps.create_global_data_map(self.name, self.initial_data,
                                                  readonly=bool(self.flags & maps.BPF_F_RDONLY_PROG))
            return bpf_map
        if self.kind == "devmap":
            extra.setdefault("valid_ifindexes", self.valid_ifindexes)
        return maps.create_map(self.map_type, self.key_size, self.value_size, self.max_entries, self.flags,
                               name=self.name, ncpus=self.ncpus, **extra)

    def client_port(self, value_words: int) -> MapClientPort:
        return MapClientPort(self.key_size, self.ncpus, value_words)

    def host_port(self) -> HostMapPort:
        return HostMapPort(self.key_size, self.staging_words)


class NicMapConfig:
    """The maps of one loaded object as NIC map slots: `slots[n]` is map n (LDDW map_idx n).

    `value_buffer_words` is the size of the helper unit's value buffer: the largest value of any map."""

    def __init__(self, slots: Sequence[MapSlotConfig], ncpus: int = 1, limits: MapLimits = DEFAULT_MAP_LIMITS):
        self.slots = list(slots)
        self.ncpus = ncpus
        self.limits = limits
        self.check()

    @classmethod
    def from_map_defs(cls, map_defs: Iterable, ncpus: int = 1, limits: MapLimits = DEFAULT_MAP_LIMITS,
                      valid_ifindexes: tuple[int, ...] | None = None, **unit_parameters) -> "NicMapConfig":
        """Slots for `sw/elf_loader.MapDef`s (in map index order). `unit_parameters` (hash_ways, lpm_lanes)
        apply to every slot they concern."""
        slots = []
        for position, map_def in enumerate(map_defs):
            index = map_def.index if getattr(map_def, "index", -1) >= 0 else position
            if index != position:
                raise MapConfigError(f"map {map_def.name!r}: its index {index} is not its position {position} "
                                     f"in the object's map list")
            slot = MapSlotConfig(index=index, name=map_def.name, map_type=map_def.map_type,
                                 key_size=map_def.key_size, value_size=map_def.value_size,
                                 max_entries=map_def.max_entries, flags=map_def.flags, ncpus=ncpus,
                                 initial_data=map_def.initial_data, valid_ifindexes=valid_ifindexes,
                                 **{k: v for k, v in unit_parameters.items()
                                    if k in ("hash_ways", "lpm_lanes")})
            if map_def.initial_data is not None:
                # The map libbpf makes for a global-data section (maps.create_global_data_map).
                slot.map_type = maps.BPF_MAP_TYPE_ARRAY
                slot.key_size = 4
                slot.value_size = len(map_def.initial_data)
                slot.max_entries = 1
                slot.flags = maps.BPF_F_MMAPABLE | (maps.BPF_F_RDONLY_PROG if map_def.readonly else 0)
                slot.frozen = bool(map_def.readonly)
            slots.append(slot)
        return cls(slots, ncpus, limits)

    @classmethod
    def from_object(cls, obj, ncpus: int = 1, limits: MapLimits = DEFAULT_MAP_LIMITS,
                    valid_ifindexes: tuple[int, ...] | None = None, **unit_parameters) -> "NicMapConfig":
        """Slots for every map of a loaded object (`sw/elf_loader.BpfObject`)."""
        try:
            return cls.from_map_defs(obj.maps, ncpus, limits, valid_ifindexes, **unit_parameters)
        except MapConfigError as error:
            raise MapConfigError(f"{obj.path}: {error}") from None

    # -- checks -------------------------------------------------------------------------------------------
    def check(self) -> None:
        limits = self.limits
        if not 1 <= self.ncpus <= limits.max_cpus:
            raise MapConfigError(f"{self.ncpus} CPUs: the map hardware supports 1..{limits.max_cpus}")
        if len(self.slots) > limits.max_maps:
            raise MapConfigError(f"{len(self.slots)} maps: the NIC has {limits.max_maps} map slots")
        if len(self.slots) > memory.MAX_MAPS:
            raise MapConfigError(f"{len(self.slots)} maps: the pointer map names at most {memory.MAX_MAPS}")
        for position, slot in enumerate(self.slots):
            if slot.index != position:
                raise MapConfigError(f"{slot.label}: slot {position} holds map index {slot.index}")
            if slot.ncpus != self.ncpus:
                raise MapConfigError(f"{slot.label}: built for {slot.ncpus} CPUs, the NIC has {self.ncpus}")
            self._check_slot(slot)
        counted = [capabilities.map_memory(MapInfo(s.map_type, s.key_size, s.value_size, s.max_entries, s.flags,
                                                   name=s.name), self.ncpus) for s in self.slots]
        if sum(counted) > limits.max_map_memory:
            sizes = ", ".join(f"{s.name!r} {n}" for s, n in zip(self.slots, counted) if n)
            raise MapConfigError(f"the maps need {sum(counted)} bytes of map memory ({sizes}); the build has "
                                 f"{limits.max_map_memory}")

    def _check_slot(self, slot: MapSlotConfig) -> None:
        limits = self.limits
        type_name = maps.map_type_name(slot.map_type)
        if slot.map_type not in limits.map_types:
            supported = ", ".join(maps.map_type_name(t) for t in sorted(limits.map_types))
            raise MapConfigError(f"{slot.label}: map type {slot.map_type} ({type_name}) has no hardware unit; "
                                 f"supported: {supported}")
        try:  # the kernel's BPF_MAP_CREATE checks, as the model makes them
            slot.model()
        except maps.MapError as error:
            raise MapConfigError(f"{slot.label}: {error}") from None
        most = limits.max_entries.get(slot.map_type)
        if most is not None and slot.max_entries > most:
            raise MapConfigError(f"{slot.label}: max_entries {slot.max_entries} exceeds the hardware's "
                                 f"{most} for {type_name} maps")
        if slot.key_size > limits.max_key_size:
            raise MapConfigError(f"{slot.label}: key_size {slot.key_size} exceeds the hardware's "
                                 f"{limits.max_key_size} bytes")
        if slot.value_size > limits.max_value_size:
            raise MapConfigError(f"{slot.label}: value_size {slot.value_size} exceeds the hardware's "
                                 f"{limits.max_value_size} bytes")
        if slot.kind == "lpm" and slot.key_size - maps.LPM_PREFIXLEN_SIZE > limits.max_lpm_data_size:
            raise MapConfigError(f"{slot.label}: {slot.key_size - maps.LPM_PREFIXLEN_SIZE} bytes of prefix data "
                                 f"exceed the hardware's {limits.max_lpm_data_size}")
        if slot.kind == "hash":
            ways, buckets = slot.hash_ways, slot.hash_buckets
            if ways < 1 or ways & (ways - 1) or buckets < 1 or buckets & (buckets - 1):
                raise MapConfigError(f"{slot.label}: hash_ways ({ways}) and hash_buckets ({buckets}) must be "
                                     f"powers of two")
        if slot.kind == "lpm" and (slot.lpm_lanes < 1 or slot.lpm_lanes & (slot.lpm_lanes - 1)):
            raise MapConfigError(f"{slot.label}: lpm_lanes {slot.lpm_lanes} must be a power of two")
        if slot.initial_data is not None and len(slot.initial_data) != slot.value_size:
            raise MapConfigError(f"{slot.label}: {len(slot.initial_data)} bytes of initial data for a "
                                 f"{slot.value_size}-byte value")

    # -- derived ------------------------------------------------------------------------------------------
    @property
    def total_value_bytes(self) -> int:
        return sum(slot.value_memory_bytes for slot in self.slots)

    @property
    def max_key_size(self) -> int:
        return max([slot.key_size for slot in self.slots] + [4])

    @property
    def value_buffer_words(self) -> int:
        return max([slot.value_words for slot in self.slots] + [1])

    def build_unit(self, index: int):
        """The Amaranth component of map slot `index`."""
        slot = self.slots[index]
        kind = slot.kind
        if kind == "array":
            from .map_array import ArrayMapUnit
            return ArrayMapUnit(slot, self.value_buffer_words)
        if kind == "hash":
            from .map_hash import HashMapUnit
            return HashMapUnit(slot, self.value_buffer_words)
        if kind == "lpm":
            from .map_lpm import LpmMapUnit
            return LpmMapUnit(slot, self.value_buffer_words)
        if kind == "devmap":
            from .map_devmap import DevMapUnit
            return DevMapUnit(slot, self.value_buffer_words)
        from .map_progarray import ProgArrayUnit
        return ProgArrayUnit(slot, self.value_buffer_words)

    def build_units(self) -> list:
        return [self.build_unit(index) for index in range(len(self.slots))]

    def describe(self) -> list[str]:
        """One line a slot: what the integrator and the synthesis report show."""
        lines = []
        for slot in self.slots:
            extra = ""
            if slot.kind == "hash":
                extra = f", 2 tables x {slot.hash_buckets} buckets x {slot.hash_ways} ways"
            elif slot.kind == "lpm":
                extra = f", {slot.lpm_lanes} lanes"
            lines.append(f"{slot.label}: key {slot.key_size} B, value {slot.value_size} B, "
                         f"{slot.max_entries} entries, {slot.value_memory_bytes} B value memory{extra}")
        return lines

