"""The `kernel` backend: a loaded XDP object run by the Linux kernel, with the interface of `xdp.XdpSession`.

Ref: include/uapi/linux/bpf.h (BPF_MAP_CREATE and its map_flags BPF_F_RDONLY_PROG / BPF_F_MMAPABLE,
BPF_MAP_FREEZE, BPF_PROG_LOAD with fd_array and expected_attach_type, BPF_PROG_TEST_RUN, struct xdp_md,
struct bpf_devmap_val); net/bpf/test_run.c (what the XDP test run takes and gives back: data_out starts
at data_meta, ctx_out holds data and data_end relative to it); kernel/bpf/arraymap.c (program arrays:
user space writes program fds and reads back program ids); libbpf's documented conventions for global
data maps (one-entry ARRAY, `.rodata` read-only to programs and frozen after filling, BPF_F_MMAPABLE
when the section's BTF DATASEC holds a non-static variable) and for map and program names (15 characters
from [A-Za-z0-9_.]).

`KernelSession(obj, section)` instantiates an object (`elf_loader.BpfObject`) in the kernel the way
libbpf would: every map is created (global data filled, `.rodata` frozen), every program is loaded as
BPF_PROG_TYPE_XDP with `fd_array` = the map fds in the object's map order (the loader's LDDW map
references are BPF_PSEUDO_MAP_IDX / BPF_PSEUDO_MAP_IDX_VALUE indices into it), and program arrays are
filled from the object's initial values. The chosen program then runs packets with BPF_PROG_TEST_RUN,
and the maps outlive the packets, as in a NIC. Programs carry the object's license (an object without
one gets an empty string, so the kernel refuses GPL-only helpers) and `expected_attach_type` BPF_XDP
(BPF_XDP_DEVMAP / BPF_XDP_CPUMAP for `xdp/devmap`, `xdp/cpumap` sections), as libbpf loads them.
Maps of maps (ARRAY_OF_MAPS, HASH_OF_MAPS; the golden VM does not model them) are created from their
inner template (`MapDef.inner`), and hold maps named by map name in initial values, map-init and dumps.

Map-init (`apply_map_init`) takes the JSON shape of `XdpSession.apply_map_init`:
`{"maps": {"<map name>": {"<key hex>": <value>}}}` where <value> is
- value hex (for a per-CPU map: the same value on every possible CPU), or
- a list of value hex, one per CPU (per-CPU maps; a list shorter than the kernel's possible CPUs
  leaves the remaining CPUs zero, so a map-init written for the one-CPU golden VM works here), or
- a program's section name (program arrays).
Device maps (DEVMAP, DEVMAP_HASH) hold ifindexes of network interfaces that exist in this network
namespace: the kernel looks each one up and refuses others (ENODEV). Loopback is 1 everywhere, which
is why the examples' map-inits use it. A `.rodata` map is frozen before the programs load (the verifier
treats its contents as constants), so a map-init cannot change it: the kernel answers EPERM, as the VM does.

What differs from the golden VM, on purpose or because the kernel does not tell:
- `redirect` is always None: the kernel's test run returns XDP_REDIRECT without saying where to.
- `instructions` is 0 and `trace_output` empty: the kernel does not count instructions, and
  bpf_trace_printk writes to the kernel's trace buffer, which this backend does not read.
- `fault` is always None: the verifier proved the program safe, so the kernel never aborts it.
- Per-CPU values in `dump_maps()` are lists over all of the kernel's possible CPUs
  (`kernel_bpf.possible_cpus()`), not the VM's `ncpus`. Programs run on CPU `cpu` (0 by default): the
  calling thread is pinned there for the run (`os.sched_setaffinity`), so bpf_get_smp_processor_id()
  and the per-CPU slot a program touches are deterministic; the previous affinity is restored after.
- Frames longer than `xdp.MAX_PACKET_SIZE` are refused, as by the VM: the kernel would put the excess
  in fragments the program cannot reach directly.
- `xdp.frags` programs are loaded without BPF_F_XDP_HAS_FRAGS (kernel_bpf.KernelProgram.load does not
  take prog_flags); with frames limited as above the program sees the same packet either way.
- Global data maps are mmapable (BPF_F_MMAPABLE) exactly when libbpf makes them so; nothing is mmapped.
"""

from __future__ import annotations

import errno
import os
import re
import socket
from typing import Any

from . import kernel_bpf as kb
from . import maps as maps_mod
from .btf import Kind
from .xdp import MAX_PACKET_SIZE, ETH_HLEN, PacketResult, XdpError

#: Sections libbpf loads with a devmap/cpumap attach type (programs run on frames redirected there).
_ATTACH_TYPE_PREFIXES = (("xdp/devmap", kb.BPF_XDP_DEVMAP), ("xdp.frags/devmap", kb.BPF_XDP_DEVMAP),
                         ("xdp/cpumap", kb.BPF_XDP_CPUMAP), ("xdp.frags/cpumap", kb.BPF_XDP_CPUMAP))

#: Map types whose values user space writes as fds of other kernel objects and reads back as ids.
_FD_ARRAY_TYPES = (kb.BPF_MAP_TYPE_PROG_ARRAY, kb.BPF_MAP_TYPE_ARRAY_OF_MAPS, kb.BPF_MAP_TYPE_HASH_OF_MAPS)
_MAP_OF_MAPS_TYPES = (kb.BPF_MAP_TYPE_ARRAY_OF_MAPS, kb.BPF_MAP_TYPE_HASH_OF_MAPS)

#: Maps whose every index exists (GET_NEXT_KEY walks them in index order): dumped in that order.
_INDEXED_TYPES = (kb.BPF_MAP_TYPE_ARRAY, kb.BPF_MAP_TYPE_PERCPU_ARRAY, kb.BPF_MAP_TYPE_PROG_ARRAY,
                  kb.BPF_MAP_TYPE_ARRAY_OF_MAPS, kb.BPF_MAP_TYPE_DEVMAP)

#: Verifier log lines that are not the complaint: instructions with their state, source lines,
#: branch headers, and the closing statistics.
_LOG_INSN = re.compile(r"^(\d+): \([0-9a-f]{2}\) (.*)$")
_LOG_NOISE = re.compile(r"^(\d+: |; |from \d+ to \d+|processed \d+ insns|verification time|stack depth"
                        r"|mark_precise|last_idx|regs=|parent |func#|Func#|Validating |\s*$)")
_MAX_REASON_LINES = 3


class KernelBackendError(XdpError):
    """The kernel refused part of an object, a map-init entry or a packet: one line naming the object,
    the map or program section, and the kernel's reason (the verifier's complaint for programs).
    A subclass of XdpError, so callers handle both backends' input errors the same way."""


def kernel_object_name(name: str) -> str:
    """A name the kernel accepts for a map or program: characters outside [A-Za-z0-9_.] become `_`,
    then the first 15 characters (BPF_OBJ_NAME_LEN minus the NUL), as libbpf passes names."""
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "_.") else "_" for c in name)
    return cleaned[:kb.BPF_OBJ_NAME_LEN - 1]


def verifier_reason(log: str) -> str:
    """The verifier's complaint in one line: the last instruction it looked at (index and text), then
    the message lines that follow it; "" when the log holds no complaint."""
    lines = [line.rstrip() for line in log.splitlines()]
    while lines and (not lines[-1].strip() or re.match(r"(processed \d+ insns|verification time|stack depth"
                                                       r"|-- END PROG LOAD LOG --)", lines[-1])):
        lines.pop()
    reason: list[str] = []
    last_insn = None
    for line in reversed(lines):
        match = _LOG_INSN.match(line)
        if match:
            last_insn = f"instruction {match.group(1)} ({match.group(2).strip()})"
            break
        if _LOG_NOISE.match(line):
            if reason:
                break
            continue
        reason.insert(0, line.strip())
    reason = reason[-_MAX_REASON_LINES:]
    if not reason:
        return ""
    text = "; ".join(reason)
    return f"{last_insn}: {text}" if last_insn else text


def _errno_text(error: OSError) -> str:
    code = errno.errorcode.get(error.errno, str(error.errno))
    return f"{code} ({os.strerror(error.errno)})" if error.errno else str(error)


def _hex(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise KernelBackendError(f"{what}: expected a hex string, got {text!r}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise KernelBackendError(f"{what}: {text!r} is not hex") from None


def _is_mmapable(obj, definition) -> bool:
    """libbpf's rule: a global data map is mmapable when its section's BTF DATASEC holds at least one
    variable that is not static (string literal sections such as `.rodata.str1.1` hold none)."""
    btf = getattr(obj, "btf", None)
    if btf is None:
        return False
    datasec = btf.datasec(definition.section or definition.name)
    if datasec is None:
        return False
    for secinfo in datasec.secinfos:
        variable = btf.type(secinfo.type_id)
        if variable.kind == Kind.VAR and variable.linkage != 0:
            return True
    return False


def _attach_type(section: str) -> int:
    for prefix, attach_type in _ATTACH_TYPE_PREFIXES:
        if section == prefix or section.startswith(prefix + "/"):
            return attach_type
    return kb.BPF_XDP


class KernelSession:
    """A loaded object in the Linux kernel: its maps, its programs, and runs of packets through the
    chosen program with BPF_PROG_TEST_RUN. Same interface as `xdp.XdpSession`; a context manager
    (close() releases every map and program)."""

    def __init__(self, obj, section: str | None = None, cpu: int = 0):
        self.obj = obj
        self.program: kb.KernelProgram | None = None
        self.maps: list[kb.KernelMap] = []
        self.programs: dict[str, kb.KernelProgram] = {}   # keyed like obj.programs
        self.program_def = obj.program(section)  # the loader's LoadError names what there is
        self.cpu = cpu
        self.map_by_name: dict[str, kb.KernelMap] = {}
        self.ncpus = 0
        # What this session put into fd-holding maps, by the id the kernel reads back: program id ->
        # section (program arrays), map id -> map name (maps of maps).
        self._names_by_id: dict[int, dict[int, str]] = {}
        reason = kb.bpf_unavailable_reason()
        if reason is not None:
            raise KernelBackendError(f"{obj.path}: cannot use the kernel backend: {reason}")
        if isinstance(cpu, bool) or not isinstance(cpu, int) or not 0 <= cpu < kb.possible_cpus():
            raise KernelBackendError(f"{obj.path}: cpu {cpu!r} is not one of the kernel's "
                                     f"{kb.possible_cpus()} possible CPUs")
        self.ncpus = kb.possible_cpus()
        try:
            for definition in obj.maps:
                kernel_map = self._create_map(definition)
                self.maps.append(kernel_map)
                self.map_by_name[definition.name] = kernel_map
            for key, program_def in obj.programs.items():
                self.programs[key] = self._load_program(program_def)
            self.program = self._kernel_program(self.program_def)
            for index, definition in enumerate(obj.maps):
                for slot, target in definition.initial_values.items():
                    key = slot.to_bytes(definition.key_size, "little")
                    where = f"{obj.path}: map {definition.name}: initial value {slot}"
                    if definition.map_type == kb.BPF_MAP_TYPE_PROG_ARRAY:
                        self._set_program_entry(index, key, target, where)
                    elif definition.map_type in _MAP_OF_MAPS_TYPES:
                        self._set_inner_map_entry(index, key, target, where)
        except BaseException:
            self.close()
            raise

    # -- building ----------------------------------------------------------------------------------------
    def _error(self, text: str) -> KernelBackendError:
        return KernelBackendError(f"{self.obj.path}: {text}")

    def _create_map(self, definition) -> kb.KernelMap:
        name = kernel_object_name(definition.name)
        flags = definition.flags
        map_type, key_size, value_size, max_entries = (definition.map_type, definition.key_size,
                                                       definition.value_size, definition.max_entries)
        if definition.initial_data is not None:
            map_type, key_size, value_size, max_entries = kb.BPF_MAP_TYPE_ARRAY, 4, len(definition.initial_data), 1
            if definition.readonly:
                flags |= kb.BPF_F_RDONLY_PROG
            if _is_mmapable(self.obj, definition):
                flags |= kb.BPF_F_MMAPABLE
        description = (f"{maps_mod.map_type_name(map_type)}, key {key_size} B, value {value_size} B, "
                       f"{max_entries} entries, flags {flags:#x}")
        inner_template = None
        try:
            if map_type in _MAP_OF_MAPS_TYPES:
                inner = definition.inner
                if inner is None:
                    raise self._error(f"map {definition.name}: a map of maps needs an inner map "
                                      f"definition (__array(values, ...)) and has none")
                inner_template = kb.KernelMap.create(inner.map_type, inner.key_size, inner.value_size,
                                                     inner.max_entries, inner.flags,
                                                     kernel_object_name(inner.name),
                                                     map_extra=inner.map_extra)
            kernel_map = kb.KernelMap.create(map_type, key_size, value_size, max_entries, flags, name,
                                             inner_map_fd=inner_template.fd if inner_template else 0,
                                             map_extra=definition.map_extra)
        except kb.BpfError as error:
            raise self._error(f"map {definition.name}: the kernel refused to create it ({description}): "
                              f"{_errno_text(error)}") from None
        finally:
            if inner_template is not None:
                inner_template.close()  # the outer map keeps its own copy of the template's shape
        if definition.initial_data is not None:
            try:
                kernel_map.update(bytes(4), bytes(definition.initial_data))
                if definition.readonly:
                    kernel_map.freeze()
            except kb.BpfError as error:
                kernel_map.close()
                raise self._error(f"map {definition.name}: cannot fill it with the section's "
                                  f"{len(definition.initial_data)} bytes: {_errno_text(error)}") from None
        return kernel_map

    def _load_program(self, program_def) -> kb.KernelProgram:
        license_text = self.obj.license if self.obj.license is not None else ""
        try:
            return kb.KernelProgram.load(
                kb.BPF_PROG_TYPE_XDP, program_def.insns.encode(), license=license_text,
                name=kernel_object_name(program_def.name), log_level=0,
                fd_array=[m.fd for m in self.maps], expected_attach_type=_attach_type(program_def.section),
                kern_version=self.obj.kernel_version or 0)
        except kb.BpfError as error:
            reason = verifier_reason(error.log) or _errno_text(error)
            note = "" if program_def.is_xdp else " (not an XDP section, but loaded as XDP)"
            raise self._error(f"section {program_def.section}{note}: the kernel refused program "
                              f"{program_def.name}: {reason}") from None

    def _kernel_program(self, program_def) -> kb.KernelProgram:
        for key, candidate in self.obj.programs.items():
            if candidate is program_def:
                return self.programs[key]
        raise self._error(f"program {program_def.name} is not one of the object's programs")

    def _set_program_entry(self, index: int, key: bytes, section_name: str, where: str) -> None:
        try:
            program_def = self.obj.program(section_name)
        except Exception as error:  # the loader's LoadError lists the programs there are
            raise KernelBackendError(f"{where}: {getattr(error, 'reason', error)}") from None
        self._set_fd_entry(index, key, self._kernel_program(program_def).fd, program_def.section, where)

    def _set_inner_map_entry(self, index: int, key: bytes, map_name: str, where: str) -> None:
        inner = self.map_by_name.get(map_name)
        if inner is None:
            raise KernelBackendError(f"{where}: no map named {map_name!r} "
                                     f"(maps: {', '.join(self.map_by_name) or 'none'})")
        self._set_fd_entry(index, key, inner.fd, map_name, where)

    def _set_fd_entry(self, index: int, key: bytes, fd: int, name: str, where: str) -> None:
        kernel_map = self.maps[index]
        try:
            kernel_map.update(key, fd.to_bytes(4, "little"))
            kernel_id = kernel_map.lookup(key)  # a program array reads back program ids, not fds
        except kb.BpfError as error:
            raise KernelBackendError(f"{where}: the kernel refused {name}: {_errno_text(error)}"
                                     f"{_update_hint(kernel_map, error.errno, key, None)}") from None
        if kernel_id is not None:
            self._names_by_id.setdefault(index, {})[int.from_bytes(kernel_id, "little")] = name

    # -- maps --------------------------------------------------------------------------------------------
    def apply_map_init(self, init: dict) -> None:
        """Fill maps from {"maps": {name: {key hex: value}}} (see the module docstring for the values)."""
        self._require_open()
        entries = init.get("maps", init) if isinstance(init, dict) else None
        if not isinstance(entries, dict):
            raise KernelBackendError("map-init: expected {\"maps\": {\"<map name>\": {\"<key hex>\": "
                                     "\"<value hex>\"}}}")
        for name, contents in entries.items():
            kernel_map = self.map_by_name.get(name)
            if kernel_map is None:
                raise KernelBackendError(f"map-init: no map named {name!r} "
                                         f"(maps: {', '.join(self.map_by_name) or 'none'})")
            if not isinstance(contents, dict):
                raise KernelBackendError(f"map-init: map {name}: expected an object of key hex -> value hex")
            index = self.maps.index(kernel_map)
            for key_hex, value in contents.items():
                where = f"map-init: map {name}: key {key_hex}"
                key = _hex(key_hex, f"map-init: map {name}: key")
                if len(key) != kernel_map.key_size:
                    raise KernelBackendError(f"{where}: the key is {len(key)} bytes, the map's key_size "
                                             f"is {kernel_map.key_size}")
                if kernel_map.map_type == kb.BPF_MAP_TYPE_PROG_ARRAY:
                    if not isinstance(value, str):
                        raise KernelBackendError(f"{where}: a program array value is a section name")
                    self._set_program_entry(index, key, value, where)
                    continue
                if kernel_map.map_type in _MAP_OF_MAPS_TYPES:
                    if not isinstance(value, str):
                        raise KernelBackendError(f"{where}: a map-of-maps value is a map name")
                    self._set_inner_map_entry(index, key, value, where)
                    continue
                self._update(kernel_map, key, value, where)

    def _update(self, kernel_map: kb.KernelMap, key: bytes, value: Any, where: str) -> None:
        if kernel_map.is_percpu:
            raw_values = value if isinstance(value, list) else [value] * self.ncpus
            values = [_hex(v, f"{where}: value") for v in raw_values]
            if len(values) > self.ncpus:
                raise KernelBackendError(f"{where}: {len(values)} per-CPU values, but the kernel has "
                                         f"{self.ncpus} possible CPUs")
            values += [bytes(kernel_map.value_size)] * (self.ncpus - len(values))
            wrong = [len(v) for v in values if len(v) != kernel_map.value_size]
            if wrong:
                raise KernelBackendError(f"{where}: a value is {wrong[0]} bytes, the map's value_size is "
                                         f"{kernel_map.value_size}")
            write = lambda: kernel_map.update_percpu(key, values)  # noqa: E731
        else:
            if isinstance(value, list):
                raise KernelBackendError(f"{where}: a list of values is for per-CPU maps only")
            data = _hex(value, f"{where}: value")
            if len(data) != kernel_map.value_size:
                raise KernelBackendError(f"{where}: the value is {len(data)} bytes, the map's value_size "
                                         f"is {kernel_map.value_size}")
            write = lambda: kernel_map.update(key, data)  # noqa: E731
        try:
            write()
        except kb.BpfError as error:
            raise KernelBackendError(f"{where}: the kernel refused the update: {_errno_text(error)}"
                                     f"{_update_hint(kernel_map, error.errno, key, value)}") from None

    def dump_maps(self) -> dict[str, dict[str, Any]]:
        """Every map's contents as the kernel holds them, in the JSON shape of XdpSession.dump_maps:
        key hex -> value hex; per-CPU maps a list over all possible CPUs; program arrays the section
        names (maps of maps: the map names) this session put there. Arrays come in index order,
        other maps sorted by key."""
        self._require_open()
        out: dict[str, dict[str, Any]] = {}
        for index, (definition, kernel_map) in enumerate(zip(self.obj.maps, self.maps)):
            try:
                items = list(kernel_map.items())
            except kb.BpfError as error:
                raise KernelBackendError(f"{self.obj.path}: map {definition.name}: the kernel cannot list "
                                         f"its entries: {_errno_text(error)}") from None
            if kernel_map.map_type not in _INDEXED_TYPES:
                items.sort()
            contents: dict[str, Any] = {}
            for key, value in items:
                if kernel_map.map_type in _FD_ARRAY_TYPES:
                    kernel_id = int.from_bytes(value[:4], "little")
                    names = self._names_by_id.get(index, {})
                    contents[key.hex()] = names.get(kernel_id, f"(kernel id {kernel_id}, not set by bpfnic)")
                elif kernel_map.is_percpu:
                    slot = (kernel_map.value_size + 7) & ~7
                    contents[key.hex()] = [value[cpu * slot:cpu * slot + kernel_map.value_size].hex()
                                           for cpu in range(self.ncpus)]
                else:
                    contents[key.hex()] = value.hex()
            out[definition.name] = contents
        return out

    # -- running -----------------------------------------------------------------------------------------
    def run_packet(self, frame: bytes, index: int = 0, ingress_ifindex: int = 1,
                   rx_queue_index: int = 0) -> PacketResult:
        """Run one frame through the program (BPF_PROG_TEST_RUN on CPU `cpu`); see the module docstring
        for what the result can and cannot tell."""
        self._require_open()
        if not isinstance(frame, (bytes, bytearray, memoryview)):
            raise KernelBackendError(f"packet {index}: a frame is bytes, got {type(frame).__name__}")
        frame = bytes(frame)
        if len(frame) > MAX_PACKET_SIZE:
            raise KernelBackendError(f"packet {index}: frame of {len(frame)} bytes is larger than the "
                                     f"{MAX_PACKET_SIZE} bytes an XDP buffer holds without fragments")
        if len(frame) < ETH_HLEN:
            raise KernelBackendError(f"packet {index}: frame of {len(frame)} bytes is shorter than an "
                                     f"Ethernet header ({ETH_HLEN}); the kernel's test run refuses it")
        for what, number in (("ingress_ifindex", ingress_ifindex), ("rx_queue_index", rx_queue_index)):
            if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 0xFFFF_FFFF:
                raise KernelBackendError(f"packet {index}: {what} must be a u32 (struct xdp_md), got {number!r}")
        context = kb.XdpMd.for_packet(len(frame), 0, ingress_ifindex, rx_queue_index).pack()
        previous = os.sched_getaffinity(0)
        try:
            os.sched_setaffinity(0, {self.cpu})
        except OSError as error:
            raise KernelBackendError(f"packet {index}: cannot pin the thread to CPU {self.cpu} "
                                     f"(allowed: {sorted(previous)}): {_errno_text(error)}") from None
        try:
            result = self.program.test_run(frame, ctx=context)
        except kb.BpfError as error:
            hint = ""
            if error.errno == errno.ENODEV:
                hint = f": ingress_ifindex {ingress_ifindex} names no network interface here (loopback is 1)"
            elif error.errno == errno.EINVAL:
                hint = (f": check ingress_ifindex {ingress_ifindex} and rx_queue_index {rx_queue_index} "
                        f"(the queue must exist on that interface; loopback has queue 0 only)")
            raise KernelBackendError(f"{self.obj.path}: section {self.program_def.section}: packet {index}: "
                                     f"the kernel's test run failed: {_errno_text(error)}{hint}") from None
        finally:
            os.sched_setaffinity(0, previous)
        context_out = kb.XdpMd.unpack(result.ctx_out) if result.ctx_out else None
        if context_out is None or not context_out.data <= context_out.data_end <= len(result.data_out):
            raise self._error(f"section {self.program_def.section}: packet {index}: the kernel returned a "
                              f"context {context_out} that does not fit its {len(result.data_out)}-byte "
                              f"data_out")
        data = result.data_out[context_out.data:context_out.data_end]  # without the metadata
        return PacketResult(index, result.retval, data, None, None, [], None)

    # -- lifetime ----------------------------------------------------------------------------------------
    def _require_open(self) -> None:
        if self.program is None:
            raise KernelBackendError(f"{self.obj.path}: the kernel session is closed")

    def close(self) -> None:
        """Release every program and map (the kernel frees them when their last reference goes)."""
        for kernel_program in self.programs.values():
            kernel_program.close()
        for kernel_map in self.maps:
            kernel_map.close()
        self.programs = {}
        self.maps = []
        self.map_by_name = {}
        self.program = None

    def __enter__(self) -> KernelSession:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:
        if hasattr(self, "maps"):
            self.close()


def _update_hint(kernel_map: kb.KernelMap, error_number: int, key: bytes, value: Any) -> str:
    """Why the kernel likely said no, where its errno alone does not say."""
    if error_number == errno.EPERM and kernel_map.flags & kb.BPF_F_RDONLY_PROG:
        return ": the map is read-only (a .rodata map is frozen before the programs load)"
    if error_number in (errno.EINVAL, errno.ENODEV) and kernel_map.map_type in (kb.BPF_MAP_TYPE_DEVMAP,
                                                                               kb.BPF_MAP_TYPE_DEVMAP_HASH):
        try:
            ifindex = int.from_bytes(bytes.fromhex(value)[:4], "little")
        except (TypeError, ValueError):
            return ""
        try:
            socket.if_indextoname(ifindex)
        except OSError:  # the kernel says only EINVAL: find out whether the interface is the cause
            return (f": ifindex {ifindex} names no network interface here; a device map holds ifindexes of "
                    f"existing interfaces (loopback is 1)")
    if error_number == errno.E2BIG:
        if kernel_map.map_type in _INDEXED_TYPES:
            return f": index {int.from_bytes(key, 'little')} is not below max_entries {kernel_map.max_entries}"
        return f": the map is full ({kernel_map.max_entries} entries)"
    return ""
