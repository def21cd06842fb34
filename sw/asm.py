"""eBPF assembler for the assembly dialect of the public conformance suite (bpf_conformance `-- asm` sections).

Every encoding comes from `isa.OPCODES` (RFC 9669 §3-§5); this file only knows the dialect's spelling:

    mov32 %r0, 1            add %r0, %r1            neg %r0         sdiv32 %r0, -3     movsx1664 %r0, %r1
    be16 %r0                le32 %r0                swap64 %r0      (bswap64 too: the ALU64 byte swap)
    ldxh %r0, [%r1+2]       ldxsb %r0, [%r1]        stw [%r10-8], 5                    stxdw [%r1], %r2
    lddw %r0, 0x1122334455667788                    lddw %r1, map_idx 3                lddw %r1, map_idx_value 3+16
    jeq %r1, 5, label       jne32 %r1, %r2, +3      ja label        ja32 label        (32-bit offset in imm)
    call 5                  call local name         call kfunc 7    call %r2          (callx: register in dst_reg)
    exit                    lock add [%r10-8], %r1  lock fetch add32 [%r1+4], %r2      lock cmpxchg32 [%r1], %r2
    ldabsw 12               ldindh %r1, 4           (legacy packet loads, RFC 9669 §5.5)

Labels are `name:` (alone on a line or before an instruction); `#` starts a comment. Immediates are decimal or
hex, optionally negative, and read as 32 bits (0x80000000..0xffffffff wrap to negative imm), offsets as 16 bits.
As in the suite's own assembler, a jump to an undefined label `exit` goes to the first `exit` instruction.

Pseudo LDDW sources (RFC 9669 §5.4) are written `lddw %rD, KIND BASE[+EXTRA]`, KIND one of the names in
`isa.LDDW_PSEUDO_NAMES` (map_fd, map_value, var_addr, code_addr, map_idx, map_idx_value), BASE the first imm
(for code_addr a label or signed offset, like a call), EXTRA the second slot's imm (the value offset).
`callx %rN` writes the older encoding of a register call, the register number in imm.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import isa

__all__ = ["AsmError", "assemble"]


class AsmError(ValueError):
    """A syntax or encoding error in assembly source, naming the source and the line."""

    def __init__(self, source: str, line: int | None, reason: str):
        self.source = source
        self.line = line
        self.reason = reason
        super().__init__(f"{source}:{line}: {reason}" if line is not None else f"{source}: {reason}")


class _Bad(Exception):
    """An error in the current line; `assemble` adds the source name and line number."""


# -- The dialect's mnemonics, derived from isa.OPCODES --------------------------------------------------------

@dataclass
class _Form:
    kind: isa.InsnKind
    opcodes: dict[int, int] = field(default_factory=dict)  # source bit (BPF_K/BPF_X) -> opcode
    off: int = 0   # 1 for sdiv/smod, the source width for movsx
    imm: int = 0   # the width of a byte swap
    unary: bool = False  # neg: destination only


def _build_forms() -> tuple[dict[str, _Form], dict[str, tuple[int, int]]]:
    forms: dict[str, _Form] = {}
    atomics: dict[str, tuple[int, int]] = {}  # "fetch add32" -> (opcode, imm)

    def form(name: str, info: isa.OpcodeInfo, **fields) -> _Form:
        entry = forms.setdefault(name, _Form(info.kind, **fields))
        has_source = info.kind in (isa.InsnKind.ALU, isa.InsnKind.JCOND)
        entry.opcodes[info.opcode & isa.SOURCE_MASK if has_source else 0] = info.opcode
        return entry

    for info in isa.OPCODES.values():
        op = info.opcode & isa.OP_MASK
        if info.kind == isa.InsnKind.ALU:
            form(info.mnemonic, info, unary=op == isa.BPF_NEG)
            if op in (isa.BPF_DIV, isa.BPF_MOD):
                form("s" + info.mnemonic, info, off=1)  # signed division and modulo (RFC 9669 §4.1)
            if op == isa.BPF_MOV and info.opcode & isa.BPF_X:
                width = 64 if info.cls == isa.BPF_ALU64 else 32
                for source_width in (8, 16, 32):
                    if source_width < width:  # movsx832 sign-extends a byte into 32 bits, movsx3264 32 into 64
                        form(f"movsx{source_width}{width}", info, off=source_width)
        elif info.kind == isa.InsnKind.END:
            for width in (16, 32, 64):
                form(f"{info.mnemonic}{width}", info, imm=width)
                if info.cls == isa.BPF_ALU64:
                    form(f"b{info.mnemonic}{width}", info, imm=width)  # the suite also spells it bswap16
        elif info.kind == isa.InsnKind.ATOMIC:
            suffix = "32" if info.size == 4 else ""
            for imm, name in isa.ATOMIC_OPS.items():
                atomics[name + suffix] = (info.opcode, imm)
                if name in ("xchg", "cmpxchg"):  # these always fetch; accept the redundant keyword
                    atomics["fetch " + name + suffix] = (info.opcode, imm)
        else:
            form(info.mnemonic, info)
    return forms, atomics


_FORMS, _ATOMICS = _build_forms()
_PSEUDO_SOURCES = {name: src for src, name in isa.LDDW_PSEUDO_NAMES.items() if src != isa.BPF_PSEUDO_IMM64}
_CALL_KINDS = {"helper": isa.BPF_PSEUDO_CALL_HELPER, "local": isa.BPF_PSEUDO_CALL_LOCAL,
               "kfunc": isa.BPF_PSEUDO_KFUNC_CALL, "runtime": isa.BPF_PSEUDO_KFUNC_CALL}

_LABEL_DEF = re.compile(r"([A-Za-z_.$][\w.$]*)\s*:(.*)")
_LABEL = re.compile(r"[A-Za-z_.$][\w.$]*")
_NUMBER = re.compile(r"([+-]?)\s*(0x[0-9a-f]+|[0-9]+)", re.IGNORECASE)
_REGISTER = re.compile(r"%r([0-9]+)", re.IGNORECASE)
_MEMORY = re.compile(r"\[\s*(%\w+)\s*(?:([+-])\s*(\w+)\s*)?\]")
_PSEUDO_VALUE = re.compile(r"([+-]?[^+\-\s]+)\s*(?:([+-])\s*(\S+))?")

# What a field accepts as written: signed or unsigned spellings of its bits (0xffff is offset -1).
_BITS16 = (-(1 << 15), (1 << 16) - 1)
_BITS32 = (-(1 << 31), (1 << 32) - 1)
_BITS64 = (-(1 << 63), (1 << 64) - 1)
# How far a label may be: the signed range of the offset field.
_JUMP_OFF = (-(1 << 15), (1 << 15) - 1)
_JUMP_IMM = (-(1 << 31), (1 << 31) - 1)


# -- Operands --------------------------------------------------------------------------------------------------

def _number(text: str, limits: tuple[int, int], what: str) -> int:
    match = _NUMBER.fullmatch(text.strip())
    if not match:
        raise _Bad(f"expected a number for the {what}, got '{text}'")
    sign, digits = match.groups()
    value = int(digits, 16) if digits[:2].lower() == "0x" else int(digits)
    value = -value if sign == "-" else value
    low, high = limits
    if not low <= value <= high:
        raise _Bad(f"{what} {text.strip()} is out of range ({low}..{high})")
    return value


def _imm32(text: str, what: str = "immediate") -> int:
    return isa.s32(_number(text, _BITS32, what))


def _s16(value: int) -> int:
    value &= 0xFFFF
    return value - (1 << 16) if value & 0x8000 else value


def _register(text: str) -> int:
    match = _REGISTER.fullmatch(text.strip())
    if not match:
        raise _Bad(f"expected a register %r0..%r10, got '{text}'")
    number = int(match.group(1))
    if number >= isa.NUM_REGISTERS:
        raise _Bad(f"register %r{number} does not exist (%r0..%r10)")
    return number


def _memory(text: str) -> tuple[int, int]:
    """`[%rN]`, `[%rN+off]` or `[%rN-off]` -> (register, 16-bit offset)."""
    match = _MEMORY.fullmatch(text.strip())
    if not match:
        raise _Bad(f"expected a memory operand like [%r1+8], got '{text}'")
    register, sign, digits = match.groups()
    offset = _number((sign or "") + (digits or "0"), _BITS16, "memory offset")
    return _register(register), _s16(offset)


def _is_register(text: str) -> bool:
    return text.strip().startswith("%")


@dataclass
class _Target:
    """A jump, call or code_addr operand: a label to resolve later, or an offset already known."""

    label: str | None
    offset: int = 0


def _target(text: str, limits: tuple[int, int]) -> _Target:
    text = text.strip()
    if text[:1] in "+-":
        return _Target(None, _number(text, limits, "jump offset"))
    if _LABEL.fullmatch(text):
        return _Target(text)
    raise _Bad(f"jump target '{text}' must be a label or a signed offset like +3 or -2")


# -- Statements --------------------------------------------------------------------------------------------------

@dataclass
class _Statement:
    line: int
    index: int              # slot index
    insn: isa.Insn
    target: _Target | None = None
    wide_target: bool = False   # the target goes to imm (32 bits) rather than off (16 bits)

_USAGE = {
    isa.InsnKind.ALU: "%rD, %rS or %rD, imm", isa.InsnKind.END: "%rD", isa.InsnKind.JA: "label or +offset",
    isa.InsnKind.JCOND: "%rD, %rS or imm, label or +offset", isa.InsnKind.EXIT: "no operands",
    isa.InsnKind.LDDW: "%rD, imm64 or %rD, KIND value", isa.InsnKind.LDX: "%rD, [%rS+off]",
    isa.InsnKind.ST: "[%rD+off], imm", isa.InsnKind.STX: "[%rD+off], %rS", isa.InsnKind.CALLX: "%rN",
}


def _operands(rest: str) -> list[str]:
    if not rest.strip():
        return []
    operands = [part.strip() for part in rest.split(",")]
    if any(not part for part in operands):
        raise _Bad(f"empty operand in '{rest.strip()}'")
    return operands


def _parse(mnemonic: str, rest: str) -> tuple[isa.Insn, _Target | None, bool]:
    """One instruction -> (insn, jump target or None, whether the target goes to imm)."""
    if mnemonic == "lock":
        return _parse_atomic(rest), None, False
    if mnemonic == "call":
        return _parse_call(rest)
    form = _FORMS.get(mnemonic)
    if form is None:
        raise _Bad(f"unknown mnemonic '{mnemonic}'")
    operands = _operands(rest)
    kind = form.kind

    def expect(count: int, usage: str | None = None) -> None:
        if len(operands) != count:
            usage = usage or _USAGE.get(kind, "")
            raise _Bad(f"{mnemonic} takes {count} operand{'s' if count != 1 else ''} ({usage}), got {len(operands)}")

    def source_opcode(operand: str) -> tuple[int, int, int]:
        """(opcode, src, imm) for a register-or-immediate source operand."""
        if _is_register(operand):
            if isa.BPF_X not in form.opcodes:
                raise _Bad(f"{mnemonic} takes an immediate, not a register")
            return form.opcodes[isa.BPF_X], _register(operand), 0
        if isa.BPF_K not in form.opcodes:
            raise _Bad(f"{mnemonic} takes a register source, not an immediate")
        return form.opcodes[isa.BPF_K], 0, _imm32(operand)

    if kind == isa.InsnKind.ALU:
        if form.unary:
            expect(1, "%rD")
            return isa.Insn(form.opcodes[isa.BPF_K], _register(operands[0])), None, False
        expect(2)
        opcode, src, imm = source_opcode(operands[1])
        return isa.Insn(opcode, _register(operands[0]), src, form.off, imm), None, False
    opcode = form.opcodes[0] if 0 in form.opcodes else None
    if kind == isa.InsnKind.END:
        expect(1)
        return isa.Insn(opcode, _register(operands[0]), imm=form.imm), None, False
    if kind == isa.InsnKind.JA:
        expect(1)
        wide = opcode == isa.OP_JA32
        return isa.Insn(opcode), _target(operands[0], _BITS32 if wide else _BITS16), wide
    if kind == isa.InsnKind.JCOND:
        expect(3)
        opcode, src, imm = source_opcode(operands[1])
        return isa.Insn(opcode, _register(operands[0]), src, 0, imm), _target(operands[2], _BITS16), False
    if kind == isa.InsnKind.EXIT:
        expect(0)
        return isa.Insn(opcode), None, False
    if kind == isa.InsnKind.CALLX:  # the older encoding: register number in imm
        expect(1)
        return isa.Insn(opcode, imm=_register(operands[0])), None, False
    if kind == isa.InsnKind.LDDW:
        expect(2)
        return _parse_lddw(opcode, _register(operands[0]), operands[1])
    if kind == isa.InsnKind.LD_PACKET:
        if (opcode & isa.MODE_MASK) == isa.BPF_ABS:
            expect(1, "imm")
            return isa.Insn(opcode, imm=_imm32(operands[0], "packet offset")), None, False
        expect(2, "%rS, imm")
        return isa.Insn(opcode, src=_register(operands[0]), imm=_imm32(operands[1], "packet offset")), None, False
    if kind == isa.InsnKind.LDX:
        expect(2)
        base, offset = _memory(operands[1])
        return isa.Insn(opcode, _register(operands[0]), base, offset), None, False
    if kind == isa.InsnKind.ST:
        expect(2)
        base, offset = _memory(operands[0])
        return isa.Insn(opcode, base, 0, offset, _imm32(operands[1])), None, False
    if kind == isa.InsnKind.STX:
        expect(2)
        base, offset = _memory(operands[0])
        return isa.Insn(opcode, base, _register(operands[1]), offset), None, False
    raise _Bad(f"unknown mnemonic '{mnemonic}'")  # CALL and ATOMIC are handled above


def _parse_call(rest: str) -> tuple[isa.Insn, _Target | None, bool]:
    words = rest.split()
    if len(words) == 1 and _is_register(words[0]):
        return isa.Insn(isa.OP_CALLX, _register(words[0])), None, False
    if len(words) == 1 and words[0].lower() in _CALL_KINDS:
        raise _Bad(f"call {words[0]} needs a target, like 'call {words[0]} {'name' if words[0] == 'local' else '5'}'")
    if len(words) == 1:
        words = ["helper", words[0]]
    if len(words) != 2:
        raise _Bad("call takes a helper number, 'local' and a label, 'kfunc' and an id, or a register")
    kind = _CALL_KINDS.get(words[0].lower())
    if kind is None:
        raise _Bad(f"unknown call kind '{words[0]}' (helper, local, kfunc or a register)")
    if kind == isa.BPF_PSEUDO_CALL_LOCAL:
        return isa.Insn(isa.OP_CALL, src=kind), _target(words[1], _BITS32), True
    return isa.Insn(isa.OP_CALL, src=kind, imm=_imm32(words[1], "call number")), None, False


def _parse_atomic(rest: str) -> isa.Insn:
    # `lock [fetch] OP[32] [%rD+off], %rS`: the operation words come before the memory operand.
    words, bracket, tail = rest.partition("[")
    name = " ".join(words.split()).lower()
    entry = _ATOMICS.get(name)
    if entry is None:
        known = ", ".join(isa.ATOMIC_OPS.values())
        raise _Bad(f"unknown atomic operation 'lock {name}' (one of: {known}; add 32 for 32 bits)")
    operands = _operands(bracket + tail)
    if len(operands) != 2:
        raise _Bad(f"lock {name} takes 2 operands ([%rD+off], %rS), got {len(operands)}")
    opcode, imm = entry
    base, offset = _memory(operands[0])
    return isa.Insn(opcode, base, _register(operands[1]), offset, imm)


def _parse_lddw(opcode: int, dst: int, operand: str) -> tuple[isa.Insn, _Target | None, bool]:
    words = operand.split(None, 1)
    source = _PSEUDO_SOURCES.get(words[0].lower())
    if source is None:
        value = _number(operand, _BITS64, "64-bit immediate") & ((1 << 64) - 1)
        return isa.Insn(opcode, dst, 0, 0, isa.s32(value), value), None, False
    match = _PSEUDO_VALUE.fullmatch(words[1].strip()) if len(words) == 2 else None
    if not match:
        raise _Bad(f"lddw {words[0]} needs a value, like '{words[0]} 3' or '{words[0]} 3+16'")
    base_text, sign, extra_text = match.groups()
    extra = isa.s32(_number((sign or "") + (extra_text or "0"), _BITS32, "second immediate"))
    target = None
    if source == isa.BPF_PSEUDO_FUNC:
        target = _target(base_text, _BITS32)
        base = target.offset
    else:
        base = _imm32(base_text, f"{words[0]} value")
    value = (base & 0xFFFFFFFF) | ((extra & 0xFFFFFFFF) << 32)
    return isa.Insn(opcode, dst, source, 0, isa.s32(base), value), target, True


# -- The assembler -------------------------------------------------------------------------------------------------

def assemble(text: str, source: str = "<input>") -> isa.Program:
    """Assemble `text` into a validated `isa.Program`. Raises AsmError naming `source` and the line number."""
    statements: list[_Statement] = []
    labels: dict[str, tuple[int, int]] = {}  # name -> (slot index, line)
    first_exit: int | None = None
    index = 0
    for line_number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        try:
            while match := _LABEL_DEF.match(line):
                name, line = match.group(1), match.group(2).strip()
                if name in labels:
                    raise _Bad(f"label '{name}' is already defined on line {labels[name][1]}")
                labels[name] = (index, line_number)
            if not line:
                continue
            mnemonic, _, rest = line.replace("\t", " ").partition(" ")
            insn, target, wide = _parse(mnemonic.lower(), rest)
        except _Bad as error:
            raise AsmError(source, line_number, str(error)) from None
        if insn.opcode == isa.OP_EXIT and first_exit is None:
            first_exit = index
        statements.append(_Statement(line_number, index, insn, target, wide))
        index += insn.slots
    if not statements:
        raise AsmError(source, None, "no instructions")
    if "exit" not in labels and first_exit is not None:
        labels["exit"] = (first_exit, 0)  # the suite's implicit label

    program = isa.Program()
    line_of_index: dict[int, int] = {}
    for statement in statements:
        insn = _resolve(statement, labels, source)
        try:
            isa.check_insn(insn, statement.index)
        except isa.IsaError as error:
            raise AsmError(source, statement.line, error.reason) from None
        line_of_index[statement.index] = statement.line
        program.append(insn)
        if insn.is_lddw:
            program.append(isa.LDDW_TAIL)
    try:
        isa.check_jump_targets(program)
    except isa.IsaError as error:
        raise AsmError(source, line_of_index.get(error.index), error.reason) from None
    return program


def _resolve(statement: _Statement, labels: dict[str, tuple[int, int]], source: str) -> isa.Insn:
    insn, target = statement.insn, statement.target
    if target is None:
        return insn
    offset = target.offset
    if target.label is not None:
        if target.label not in labels:
            raise AsmError(source, statement.line, f"unknown label '{target.label}'")
        offset = labels[target.label][0] - statement.index - 1
        low, high = _JUMP_IMM if statement.wide_target else _JUMP_OFF
        if not low <= offset <= high:
            bits = 32 if statement.wide_target else 16
            raise AsmError(source, statement.line,
                           f"label '{target.label}' is {offset} instructions away: too far for a {bits}-bit offset")
    elif not statement.wide_target:
        offset = _s16(offset)
    if not statement.wide_target:
        return insn._replace(off=offset)
    offset = isa.s32(offset)
    if insn.is_lddw:
        return insn._replace(imm=offset, imm64=(insn.imm64 & ~0xFFFFFFFF) | (offset & 0xFFFFFFFF))
    return insn._replace(imm=offset)
