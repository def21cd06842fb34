"""The golden eBPF VM: the oracle the RTL core is checked against, itself checked against the Linux kernel.

Semantics follow RFC 9669 §4-§5 and the kernel's interpreter (kernel/bpf/core.c):
- 32-bit ALU results are zero-extended into the 64-bit register; 64-bit immediates are sign-extended.
- Shift counts are masked to the operand width (the kernel's interpreter does the same).
- Division by zero gives 0; modulo by zero leaves the dividend (32-bit: its low half, zero-extended).
- Signed division and modulo truncate toward zero; INT_MIN / -1 = INT_MIN and INT_MIN % -1 = 0.
- Atomics with FETCH return the old value in src (CMPXCHG: always in r0), zero-extended for 32 bits.
- Each call frame has its own 512-byte stack at r10; a local call saves r6-r9 and r10 for the caller.
Every memory access is checked against the region its pointer names (sw/memory.py); a bad access ends the
run with a VmFault that names the instruction, never with a Python exception.

Speed: the program is translated once into Python functions, one per basic block (straight-line code with
register numbers and immediates as constants), and run by a small dispatch loop. With a trace hook each
instruction is its own block and the hook sees every retired instruction (pc, instruction, registers).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable, Mapping

from . import isa
from . import memory
from .isa import InsnKind

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
SIGN64 = 1 << 63
SIGN32 = 1 << 31

DEFAULT_INSTRUCTION_LIMIT = 10_000_000
MAX_TAIL_CALLS = 33  # the kernel's MAX_TAIL_CALL_CNT

Helper = Callable[..., int]
TraceHook = Callable[[int, isa.Insn, list], None]


class VmFault(Exception):
    """The program did something the machine refuses: a bad memory access, an unknown helper, too deep a
    call chain, the instruction limit. Names the instruction and the reason."""

    def __init__(self, pc: int, reason: str, insn: isa.Insn | None = None, instructions: int | None = None):
        super().__init__(pc, reason)
        self.pc = pc
        self.reason = reason
        self.insn = insn
        self.instructions = instructions

    def __str__(self) -> str:
        text = _describe(self.insn) if self.insn is not None else None
        return f"instruction {self.pc}" + (f" ({text})" if text else "") + f": {self.reason}"


def _describe(insn: isa.Insn) -> str:
    try:
        from .disasm import format_insn  # the disassembler is optional for the VM itself
    except ImportError:
        return isa.OPCODES[insn.opcode].mnemonic if insn.opcode in isa.OPCODES else f"opcode 0x{insn.opcode:02x}"
    try:
        return format_insn(insn)
    except Exception:  # a message must never fail because of its decoration
        return isa.OPCODES[insn.opcode].mnemonic


class ProgramExit(Exception):
    """Raised by a helper to end the program at once with r0 = value (the conformance suite's helper 5)."""

    def __init__(self, value: int):
        super().__init__(value)
        self.value = value & M64


class TailCall(Exception):
    """Raised by the tail-call helper: continue with `program` from its first instruction, same frame."""

    def __init__(self, program: isa.Program, name: str = ""):
        super().__init__(name)
        self.program = program
        self.name = name


class _Finished(Exception):
    pass


@dataclass
class RunResult:
    r0: int
    instructions: int
    counts_by_class: dict[str, int] = field(default_factory=dict)
    tail_calls: int = 0

    @property
    def r0_signed(self) -> int:
        return self.r0 - (1 << 64) if self.r0 & SIGN64 else self.r0


# -- helpers of the generated code ---------------------------------------------------------------------

def _sdiv(a: int, b: int, bits: int) -> int:
    mask = (1 << bits) - 1
    sign = 1 << (bits - 1)
    a &= mask
    b &= mask
    if b == 0:
        return 0
    sa = a - (1 << bits) if a & sign else a
    sb = b - (1 << bits) if b & sign else b
    q = abs(sa) // abs(sb)
    if (sa < 0) != (sb < 0):
        q = -q
    return q & mask  # INT_MIN / -1 wraps to INT_MIN


def _smod(a: int, b: int, bits: int) -> int:
    mask = (1 << bits) - 1
    sign = 1 << (bits - 1)
    a &= mask
    b &= mask
    if b == 0:
        return a
    sa = a - (1 << bits) if a & sign else a
    sb = b - (1 << bits) if b & sign else b
    r = abs(sa) % abs(sb)
    return (-r if sa < 0 else r) & mask  # the remainder takes the dividend's sign


def _bswap(value: int, bits: int) -> int:
    return int.from_bytes((value & ((1 << bits) - 1)).to_bytes(bits // 8, "little"), "big")


_STRUCTS = {
    "U1": struct.Struct("<B"), "U2": struct.Struct("<H"), "U4": struct.Struct("<I"), "U8": struct.Struct("<Q"),
    "S1": struct.Struct("<b"), "S2": struct.Struct("<h"), "S4": struct.Struct("<i"),
}


class Vm:
    """Runs one eBPF program (an `isa.Program`) with helpers and memory regions.

    `helpers` maps helper ids to callables `helper(vm, r1, r2, r3, r4, r5) -> r0`. A helper may raise
    `VmFault` (through `vm.fault`), `ProgramExit` or `TailCall`. `maps` is the list the program's
    LDDW map_idx/map_fd references index (any objects; helpers interpret them)."""

    def __init__(self, program: isa.Program, helpers: Mapping[int, Helper] | None = None,
                 instruction_limit: int = DEFAULT_INSTRUCTION_LIMIT, trace: TraceHook | None = None,
                 maps: list | None = None, name: str = ""):
        self.program = program
        self.name = name
        self.helpers: dict[int, Helper] = dict(helpers or {})
        self.instruction_limit = instruction_limit
        self.trace = trace
        self.maps = list(maps or [])
        self.regions: dict[int, memory.Region] = {}
        self.stack = memory.Region("stack", memory.TAG_STACK, bytearray(memory.STACK_REGION_SIZE))
        self.regions[memory.TAG_STACK] = self.stack
        self.packet: memory.Region | None = None   # for legacy ABS/IND loads; bare programs use INPUT
        self.tail_calls = 0
        self._compiled: dict[int, _Compiled] = {}
        self._frames: list[tuple] = []
        self._current: _Compiled | None = None

    # -- regions ---------------------------------------------------------------------------------------
    def add_region(self, region: memory.Region) -> int:
        self.regions[region.tag] = region
        return memory.make_pointer(region.tag, 0)

    def remove_region(self, tag: int) -> None:
        self.regions.pop(tag, None)

    def fault(self, reason: str) -> VmFault:
        """A fault at the instruction being executed (for helpers to raise)."""
        pc = self._pc_hint
        return VmFault(pc, reason, self._insn_at(pc))

    def read(self, pointer: int, size: int) -> bytes:
        """Bytes at a program pointer, bounds-checked (for helpers)."""
        region = self.regions.get(pointer >> memory.REGION_SHIFT)
        offset = pointer & memory.OFFSET_MASK
        if region is None or size < 0 or offset + size > region.size or region.load_hook is not None:
            raise self.fault(f"helper read of {size} bytes at 0x{pointer:x} is outside any readable region")
        return bytes(region.buf[offset:offset + size])

    def write(self, pointer: int, data: bytes) -> None:
        """Store bytes at a program pointer, bounds-checked (for helpers)."""
        region = self.regions.get(pointer >> memory.REGION_SHIFT)
        offset = pointer & memory.OFFSET_MASK
        if region is None or offset + len(data) > region.size or not region.writable:
            raise self.fault(f"helper write of {len(data)} bytes at 0x{pointer:x} is outside any writable region")
        region.buf[offset:offset + len(data)] = data

    # -- running ---------------------------------------------------------------------------------------
    def run(self, mem: bytes | bytearray | None = None) -> RunResult:
        """Run as a bare program: r1 = pointer to `mem` (a writable INPUT region), r2 = its length."""
        if mem is None or len(mem) == 0:
            self.remove_region(memory.TAG_INPUT)
            return self.execute(0, 0)
        region = memory.Region("input", memory.TAG_INPUT, bytearray(mem))
        pointer = self.add_region(region)
        return self.execute(pointer, len(mem))

    def execute(self, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0, r5: int = 0) -> RunResult:
        """Run from the first instruction with the given argument registers and the regions set up."""
        self.stack.buf[:] = bytes(memory.STACK_REGION_SIZE)
        self._frames = []
        self.tail_calls = 0
        self._pc_hint = 0
        regs = [0, r1 & M64, r2 & M64, r3 & M64, r4 & M64, r5 & M64, 0, 0, 0, 0, memory.frame_pointer(0)]
        counts = dict.fromkeys(isa.CLASS_NAMES.values(), 0)
        compiled = self._compile(self.program)
        total = 0
        while True:
            self._current = compiled
            hits = [0] * (len(compiled.blocks))
            try:
                r0 = self._loop(compiled, hits, regs, total)
                total = compiled.fold(hits, counts)
                return RunResult(r0, total, counts, self.tail_calls)
            except TailCall as call:
                total = compiled.fold(hits, counts)
                self.tail_calls += 1
                compiled = self._compile(call.program)
                regs[10] = memory.frame_pointer(len(self._frames))
            except VmFault as error:
                if error.insn is None:
                    error.insn = compiled.program[error.pc] if 0 <= error.pc < len(compiled.program) else None
                if error.instructions is None:
                    error.instructions = compiled.fold(hits, counts)
                raise

    def _loop(self, compiled: "_Compiled", hits: list[int], regs: list[int], executed: int) -> int:
        blocks, lengths, limit = compiled.blocks, compiled.lengths, self.instruction_limit
        trace = self.trace
        pc = 0
        try:
            if trace is None:
                while executed < limit:
                    executed += lengths[pc]
                    hits[pc] += 1
                    pc = blocks[pc](regs)
            else:
                program = compiled.program
                while executed < limit:
                    executed += 1
                    hits[pc] += 1
                    retired = pc
                    pc = blocks[pc](regs)
                    trace(retired, program[retired], regs)
        except _Finished:
            if trace is not None:
                trace(pc, compiled.program[pc], regs)
            return regs[0]
        except ProgramExit as stop:
            return stop.value
        except VmFault:
            raise
        except (TailCall,):
            raise
        except IndexError:
            # only the sentinel past the end can miss: the generated code indexes nothing else unchecked
            raise VmFault(len(compiled.program) - 1, "execution fell off the end of the program",
                          compiled.program[-1] if compiled.program else None) from None
        self._pc_hint = pc
        raise VmFault(pc, f"instruction limit of {limit} reached", self._insn_at(pc), executed)

    def _insn_at(self, pc: int) -> isa.Insn | None:
        program = self._current.program if self._current else self.program
        return program[pc] if 0 <= pc < len(program) else None

    # -- called by generated code ----------------------------------------------------------------------
    def _call_local(self, pc: int, target: int, regs: list[int]) -> int:
        depth = len(self._frames) + 1
        if depth >= isa.MAX_CALL_FRAMES:
            raise VmFault(pc, f"call depth over the limit of {isa.MAX_CALL_FRAMES} frames", self._insn_at(pc))
        self._frames.append((pc + 1, regs[6], regs[7], regs[8], regs[9], regs[10]))
        regs[10] = memory.frame_pointer(depth)
        return target

    def _exit(self, pc: int, regs: list[int]) -> int:
        if not self._frames:
            self._pc_hint = pc
            raise _Finished
        ret, regs[6], regs[7], regs[8], regs[9], regs[10] = self._frames.pop()
        return ret

    def _call_helper(self, pc: int, helper_id: int, regs: list[int]) -> int:
        helper = self.helpers.get(helper_id)
        if helper is None:
            raise VmFault(pc, f"call to unknown helper {helper_id}", self._insn_at(pc))
        self._pc_hint = pc
        return helper(self, regs[1], regs[2], regs[3], regs[4], regs[5]) & M64

    def _bad_access(self, pc: int, address: int, size: int, what: str) -> None:
        region = self.regions.get(address >> memory.REGION_SHIFT)
        if region is None:
            reason = f"{what} of {size} bytes at 0x{address:x}: no region there"
            if address >> memory.REGION_SHIFT == 0:
                reason = f"{what} of {size} bytes at 0x{address:x}: null pointer"
        elif what != "read" and not region.writable:
            reason = f"{what} of {size} bytes at 0x{address:x}: region {region.name} is read-only"
        elif what != "read" and region.load_hook is not None:
            reason = f"{what} of {size} bytes at 0x{address:x}: region {region.name} only allows loads"
        else:
            offset = address & memory.OFFSET_MASK
            reason = (f"{what} of {size} bytes at offset {offset} is outside region {region.name} "
                      f"(size {region.size})")
        raise VmFault(pc, reason, self._insn_at(pc))

    def _lddw(self, pc: int, insn: isa.Insn) -> int:
        src = insn.src
        low, high = insn.imm64 & M32, insn.imm64 >> 32
        if src in (isa.BPF_PSEUDO_MAP_FD, isa.BPF_PSEUDO_MAP_IDX):
            if not 0 <= low < len(self.maps):
                raise VmFault(pc, f"lddw refers to map {low}, which does not exist", insn)
            return memory.map_handle(low)
        if src in (isa.BPF_PSEUDO_MAP_VALUE, isa.BPF_PSEUDO_MAP_IDX_VALUE):
            if not 0 <= low < len(self.maps):
                raise VmFault(pc, f"lddw refers to map {low}, which does not exist", insn)
            return memory.map_value_pointer(low, high)
        raise VmFault(pc, f"lddw with pseudo source {isa.LDDW_PSEUDO_NAMES[src]} is not supported", insn)

    def _load_packet(self, pc: int, offset: int, size: int) -> int:
        """Legacy ABS/IND load: big-endian from the packet; out of bounds ends the program with r0 = 0."""
        region = self.packet or self.regions.get(memory.TAG_INPUT)
        offset &= M32
        if offset & SIGN32:
            raise ProgramExit(0)
        if region is None or offset + size > region.size:
            raise ProgramExit(0)
        return int.from_bytes(region.buf[offset:offset + size], "big")

    # -- translation -----------------------------------------------------------------------------------
    def _compile(self, program: isa.Program) -> "_Compiled":
        key = id(program)
        compiled = self._compiled.get(key)
        if compiled is None or compiled.program is not program:
            compiled = _Compiled(self, program, single_step=self.trace is not None)
            self._compiled[key] = compiled
        return compiled


class _Compiled:
    """A program translated into one Python function per basic block."""

    def __init__(self, vm: Vm, program: isa.Program, single_step: bool):
        self.program = program
        n = len(program)
        leaders = _leaders(program) if not single_step else set(i for i, _ in program.instructions())
        starts = sorted(leaders)
        namespace = {"_vm": vm, "_regions": vm.regions, "_sdiv": _sdiv, "_smod": _smod, "_bswap": _bswap,
                     "_bad": vm._bad_access, "_call": vm._call_local, "_exit": vm._exit,
                     "_helper": vm._call_helper, "_lddw": vm._lddw, "_ldpkt": vm._load_packet,
                     "_program": program, "VmFault": VmFault}
        for name, st in _STRUCTS.items():
            namespace["_" + name] = st.unpack_from
            namespace["_P" + name[1]] = _STRUCTS["U" + name[1]].pack_into
        source: list[str] = []
        self.lengths = [0] * (n + 1)
        self.class_counts: dict[int, list[int]] = {}
        for position, start in enumerate(starts):
            end = starts[position + 1] if position + 1 < len(starts) else n
            source.append(f"def _b{start}(r):")
            classes = [0] * 8
            count = 0
            pc = start
            while pc < end:
                insn = program[pc]
                classes[insn.cls] += 1
                count += 1
                last = pc + insn.slots >= end
                source.extend("    " + line for line in _translate(insn, pc, last))
                pc += insn.slots
            self.lengths[start] = count
            self.class_counts[start] = classes
        source.append(f"def _end(r):\n    raise VmFault({n - 1}, 'execution fell off the end of the program', "
                      f"_program[{n - 1}] if {n} else None)")
        exec(compile("\n".join(source), f"<bpf program {vm.name or hex(id(program))}>", "exec"), namespace)
        self.blocks: list = [None] * (n + 1)
        for start in starts:
            self.blocks[start] = namespace[f"_b{start}"]
        self.blocks[n] = namespace["_end"]
        self.lengths[n] = 0
        self.class_counts[n] = [0] * 8

    def fold(self, hits: list[int], counts: dict[str, int]) -> int:
        """Add the executed instructions by class into counts; return the running total."""
        for start, times in enumerate(hits):
            if times:
                for cls, number in enumerate(self.class_counts[start]):
                    if number:
                        counts[isa.CLASS_NAMES[cls]] += number * times
        return sum(counts.values())


def _leaders(program: isa.Program) -> set[int]:
    leaders = {0}
    for index, insn in program.instructions():
        kind = isa.OPCODES[insn.opcode].kind
        if kind in (InsnKind.JA, InsnKind.JCOND, InsnKind.CALL, InsnKind.CALLX, InsnKind.EXIT,
                    InsnKind.LD_PACKET):
            leaders.add(index + 1)
            target = isa.jump_target(insn, index)
            if target is not None:
                leaders.add(target)
    return {leader for leader in leaders if leader < len(program) and program[leader] is not isa.LDDW_TAIL}


def _cmp(op: int, is64: bool, dst: str, src: str) -> str:
    """A Python condition for a conditional jump; values are unsigned, signed order via the sign flip."""
    flip = SIGN64 if is64 else SIGN32
    if op == isa.BPF_JEQ:
        return f"{dst} == {src}"
    if op == isa.BPF_JNE:
        return f"{dst} != {src}"
    if op == isa.BPF_JSET:
        return f"{dst} & {src}"
    unsigned = {isa.BPF_JGT: ">", isa.BPF_JGE: ">=", isa.BPF_JLT: "<", isa.BPF_JLE: "<="}
    signed = {isa.BPF_JSGT: ">", isa.BPF_JSGE: ">=", isa.BPF_JSLT: "<", isa.BPF_JSLE: "<="}
    if op in unsigned:
        return f"{dst} {unsigned[op]} {src}"
    return f"({dst} ^ {flip}) {signed[op]} ({src} ^ {flip})"


def _translate(insn: isa.Insn, pc: int, last: bool) -> list[str]:
    """Python lines executing one instruction. A block's last instruction ends with a return of the next pc."""
    info = isa.OPCODES[insn.opcode]
    kind = info.kind
    d, s, off = insn.dst, insn.src, insn.off
    nxt = pc + insn.slots
    lines: list[str] = []
    op = insn.opcode & isa.OP_MASK

    if kind == InsnKind.ALU:
        is64 = info.is64
        mask = M64 if is64 else M32
        bits = 64 if is64 else 32
        if insn.opcode & isa.BPF_X:
            v = f"r[{s}]" if is64 else f"(r[{s}] & {M32})"
        else:
            v = str(insn.imm & mask)
        a = f"r[{d}]" if is64 else f"(r[{d}] & {M32})"
        expr = {
            isa.BPF_ADD: f"({a} + {v}) & {mask}",
            isa.BPF_SUB: f"({a} - {v}) & {mask}",
            isa.BPF_MUL: f"({a} * {v}) & {mask}",
            isa.BPF_OR: f"{a} | {v}",
            isa.BPF_AND: f"{a} & {v}",
            isa.BPF_XOR: f"{a} ^ {v}",
            isa.BPF_LSH: f"({a} << ({v} & {bits - 1})) & {mask}",
            isa.BPF_RSH: f"{a} >> ({v} & {bits - 1})",
            isa.BPF_NEG: f"(-{a}) & {mask}",
        }.get(op)
        if op == isa.BPF_DIV:
            expr = f"_sdiv({a}, {v}, {bits})" if off else f"({a} // {v} if {v} else 0)"
        elif op == isa.BPF_MOD:
            expr = f"_smod({a}, {v}, {bits})" if off else f"({a} % {v} if {v} else {a})"
        elif op == isa.BPF_ARSH:
            sign = 1 << (bits - 1)
            expr = f"((({a} ^ {sign}) - {sign}) >> ({v} & {bits - 1})) & {mask}"
        elif op == isa.BPF_MOV:
            if off:  # MOVSX: sign-extend the low `off` bits of src, into 64 or 32 bits
                sign = 1 << (off - 1)
                expr = f"((((r[{s}] & {(1 << off) - 1}) ^ {sign}) - {sign}) & {mask})"
            else:
                expr = v if (insn.opcode & isa.BPF_X) == 0 or is64 else f"r[{s}] & {M32}"
        lines.append(f"r[{d}] = {expr}")
    elif kind == InsnKind.END:
        width = insn.imm
        if info.cls == isa.BPF_ALU and (insn.opcode & isa.SOURCE_MASK) == isa.BPF_TO_LE:
            lines.append(f"r[{d}] &= {(1 << width) - 1}")  # little-endian host: a truncation
        else:
            lines.append(f"r[{d}] = _bswap(r[{d}], {width})")
    elif kind == InsnKind.JA:
        target = isa.jump_target(insn, pc)
        lines.append(f"return {target}")
        return lines
    elif kind == InsnKind.JCOND:
        is64 = info.is64
        mask = M64 if is64 else M32
        a = f"r[{d}]" if is64 else f"(r[{d}] & {M32})"
        if insn.opcode & isa.BPF_X:
            b = f"r[{s}]" if is64 else f"(r[{s}] & {M32})"
        else:
            b = str(insn.imm & mask)
        target = isa.jump_target(insn, pc)
        lines.append(f"if {_cmp(op, is64, a, b)}: return {target}")
        lines.append(f"return {nxt}")
        return lines
    elif kind == InsnKind.CALL:
        if s == isa.BPF_PSEUDO_CALL_LOCAL:
            lines.append(f"return _call({pc}, {isa.jump_target(insn, pc)}, r)")
            return lines
        if s == isa.BPF_PSEUDO_CALL_HELPER:
            lines.append(f"r[0] = _helper({pc}, {insn.imm}, r)")
        else:
            lines.append(f"raise VmFault({pc}, 'calls of kernel functions (kfunc {insn.imm}) are not supported', "
                         f"_program[{pc}])")
    elif kind == InsnKind.CALLX:
        register = d if insn.imm == 0 else insn.imm
        lines.append(f"r[0] = _helper({pc}, r[{register}] & {M32}, r)")
    elif kind == InsnKind.EXIT:
        lines.append(f"return _exit({pc}, r)")
        return lines
    elif kind == InsnKind.LDDW:
        if s == isa.BPF_PSEUDO_IMM64:
            lines.append(f"r[{d}] = {insn.imm64}")
        else:
            lines.append(f"r[{d}] = _lddw({pc}, _program[{pc}])")
    elif kind == InsnKind.LD_PACKET:
        if (insn.opcode & isa.MODE_MASK) == isa.BPF_ABS:
            lines.append(f"r[0] = _ldpkt({pc}, {insn.imm}, {info.size})")
        else:
            lines.append(f"r[0] = _ldpkt({pc}, (r[{s}] + {insn.imm}) & {M32}, {info.size})")
    elif kind in (InsnKind.LDX, InsnKind.ST, InsnKind.STX, InsnKind.ATOMIC):
        size = info.size
        base = s if kind == InsnKind.LDX else d
        lines.append(f"a = (r[{base}] + {off}) & {M64}" if off else f"a = r[{base}]")
        lines.append("g = _regions.get(a >> 32); o = a & 4294967295")
        if kind == InsnKind.LDX:
            signed = (insn.opcode & isa.MODE_MASK) == isa.BPF_MEMSX
            lines.append(f"if g is None or o + {size} > g.size: _bad({pc}, a, {size}, 'read')")
            reader = f"_{'S' if signed else 'U'}{size}(g.buf, o)[0]"
            value = f"{reader} & {M64}" if signed else reader
            lines.append(f"r[{d}] = g.load_hook(o, {size}, {pc}) if g.load_hook is not None else {value}")
            if signed:
                lines.append(f"r[{d}] &= {M64}")
        else:
            what = "atomic" if kind == InsnKind.ATOMIC else "write"
            lines.append(f"if g is None or o + {size} > g.size or not g.writable or g.load_hook is not None: "
                         f"_bad({pc}, a, {size}, '{what}')")
            vmask = (1 << (8 * size)) - 1
            if kind == InsnKind.ST:
                lines.append(f"_P{size}(g.buf, o, {insn.imm & vmask})")
            elif kind == InsnKind.STX:
                lines.append(f"_P{size}(g.buf, o, r[{s}] & {vmask})")
            else:
                lines.append(f"old = _U{size}(g.buf, o)[0]")
                aop = insn.imm
                if aop == isa.BPF_CMPXCHG:
                    lines.append(f"if old == r[0] & {vmask}: _P{size}(g.buf, o, r[{s}] & {vmask})")
                    lines.append("r[0] = old")
                else:
                    new = {isa.BPF_ADD: f"(old + r[{s}]) & {vmask}", isa.BPF_OR: f"old | (r[{s}] & {vmask})",
                           isa.BPF_AND: f"old & r[{s}]", isa.BPF_XOR: f"old ^ (r[{s}] & {vmask})",
                           isa.BPF_XCHG & ~isa.BPF_FETCH: f"r[{s}] & {vmask}"}[aop & ~isa.BPF_FETCH]
                    lines.append(f"_P{size}(g.buf, o, {new})")
                    if aop & isa.BPF_FETCH:
                        lines.append(f"r[{s}] = old")
    else:  # pragma: no cover - the opcode table and this translation are kept in step by the tests
        raise AssertionError(f"no translation for {kind}")
    if last:
        lines.append(f"return {nxt}")
    return lines
