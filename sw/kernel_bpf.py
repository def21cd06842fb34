"""The Linux kernel as an oracle: a ctypes binding to the raw bpf() system call.

Implements the commands MAP_CREATE, MAP_{LOOKUP,UPDATE,DELETE}_ELEM, MAP_GET_NEXT_KEY,
MAP_FREEZE, PROG_LOAD and PROG_TEST_RUN of bpf(2), with the `union bpf_attr` member
layouts and constants of the kernel UAPI header `include/uapi/linux/bpf.h`. No libbpf,
no bcc: the project loads raw instructions (8-byte little-endian words) and maps itself,
and compares what the kernel's verifier and interpreter/JIT do with its own VM.

Each command gets its own ctypes structure, holding only the leading members we use;
the kernel accepts a shorter `bpf_attr` and treats the missing tail as zero.
Pointers travel as u64 addresses of ctypes buffers that the caller keeps alive
across the call.
"""

from __future__ import annotations

import ctypes
import errno as errnos
import functools
import os
import platform
import re
import struct
from dataclasses import dataclass
from typing import Iterator

# -- constants from include/uapi/linux/bpf.h -------------------------------------------

# enum bpf_cmd (the commands bound here)
(BPF_MAP_CREATE, BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM,
 BPF_MAP_GET_NEXT_KEY, BPF_PROG_LOAD) = range(6)
BPF_PROG_TEST_RUN = 10
BPF_MAP_FREEZE = 22
_COMMAND_NAMES = {globals()[name]: name for name in (
    "BPF_MAP_CREATE", "BPF_MAP_LOOKUP_ELEM", "BPF_MAP_UPDATE_ELEM", "BPF_MAP_DELETE_ELEM",
    "BPF_MAP_GET_NEXT_KEY", "BPF_PROG_LOAD", "BPF_PROG_TEST_RUN", "BPF_MAP_FREEZE")}

# enum bpf_prog_type
(BPF_PROG_TYPE_SOCKET_FILTER, BPF_PROG_TYPE_KPROBE, BPF_PROG_TYPE_SCHED_CLS,
 BPF_PROG_TYPE_SCHED_ACT, BPF_PROG_TYPE_TRACEPOINT, BPF_PROG_TYPE_XDP) = range(1, 7)

# enum bpf_map_type
BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PROG_ARRAY = 3
BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_HASH = 9
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_LPM_TRIE = 11
BPF_MAP_TYPE_ARRAY_OF_MAPS = 12
BPF_MAP_TYPE_HASH_OF_MAPS = 13
BPF_MAP_TYPE_DEVMAP = 14
BPF_MAP_TYPE_CPUMAP = 16
BPF_MAP_TYPE_XSKMAP = 17
BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE = 21
BPF_MAP_TYPE_QUEUE = 22
BPF_MAP_TYPE_STACK = 23
BPF_MAP_TYPE_DEVMAP_HASH = 25
BPF_MAP_TYPE_RINGBUF = 27
BPF_MAP_TYPE_BLOOM_FILTER = 30

# Maps whose syscall-side value is one slot per possible CPU, each rounded up to 8 bytes.
PERCPU_MAP_TYPES = frozenset({BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY,
                              BPF_MAP_TYPE_LRU_PERCPU_HASH,
                              BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE})

# enum bpf_attach_type (only the XDP ones; expected_attach_type of BPF_PROG_LOAD)
BPF_XDP_DEVMAP = 33
BPF_XDP_CPUMAP = 35
BPF_XDP = 37

# BPF_MAP_UPDATE_ELEM flags
BPF_ANY = 0        # create or update
BPF_NOEXIST = 1    # create only: EEXIST if the key is present
BPF_EXIST = 2      # update only: ENOENT if the key is absent

# BPF_MAP_CREATE map_flags
BPF_F_NO_PREALLOC = 1 << 0   # required by LPM_TRIE; optional for hash maps
BPF_F_NO_COMMON_LRU = 1 << 1
BPF_F_NUMA_NODE = 1 << 2
BPF_F_RDONLY = 1 << 3
BPF_F_WRONLY = 1 << 4
BPF_F_ZERO_SEED = 1 << 6
BPF_F_RDONLY_PROG = 1 << 7   # programs may only read (with BPF_MAP_FREEZE: a .rodata map)
BPF_F_WRONLY_PROG = 1 << 8
BPF_F_MMAPABLE = 1 << 10

# src_reg of a LDDW (BPF_LD | BPF_IMM | BPF_DW) that refers to a map
BPF_PSEUDO_MAP_FD = 1         # imm = map fd
BPF_PSEUDO_MAP_VALUE = 2      # imm = map fd, next imm = offset into value 0
BPF_PSEUDO_MAP_IDX = 5        # imm = index into fd_array
BPF_PSEUDO_MAP_IDX_VALUE = 6  # imm = index into fd_array, next imm = offset

# enum xdp_action
XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)

BPF_OBJ_NAME_LEN = 16
INSN_SIZE = 8

# Room past the input for what an XDP program may add: bpf_xdp_adjust_head can grow the
# front by the 256-byte XDP_PACKET_HEADROOM, bpf_xdp_adjust_tail the back within a page.
_XDP_GROWTH_ROOM = 256 + 4096

# -- the syscall ----------------------------------------------------------------------

_SYSCALL_NUMBERS = {"x86_64": 321, "amd64": 321, "aarch64": 280, "arm64": 280}


class BpfError(OSError):
    """A bpf() command failed.

    `.command` is the command's name (e.g. "BPF_PROG_LOAD"), `.errno` the error number,
    `.log` the verifier log ("" when none). str() is one line, then the log if any.
    """

    def __init__(self, command: str, error_number: int, log: str = "", detail: str = ""):
        super().__init__(error_number, os.strerror(error_number))
        self.command = command
        self.log = log
        self.detail = detail

    def __str__(self) -> str:
        code = errnos.errorcode.get(self.errno, str(self.errno))
        line = f"{self.command} failed: {self.strerror} ({code})"
        if self.detail:
            line += f": {self.detail}"
        return line + ("\n" + self.log.rstrip("\n") if self.log else "")


_syscall = None


def _bpf(command: int, attr: ctypes.Structure) -> int:
    """Run bpf(command, &attr, sizeof(attr)); return its result or raise BpfError."""
    global _syscall
    name = _COMMAND_NAMES[command]
    number = _SYSCALL_NUMBERS.get(platform.machine().lower())
    if number is None:
        raise BpfError(name, errnos.ENOSYS,
                       detail=f"no bpf() syscall number known for machine {platform.machine()!r}")
    if _syscall is None:
        function = ctypes.CDLL(None, use_errno=True).syscall
        function.restype = ctypes.c_long
        function.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint]
        _syscall = function
    result = _syscall(number, command, ctypes.addressof(attr), ctypes.sizeof(attr))
    if result < 0:
        raise BpfError(name, ctypes.get_errno())
    return result


def _address(buffer) -> int:
    return ctypes.addressof(buffer) if buffer is not None else 0


def _buffer(size: int, content: bytes = b""):
    """A writable C buffer of `size` bytes (at least 1) starting with `content`."""
    buffer = ctypes.create_string_buffer(max(size, 1))
    ctypes.memmove(buffer, content, len(content))
    return buffer


def _object_name(kind: str, name: str) -> bytes:
    # The kernel takes [A-Za-z0-9_.] and at most 15 characters (plus the NUL).
    if len(name) >= BPF_OBJ_NAME_LEN or not re.fullmatch(r"[A-Za-z0-9_.]*", name):
        raise ValueError(f"{kind} name {name!r}: the kernel accepts at most "
                         f"{BPF_OBJ_NAME_LEN - 1} characters from [A-Za-z0-9_.]")
    return name.encode()


class _MapCreateAttr(ctypes.Structure):
    _fields_ = [("map_type", ctypes.c_uint32), ("key_size", ctypes.c_uint32),
                ("value_size", ctypes.c_uint32), ("max_entries", ctypes.c_uint32),
                ("map_flags", ctypes.c_uint32), ("inner_map_fd", ctypes.c_uint32),
                ("numa_node", ctypes.c_uint32), ("map_name", ctypes.c_char * BPF_OBJ_NAME_LEN),
                ("map_ifindex", ctypes.c_uint32), ("btf_fd", ctypes.c_uint32),
                ("btf_key_type_id", ctypes.c_uint32), ("btf_value_type_id", ctypes.c_uint32),
                ("btf_vmlinux_value_type_id", ctypes.c_uint32), ("map_extra", ctypes.c_uint64)]


class _MapElemAttr(ctypes.Structure):
    # `value` doubles as `next_key` (a union in the header); BPF_MAP_FREEZE uses map_fd only.
    _fields_ = [("map_fd", ctypes.c_uint32), ("key", ctypes.c_uint64),
                ("value", ctypes.c_uint64), ("flags", ctypes.c_uint64)]


class _ProgLoadAttr(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
                ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
                ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * BPF_OBJ_NAME_LEN),
                ("prog_ifindex", ctypes.c_uint32), ("expected_attach_type", ctypes.c_uint32),
                ("prog_btf_fd", ctypes.c_uint32), ("func_info_rec_size", ctypes.c_uint32),
                ("func_info", ctypes.c_uint64), ("func_info_cnt", ctypes.c_uint32),
                ("line_info_rec_size", ctypes.c_uint32), ("line_info", ctypes.c_uint64),
                ("line_info_cnt", ctypes.c_uint32), ("attach_btf_id", ctypes.c_uint32),
                ("attach_prog_fd", ctypes.c_uint32), ("core_relo_cnt", ctypes.c_uint32),
                ("fd_array", ctypes.c_uint64), ("core_relos", ctypes.c_uint64),
                ("core_relo_rec_size", ctypes.c_uint32),
                ("log_true_size", ctypes.c_uint32)]  # output since Linux 6.4; stays 0 before


class _TestRunAttr(ctypes.Structure):
    _fields_ = [("prog_fd", ctypes.c_uint32), ("retval", ctypes.c_uint32),
                ("data_size_in", ctypes.c_uint32), ("data_size_out", ctypes.c_uint32),
                ("data_in", ctypes.c_uint64), ("data_out", ctypes.c_uint64),
                ("repeat", ctypes.c_uint32), ("duration", ctypes.c_uint32),
                ("ctx_size_in", ctypes.c_uint32), ("ctx_size_out", ctypes.c_uint32),
                ("ctx_in", ctypes.c_uint64), ("ctx_out", ctypes.c_uint64),
                ("flags", ctypes.c_uint32), ("cpu", ctypes.c_uint32),
                ("batch_size", ctypes.c_uint32)]


# -- environment ----------------------------------------------------------------------

@functools.cache
def possible_cpus() -> int:
    """Number of possible CPUs: per-CPU map values hold one slot for each."""
    path = "/sys/devices/system/cpu/possible"
    try:
        with open(path) as file:
            text = file.read().strip()
        count = 0
        for part in text.split(","):  # e.g. "0-3" or "0,2-5"
            first, _, last = part.partition("-")
            count += int(last or first) - int(first) + 1
    except (OSError, ValueError) as error:
        raise RuntimeError(f"{path}: cannot read the possible CPU list ({error})") from None
    return count


@functools.cache
def bpf_unavailable_reason() -> str | None:
    """None when bpf() can load and run an XDP program here, else a sentence saying why not.

    Loads `r0 = XDP_PASS; exit` and test-runs it once; the answer is cached.
    """
    mov_r0_pass = bytes([0xB7, 0x00, 0x00, 0x00]) + XDP_PASS.to_bytes(4, "little")
    exit_insn = bytes([0x95]) + bytes(7)
    try:
        with KernelProgram.load(BPF_PROG_TYPE_XDP, mov_r0_pass + exit_insn, log_level=0) as prog:
            result = prog.test_run(bytes(64))
    except BpfError as error:
        code = errnos.errorcode.get(error.errno, str(error.errno))
        if error.errno in (errnos.EPERM, errnos.EACCES):
            who = ("not root" if os.geteuid() != 0
                   else "root, but without CAP_BPF/CAP_SYS_ADMIN or under a seccomp/LSM policy")
            return f"bpf() refused: {who} ({code}, in {error.command})"
        if error.errno == errnos.ENOSYS:
            return f"bpf() is not available: {error.detail or 'kernel without CONFIG_BPF_SYSCALL'}"
        return f"bpf() does not work here: {str(error).splitlines()[0]}"
    except OSError as error:  # libc not loadable, fd exhaustion...
        return f"bpf() cannot be called: {error}"
    if result.retval != XDP_PASS:
        return f"bpf() probe program returned {result.retval}, not XDP_PASS ({XDP_PASS})"
    return None


# -- maps -----------------------------------------------------------------------------

class _KernelObject:
    """Owns a bpf file descriptor: close() or leave the `with` block to release it."""

    fd = -1
    name = ""
    kind = "object"   # for messages: "map", "program"

    def _label(self) -> str:
        return f"{self.kind} {self.name or '(unnamed)'} (fd {self.fd})"

    def _require_open(self) -> None:
        if self.fd < 0:
            raise ValueError(f"{self.kind} {self.name or '(unnamed)'}: used after close()")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


class KernelMap(_KernelObject):
    """A kernel BPF map (a context manager)."""

    kind = "map"

    def __init__(self, fd: int, map_type: int, key_size: int, value_size: int,
                 max_entries: int, flags: int = 0, name: str = ""):
        self.fd = fd
        self.map_type = map_type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.flags = flags
        self.name = name

    @classmethod
    def create(cls, map_type: int, key_size: int, value_size: int, max_entries: int,
               flags: int = 0, name: str = "", inner_map_fd: int = 0,
               map_extra: int = 0) -> KernelMap:
        """BPF_MAP_CREATE. `inner_map_fd` is the template for ARRAY_OF_MAPS/HASH_OF_MAPS;
        `map_extra` is the number of hash functions of a BLOOM_FILTER."""
        attr = _MapCreateAttr(map_type=map_type, key_size=key_size, value_size=value_size,
                              max_entries=max_entries, map_flags=flags,
                              inner_map_fd=inner_map_fd, map_name=_object_name("map", name),
                              map_extra=map_extra)
        try:
            fd = _bpf(BPF_MAP_CREATE, attr)
        except BpfError as error:
            error.detail = (f"map {name or '(unnamed)'} type {map_type}, key {key_size} B, "
                            f"value {value_size} B, {max_entries} entries, flags {flags:#x}")
            raise
        return cls(fd, map_type, key_size, value_size, max_entries, flags, name)

    @property
    def is_percpu(self) -> bool:
        return self.map_type in PERCPU_MAP_TYPES

    @property
    def value_buffer_size(self) -> int:
        """Bytes of a value as the syscall sees it (all CPU slots for per-CPU maps)."""
        if self.is_percpu:
            return possible_cpus() * _round_up_8(self.value_size)
        return self.value_size

    def _key_buffer(self, key: bytes):
        if len(key) != self.key_size:
            raise ValueError(f"{self._label()}: key must be {self.key_size} bytes, "
                             f"got {len(key)}")
        return _buffer(self.key_size, key)

    def _elem(self, command: int, key_buffer, value_buffer=None, flags: int = 0) -> int:
        self._require_open()
        attr = _MapElemAttr(map_fd=self.fd, key=_address(key_buffer),
                            value=_address(value_buffer), flags=flags)
        return _bpf(command, attr)

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        """BPF_MAP_UPDATE_ELEM. Per-CPU maps take the full value_buffer_size bytes.

        Raises BpfError: EEXIST (BPF_NOEXIST, key present), ENOENT (BPF_EXIST, key
        absent), E2BIG (map full), EINVAL (e.g. array index out of range).
        """
        if len(value) != self.value_buffer_size:
            raise ValueError(f"{self._label()}: value must be {self.value_buffer_size} bytes, "
                             f"got {len(value)}")
        self._elem(BPF_MAP_UPDATE_ELEM, self._key_buffer(key),
                   _buffer(len(value), value), flags)

    def update_percpu(self, key: bytes, values: list[bytes] | bytes,
                      flags: int = BPF_ANY) -> None:
        """Per-CPU update from one value_size value per possible CPU (or one for all)."""
        if isinstance(values, (bytes, bytearray)):
            values = [bytes(values)] * possible_cpus()
        if len(values) != possible_cpus() or any(len(v) != self.value_size for v in values):
            raise ValueError(f"{self._label()}: need {possible_cpus()} values of "
                             f"{self.value_size} bytes")
        slot = _round_up_8(self.value_size)
        self.update(key, b"".join(v.ljust(slot, b"\0") for v in values), flags)

    def lookup(self, key: bytes) -> bytes | None:
        """BPF_MAP_LOOKUP_ELEM: the value, or None if absent. Per-CPU maps return all
        possible_cpus() slots of round_up(value_size, 8) bytes each."""
        value_buffer = _buffer(self.value_buffer_size)
        try:
            self._elem(BPF_MAP_LOOKUP_ELEM, self._key_buffer(key), value_buffer)
        except BpfError as error:
            if error.errno == errnos.ENOENT:
                return None
            raise
        return value_buffer.raw[:self.value_buffer_size]

    def lookup_percpu(self, key: bytes) -> list[bytes] | None:
        """The value of each possible CPU, each value_size bytes, or None if absent."""
        if not self.is_percpu:
            raise ValueError(f"{self._label()}: map type {self.map_type} is not per-CPU")
        raw = self.lookup(key)
        if raw is None:
            return None
        slot = _round_up_8(self.value_size)
        return [raw[cpu * slot:cpu * slot + self.value_size] for cpu in range(possible_cpus())]

    def delete(self, key: bytes) -> bool:
        """BPF_MAP_DELETE_ELEM: True if deleted, False if the key was absent.
        Arrays cannot delete (BpfError EINVAL)."""
        try:
            self._elem(BPF_MAP_DELETE_ELEM, self._key_buffer(key))
        except BpfError as error:
            if error.errno == errnos.ENOENT:
                return False
            raise
        return True

    def keys(self) -> Iterator[bytes]:
        """All keys, by BPF_MAP_GET_NEXT_KEY from a NULL key (in the map's own order)."""
        key_buffer = None
        next_buffer = _buffer(self.key_size)
        while True:
            try:
                self._elem(BPF_MAP_GET_NEXT_KEY, key_buffer, next_buffer)
            except BpfError as error:
                if error.errno == errnos.ENOENT:
                    return
                raise
            key = next_buffer.raw[:self.key_size]
            yield key
            key_buffer = _buffer(self.key_size, key)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:  # deleted meanwhile
                yield key, value

    def freeze(self) -> None:
        """BPF_MAP_FREEZE: no more writes from user space (a .rodata-style map)."""
        self._require_open()
        _bpf(BPF_MAP_FREEZE, _MapElemAttr(map_fd=self.fd))

    def __repr__(self) -> str:
        return (f"KernelMap(fd={self.fd}, type={self.map_type}, key_size={self.key_size}, "
                f"value_size={self.value_size}, max_entries={self.max_entries})")


def _round_up_8(size: int) -> int:
    return (size + 7) & ~7


# -- programs -------------------------------------------------------------------------

@dataclass
class XdpMd:
    """struct xdp_md as BPF_PROG_TEST_RUN takes it for XDP (offsets into data_in).

    The kernel requires: data_meta == 0; data = length of the metadata placed at the
    start of data_in (a multiple of 4, at most 32 on older kernels); data_end ==
    len(data_in) (newer kernels accept less and put the rest in fragments); the packet
    after the metadata at least 14 bytes (ETH_HLEN); egress_ifindex == 0; ingress_ifindex
    0 or an existing interface (loopback is 1); rx_queue_index 0 unless ingress_ifindex
    names a device with that queue. On the way out data/data_end are the offsets within
    data_out, which then starts with the metadata.
    """

    data: int = 0
    data_end: int = 0
    data_meta: int = 0
    ingress_ifindex: int = 0
    rx_queue_index: int = 0
    egress_ifindex: int = 0
    _FORMAT = "<6I"

    def pack(self) -> bytes:
        return struct.pack(self._FORMAT, self.data, self.data_end, self.data_meta,
                           self.ingress_ifindex, self.rx_queue_index, self.egress_ifindex)

    @classmethod
    def unpack(cls, raw: bytes) -> XdpMd:
        return cls(*struct.unpack(cls._FORMAT, raw.ljust(24, b"\0")[:24]))

    @classmethod
    def for_packet(cls, packet_len: int, meta_len: int = 0, ingress_ifindex: int = 0,
                   rx_queue_index: int = 0) -> XdpMd:
        """The context of a data_in made of meta_len bytes of metadata then the packet."""
        return cls(data=meta_len, data_end=meta_len + packet_len,
                   ingress_ifindex=ingress_ifindex, rx_queue_index=rx_queue_index)


@dataclass
class TestRunResult:
    """What BPF_PROG_TEST_RUN reports."""

    __test__ = False  # not a pytest test class, despite the name
    retval: int                 # r0 at exit, as u32 (an XDP action for XDP programs)
    data_out: bytes             # the packet afterwards (for XDP: metadata, then packet)
    ctx_out: bytes | None       # the context afterwards, when one was passed in
    duration_ns: int            # mean time of one run, as the kernel measured it


class KernelProgram(_KernelObject):
    """A program accepted by the kernel verifier (a context manager)."""

    kind = "program"

    def __init__(self, fd: int, prog_type: int, log: str = "", name: str = ""):
        self.fd = fd
        self.prog_type = prog_type
        self.log = log
        self.name = name

    @classmethod
    def load(cls, prog_type: int, insns: bytes, license: str = "GPL", name: str = "",
             log_level: int = 1, log_size: int = 1 << 20, fd_array: list[int] | None = None,
             expected_attach_type: int = 0, kern_version: int = 0) -> KernelProgram:
        """BPF_PROG_LOAD of raw instructions.

        `fd_array` gives the map fds that LDDW instructions with src_reg
        BPF_PSEUDO_MAP_IDX / BPF_PSEUDO_MAP_IDX_VALUE name by index (imm).
        Raises BpfError with the verifier log on refusal (with log_level=0 the load is
        retried at level 1 to obtain it); on success `.log` holds the log text, if any.
        A log larger than log_size is retried once with the size the kernel reports
        (log_true_size, Linux >= 6.4; older kernels raise ENOSPC).
        """
        if len(insns) == 0 or len(insns) % INSN_SIZE:
            raise ValueError(f"program {name or '(unnamed)'}: instructions must be a "
                             f"non-empty multiple of {INSN_SIZE} bytes, got {len(insns)}")
        insn_buffer = _buffer(len(insns), insns)
        license_buffer = ctypes.create_string_buffer(license.encode())
        fd_buffer = (ctypes.c_int * len(fd_array))(*fd_array) if fd_array else None
        attr = _ProgLoadAttr(prog_type=prog_type, insn_cnt=len(insns) // INSN_SIZE,
                             insns=_address(insn_buffer), license=_address(license_buffer),
                             kern_version=kern_version, prog_name=_object_name("program", name),
                             expected_attach_type=expected_attach_type,
                             fd_array=_address(fd_buffer))

        def attempt(level: int, size: int) -> tuple[int, str, int]:
            """(fd or -errno, log text, log size the kernel needed)."""
            log_buffer = _buffer(size) if level else None
            attr.log_level, attr.log_size = level, (size if level else 0)
            attr.log_buf, attr.log_true_size = _address(log_buffer), 0
            try:
                fd = _bpf(BPF_PROG_LOAD, attr)
            except BpfError as error:
                fd = -error.errno
            log = log_buffer.value.decode(errors="replace") if log_buffer else ""
            return fd, log, attr.log_true_size

        fd, log, needed = attempt(log_level, log_size)
        if fd == -errnos.ENOSPC and log_level and needed > log_size:
            log_size = needed
            fd, log, needed = attempt(log_level, log_size)
        elif fd < 0 and not log_level and fd != -errnos.EPERM:
            refusal = fd
            fd, log, needed = attempt(1, log_size)
            # Keep the first reason even if this log overflowed: with Linux >= 6.4 the
            # buffer holds the log's tail, where the verifier's complaint is.
            fd = refusal if fd < 0 else fd
        if fd < 0:
            detail = f"program {name or '(unnamed)'} type {prog_type}, " \
                     f"{len(insns) // INSN_SIZE} instructions"
            if fd == -errnos.ENOSPC and log_level:
                detail += f"; the verifier log did not fit in log_size={log_size}"
            elif needed > log_size:
                detail += f"; log cut to log_size={log_size} of {needed} bytes"
            raise BpfError("BPF_PROG_LOAD", -fd, log, detail)
        return cls(fd, prog_type, log, name)

    def test_run(self, data: bytes, ctx: bytes | None = None, repeat: int = 1,
                 data_size_out: int | None = None) -> TestRunResult:
        """BPF_PROG_TEST_RUN: run the program `repeat` times on a copy of `data`.

        For XDP, `ctx` is a packed struct xdp_md (see XdpMd for what the kernel accepts);
        None or b"" passes no context. `data_size_out` bounds data_out (0: no data_out);
        by default there is room for the packet to grow.
        """
        self._require_open()
        if repeat < 1:
            raise ValueError(f"{self._label()}: test_run repeat must be at least 1, "
                             f"got {repeat}")
        out_size = len(data) + _XDP_GROWTH_ROOM if data_size_out is None else data_size_out
        if out_size < 0:
            raise ValueError(f"{self._label()}: test_run data_size_out must be >= 0, "
                             f"got {out_size}")
        # The kernel reads data_size_out == 0 as "unbounded": never pair it with a buffer.
        data_in, data_out = _buffer(len(data), data), _buffer(out_size) if out_size else None
        ctx_size = len(ctx) if ctx else 0
        ctx_in, ctx_out = (_buffer(ctx_size, ctx), _buffer(ctx_size)) if ctx else (None, None)
        attr = _TestRunAttr(prog_fd=self.fd, data_size_in=len(data), data_size_out=out_size,
                            data_in=_address(data_in), data_out=_address(data_out),
                            repeat=repeat, ctx_size_in=ctx_size, ctx_size_out=ctx_size,
                            ctx_in=_address(ctx_in), ctx_out=_address(ctx_out))
        try:
            _bpf(BPF_PROG_TEST_RUN, attr)
        except BpfError as error:
            error.detail = f"{len(data)}-byte packet"
            if self.prog_type == BPF_PROG_TYPE_XDP and len(data) < 14 \
                    and error.errno == errnos.EINVAL:
                error.detail += ": XDP test runs need at least an Ethernet header (14 bytes)"
            elif error.errno == errnos.ENOSPC:
                error.detail += (f": output of {attr.data_size_out} bytes does not fit "
                                 f"data_size_out={out_size}")
            elif error.errno == errnos.EINVAL and ctx \
                    and self.prog_type == BPF_PROG_TYPE_XDP:
                error.detail += f", ctx {XdpMd.unpack(ctx)}: check the kernel's rules on ctx"
            raise
        return TestRunResult(
            retval=attr.retval,
            data_out=data_out.raw[:attr.data_size_out] if data_out is not None else b"",
            ctx_out=ctx_out.raw[:attr.ctx_size_out] if ctx_out is not None else None,
            duration_ns=attr.duration)

    def __repr__(self) -> str:
        return f"KernelProgram(fd={self.fd}, type={self.prog_type}, name={self.name!r})"
