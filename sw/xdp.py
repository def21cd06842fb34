"""XDP on the golden VM: the context, the packet buffer, the helpers, and a loaded object running packets.

Ref: include/uapi/linux/bpf.h (struct xdp_md, enum xdp_action, the helper ids and their contracts in the
"bpf_*" helper documentation), net/core/filter.c (bpf_xdp_adjust_head/_meta/_tail, bpf_redirect,
bpf_redirect_map, bpf_csum_diff), net/bpf/test_run.c (the buffer BPF_PROG_TEST_RUN builds for XDP).

The packet buffer is modelled on the kernel's test run: a 4096-byte frame, `XDP_PACKET_HEADROOM` (256) bytes
before the data, and `SKB_SHARED_INFO_SIZE` bytes reserved at the end; the adjust helpers move the data,
data_end and data_meta offsets, never the bytes (but for the metadata, which moves with data, as in the
kernel). The packet region's readable size is data_end: a load past the end of the packet faults, as the
hardware's bounds check does.

What differs from the kernel on purpose, and is said where results are compared: `bpf_ktime_get_ns` and
`bpf_get_prandom_u32` (another clock, another generator: both injectable here, deterministic by default),
and the redirect target, which the kernel's test run does not report.
"""

from __future__ import annotations

import errno
import random
import re
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from . import isa, maps as maps_mod, memory
from .vm import M32, M64, TailCall, Vm, VmFault

# enum xdp_action
XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = 0, 1, 2, 3, 4
VERDICT_NAMES = {XDP_ABORTED: "XDP_ABORTED", XDP_DROP: "XDP_DROP", XDP_PASS: "XDP_PASS", XDP_TX: "XDP_TX",
                 XDP_REDIRECT: "XDP_REDIRECT"}

XDP_PACKET_HEADROOM = 256
FRAME_SIZE = 4096
SKB_SHARED_INFO_SIZE = 320      # SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on 64-bit kernels
XDP_FRAME_SIZE = 40             # sizeof(struct xdp_frame): the headroom adjust_head/meta may not enter
MAX_PACKET_SIZE = FRAME_SIZE - XDP_PACKET_HEADROOM - SKB_SHARED_INFO_SIZE
ETH_HLEN = 14
MAX_METADATA = 32
XDP_MD_SIZE = 24                # struct xdp_md: six u32 fields
BPF_F_BROADCAST = 1 << 3
BPF_F_EXCLUDE_INGRESS = 1 << 4
CSUM_DIFF_MAX = 512             # bpf_csum_diff's scratch buffer: 128 u32

# Helper ids (enum bpf_func_id).
HELPER_MAP_LOOKUP_ELEM = 1
HELPER_MAP_UPDATE_ELEM = 2
HELPER_MAP_DELETE_ELEM = 3
HELPER_KTIME_GET_NS = 5
HELPER_TRACE_PRINTK = 6
HELPER_GET_PRANDOM_U32 = 7
HELPER_GET_SMP_PROCESSOR_ID = 8
HELPER_TAIL_CALL = 12
HELPER_REDIRECT = 23
HELPER_CSUM_DIFF = 28
HELPER_XDP_ADJUST_HEAD = 44
HELPER_REDIRECT_MAP = 51
HELPER_XDP_ADJUST_META = 54
HELPER_XDP_ADJUST_TAIL = 65
HELPER_KTIME_GET_BOOT_NS = 125

HELPER_NAMES = {
    HELPER_MAP_LOOKUP_ELEM: "map_lookup_elem", HELPER_MAP_UPDATE_ELEM: "map_update_elem",
    HELPER_MAP_DELETE_ELEM: "map_delete_elem", HELPER_KTIME_GET_NS: "ktime_get_ns",
    HELPER_TRACE_PRINTK: "trace_printk", HELPER_GET_PRANDOM_U32: "get_prandom_u32",
    HELPER_GET_SMP_PROCESSOR_ID: "get_smp_processor_id", HELPER_TAIL_CALL: "tail_call",
    HELPER_REDIRECT: "redirect", HELPER_CSUM_DIFF: "csum_diff", HELPER_XDP_ADJUST_HEAD: "xdp_adjust_head",
    HELPER_REDIRECT_MAP: "redirect_map", HELPER_XDP_ADJUST_META: "xdp_adjust_meta",
    HELPER_XDP_ADJUST_TAIL: "xdp_adjust_tail", HELPER_KTIME_GET_BOOT_NS: "ktime_get_boot_ns",
}


class XdpError(Exception):
    """Input the XDP machine cannot take (a frame too large, a bad map-init entry), named."""


def verdict_name(action: int) -> str:
    """The name of an XDP action; a value the kernel does not know is treated as XDP_ABORTED."""
    return VERDICT_NAMES.get(action, "XDP_ABORTED")


def _neg(error: int) -> int:
    return (-error) & M64


@dataclass
class PacketResult:
    index: int
    action: int                    # r0 (low 32 bits) as the program returned it, or XDP_ABORTED on a fault
    data: bytes                    # the packet after the program: data .. data_end
    redirect: int | None = None    # ifindex of a successful redirect when the action is XDP_REDIRECT
    instructions: int | None = 0   # None where the backend cannot count them (the kernel)
    trace_output: list[str] = field(default_factory=list)
    fault: str | None = None       # why the machine aborted the program (a VM fault), if it did
    vm_fault: VmFault | None = field(default=None, repr=False, compare=False)   # that fault (instruction, kind)

    @property
    def verdict(self) -> str:
        return verdict_name(self.action)

    def to_json(self) -> dict:
        return {"index": self.index, "verdict": self.verdict, "data": self.data.hex(), "redirect": self.redirect}


class PacketBuffer:
    """One frame's buffer and the XDP pointers into it (offsets from the hard start)."""

    def __init__(self, frame: bytes):
        if len(frame) > MAX_PACKET_SIZE:
            raise XdpError(f"frame of {len(frame)} bytes is larger than the {MAX_PACKET_SIZE} bytes an XDP "
                           f"buffer of {FRAME_SIZE} bytes holds")
        self.buf = bytearray(FRAME_SIZE)
        self.data = XDP_PACKET_HEADROOM
        self.data_meta = self.data
        self.data_end = self.data + len(frame)
        self.buf[self.data:self.data_end] = frame
        self.region = memory.Region("packet", memory.TAG_PACKET, self.buf, size=self.data_end)

    def packet(self) -> bytes:
        return bytes(self.buf[self.data:self.data_end])

    def set_data_end(self, data_end: int) -> None:
        self.data_end = data_end
        self.region.size = data_end


class XdpSession:
    """A loaded object on the golden VM: its maps (instantiated like libbpf does), its programs, and the
    runs of packets through the chosen program. The maps outlive the packets, as in a NIC."""

    def __init__(self, obj, section: str | None = None, ncpus: int = 1, cpu: int = 0,
                 clock_ns: Callable[[], int] | None = None, prandom_seed: int = 0,
                 instruction_limit: int = 1_000_000):
        self.obj = obj
        self.program_def = obj.program(section)
        self.ncpus = ncpus
        maps = [self._create_map(definition) for definition in obj.maps]
        self._check_helpers(obj)
        self._set_up(self.program_def.insns, self.program_def.section, maps, cpu, clock_ns, prandom_seed,
                     instruction_limit, map_regions=True)
        for index, definition in enumerate(obj.maps):
            for slot, section_name in definition.initial_values.items():
                self._set_prog_array_entry(self.maps[index], slot, section_name)

    @classmethod
    def for_program(cls, program: isa.Program, maps: list, *, name: str = "xdp", ncpus: int = 1, cpu: int = 0,
                    clock_ns: Callable[[], int] | None = None, prandom_seed: int = 0,
                    instruction_limit: int = 1_000_000, map_regions: bool = True) -> "XdpSession":
        """A session over a decoded program and maps that already exist, without an object (a NIC's instruction
        memory and map slots: sw/soft_nic.py). The program's LDDW map_idx n names `maps[n]`; a program array's
        entries are objects with `insns` and `section`, as tail calls read them. With `map_regions` False the
        caller adds the map value regions (tag 0x80 + n) itself. No helper check is made before the first packet:
        an unknown helper faults when it is called."""
        session = cls.__new__(cls)
        session.obj = None
        session.program_def = None
        session.ncpus = ncpus
        session._set_up(program, name, list(maps), cpu, clock_ns, prandom_seed, instruction_limit, map_regions)
        return session

    def _set_up(self, program: isa.Program, name: str, maps: list, cpu: int, clock_ns: Callable[[], int] | None,
                prandom_seed: int, instruction_limit: int, map_regions: bool) -> None:
        self.cpu = cpu
        self.clock_ns = clock_ns or time.monotonic_ns
        self.random = random.Random(prandom_seed)
        self.maps: list[maps_mod.BpfMap] = maps
        self.map_by_name = {m.name: m for m in self.maps}
        self.vm = Vm(program, helpers=self._helpers(), maps=self.maps, instruction_limit=instruction_limit,
                     name=name)
        if map_regions:
            for index, bpf_map in enumerate(self.maps):
                self.vm.add_region(memory.Region(f"map {bpf_map.name}", memory.TAG_MAP_VALUE_BASE + index,
                                                 bpf_map.value_memory, writable=not bpf_map.readonly_for_program))
        self._buffer: PacketBuffer | None = None
        self._redirect: int | None = None
        self._trace: list[str] = []

    def _check_helpers(self, obj) -> None:
        """Refuse, before any packet, a program calling a helper this machine does not implement."""
        implemented = self._helpers()
        for program in obj.programs.values():
            for index, insn in program.insns.instructions():
                if (insn.opcode == isa.OP_CALL and insn.src == isa.BPF_PSEUDO_CALL_HELPER
                        and insn.imm not in implemented):
                    raise XdpError(f"{obj.path}: section {program.section}, instruction {index}: helper "
                                   f"{insn.imm} is not implemented by bpfnic (implemented: "
                                   f"{', '.join(f'{HELPER_NAMES[h]} ({h})' for h in sorted(implemented))})")
                if insn.opcode == isa.OP_CALL and insn.src == isa.BPF_PSEUDO_KFUNC_CALL:
                    raise XdpError(f"{obj.path}: section {program.section}, instruction {index}: calls of kernel "
                                   f"functions (kfunc {insn.imm}) are not supported")

    # -- maps ------------------------------------------------------------------------------------------
    def _create_map(self, definition) -> maps_mod.BpfMap:
        if definition.initial_data is not None:
            return maps_mod.create_global_data_map(definition.name, definition.initial_data, definition.readonly)
        return maps_mod.create_map(definition.map_type, definition.key_size, definition.value_size,
                                   definition.max_entries, definition.flags, name=definition.name,
                                   ncpus=self.ncpus)

    def _set_prog_array_entry(self, prog_array: maps_mod.BpfMap, slot: int, section_name: str) -> None:
        try:
            program = self.obj.program(section_name)
        except Exception as error:  # the loader's LoadError lists the sections there are
            raise XdpError(f"map {prog_array.name}: entry {slot}: {error}") from None
        result = prog_array.update(slot.to_bytes(4, "little"), program)
        if result:
            raise XdpError(f"map {prog_array.name}: entry {slot}: update failed with errno {-result}")

    def apply_map_init(self, init: dict) -> None:
        """Fill maps from the `maps` shape of the JSON output: {"maps": {name: {key hex: value hex}}};
        per-CPU values may be a list (one per CPU); a program array's values are section names."""
        entries = init.get("maps", init) if isinstance(init, dict) else None
        if not isinstance(entries, dict):
            raise XdpError("map-init: expected {\"maps\": {\"<map name>\": {\"<key hex>\": \"<value hex>\"}}}")
        for name, contents in entries.items():
            bpf_map = self.map_by_name.get(name)
            if bpf_map is None:
                raise XdpError(f"map-init: no map named {name!r} (maps: {', '.join(self.map_by_name) or 'none'})")
            if not isinstance(contents, dict):
                raise XdpError(f"map-init: map {name}: expected an object of key hex -> value hex")
            for key_hex, value in contents.items():
                key = _hex(key_hex, f"map-init: map {name}: key")
                if isinstance(bpf_map, maps_mod.ProgArrayMap):
                    if not isinstance(value, str):
                        raise XdpError(f"map-init: map {name}: key {key_hex}: a program array value is a section name")
                    self._set_prog_array_entry(bpf_map, int.from_bytes(key, "little"), value)
                    continue
                if isinstance(value, list):
                    data: Any = [_hex(v, f"map-init: map {name}: key {key_hex}: value") for v in value]
                else:
                    data = _hex(value, f"map-init: map {name}: key {key_hex}: value")
                try:
                    result = bpf_map.update(key, data)
                except maps_mod.MapError as error:
                    raise XdpError(f"map-init: {error}") from None
                if result:
                    raise XdpError(f"map-init: map {name}: key {key_hex}: update refused "
                                   f"({errno.errorcode.get(-result, -result)})")

    def dump_maps(self) -> dict[str, dict[str, Any]]:
        """Every map's contents in the JSON shape: key hex -> value hex (a list per CPU for per-CPU maps;
        a program array shows section names)."""
        out: dict[str, dict[str, Any]] = {}
        for bpf_map in self.maps:
            contents: dict[str, Any] = {}
            for key, value in bpf_map.items():
                if isinstance(bpf_map, maps_mod.ProgArrayMap):
                    contents[key.hex()] = value.section
                elif isinstance(value, list):
                    contents[key.hex()] = [v.hex() for v in value]
                else:
                    contents[key.hex()] = value.hex()
            out[bpf_map.name] = contents
        return out

    # -- running ---------------------------------------------------------------------------------------
    def run_packet(self, frame: bytes, index: int = 0, ingress_ifindex: int = 1,
                   rx_queue_index: int = 0) -> PacketResult:
        buffer = PacketBuffer(frame)
        self._buffer = buffer
        self._redirect = None
        self._trace = []
        self._ingress = (ingress_ifindex, rx_queue_index)
        self.vm.add_region(buffer.region)
        context = memory.Region("context", memory.TAG_CONTEXT, bytearray(XDP_MD_SIZE), writable=False,
                                load_hook=self._load_context)
        context_pointer = self.vm.add_region(context)
        try:
            result = self.vm.execute(context_pointer)
        except VmFault as fault:
            return PacketResult(index, XDP_ABORTED, buffer.packet(), None, fault.instructions or 0,
                                self._trace, str(fault), fault)
        action = result.r0 & M32
        redirect = self._redirect if action == XDP_REDIRECT else None
        return PacketResult(index, action, buffer.packet(), redirect, result.instructions, self._trace)

    def _load_context(self, offset: int, size: int, pc: int) -> int:
        buffer = self._buffer
        pointers = {0: buffer.data, 4: buffer.data_end, 8: buffer.data_meta}
        if offset in pointers and size == 4:
            return memory.make_pointer(memory.TAG_PACKET, pointers[offset])
        field_start = offset & ~3
        if field_start in pointers or size == 8 or offset + size > field_start + 4:
            raise VmFault(pc, f"context access at offset {offset} with width {size} is not allowed "
                              "(struct xdp_md: pointer fields by 4-byte loads only)")
        ingress_ifindex, rx_queue_index = self._ingress
        scalars = {12: ingress_ifindex, 16: rx_queue_index, 20: 0}
        value = scalars[field_start] >> (8 * (offset - field_start))
        return value & ((1 << (8 * size)) - 1)

    # -- helpers ---------------------------------------------------------------------------------------
    def _helpers(self) -> dict[int, Callable[..., int]]:
        return {
            HELPER_MAP_LOOKUP_ELEM: self._map_lookup_elem, HELPER_MAP_UPDATE_ELEM: self._map_update_elem,
            HELPER_MAP_DELETE_ELEM: self._map_delete_elem, HELPER_KTIME_GET_NS: self._ktime_get_ns,
            HELPER_KTIME_GET_BOOT_NS: self._ktime_get_ns, HELPER_TRACE_PRINTK: self._trace_printk,
            HELPER_GET_PRANDOM_U32: self._get_prandom_u32,
            HELPER_GET_SMP_PROCESSOR_ID: self._get_smp_processor_id, HELPER_TAIL_CALL: self._tail_call,
            HELPER_REDIRECT: self._redirect_ifindex, HELPER_CSUM_DIFF: self._csum_diff,
            HELPER_XDP_ADJUST_HEAD: self._adjust_head, HELPER_REDIRECT_MAP: self._redirect_map,
            HELPER_XDP_ADJUST_META: self._adjust_meta, HELPER_XDP_ADJUST_TAIL: self._adjust_tail,
        }

    def _map_arg(self, vm: Vm, pointer: int) -> tuple[int, maps_mod.BpfMap]:
        index = pointer & memory.OFFSET_MASK
        if pointer >> memory.REGION_SHIFT != memory.TAG_MAP_HANDLE or index >= len(self.maps):
            raise vm.fault(f"helper argument 0x{pointer:x} is not a map")
        return index, self.maps[index]

    def _map_lookup_elem(self, vm: Vm, map_pointer: int, key_pointer: int, *_: int) -> int:
        index, bpf_map = self._map_arg(vm, map_pointer)
        if isinstance(bpf_map, maps_mod.ProgArrayMap):
            raise vm.fault(f"map {bpf_map.name}: programs cannot look up a program array")
        offset = bpf_map.lookup_slot(vm.read(key_pointer, bpf_map.key_size), self.cpu)
        return 0 if offset is None else memory.map_value_pointer(index, offset)

    def _map_update_elem(self, vm: Vm, map_pointer: int, key_pointer: int, value_pointer: int, flags: int,
                         *_: int) -> int:
        _, bpf_map = self._map_arg(vm, map_pointer)
        key = vm.read(key_pointer, bpf_map.key_size)
        value = vm.read(value_pointer, bpf_map.value_size)
        return bpf_map.update(key, value, flags, cpu=self.cpu) & M64

    def _map_delete_elem(self, vm: Vm, map_pointer: int, key_pointer: int, *_: int) -> int:
        _, bpf_map = self._map_arg(vm, map_pointer)
        return bpf_map.delete(vm.read(key_pointer, bpf_map.key_size), cpu=self.cpu) & M64

    def _ktime_get_ns(self, vm: Vm, *_: int) -> int:
        return self.clock_ns() & M64

    def _get_prandom_u32(self, vm: Vm, *_: int) -> int:
        return self.random.getrandbits(32)

    def _get_smp_processor_id(self, vm: Vm, *_: int) -> int:
        return self.cpu

    def _trace_printk(self, vm: Vm, fmt_pointer: int, fmt_size: int, arg1: int, arg2: int, arg3: int) -> int:
        raw = vm.read(fmt_pointer, fmt_size)
        if b"\x00" not in raw:
            return _neg(errno.EINVAL)  # the kernel wants a NUL-terminated format
        text = _format_printk(raw.split(b"\x00", 1)[0].decode("latin-1"), [arg1, arg2, arg3], vm)
        if text is None:
            return _neg(errno.EINVAL)
        self._trace.append(text.rstrip("\n"))
        return len(text)

    def _tail_call(self, vm: Vm, context: int, map_pointer: int, slot: int, *_: int) -> int:
        _, bpf_map = self._map_arg(vm, map_pointer)
        if not isinstance(bpf_map, maps_mod.ProgArrayMap):
            raise vm.fault(f"bpf_tail_call: map {bpf_map.name} is not a program array")
        program = bpf_map.get_program(slot & M32)
        if program is None or vm.tail_calls >= 33:
            return _neg(errno.ENOENT)  # a failed tail call falls through to the next instruction
        raise TailCall(program.insns, program.section)

    def _redirect_ifindex(self, vm: Vm, ifindex: int, flags: int, *_: int) -> int:
        if flags:
            return XDP_ABORTED
        self._redirect = ifindex & M32
        return XDP_REDIRECT

    def _redirect_map(self, vm: Vm, map_pointer: int, key: int, flags: int, *_: int) -> int:
        _, bpf_map = self._map_arg(vm, map_pointer)
        if flags & (BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS):
            raise vm.fault("bpf_redirect_map: broadcast redirects are not supported")
        if not isinstance(bpf_map, (maps_mod.DevMap, maps_mod.DevMapHash)):
            raise vm.fault(f"bpf_redirect_map: map {bpf_map.name} is not a devmap")
        target = bpf_map.redirect_lookup(key & M32)
        if target is None:
            return flags & 3  # the low bits of flags are the action when the key has no target
        self._redirect = target[0]
        return XDP_REDIRECT

    def _csum_diff(self, vm: Vm, from_pointer: int, from_size: int, to_pointer: int, to_size: int,
                   seed: int) -> int:
        if (from_size | to_size) & 3 or from_size + to_size > CSUM_DIFF_MAX:
            return _neg(errno.EINVAL)
        words = []
        if from_size:
            words += [~w & M32 for w in struct.unpack(f"<{from_size // 4}I", vm.read(from_pointer, from_size))]
        if to_size:
            words += list(struct.unpack(f"<{to_size // 4}I", vm.read(to_pointer, to_size)))
        total = (seed & M32) + sum(words)
        while total >> 32:  # ones'-complement folding into 32 bits, as csum_partial does
            total = (total & M32) + (total >> 32)
        return total

    def _adjust_head(self, vm: Vm, context: int, delta: int, *_: int) -> int:
        buffer = self._buffer
        delta = _s32(delta)
        metalen = buffer.data - buffer.data_meta
        data = buffer.data + delta
        if data < XDP_FRAME_SIZE + metalen or data > buffer.data_end - ETH_HLEN:
            return _neg(errno.EINVAL)
        if metalen:
            meta = bytes(buffer.buf[buffer.data_meta:buffer.data])
            buffer.buf[buffer.data_meta + delta:buffer.data_meta + delta + metalen] = meta
        buffer.data_meta += delta
        buffer.data = data
        return 0

    def _adjust_meta(self, vm: Vm, context: int, delta: int, *_: int) -> int:
        buffer = self._buffer
        meta = buffer.data_meta + _s32(delta)
        if meta < XDP_FRAME_SIZE or meta > buffer.data:
            return _neg(errno.EINVAL)
        metalen = buffer.data - meta
        if metalen & 3 or metalen > MAX_METADATA:
            return _neg(errno.EACCES)
        buffer.data_meta = meta
        return 0

    def _adjust_tail(self, vm: Vm, context: int, delta: int, *_: int) -> int:
        buffer = self._buffer
        delta = _s32(delta)
        data_end = buffer.data_end + delta
        if data_end > FRAME_SIZE - SKB_SHARED_INFO_SIZE or data_end < buffer.data + ETH_HLEN:
            return _neg(errno.EINVAL)
        if delta > 0:
            buffer.buf[buffer.data_end:data_end] = bytes(delta)  # grown bytes are zero, as in the kernel
        buffer.set_data_end(data_end)
        return 0


def _s32(value: int) -> int:
    return isa.s32(value)


def _hex(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise XdpError(f"{what}: expected a hex string, got {text!r}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise XdpError(f"{what}: {text!r} is not hex") from None


_PRINTK_SPEC = re.compile(r"%([-+ 0#]*)(\d*)(ll|l|h|hh|z)?([diuxXcps%])")


def _format_printk(fmt: str, args: list[int], vm: Vm) -> str | None:
    """bpf_trace_printk's formatting: up to three arguments, %d %i %u %x %X %c %p %s with l/ll/h/hh."""
    out: list[str] = []
    position = 0
    used = 0
    for match in _PRINTK_SPEC.finditer(fmt):
        out.append(fmt[position:match.start()])
        position = match.end()
        flags, width, length, conversion = match.groups()
        if conversion == "%":
            out.append("%")
            continue
        if used >= len(args):
            return None
        value = args[used]
        used += 1
        bits = 64 if length in ("l", "ll", "z") or conversion == "p" else 32
        value &= (1 << bits) - 1
        if conversion in "di" and value >> (bits - 1):
            value -= 1 << bits
        if conversion == "s":
            try:
                text = vm.read(value, 64).split(b"\x00", 1)[0].decode("latin-1")
            except VmFault:
                text = "(fault)"
            out.append(text)
            continue
        spec = "%" + flags + width + {"d": "d", "i": "d", "u": "d", "x": "x", "X": "X", "c": "c", "p": "x"}[conversion]
        out.append(spec % (chr(value & 0xFF) if conversion == "c" else value))
    out.append(fmt[position:])
    return "".join(out)
