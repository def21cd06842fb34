"""The one eBPF instruction-set definition of the project (RFC 9669, "BPF Instruction Set Architecture").

Everything that knows an opcode imports it from here: the assembler and disassembler, the golden VM,
the ELF loader, the verifier and the RTL decoder. Nothing else re-states an opcode.

Ref: RFC 9669 §3 (instruction encoding), §4 (arithmetic and jump instructions), §5 (load and store
instructions), §7 (conformance groups); the kernel's include/uapi/linux/bpf_common.h and bpf.h for names.

An instruction is 64 bits, little-endian here: opcode (8), dst_reg (low nibble) and src_reg (high nibble)
(8), offset (signed 16), imm (signed 32). LDDW takes two such slots; the second carries the upper 32 bits
of the immediate in its imm and must be zero elsewhere.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Iterable, NamedTuple

# -- Instruction classes (RFC 9669 §3.3) --------------------------------------------------------------
BPF_LD = 0x00
BPF_LDX = 0x01
BPF_ST = 0x02
BPF_STX = 0x03
BPF_ALU = 0x04
BPF_JMP = 0x05
BPF_JMP32 = 0x06
BPF_ALU64 = 0x07
CLASS_MASK = 0x07

CLASS_NAMES = {
    BPF_LD: "ld", BPF_LDX: "ldx", BPF_ST: "st", BPF_STX: "stx",
    BPF_ALU: "alu", BPF_JMP: "jmp", BPF_JMP32: "jmp32", BPF_ALU64: "alu64",
}

# -- Source bit (RFC 9669 §4): K = immediate, X = register. For END it selects the byte order. ----------
BPF_K = 0x00
BPF_X = 0x08
SOURCE_MASK = 0x08
BPF_TO_LE = 0x00
BPF_TO_BE = 0x08

# -- Arithmetic operations (RFC 9669 §4.1) ---------------------------------------------------------------
BPF_ADD = 0x00
BPF_SUB = 0x10
BPF_MUL = 0x20
BPF_DIV = 0x30  # offset 1: SDIV
BPF_OR = 0x40
BPF_AND = 0x50
BPF_LSH = 0x60
BPF_RSH = 0x70
BPF_NEG = 0x80
BPF_MOD = 0x90  # offset 1: SMOD
BPF_XOR = 0xA0
BPF_MOV = 0xB0  # offset 8/16/32: MOVSX
BPF_ARSH = 0xC0
BPF_END = 0xD0
OP_MASK = 0xF0

ALU_OP_NAMES = {
    BPF_ADD: "add", BPF_SUB: "sub", BPF_MUL: "mul", BPF_DIV: "div", BPF_OR: "or", BPF_AND: "and",
    BPF_LSH: "lsh", BPF_RSH: "rsh", BPF_NEG: "neg", BPF_MOD: "mod", BPF_XOR: "xor", BPF_MOV: "mov",
    BPF_ARSH: "arsh", BPF_END: "end",
}

# -- Jump operations (RFC 9669 §4.3) ---------------------------------------------------------------------
BPF_JA = 0x00
BPF_JEQ = 0x10
BPF_JGT = 0x20
BPF_JGE = 0x30
BPF_JSET = 0x40
BPF_JNE = 0x50
BPF_JSGT = 0x60
BPF_JSGE = 0x70
BPF_CALL = 0x80
BPF_EXIT = 0x90
BPF_JLT = 0xA0
BPF_JLE = 0xB0
BPF_JSLT = 0xC0
BPF_JSLE = 0xD0

JMP_COND_NAMES = {
    BPF_JEQ: "jeq", BPF_JGT: "jgt", BPF_JGE: "jge", BPF_JSET: "jset", BPF_JNE: "jne",
    BPF_JSGT: "jsgt", BPF_JSGE: "jsge", BPF_JLT: "jlt", BPF_JLE: "jle", BPF_JSLT: "jslt", BPF_JSLE: "jsle",
}

# CALL's src_reg says what imm names (RFC 9669 §4.3.1).
BPF_PSEUDO_CALL_HELPER = 0   # imm = helper id
BPF_PSEUDO_CALL_LOCAL = 1    # imm = offset to the callee, relative to the next instruction
BPF_PSEUDO_KFUNC_CALL = 2    # imm = BTF id of a platform function

# -- Load/store sizes and modes (RFC 9669 §5) ------------------------------------------------------------
BPF_W = 0x00
BPF_H = 0x08
BPF_B = 0x10
BPF_DW = 0x18
SIZE_MASK = 0x18
SIZE_BYTES = {BPF_W: 4, BPF_H: 2, BPF_B: 1, BPF_DW: 8}
SIZE_SUFFIX = {BPF_W: "w", BPF_H: "h", BPF_B: "b", BPF_DW: "dw"}

BPF_IMM = 0x00     # LD only: the 64-bit immediate load (LDDW)
BPF_ABS = 0x20     # legacy packet access (RFC 9669 §5.5)
BPF_IND = 0x40     # legacy packet access
BPF_MEM = 0x60
BPF_MEMSX = 0x80   # sign-extending load (v4)
BPF_ATOMIC = 0xC0
MODE_MASK = 0xE0

# Atomic operations live in imm (RFC 9669 §5.3).
BPF_FETCH = 0x01
BPF_XCHG = 0xE0 | BPF_FETCH
BPF_CMPXCHG = 0xF0 | BPF_FETCH
ATOMIC_OPS = {
    BPF_ADD: "add", BPF_OR: "or", BPF_AND: "and", BPF_XOR: "xor",
    BPF_ADD | BPF_FETCH: "fetch add", BPF_OR | BPF_FETCH: "fetch or", BPF_AND | BPF_FETCH: "fetch and",
    BPF_XOR | BPF_FETCH: "fetch xor", BPF_XCHG: "xchg", BPF_CMPXCHG: "cmpxchg",
}

# LDDW's src_reg selects what the 64-bit immediate means (RFC 9669 §5.4).
BPF_PSEUDO_IMM64 = 0           # imm64 itself
BPF_PSEUDO_MAP_FD = 1          # imm = map fd -> the map
BPF_PSEUDO_MAP_VALUE = 2       # imm = map fd, next imm = offset -> address of the map's value + offset
BPF_PSEUDO_BTF_ID = 3          # imm = BTF id of a variable -> its address
BPF_PSEUDO_FUNC = 4            # imm = offset of a function -> its code address
BPF_PSEUDO_MAP_IDX = 5         # imm = map index -> the map
BPF_PSEUDO_MAP_IDX_VALUE = 6   # imm = map index, next imm = offset -> map value address + offset
LDDW_PSEUDO_NAMES = {
    BPF_PSEUDO_IMM64: "imm64", BPF_PSEUDO_MAP_FD: "map_fd", BPF_PSEUDO_MAP_VALUE: "map_value",
    BPF_PSEUDO_BTF_ID: "var_addr", BPF_PSEUDO_FUNC: "code_addr", BPF_PSEUDO_MAP_IDX: "map_idx",
    BPF_PSEUDO_MAP_IDX_VALUE: "map_idx_value",
}

# -- Machine facts ------------------------------------------------------------------------------------
NUM_REGISTERS = 11            # r0..r10; r10 is the read-only frame pointer
FRAME_POINTER = 10
STACK_SIZE = 512              # bytes per call frame (MAX_BPF_STACK)
MAX_CALL_FRAMES = 8           # the kernel's MAX_CALL_FRAMES: the main program and 7 nested calls
INSN_SIZE = 8

# Opcodes used often enough to name (kernel names).
OP_LDDW = BPF_LD | BPF_IMM | BPF_DW
OP_CALL = BPF_JMP | BPF_CALL
OP_CALLX = BPF_JMP | BPF_CALL | BPF_X   # call through a register (a conformance-suite extension)
OP_EXIT = BPF_JMP | BPF_EXIT
OP_JA = BPF_JMP | BPF_JA
OP_JA32 = BPF_JMP32 | BPF_JA            # "gotol": 32-bit offset in imm (v4)

_WORD = struct.Struct("<BBhi")


class IsaError(ValueError):
    """An invalid encoding, naming the instruction index and the reason."""

    def __init__(self, index: int | None, reason: str, word: bytes | None = None):
        self.index = index
        self.reason = reason
        self.word = word
        where = f"instruction {index}" if index is not None else "instruction"
        hexword = f" ({word.hex()})" if word else ""
        super().__init__(f"{where}{hexword}: {reason}")


class Insn(NamedTuple):
    """One decoded instruction slot. For LDDW, `imm64` holds the whole 64-bit immediate (unsigned) and the
    following slot of the program is the LDDW's second half (see `Program`)."""

    opcode: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    imm64: int | None = None

    @property
    def cls(self) -> int:
        return self.opcode & CLASS_MASK

    @property
    def is_lddw(self) -> bool:
        return self.opcode == OP_LDDW

    @property
    def slots(self) -> int:
        return 2 if self.opcode == OP_LDDW else 1

    def encode(self) -> bytes:
        """The 8 bytes of this slot, or 16 for LDDW (with imm64 split over both halves)."""
        regs = (self.src << 4) | self.dst
        if self.opcode == OP_LDDW:
            value = self.imm64 if self.imm64 is not None else self.imm & 0xFFFFFFFF
            low, high = value & 0xFFFFFFFF, (value >> 32) & 0xFFFFFFFF
            return _WORD.pack(self.opcode, regs, self.off, _s32(low)) + _WORD.pack(0, 0, 0, _s32(high))
        return _WORD.pack(self.opcode, regs, self.off, self.imm)


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def s32(value: int) -> int:
    """Interpret the low 32 bits of value as a signed 32-bit number."""
    return _s32(value)


class InsnKind(enum.Enum):
    """What an opcode does, for the decoders of the VM, verifier and RTL."""

    ALU = "alu"            # ALU/ALU64 operation (including MOV, NEG, sign-extending MOV, SDIV/SMOD)
    END = "end"            # byte swap (ALU: to LE/BE; ALU64: unconditional BSWAP)
    JA = "ja"              # unconditional jump (JMP: off; JMP32: imm)
    JCOND = "jcond"        # conditional jump (64-bit or 32-bit compare)
    CALL = "call"          # helper, local or kfunc call
    CALLX = "callx"        # helper call through a register
    EXIT = "exit"
    LDDW = "lddw"          # 64-bit immediate and its pseudo variants
    LD_PACKET = "ld_packet"  # legacy ABS/IND packet loads
    LDX = "ldx"            # load, zero- or sign-extending
    ST = "st"              # store immediate
    STX = "stx"            # store register
    ATOMIC = "atomic"


@dataclass(frozen=True)
class OpcodeInfo:
    """Everything the toolchain needs to know about one legal opcode byte."""

    opcode: int
    kind: InsnKind
    mnemonic: str          # base mnemonic of the conformance-suite assembly dialect (e.g. "add32", "ldxh", "jeq")
    group: str             # RFC 9669 §7 conformance group: base32, base64, divmul32, divmul64, atomic32, atomic64, packet
    size: int = 0          # bytes accessed by loads/stores/atomics

    @property
    def cls(self) -> int:
        return self.opcode & CLASS_MASK

    @property
    def is64(self) -> bool:
        """Whether an ALU op or jump compare works on 64 bits."""
        return self.cls in (BPF_ALU64, BPF_JMP)

    @property
    def uses_src_reg(self) -> bool:
        return bool(self.opcode & BPF_X) and self.kind in (InsnKind.ALU, InsnKind.JCOND)


def _build_opcode_table() -> dict[int, OpcodeInfo]:
    table: dict[int, OpcodeInfo] = {}

    def add(opcode: int, kind: InsnKind, mnemonic: str, group: str, size: int = 0) -> None:
        assert opcode not in table, hex(opcode)
        table[opcode] = OpcodeInfo(opcode, kind, mnemonic, group, size)

    for cls, suffix, width in ((BPF_ALU, "32", "32"), (BPF_ALU64, "", "64")):
        for op, name in ALU_OP_NAMES.items():
            group = ("divmul" if op in (BPF_MUL, BPF_DIV, BPF_MOD) else "base") + width
            if op == BPF_END:
                if cls == BPF_ALU:
                    add(cls | BPF_TO_LE | op, InsnKind.END, "le", "base32")
                    add(cls | BPF_TO_BE | op, InsnKind.END, "be", "base32")
                else:
                    add(cls | op, InsnKind.END, "swap", "base32")
                continue
            add(cls | BPF_K | op, InsnKind.ALU, name + suffix, group)
            if op != BPF_NEG:  # NEG's source bit is reserved (RFC 9669 §4.1)
                add(cls | BPF_X | op, InsnKind.ALU, name + suffix, group)

    for cls, suffix, width in ((BPF_JMP, "", "64"), (BPF_JMP32, "32", "32")):
        add(cls | BPF_JA, InsnKind.JA, "ja" if cls == BPF_JMP else "ja32", "base32" if cls == BPF_JMP else "base32")
        for op, name in JMP_COND_NAMES.items():
            add(cls | BPF_K | op, InsnKind.JCOND, name + suffix, "base" + width)
            add(cls | BPF_X | op, InsnKind.JCOND, name + suffix, "base" + width)
    add(OP_CALL, InsnKind.CALL, "call", "base32")
    add(OP_CALLX, InsnKind.CALLX, "callx", "base32")
    add(OP_EXIT, InsnKind.EXIT, "exit", "base32")

    add(OP_LDDW, InsnKind.LDDW, "lddw", "base64", 8)
    for size in (BPF_W, BPF_H, BPF_B):
        add(BPF_LD | BPF_ABS | size, InsnKind.LD_PACKET, "ldabs" + SIZE_SUFFIX[size], "packet", SIZE_BYTES[size])
        add(BPF_LD | BPF_IND | size, InsnKind.LD_PACKET, "ldind" + SIZE_SUFFIX[size], "packet", SIZE_BYTES[size])
    for size, nbytes in SIZE_BYTES.items():
        group = "base64" if size == BPF_DW else "base32"
        add(BPF_LDX | BPF_MEM | size, InsnKind.LDX, "ldx" + SIZE_SUFFIX[size], group, nbytes)
        add(BPF_ST | BPF_MEM | size, InsnKind.ST, "st" + SIZE_SUFFIX[size], group, nbytes)
        add(BPF_STX | BPF_MEM | size, InsnKind.STX, "stx" + SIZE_SUFFIX[size], group, nbytes)
        if size != BPF_DW:
            add(BPF_LDX | BPF_MEMSX | size, InsnKind.LDX, "ldxs" + SIZE_SUFFIX[size], "base32", nbytes)
    add(BPF_STX | BPF_ATOMIC | BPF_W, InsnKind.ATOMIC, "lock32", "atomic32", 4)
    add(BPF_STX | BPF_ATOMIC | BPF_DW, InsnKind.ATOMIC, "lock", "atomic64", 8)
    return table


#: Every legal opcode byte and what it is. The same table tells every consumer which opcodes exist.
OPCODES: dict[int, OpcodeInfo] = _build_opcode_table()


def insn_group(insn: Insn) -> str:
    """The RFC 9669 conformance group an instruction needs (base32, base64, divmul32/64, atomic32/64, packet)."""
    info = OPCODES[insn.opcode]
    if info.kind == InsnKind.END:
        return "base64" if insn.imm == 64 else "base32"
    return info.group


def isa_version(insn: Insn) -> int:
    """The lowest -mcpu version (1..4) that defines the instruction (kernel/LLVM numbering)."""
    info = OPCODES[insn.opcode]
    if info.kind == InsnKind.ALU and insn.off != 0:
        return 4  # SDIV/SMOD, MOVSX
    if info.kind == InsnKind.END and info.cls == BPF_ALU64:
        return 4  # BSWAP
    if info.kind == InsnKind.LDX and (insn.opcode & MODE_MASK) == BPF_MEMSX:
        return 4
    if info.opcode == OP_JA32:
        return 4
    if info.kind == InsnKind.ATOMIC:
        return 1 if insn.imm == BPF_ADD else 3  # plain add was the classic XADD
    if info.cls == BPF_JMP32:
        return 3
    if info.kind == InsnKind.JCOND and (insn.opcode & OP_MASK) in (BPF_JLT, BPF_JLE, BPF_JSLT, BPF_JSLE):
        return 2
    return 1


# -- Validation -----------------------------------------------------------------------------------------

def check_insn(insn: Insn, index: int | None = None) -> OpcodeInfo:
    """Check one instruction's fields against RFC 9669. Returns its OpcodeInfo; raises IsaError otherwise.

    Jump targets are checked by `decode_program`, which knows the whole program."""

    def bad(reason: str) -> IsaError:
        return IsaError(index, reason, insn.encode()[:8] if 0 <= insn.opcode <= 0xFF else None)

    info = OPCODES.get(insn.opcode)
    if info is None:
        raise bad(f"unknown opcode 0x{insn.opcode:02x}")
    if not (0 <= insn.dst <= 15 and 0 <= insn.src <= 15):
        raise bad("register field out of range")
    if insn.dst > 10:
        raise bad(f"destination register r{insn.dst} does not exist (r0..r10)")
    if insn.src > 10:
        raise bad(f"source register r{insn.src} does not exist (r0..r10)")
    kind, opcode, off, imm, dst, src = info.kind, insn.opcode, insn.off, insn.imm, insn.dst, insn.src
    op = opcode & OP_MASK
    register_source = bool(opcode & BPF_X)

    def unused(**fields: int) -> None:
        for name, value in fields.items():
            if value != 0:
                raise bad(f"{info.mnemonic}: unused field {name} must be 0 (is {value})")

    def writes(reg: int) -> None:
        if reg == FRAME_POINTER:
            raise bad(f"{info.mnemonic} writes r10, the read-only frame pointer")

    if kind == InsnKind.ALU:
        if register_source:
            unused(imm=imm)
        else:
            unused(src=src)
        if op == BPF_NEG:
            unused(off=off, imm=imm)
        elif op in (BPF_DIV, BPF_MOD):
            if off not in (0, 1):
                raise bad(f"{info.mnemonic}: offset must be 0 (unsigned) or 1 (signed), is {off}")
        elif op == BPF_MOV:
            allowed = (0, 8, 16, 32) if info.cls == BPF_ALU64 else (0, 8, 16)
            if off not in allowed:
                raise bad(f"{info.mnemonic}: sign-extension offset must be one of {allowed}, is {off}")
            if off and not register_source:
                raise bad(f"{info.mnemonic}: sign-extending move takes a register source")
        else:
            unused(off=off)
        writes(dst)
    elif kind == InsnKind.END:
        unused(src=src, off=off)
        if imm not in (16, 32, 64):
            raise bad(f"byte swap width must be 16, 32 or 64, is {imm}")
        writes(dst)
    elif kind == InsnKind.JA:
        unused(dst=dst, src=src)
        if opcode == OP_JA32:
            unused(off=off)
        else:
            unused(imm=imm)
    elif kind == InsnKind.JCOND:
        if register_source:
            unused(imm=imm)
        else:
            unused(src=src)
    elif kind == InsnKind.CALL:
        unused(dst=dst, off=off)
        if src not in (BPF_PSEUDO_CALL_HELPER, BPF_PSEUDO_CALL_LOCAL, BPF_PSEUDO_KFUNC_CALL):
            raise bad(f"call: src_reg {src} is not a call kind (0 helper, 1 local, 2 kfunc)")
    elif kind == InsnKind.CALLX:
        unused(src=src, off=off)
        # The register is in dst (LLVM); older conformance-suite builds put its number in imm instead.
        if imm and (dst or not 0 <= imm <= 10):
            raise bad(f"callx: imm {imm} is not a register number")
    elif kind == InsnKind.EXIT:
        unused(dst=dst, src=src, off=off, imm=imm)
    elif kind == InsnKind.LDDW:
        unused(off=off)
        if src not in LDDW_PSEUDO_NAMES:
            raise bad(f"lddw: src_reg {src} is not a known pseudo source (0..6)")
        writes(dst)
    elif kind == InsnKind.LD_PACKET:
        unused(dst=dst, off=off)
        if (opcode & MODE_MASK) == BPF_ABS:
            unused(src=src)
    elif kind == InsnKind.LDX:
        unused(imm=imm)
        writes(dst)
    elif kind == InsnKind.ST:
        unused(src=src)
    elif kind == InsnKind.STX:
        unused(imm=imm)
    elif kind == InsnKind.ATOMIC:
        if imm not in ATOMIC_OPS:
            raise bad(f"atomic: 0x{imm & 0xFFFFFFFF:x} is not an atomic operation")
        if imm & BPF_FETCH:
            writes(0 if imm == BPF_CMPXCHG else src)
    return info


def jump_target(insn: Insn, index: int) -> int | None:
    """The slot index a jump or local call at `index` goes to, or None for other instructions."""
    info = OPCODES[insn.opcode]
    if info.kind == InsnKind.JCOND or (info.kind == InsnKind.JA and insn.opcode == OP_JA):
        return index + 1 + insn.off
    if insn.opcode == OP_JA32:
        return index + 1 + insn.imm
    if info.kind == InsnKind.CALL and insn.src == BPF_PSEUDO_CALL_LOCAL:
        return index + 1 + insn.imm
    if info.kind == InsnKind.LDDW and insn.src == BPF_PSEUDO_FUNC:
        return index + 1 + insn.imm
    return None


class Program(list):
    """A decoded program: one `Insn` per 8-byte slot. The second slot of an LDDW holds `LDDW_TAIL`, so that
    slot indices equal the kernel's instruction indices and jump offsets can be used as they are."""

    def encode(self) -> bytes:
        return b"".join(insn.encode() for insn in self if insn is not LDDW_TAIL)

    def instructions(self) -> Iterable[tuple[int, Insn]]:
        """(index, insn) for each instruction, skipping LDDW second halves."""
        return ((i, insn) for i, insn in enumerate(self) if insn is not LDDW_TAIL)


#: Marker for the second slot of an LDDW in a `Program`.
LDDW_TAIL = Insn(opcode=-1)


def decode_word(word: bytes, index: int | None = None) -> Insn:
    if len(word) != INSN_SIZE:
        raise IsaError(index, f"an instruction is 8 bytes, got {len(word)}")
    opcode, regs, off, imm = _WORD.unpack(word)
    return Insn(opcode, regs & 0x0F, regs >> 4, off, imm)


def decode_program(code: bytes, check_targets: bool = True) -> Program:
    """Decode and validate a program from its bytes (a multiple of 8, little-endian).

    Raises IsaError naming the instruction index and the reason for: a length that is not a multiple of 8,
    an empty program, an unknown opcode, non-zero unused fields, a register above r10, a write to r10,
    a truncated LDDW, and (with check_targets) a jump outside the program or into the second half of an LDDW."""
    if len(code) % INSN_SIZE:
        raise IsaError(len(code) // INSN_SIZE, f"program length {len(code)} is not a multiple of 8 bytes")
    if not code:
        raise IsaError(None, "empty program")
    words = [code[i:i + INSN_SIZE] for i in range(0, len(code), INSN_SIZE)]
    program = Program()
    index = 0
    while index < len(words):
        insn = decode_word(words[index], index)
        if insn.opcode == OP_LDDW:
            if index + 1 >= len(words):
                raise IsaError(index, "truncated lddw: the second half is missing", words[index])
            tail = decode_word(words[index + 1], index + 1)
            if tail.opcode or tail.dst or tail.src or tail.off:
                raise IsaError(index + 1, "lddw second half must have opcode, registers and offset 0",
                               words[index + 1])
            insn = insn._replace(imm64=(insn.imm & 0xFFFFFFFF) | ((tail.imm & 0xFFFFFFFF) << 32))
            check_insn(insn, index)
            program.append(insn)
            program.append(LDDW_TAIL)
            index += 2
            continue
        check_insn(insn, index)
        program.append(insn)
        index += 1
    if check_targets:
        check_jump_targets(program)
    return program


def check_jump_targets(program: Program) -> None:
    for index, insn in program.instructions():
        target = jump_target(insn, index)
        if target is None:
            continue
        what = "call" if OPCODES[insn.opcode].kind == InsnKind.CALL else "jump"
        if not 0 <= target < len(program):
            raise IsaError(index, f"{what} target {target} is outside the program (0..{len(program) - 1})")
        if program[target] is LDDW_TAIL:
            raise IsaError(index, f"{what} target {target} is the second half of an lddw")


def make_program(insns: Iterable[Insn], check_targets: bool = True) -> Program:
    """Build a validated Program from Insn values (an LDDW given once, with imm64)."""
    return decode_program(b"".join(insn.encode() for insn in insns), check_targets)


def encode_program(insns: Iterable[Insn]) -> bytes:
    return b"".join(insn.encode() for insn in insns if insn is not LDDW_TAIL)


# -- Small constructors, used by tests and program generators ----------------------------------------------

def alu(op: int, dst: int, src_or_imm: int | str, is64: bool = True, off: int = 0) -> Insn:
    """ALU instruction; a register source is given as the string "rN"."""
    cls = BPF_ALU64 if is64 else BPF_ALU
    if isinstance(src_or_imm, str):
        return Insn(cls | BPF_X | op, dst, int(src_or_imm[1:]), off, 0)
    return Insn(cls | BPF_K | op, dst, 0, off, _s32(src_or_imm))


def jcond(op: int, dst: int, src_or_imm: int | str, off: int, is64: bool = True) -> Insn:
    cls = BPF_JMP if is64 else BPF_JMP32
    if isinstance(src_or_imm, str):
        return Insn(cls | BPF_X | op, dst, int(src_or_imm[1:]), off, 0)
    return Insn(cls | BPF_K | op, dst, 0, off, _s32(src_or_imm))


def lddw(dst: int, value: int, src: int = BPF_PSEUDO_IMM64) -> Insn:
    return Insn(OP_LDDW, dst, src, 0, _s32(value), value & 0xFFFFFFFFFFFFFFFF)


def exit_insn() -> Insn:
    return Insn(OP_EXIT)
