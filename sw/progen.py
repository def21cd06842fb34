"""Random eBPF programs that the Linux verifier accepts and that terminate: hypothesis strategies for the
differential tests (golden VM against the kernel) and the lockstep tests (RTL core against the golden VM).

Ref: RFC 9669 §4 (arithmetic and jumps) and §5 (loads, stores, atomics) for the instructions; the rules of
the kernel's verifier (kernel/bpf/verifier.c: check_cfg, check_alu_op, check_mem_access, check_atomic) for
what a program may contain:
- every register is written before it is read, so each program starts by setting r0..r9;
- r10 is only ever a base address: it is never copied, compared or stored, so every other register holds a
  plain number and the programs run the same wherever the stack lives;
- shift immediates are below the operand width, division and modulo immediates are not 0 (register
  operands may be anything: the machine defines shifts by any amount and division by 0);
- stack accesses are aligned to their size, inside the frame, and read only bytes written before on every
  path that reaches them (the kernel does not zero the stack; the VM does);
- jumps go forward only (so programs terminate) and every instruction is reachable: the control flow is
  built from if/if-else shapes, and an early exit only ends a block that something jumps over.

A program is `init` (one lddw or mov per register r0..r9) then `body`. Every exit of the body is preceded
by a fold of r1..r9 into r0, so r0 at exit depends on every register. Instruction families are chosen by
"kinds" (see ALL_KINDS); V4_KINDS need -mcpu=v4 instructions (Linux 6.6 and later).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from hypothesis import strategies as st

from . import isa

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1

# -- kinds of instruction -----------------------------------------------------------------------------
KIND_ALU = "alu"            # add sub mul or and xor mov lsh rsh arsh neg, 32 and 64 bit, imm and register
KIND_DIVMOD = "divmod"      # unsigned div, mod
KIND_SDIVMOD = "sdivmod"    # signed div, mod (v4)
KIND_MOVSX = "movsx"        # sign-extending mov (v4)
KIND_END = "end"            # le16/32/64, be16/32/64
KIND_BSWAP = "bswap"        # unconditional byte swap (v4)
KIND_LDDW = "lddw"          # 64-bit immediate loads inside the body
KIND_JCOND = "jcond"        # if / if-else shapes: conditional jumps (JMP, JMP32; imm, register) and ja
KIND_GOTOL = "gotol"        # if-else shapes whose jump over the else block is the 32-bit-offset ja (v4)
KIND_EXIT = "exit"          # early exits at the end of a jumped-over block
KIND_STORE = "store"        # st, stx of 1, 2, 4, 8 bytes into the stack
KIND_LOAD = "load"          # ldx of 1, 2, 4, 8 bytes from written stack bytes
KIND_LOADSX = "loadsx"      # sign-extending ldx of 1, 2, 4 bytes (v4)
KIND_ATOMIC = "atomic"      # add/or/and/xor with and without fetch, xchg, cmpxchg; 32 and 64 bit

ALU_KINDS = (KIND_ALU, KIND_DIVMOD, KIND_SDIVMOD, KIND_MOVSX, KIND_END, KIND_BSWAP, KIND_LDDW)
JUMP_KINDS = (KIND_JCOND, KIND_GOTOL, KIND_EXIT)
STACK_KINDS = (KIND_STORE, KIND_LOAD, KIND_LOADSX, KIND_ATOMIC)
ALL_KINDS = ALU_KINDS + JUMP_KINDS + STACK_KINDS
V4_KINDS = frozenset({KIND_SDIVMOD, KIND_MOVSX, KIND_BSWAP, KIND_GOTOL, KIND_LOADSX})

# Kinds that shape control flow rather than emit one instruction each.
_SHAPE_KINDS = frozenset({KIND_JCOND, KIND_GOTOL, KIND_EXIT})

DATA_REGISTERS = tuple(range(10))   # r0..r9; r10 is the frame pointer

_PLAIN_ALU_OPS = (isa.BPF_ADD, isa.BPF_SUB, isa.BPF_MUL, isa.BPF_OR, isa.BPF_AND, isa.BPF_XOR, isa.BPF_MOV,
                  isa.BPF_LSH, isa.BPF_RSH, isa.BPF_ARSH, isa.BPF_NEG)
_SHIFT_OPS = frozenset({isa.BPF_LSH, isa.BPF_RSH, isa.BPF_ARSH})
_JUMP_CONDITIONS = tuple(isa.JMP_COND_NAMES)
_ATOMIC_OPS = tuple(isa.ATOMIC_OPS)
_SIZES = (isa.BPF_B, isa.BPF_H, isa.BPF_W, isa.BPF_DW)

# Values where implementations tend to differ: signs, carries, widths, the most negative numbers.
_EDGES_32 = (0, 1, -1, 2, -2, 7, 31, 32, 63, 64, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF,
             0x7FFFFFFF, -0x80000000, -0x7FFFFFFF)
_EDGES_64 = (0, 1, 2, 3, 7, 31, 32, 63, 64, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF,
             0x80000000, 0xFFFFFFFF, 0x1_0000_0000, 0x1_FFFF_FFFF, 0x7FFF_FFFF_FFFF_FFFF,
             0x8000_0000_0000_0000, 0x8000_0000_0000_0001, 0xFFFF_FFFF_8000_0000, 0xFFFF_FFFF_0000_0000,
             M64, M64 - 1, 0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210)

imm32 = st.one_of(st.sampled_from(_EDGES_32), st.integers(-16, 16), st.integers(-2**31, 2**31 - 1))
nonzero_imm32 = imm32.filter(bool)
value64 = st.one_of(st.sampled_from(_EDGES_64), st.integers(-300, 300).map(lambda v: v & M64),
                    st.integers(0, M64))


@dataclass(frozen=True)
class GeneratedProgram:
    """A generated program: `init` sets r0..r9 to `initial_registers`, then `body` runs (ending in exits)."""

    init: tuple[isa.Insn, ...]
    body: tuple[isa.Insn, ...]
    initial_registers: tuple[int, ...]

    @property
    def insns(self) -> tuple[isa.Insn, ...]:
        return self.init + self.body

    def program(self) -> isa.Program:
        return isa.make_program(self.insns)

    def encode(self) -> bytes:
        return isa.encode_program(self.insns)

    def __repr__(self) -> str:
        # What hypothesis prints for a failing example: enough to rebuild it with isa.decode_program.
        return (f"GeneratedProgram(code=bytes.fromhex({self.encode().hex()!r}), "
                f"init_slots={sum(insn.slots for insn in self.init)}, "
                f"initial_registers={tuple(hex(v) for v in self.initial_registers)})")


# -- control-flow shapes, flattened to instructions once the whole body is drawn --------------------------

@dataclass
class _If:
    """`if (cond) goto skip; then...; skip:` - the block runs when the condition is false."""
    condition: isa.Insn
    then: list


@dataclass
class _IfElse:
    """`if (cond) goto other; then...; ja end; other: else...; end:` (no ja when `then` ends in an exit)."""
    condition: isa.Insn
    then: list
    otherwise: list
    long_jump: bool   # the ja over the else block is gotol (JMP32 | JA, offset in imm)


class _Exit:
    """Fold r1..r9 into r0, then exit."""


def _ends_in_exit(block: list) -> bool:
    return bool(block) and isinstance(block[-1], _Exit)


def fold_and_exit() -> list[isa.Insn]:
    """r0 ^= r1; r0 += r2; r0 ^= r3; ... ; exit: the value at exit depends on every data register."""
    folded = [isa.alu(isa.BPF_XOR if reg % 2 else isa.BPF_ADD, 0, f"r{reg}") for reg in DATA_REGISTERS[1:]]
    return folded + [isa.exit_insn()]


def _slots(item) -> int:
    if isinstance(item, isa.Insn):
        return item.slots
    if isinstance(item, _Exit):
        return sum(insn.slots for insn in fold_and_exit())
    if isinstance(item, _If):
        return 1 + _block_slots(item.then)
    jump_over_else = 0 if _ends_in_exit(item.then) else 1
    return 1 + _block_slots(item.then) + jump_over_else + _block_slots(item.otherwise)


def _block_slots(block: list) -> int:
    return sum(_slots(item) for item in block)


def _flatten(block: list, out: list[isa.Insn]) -> None:
    for item in block:
        if isinstance(item, isa.Insn):
            out.append(item)
        elif isinstance(item, _Exit):
            out.extend(fold_and_exit())
        elif isinstance(item, _If):
            out.append(item.condition._replace(off=_block_slots(item.then)))
            _flatten(item.then, out)
        else:
            then_exits = _ends_in_exit(item.then)
            out.append(item.condition._replace(off=_block_slots(item.then) + (0 if then_exits else 1)))
            _flatten(item.then, out)
            if not then_exits:
                skip = _block_slots(item.otherwise)
                out.append(isa.Insn(isa.OP_JA32, imm=skip) if item.long_jump else isa.Insn(isa.OP_JA, off=skip))
            _flatten(item.otherwise, out)


# -- the generator ---------------------------------------------------------------------------------------

class _Builder:
    """Draws one program. Tracks which stack bytes are written on every path, so loads read only those."""

    def __init__(self, draw, kinds: frozenset[str], max_items: int, max_depth: int, max_branches: int,
                 stack_window: tuple[int, int]):
        self.draw = draw
        self.kinds = kinds
        self.insn_kinds = tuple(kind for kind in ALL_KINDS if kind in kinds and kind not in _SHAPE_KINDS)
        self.remaining = draw(st.integers(1, max_items))
        self.max_depth = max_depth
        self.branches_left = max_branches
        self.window_low, self.window_high = stack_window
        self.written: set[int] = set()   # stack offsets (relative to r10) written on every path so far

    # registers and operands
    def register(self) -> int:
        return self.draw(st.sampled_from(DATA_REGISTERS))

    def source(self, imm_strategy=imm32) -> int | str:
        """An immediate, or a register name "rN"."""
        if self.draw(st.booleans()):
            return f"r{self.register()}"
        return self.draw(imm_strategy)

    # blocks
    def block(self, depth: int, length: int, may_exit: bool) -> list:
        items: list = []
        for _ in range(length):
            if self.remaining <= 0:
                break
            items.append(self.item(depth))
        if may_exit and KIND_EXIT in self.kinds and self.draw(st.booleans()):
            items.append(_Exit())
        return items

    def item(self, depth: int):
        choices = list(self.insn_kinds)
        if KIND_JCOND in self.kinds and depth < self.max_depth and self.branches_left > 0:
            choices.append(KIND_JCOND)
        kind = self.draw(st.sampled_from(choices))
        if kind == KIND_JCOND:
            return self.branch(depth)
        self.remaining -= 1
        return getattr(self, "emit_" + kind)()

    def branch(self, depth: int):
        self.branches_left -= 1
        self.remaining -= 1
        is64 = self.draw(st.booleans())
        condition = isa.jcond(self.draw(st.sampled_from(_JUMP_CONDITIONS)), self.register(), self.source(),
                              0, is64)
        before = set(self.written)
        length = st.integers(0, 4)
        if self.draw(st.booleans()):
            then = self.block(depth + 1, self.draw(length), may_exit=True)
            self.written = before   # the block may be skipped: it adds nothing for sure
            return _If(condition, then)
        then = self.block(depth + 1, self.draw(length), may_exit=True)
        after_then = self.written
        self.written = set(before)
        otherwise = self.block(depth + 1, self.draw(length), may_exit=False)  # the end must stay reachable
        if not _ends_in_exit(then):
            self.written &= after_then
        long_jump = KIND_GOTOL in self.kinds and self.draw(st.booleans())
        return _IfElse(condition, then, otherwise, long_jump)

    # arithmetic
    def emit_alu(self) -> isa.Insn:
        op = self.draw(st.sampled_from(_PLAIN_ALU_OPS))
        is64 = self.draw(st.booleans())
        dst = self.register()
        if op == isa.BPF_NEG:
            return isa.alu(op, dst, 0, is64)
        if op in _SHIFT_OPS:
            width = 64 if is64 else 32
            return isa.alu(op, dst, self.source(st.integers(0, width - 1)), is64)
        return isa.alu(op, dst, self.source(), is64)

    def emit_divmod(self, signed: bool = False) -> isa.Insn:
        op = self.draw(st.sampled_from((isa.BPF_DIV, isa.BPF_MOD)))
        return isa.alu(op, self.register(), self.source(nonzero_imm32), self.draw(st.booleans()),
                       off=1 if signed else 0)

    def emit_sdivmod(self) -> isa.Insn:
        return self.emit_divmod(signed=True)

    def emit_movsx(self) -> isa.Insn:
        is64 = self.draw(st.booleans())
        width = self.draw(st.sampled_from((8, 16, 32) if is64 else (8, 16)))
        return isa.alu(isa.BPF_MOV, self.register(), f"r{self.register()}", is64, off=width)

    def emit_end(self) -> isa.Insn:
        order = self.draw(st.sampled_from((isa.BPF_TO_LE, isa.BPF_TO_BE)))
        return isa.Insn(isa.BPF_ALU | order | isa.BPF_END, self.register(),
                        imm=self.draw(st.sampled_from((16, 32, 64))))

    def emit_bswap(self) -> isa.Insn:
        return isa.Insn(isa.BPF_ALU64 | isa.BPF_TO_LE | isa.BPF_END, self.register(),
                        imm=self.draw(st.sampled_from((16, 32, 64))))

    def emit_lddw(self) -> isa.Insn:
        return isa.lddw(self.register(), self.draw(value64))

    # stack
    def stack_offset(self, nbytes: int) -> int:
        """An offset from r10, aligned to nbytes, inside the window; mostly near its top so loads find data."""
        slots = (self.window_high - self.window_low) // 8
        slot = self.draw(st.one_of(st.integers(0, min(slots, 4) - 1), st.integers(0, slots - 1)))
        within = self.draw(st.integers(0, 8 // nbytes - 1)) * nbytes
        return self.window_high - 8 * (slot + 1) + within

    def readable_offsets(self, nbytes: int) -> list[int]:
        return [offset for offset in range(self.window_low, self.window_high - nbytes + 1, nbytes)
                if all(offset + i in self.written for i in range(nbytes))]

    def store(self, size: int, offset: int | None = None) -> isa.Insn:
        nbytes = isa.SIZE_BYTES[size]
        if offset is None:
            offset = self.stack_offset(nbytes)
        self.written.update(range(offset, offset + nbytes))
        if self.draw(st.booleans()):
            return isa.Insn(isa.BPF_STX | isa.BPF_MEM | size, isa.FRAME_POINTER, self.register(), offset)
        return isa.Insn(isa.BPF_ST | isa.BPF_MEM | size, isa.FRAME_POINTER, 0, offset, self.draw(imm32))

    def emit_store(self) -> isa.Insn:
        return self.store(self.draw(st.sampled_from(_SIZES)))

    def written_offset(self, size: int) -> tuple[list[isa.Insn], int]:
        """An offset whose bytes are all written, with the store that writes them first if none is."""
        nbytes = isa.SIZE_BYTES[size]
        readable = self.readable_offsets(nbytes)
        if readable:
            return [], self.draw(st.sampled_from(readable))
        offset = self.stack_offset(nbytes)
        return [self.store(size, offset)], offset

    def emit_load(self, mode: int = isa.BPF_MEM, sizes=_SIZES) -> isa.Insn | _Sequence:
        size = self.draw(st.sampled_from(sizes))
        prefix, offset = self.written_offset(size)
        load = isa.Insn(isa.BPF_LDX | mode | size, self.register(), isa.FRAME_POINTER, offset)
        return _Sequence(prefix + [load]) if prefix else load

    def emit_loadsx(self) -> isa.Insn | _Sequence:
        return self.emit_load(isa.BPF_MEMSX, (isa.BPF_B, isa.BPF_H, isa.BPF_W))

    def emit_atomic(self) -> isa.Insn | _Sequence:
        size = self.draw(st.sampled_from((isa.BPF_W, isa.BPF_DW)))
        prefix, offset = self.written_offset(size)
        atomic = isa.Insn(isa.BPF_STX | isa.BPF_ATOMIC | size, isa.FRAME_POINTER, self.register(), offset,
                          self.draw(st.sampled_from(_ATOMIC_OPS)))
        return _Sequence(prefix + [atomic]) if prefix else atomic


class _Sequence(list):
    """Straight-line instructions that belong together (a store, then the load that needs it)."""


def _flatten_sequences(block: list) -> list:
    out: list = []
    for item in block:
        if isinstance(item, _Sequence):
            out.extend(item)
        elif isinstance(item, _If):
            out.append(_If(item.condition, _flatten_sequences(item.then)))
        elif isinstance(item, _IfElse):
            out.append(_IfElse(item.condition, _flatten_sequences(item.then),
                               _flatten_sequences(item.otherwise), item.long_jump))
        else:
            out.append(item)
    return out


def _init_register(draw, reg: int) -> tuple[isa.Insn, int]:
    """One instruction that sets `reg`, and the 64-bit value it leaves there."""
    how = draw(st.sampled_from(("lddw", "mov64", "mov32")))
    if how == "lddw":
        value = draw(value64)
        return isa.lddw(reg, value), value
    imm = draw(imm32)
    if how == "mov64":
        return isa.alu(isa.BPF_MOV, reg, imm, True), imm & M64        # sign-extended
    return isa.alu(isa.BPF_MOV, reg, imm, False), imm & M32            # zero-extended


def check_kinds(kinds: Iterable[str]) -> frozenset[str]:
    """The kinds as a set; ValueError naming any unknown kind or a kind missing what it needs."""
    kinds = frozenset(kinds)
    unknown = kinds - set(ALL_KINDS)
    if unknown:
        raise ValueError(f"progen: unknown instruction kinds {sorted(unknown)}; known: {list(ALL_KINDS)}")
    if not kinds - _SHAPE_KINDS:
        raise ValueError(f"progen: kinds {sorted(kinds)} emit no instructions of their own; add one such as "
                         f"{KIND_ALU!r}")
    for kind in (KIND_GOTOL, KIND_EXIT):
        if kind in kinds and KIND_JCOND not in kinds:
            raise ValueError(f"progen: kind {kind!r} lives inside if-else shapes: add {KIND_JCOND!r}")
    return kinds


def programs(kinds: Iterable[str] = ALL_KINDS, *, max_items: int = 32, max_depth: int = 3,
             max_branches: int = 6, stack_window: tuple[int, int] = (-isa.STACK_SIZE, 0)
             ) -> st.SearchStrategy[GeneratedProgram]:
    """Programs of up to `max_items` generated items of the given kinds (see ALL_KINDS).

    `max_depth` bounds the nesting of if/if-else shapes, `max_branches` the number of conditional jumps (the
    verifier walks up to 2**max_branches paths when it cannot tell which way they go). Stack accesses stay in
    `stack_window` = [low, high) relative to r10 (multiples of 8 within [-512, 0]), so that a caller can keep
    its own data in the rest of the frame."""
    kinds = check_kinds(kinds)
    low, high = stack_window
    if not (-isa.STACK_SIZE <= low < high <= 0 and low % 8 == 0 and high % 8 == 0):
        raise ValueError(f"progen: stack_window {stack_window} must be [low, high) with multiples of 8 and "
                         f"-{isa.STACK_SIZE} <= low < high <= 0")
    if max_items < 1 or max_depth < 0 or max_branches < 0:
        raise ValueError(f"progen: max_items ({max_items}) must be at least 1, max_depth ({max_depth}) and "
                         f"max_branches ({max_branches}) at least 0")

    @st.composite
    def generate(draw) -> GeneratedProgram:
        init, values = [], []
        for reg in DATA_REGISTERS:
            insn, value = _init_register(draw, reg)
            init.append(insn)
            values.append(value)
        builder = _Builder(draw, kinds, max_items, max_depth, max_branches, stack_window)
        tree = builder.block(0, max_items, may_exit=False) + [_Exit()]
        body: list[isa.Insn] = []
        _flatten(_flatten_sequences(tree), body)
        return GeneratedProgram(tuple(init), tuple(body), tuple(values))

    return generate()
