"""What one hardware build of the bpfnic NIC can run, and the offload check of a verified program against it.

A `HardwareCapabilities` is the description of a build: instruction memory, the map types its map units
implement with their key/value/entry limits and total memory, the helpers its helper units implement, stack,
call depth, ports and cores. The hardware generator reads the same description (project issue 6: "map sizes,
key and value sizes and counts are build parameters, described in the same capability description the
verifier's offload check reads"), and it travels as JSON.

`check_offload` answers "can this object run on that build?" before anything is written to the device, and
names every reason it cannot, all at once: too many instructions, each map of an unsupported type or size,
each call of a helper the build lacks (with its instruction index), stack and call depth. It runs the static
verifier (sw/verifier.py) for the stack and call depth, and reports a refusal of the verifier as one problem
among the others. Map type and helper numbers are the kernel's (include/uapi/linux/bpf.h).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from . import isa
from .maps import map_type_from_name, map_type_name
from .verifier import HELPERS, MapInfo, VerifierError, map_infos, verify

__all__ = ["HardwareCapabilities", "DEFAULT_CAPABILITIES", "CapabilitiesError", "OffloadProblem",
           "check_offload", "map_memory"]

# enum bpf_map_type
HASH, ARRAY, PROG_ARRAY, PERCPU_HASH, PERCPU_ARRAY, LRU_HASH, LRU_PERCPU_HASH, LPM_TRIE, DEVMAP = \
    1, 2, 3, 5, 6, 9, 10, 11, 14
_PER_CPU = frozenset({PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH})
_KEYED = frozenset({HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH, LPM_TRIE})

#: The helpers of the planned build's helper units (project issue 6).
PLANNED_HELPERS = frozenset({1, 2, 3, 5, 6, 7, 8, 12, 23, 28, 44, 51, 54, 65})

_HELPER_IDS = {proto.name: helper_id for helper_id, proto in HELPERS.items()}


class CapabilitiesError(ValueError):
    """A capability description that cannot be used, naming the source, the field and the reason."""


def _round8(size: int) -> int:
    return (size + 7) & ~7


def map_memory(info: MapInfo, cores: int = 1) -> int:
    """Bytes of map memory a map takes in the hardware: each value in an 8-byte-aligned slot (as the map units
    and sw/maps.py store them), keyed maps add their key per entry, per-CPU maps one copy per core, program
    arrays and devmaps a 4-byte slot per entry."""
    if info.map_type in (PROG_ARRAY, DEVMAP):
        return 4 * info.max_entries
    per_entry = _round8(info.value_size)
    if info.map_type in _KEYED:
        per_entry += _round8(info.key_size)
    copies = cores if info.map_type in _PER_CPU else 1
    return per_entry * info.max_entries * copies


@dataclass
class HardwareCapabilities:
    """One build of the NIC. The defaults describe the planned build for the LFE5UM5G-85F."""

    name: str = "bpfnic-ecp5-85f"
    instruction_memory_slots: int = 4096          # 8-byte instruction slots (an LDDW takes two)
    map_types: frozenset[int] = frozenset({HASH, ARRAY, PROG_ARRAY, PERCPU_ARRAY, LRU_HASH, LPM_TRIE, DEVMAP})
    max_maps: int = 16
    max_key_size: int = 64
    max_value_size: int = 256
    max_entries: dict[int, int] = field(default_factory=lambda: {
        ARRAY: 8192, PERCPU_ARRAY: 4096, HASH: 4096, LRU_HASH: 4096, LPM_TRIE: 256, DEVMAP: 64, PROG_ARRAY: 16})
    total_map_memory: int = 192 * 1024            # bytes of block RAM for all map keys and values
    helpers: frozenset[int] = PLANNED_HELPERS
    stack_size: int = isa.STACK_SIZE              # bytes for the deepest chain of call frames
    call_depth: int = isa.MAX_CALL_FRAMES         # frames: the main program and nested calls
    ports: int = 2
    cores: int = 1

    # -- JSON ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "instruction_memory_slots": self.instruction_memory_slots,
            "map_types": [map_type_name(t) for t in sorted(self.map_types)],
            "max_maps": self.max_maps,
            "max_key_size": self.max_key_size,
            "max_value_size": self.max_value_size,
            "max_entries": {map_type_name(t): n for t, n in sorted(self.max_entries.items())},
            "total_map_memory": self.total_map_memory,
            "helpers": [HELPERS[h].name if h in HELPERS else h for h in sorted(self.helpers)],
            "stack_size": self.stack_size,
            "call_depth": self.call_depth,
            "ports": self.ports,
            "cores": self.cores,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "<capabilities>") -> "HardwareCapabilities":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise CapabilitiesError(f"{source}: not JSON: {error}") from None
        return cls.from_dict(data, source)

    @classmethod
    def from_dict(cls, data: Any, source: str = "<capabilities>") -> "HardwareCapabilities":
        """A description from its JSON form. Fields left out keep the planned build's values; map types and
        helpers may be given by name ("lru_hash", "map_lookup_elem") or number."""
        if not isinstance(data, dict):
            raise CapabilitiesError(f"{source}: a capability description is a JSON object, not "
                                    f"{type(data).__name__}")
        known = set(cls().to_dict())
        unknown = sorted(set(data) - known)
        if unknown:
            raise CapabilitiesError(f"{source}: unknown field {', '.join(unknown)} "
                                    f"(fields: {', '.join(sorted(known))})")
        fields: dict[str, Any] = {}
        for key, value in data.items():
            where = f"{source}: field {key}"
            if key == "name":
                if not isinstance(value, str):
                    raise CapabilitiesError(f"{where} must be a string")
                fields[key] = value
            elif key == "map_types":
                fields[key] = frozenset(_map_type(item, where) for item in _list(value, where))
            elif key == "helpers":
                fields[key] = frozenset(_helper(item, where) for item in _list(value, where))
            elif key == "max_entries":
                if not isinstance(value, dict):
                    raise CapabilitiesError(f"{where} must map map types to entry counts")
                fields[key] = {_map_type(name, where): _count(count, f"{where}.{name}")
                               for name, count in value.items()}
            else:
                fields[key] = _count(value, where)
        return cls(**fields)


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise CapabilitiesError(f"{where} must be a list")
    return value


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CapabilitiesError(f"{where} must be a non-negative integer, not {value!r}")
    return value


def _map_type(item: Any, where: str) -> int:
    if isinstance(item, int) and not isinstance(item, bool):
        return item
    if isinstance(item, str):
        try:
            return map_type_from_name(item)
        except ValueError:
            raise CapabilitiesError(f"{where}: unknown map type {item!r}") from None
    raise CapabilitiesError(f"{where}: a map type is a name or a number, not {item!r}")


def _helper(item: Any, where: str) -> int:
    if isinstance(item, int) and not isinstance(item, bool):
        return item
    if isinstance(item, str):
        name = item.removeprefix("bpf_")
        if name in _HELPER_IDS:
            return _HELPER_IDS[name]
        raise CapabilitiesError(f"{where}: unknown helper {item!r}")
    raise CapabilitiesError(f"{where}: a helper is a name or a number, not {item!r}")


DEFAULT_CAPABILITIES = HardwareCapabilities()


@dataclass(frozen=True)
class OffloadProblem:
    """One reason a program cannot run on a build. `kind` is one of: instructions, maps, map_type, key_size,
    value_size, max_entries, map_memory, helper, stack, call_depth, verifier."""

    kind: str
    message: str
    program: str = ""
    insn_index: int | None = None
    map_name: str = ""

    def __str__(self) -> str:
        where = []
        if self.program:
            where.append(f"prog {self.program}")
        if self.insn_index is not None:
            where.append(f"instruction {self.insn_index}")
        if self.map_name:
            where.append(f"map {self.map_name}")
        return (", ".join(where) + ": " if where else "") + self.message


def _programs(target: Any) -> tuple[list[tuple[str, isa.Program]], list[MapInfo]]:
    """(name, instructions) of every program and the maps, from a loaded object (sw/elf_loader.BpfObject)
    or a (program, maps) pair."""
    if isinstance(target, tuple):
        if len(target) != 2 or not isinstance(target[0], isa.Program):
            raise TypeError("check_offload takes a loaded object or a (program, maps) pair")
        return [("", target[0])], map_infos(target[1])
    programs = getattr(target, "programs", None)
    if programs is None or not hasattr(target, "maps"):
        raise TypeError(f"check_offload takes a loaded object or a (program, maps) pair, not {type(target).__name__}")
    items = programs.items() if isinstance(programs, dict) else ((p.section, p) for p in programs)
    return [(name, prog.insns) for name, prog in items], map_infos(target.maps)


def check_offload(target: Any, caps: HardwareCapabilities = DEFAULT_CAPABILITIES) -> list[OffloadProblem]:
    """Every reason the programs and maps of `target` (a loaded object, or a (program, maps) pair) cannot be
    offloaded to the build `caps`; an empty list when they can."""
    programs, maps = _programs(target)
    problems: list[OffloadProblem] = []
    total_slots = 0
    for name, program in programs:
        problems.extend(_program_problems(name, program, maps, caps))
        total_slots += len(program)
    if len(programs) > 1 and total_slots > caps.instruction_memory_slots:
        problems.append(OffloadProblem("instructions", f"the {len(programs)} programs take {total_slots} "
                                       f"instruction slots together; the build has {caps.instruction_memory_slots}"))
    problems.extend(_map_problems(maps, caps))
    return problems


def _program_problems(name: str, program: isa.Program, maps: Sequence[MapInfo],
                      caps: HardwareCapabilities) -> Iterable[OffloadProblem]:
    if len(program) > caps.instruction_memory_slots:
        yield OffloadProblem("instructions", f"{len(program)} instruction slots do not fit the build's instruction "
                             f"memory of {caps.instruction_memory_slots}", name)
    for index, insn in program.instructions():
        if insn.opcode == isa.OP_CALL and insn.src == isa.BPF_PSEUDO_CALL_HELPER and insn.imm not in caps.helpers:
            helper = HELPERS[insn.imm].name if insn.imm in HELPERS else "unknown"
            yield OffloadProblem("helper", f"helper {insn.imm} ({helper}) is not implemented by this build", name,
                                 index)
    try:
        result = verify(program, maps, name=name)
    except VerifierError as error:
        yield OffloadProblem("verifier", f"the verifier refuses it: {error.reason}", name, error.insn_index)
        return
    if result.max_stack_depth > caps.stack_size:
        yield OffloadProblem("stack", f"its deepest call chain uses {result.max_stack_depth} bytes of stack; the "
                             f"build has {caps.stack_size}", name)
    if result.max_call_depth > caps.call_depth:
        yield OffloadProblem("call_depth", f"it nests {result.max_call_depth} call frames; the build has "
                             f"{caps.call_depth}", name)


def _map_problems(maps: Sequence[MapInfo], caps: HardwareCapabilities) -> Iterable[OffloadProblem]:
    if len(maps) > caps.max_maps:
        yield OffloadProblem("maps", f"{len(maps)} maps; the build has {caps.max_maps} map slots")
    memory = 0
    for number, info in enumerate(maps):
        label = info.name or f"#{number}"
        type_name = map_type_name(info.map_type)
        if info.map_type not in caps.map_types:
            supported = ", ".join(map_type_name(t) for t in sorted(caps.map_types))
            yield OffloadProblem("map_type", f"the build has no {type_name} maps (it has: {supported})",
                                 map_name=label)
            continue
        if info.map_type not in (PROG_ARRAY, DEVMAP, ARRAY, PERCPU_ARRAY) and info.key_size > caps.max_key_size:
            yield OffloadProblem("key_size", f"keys of {info.key_size} bytes; the build's map units take at most "
                                 f"{caps.max_key_size}", map_name=label)
        if info.value_size > caps.max_value_size:
            yield OffloadProblem("value_size", f"values of {info.value_size} bytes; the build's map units take at "
                                 f"most {caps.max_value_size}", map_name=label)
        limit = caps.max_entries.get(info.map_type)
        if limit is not None and info.max_entries > limit:
            yield OffloadProblem("max_entries", f"{info.max_entries} entries; the build's {type_name} maps hold at "
                                 f"most {limit}", map_name=label)
        memory += map_memory(info, caps.cores)
    if memory > caps.total_map_memory:
        yield OffloadProblem("map_memory", f"the maps need {memory} bytes of map memory; the build has "
                             f"{caps.total_map_memory}")
