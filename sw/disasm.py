"""eBPF disassembler: an objdump-like listing in the conformance-suite dialect that `asm.assemble` reads.

Every name comes from `isa.OPCODES` (RFC 9669 §3-§5). The text of an instruction assembles back to the same
bytes, so `assemble(disassemble(p, addresses=False, raw=False))` reproduces `p` exactly; `format_insn` gives
the one-line form used in the error messages of the VM and the verifier.

A listing line is `index: raw bytes  text` (index = 8-byte slot, as the kernel counts; an LDDW's second slot
gets its own line of raw bytes). Jump and local-call targets are generated labels `L<index>:` or signed offsets.
"""

from __future__ import annotations

from typing import Callable

from . import isa

__all__ = ["disassemble", "format_insn"]

_DECIMAL_LIMIT = 4096   # smaller magnitudes read better in decimal, larger ones (masks, addresses) in hex


def _number(value: int) -> str:
    if -_DECIMAL_LIMIT < value < _DECIMAL_LIMIT:
        return str(value)
    return f"-0x{-value:x}" if value < 0 else f"0x{value:x}"


def _imm(insn: isa.Insn, info: isa.OpcodeInfo) -> str:
    """The imm operand, unsigned where only its low 32 bits matter (32-bit ALU and jumps, narrow stores)."""
    wide = info.cls in (isa.BPF_ALU64, isa.BPF_JMP) or info.opcode == (isa.BPF_ST | isa.BPF_MEM | isa.BPF_DW)
    if wide or -_DECIMAL_LIMIT < insn.imm < _DECIMAL_LIMIT:
        return _number(insn.imm)
    return f"0x{insn.imm & 0xFFFFFFFF:x}"


def _register(number: int) -> str:
    return f"%r{number}"


def _memory(register: int, offset: int) -> str:
    return f"[%r{register}{offset:+d}]" if offset else f"[%r{register}]"


def _offset(offset: int) -> str:
    return f"{offset:+d}"


def mnemonic(insn: isa.Insn) -> str:
    """The dialect's mnemonic of a known opcode: the table's, refined by off (sdiv, movsx) or imm (be16)."""
    info = isa.OPCODES[insn.opcode]
    op = insn.opcode & isa.OP_MASK
    if info.kind == isa.InsnKind.ALU:
        if op in (isa.BPF_DIV, isa.BPF_MOD) and insn.off == 1:
            return "s" + info.mnemonic
        if op == isa.BPF_MOV and insn.off:
            return f"movsx{insn.off}{64 if info.cls == isa.BPF_ALU64 else 32}"
    if info.kind == isa.InsnKind.END:
        return f"{info.mnemonic}{insn.imm}"
    return info.mnemonic


def _render(insn: isa.Insn, target_text: Callable[[int], str]) -> str:
    """The assembly text of a known opcode; target_text(relative offset) writes jump targets."""
    info = isa.OPCODES[insn.opcode]
    kind, name = info.kind, mnemonic(insn)
    dst, src = _register(insn.dst), _register(insn.src)
    source = src if info.uses_src_reg else _imm(insn, info)
    if kind == isa.InsnKind.ALU:
        return f"{name} {dst}" if (insn.opcode & isa.OP_MASK) == isa.BPF_NEG else f"{name} {dst}, {source}"
    if kind == isa.InsnKind.END:
        return f"{name} {dst}"
    if kind == isa.InsnKind.JA:
        return f"{name} {target_text(insn.imm if insn.opcode == isa.OP_JA32 else insn.off)}"
    if kind == isa.InsnKind.JCOND:
        return f"{name} {dst}, {source}, {target_text(insn.off)}"
    if kind == isa.InsnKind.CALL:
        if insn.src == isa.BPF_PSEUDO_CALL_LOCAL:
            return f"call local {target_text(insn.imm)}"
        if insn.src == isa.BPF_PSEUDO_KFUNC_CALL:
            return f"call kfunc {insn.imm}"
        return f"call {insn.imm}"
    if kind == isa.InsnKind.CALLX:
        # The register is in dst (LLVM); the older encoding put its number in imm.
        return f"call {dst}" if not insn.imm else f"callx {_register(insn.imm)}"
    if kind == isa.InsnKind.EXIT:
        return "exit"
    if kind == isa.InsnKind.LDDW:
        return f"lddw {dst}, {_lddw_value(insn, target_text)}"
    if kind == isa.InsnKind.LD_PACKET:
        if (insn.opcode & isa.MODE_MASK) == isa.BPF_ABS:
            return f"{name} {_number(insn.imm)}"
        return f"{name} {src}, {_number(insn.imm)}"
    if kind == isa.InsnKind.LDX:
        return f"{name} {dst}, {_memory(insn.src, insn.off)}"
    if kind == isa.InsnKind.ST:
        return f"{name} {_memory(insn.dst, insn.off)}, {source}"
    if kind == isa.InsnKind.STX:
        return f"{name} {_memory(insn.dst, insn.off)}, {src}"
    if kind == isa.InsnKind.ATOMIC:
        operation = isa.ATOMIC_OPS.get(insn.imm, f"0x{insn.imm & 0xFFFFFFFF:x}")
        width = "32" if info.size == 4 else ""
        return f"lock {operation}{width} {_memory(insn.dst, insn.off)}, {src}"
    raise AssertionError(f"no rendering for {kind}")  # every InsnKind is handled above


def _lddw_value(insn: isa.Insn, target_text: Callable[[int], str]) -> str:
    value = insn.imm64 if insn.imm64 is not None else insn.imm & 0xFFFFFFFF
    if insn.src == isa.BPF_PSEUDO_IMM64:
        signed = value - (1 << 64) if value >> 63 else value
        return str(signed) if -_DECIMAL_LIMIT < signed < _DECIMAL_LIMIT else f"0x{value:x}"
    kind = isa.LDDW_PSEUDO_NAMES.get(insn.src, f"src{insn.src}")
    base, extra = isa.s32(value), isa.s32(value >> 32)
    text = f"{kind} {target_text(base) if insn.src == isa.BPF_PSEUDO_FUNC else _number(base)}"
    if extra:
        text += f"{'-' if extra < 0 else '+'}{_number(abs(extra))}"
    return text


def _target_index(insn: isa.Insn, index: int) -> int | None:
    try:
        return isa.jump_target(insn, index)
    except KeyError:  # unknown opcode
        return None


def format_insn(insn: isa.Insn, index: int | None = None) -> str:
    """One instruction as assembly text, for listings and error messages. Never raises.

    With `index`, jumps and local calls add the slot they go to as a comment (`jeq %r1, 5, +3  # -> 16`).
    An instruction that breaks an RFC 9669 rule gets the reason and its raw fields as a comment, and an
    unknown opcode is shown with its fields."""
    if insn is isa.LDDW_TAIL:
        return "(second half of the lddw above)"
    fields = f"opcode=0x{insn.opcode & 0xFF:02x} dst={insn.dst} src={insn.src} off={insn.off} imm={insn.imm}"
    if insn.opcode not in isa.OPCODES:
        return f"<unknown opcode 0x{insn.opcode & 0xFF:02x}: {fields}>"
    try:
        text = _render(insn, _offset)
    except Exception:  # decoration of a malformed Insn (fields outside their ranges) must not fail
        return f"<{isa.OPCODES[insn.opcode].mnemonic}: {fields}>"
    comments = []
    if index is not None and (target := _target_index(insn, index)) is not None:
        comments.append(f"-> {target}")
    try:
        isa.check_insn(insn, index)
    except (isa.IsaError, ValueError, OverflowError) as error:
        comments.append(f"invalid: {getattr(error, 'reason', error)}; {fields}")
    return f"{text}  # {'; '.join(comments)}" if comments else text


def disassemble(program: isa.Program | bytes, *, addresses: bool = True, raw: bool = True,
                labels: bool = True) -> str:
    """An objdump-like listing of a program (an `isa.Program`, or its bytes, which are decoded and validated
    except for jump targets). `addresses` shows slot indices, `raw` the instruction bytes, and `labels` writes
    jump targets as generated labels `L<index>` (targets outside the program stay signed offsets)."""
    if isinstance(program, (bytes, bytearray, memoryview)):
        program = isa.decode_program(bytes(program), check_targets=False)
    targets: set[int] = set()
    if labels:
        for index, insn in program.instructions():
            target = isa.jump_target(insn, index)
            if target is not None and 0 <= target < len(program) and program[target] is not isa.LDDW_TAIL:
                targets.add(target)

    lines = []
    indent = "" if addresses or raw or not targets else "    "
    for index, insn in program.instructions():
        if index in targets:
            lines.append(f"L{index}:")

        def target_text(offset: int, index: int = index) -> str:
            target = index + 1 + offset
            return f"L{target}" if target in targets else _offset(offset)

        text = _render(insn, target_text)
        code = insn.encode()
        columns = [f"{index:5d}:"] if addresses else []
        if raw:
            columns.append(code[:8].hex(" "))
        lines.append(indent + "  ".join(columns + [text]))
        if insn.is_lddw and raw:
            columns = [f"{index + 1:5d}:"] if addresses else []
            lines.append("  ".join(columns + [code[8:].hex(" ")]))
    return "\n".join(lines) + "\n"
