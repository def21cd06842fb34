"""The instruction decoder of the core, generated from the one ISA definition (sw/isa.py).

Ref: RFC 9669 §3 (encoding), §4 (arithmetic and jumps), §5 (loads, stores, atomics). The set of legal
opcodes and what each one is come from `isa.OPCODES`; the field rules are those of `isa.check_insn`, so an
instruction word is `legal` here exactly when `isa.check_insn` accepts it (tests/test_core_units.py checks
this over every opcode and random fields). Nothing in this file states an opcode number: cases are built by
iterating over the table, and operations are recognised by the isa constants.

An lddw is decoded from its first slot; the core merges the second slot (core.py, decode stage).
"""

from amaranth import Cat, Const, Module, Mux
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from bpfnic.sw import isa
from bpfnic.sw.isa import InsnKind


class Operation(enum.Enum, shape=4):
    """What the pipeline does with an instruction; chooses the execution unit in X and the action in M/W."""

    INVALID = 0       # traps INVALID_INSTRUCTION when it reaches W
    ALU = 1           # add sub or and xor mov movsx neg (alu.py)
    SHIFT = 2         # lsh rsh arsh (shifter.py)
    BYTESWAP = 3      # le be bswap (byteswap.py)
    MULTIPLY = 4      # mul (multiplier.py)
    DIVIDE = 5        # div mod sdiv smod (divider.py)
    JUMP = 6          # ja, ja32 (gotol): taken in D
    BRANCH = 7        # conditional jumps (branch.py)
    LDDW = 8          # 64-bit immediate (after the merge of its second slot)
    LOAD = 9          # ldx, ldxs
    STORE = 10        # st, stx
    ATOMIC = 11       # lock add/or/and/xor (fetch), xchg, cmpxchg
    CALL_HELPER = 12  # call imm (src_reg 0) and callx
    CALL_LOCAL = 13   # call to a program-local function (src_reg 1)
    EXIT = 14


Decoded = data.StructLayout({
    "legal": 1,          # isa.check_insn would accept the word
    "operation": Operation,
    "is64": 1,           # ALU64 / JMP class: 64-bit operation or compare
    "op": 4,             # the operation field (opcode bits 4..7): ALU or jump operation
    "src_reg": 1,        # the B operand is a register (BPF_X), else the immediate
    "size": 2,           # load/store/atomic size, log2 of bytes
    "signed": 1,         # sign-extending load (BPF_MEMSX)
    "ra": 4,             # register read as operand A
    "reads_a": 1,
    "rb": 4,             # register read as operand B
    "reads_b": 1,
    "rd": 4,             # register written
    "writes_rd": 1,
    "dst": 4,
    "src": 4,
    "off": 16,
    "imm": 32,
})

_SIZE_LOG2 = {isa.BPF_B: 0, isa.BPF_H: 1, isa.BPF_W: 2, isa.BPF_DW: 3}
_ALLOWED_MOVSX = {isa.BPF_ALU64: (0, 8, 16, 32), isa.BPF_ALU: (0, 8, 16)}


def operation_of(info: isa.OpcodeInfo) -> Operation:
    """The Operation an opcode maps to (INVALID for CALL, which the decoder splits by src_reg)."""
    kind = info.kind
    op = info.opcode & isa.OP_MASK
    if kind == InsnKind.ALU:
        if op in (isa.BPF_LSH, isa.BPF_RSH, isa.BPF_ARSH):
            return Operation.SHIFT
        if op == isa.BPF_MUL:
            return Operation.MULTIPLY
        if op in (isa.BPF_DIV, isa.BPF_MOD):
            return Operation.DIVIDE
        return Operation.ALU
    return {
        InsnKind.END: Operation.BYTESWAP, InsnKind.JA: Operation.JUMP, InsnKind.JCOND: Operation.BRANCH,
        InsnKind.EXIT: Operation.EXIT, InsnKind.LDDW: Operation.LDDW, InsnKind.LDX: Operation.LOAD,
        InsnKind.ST: Operation.STORE, InsnKind.STX: Operation.STORE, InsnKind.ATOMIC: Operation.ATOMIC,
        InsnKind.CALLX: Operation.CALL_HELPER,
        # Legacy packet loads (the RFC's "packet" group) are legal encodings the core does not run.
        InsnKind.LD_PACKET: Operation.INVALID,
    }.get(kind, Operation.INVALID)


class Decoder(wiring.Component):
    """Combinational decoder of one 64-bit instruction slot (opcode in bits 0..7, little-endian fields)."""

    word: In(64)
    decoded: Out(Decoded)

    def elaborate(self, platform):
        m = Module()
        word = self.word
        opcode = word[0:8]
        dst = word[8:12]
        src = word[12:16]
        off = word[16:32]
        imm = word[32:64]
        out = self.decoded

        m.d.comb += [
            out.dst.eq(dst), out.src.eq(src), out.off.eq(off), out.imm.eq(imm),
            out.op.eq(opcode[4:8]), out.src_reg.eq(opcode[3]),
            out.is64.eq((opcode[0:3] == isa.BPF_ALU64) | (opcode[0:3] == isa.BPF_JMP)),
            out.ra.eq(dst), out.rb.eq(src), out.rd.eq(dst),
        ]

        def zero(*fields):
            return Cat(*(field == 0 for field in fields)).all()

        def one_of(value, choices):
            return Cat(*(value == Const(choice, len(value)) for choice in choices)).any()

        off_s = off.as_signed()
        imm_s = imm.as_signed()
        registers_exist = (dst <= isa.FRAME_POINTER) & (src <= isa.FRAME_POINTER)
        dst_writable = dst != isa.FRAME_POINTER

        with m.Switch(opcode):
            for opcode_value, info in sorted(isa.OPCODES.items()):
                with m.Case(opcode_value):
                    self._decode_case(m, info, out, dst, src, off_s, imm_s, registers_exist, dst_writable,
                                      zero, one_of)
            with m.Default():
                m.d.comb += [out.legal.eq(0), out.operation.eq(Operation.INVALID)]
        return m

    @staticmethod
    def _decode_case(m, info, out, dst, src, off, imm, registers_exist, dst_writable, zero, one_of):
        kind = info.kind
        opcode = info.opcode
        op = opcode & isa.OP_MASK
        register_source = bool(opcode & isa.BPF_X)
        legal = registers_exist
        operation = operation_of(info)
        comb = []

        if kind == InsnKind.ALU:
            legal &= zero(imm) if register_source else zero(src)
            if op == isa.BPF_NEG:
                legal &= zero(off, imm)
            elif op in (isa.BPF_DIV, isa.BPF_MOD):
                legal &= one_of(off, (0, 1))
            elif op == isa.BPF_MOV:
                allowed = _ALLOWED_MOVSX[info.cls]
                legal &= one_of(off, allowed)
                if not register_source:
                    legal &= zero(off)
            else:
                legal &= zero(off)
            legal &= dst_writable
            # mov does not read its destination
            comb += [out.reads_a.eq(op != isa.BPF_MOV), out.reads_b.eq(register_source), out.writes_rd.eq(1)]
        elif kind == InsnKind.END:
            legal &= zero(src, off) & one_of(imm, (16, 32, 64)) & dst_writable
            comb += [out.reads_a.eq(1), out.writes_rd.eq(1)]
        elif kind == InsnKind.JA:
            legal &= zero(dst, src)
            legal &= zero(off) if opcode == isa.OP_JA32 else zero(imm)
        elif kind == InsnKind.JCOND:
            legal &= zero(imm) if register_source else zero(src)
            comb += [out.reads_a.eq(1), out.reads_b.eq(register_source)]
        elif kind == InsnKind.CALL:
            legal &= zero(dst, off) & one_of(src, (isa.BPF_PSEUDO_CALL_HELPER, isa.BPF_PSEUDO_CALL_LOCAL,
                                                   isa.BPF_PSEUDO_KFUNC_CALL))
            # kfunc calls (src_reg 2) are legal encodings without a platform function behind them
            operation = None
            with m.If(src == isa.BPF_PSEUDO_CALL_HELPER):
                m.d.comb += [out.operation.eq(Operation.CALL_HELPER), out.rd.eq(0), out.writes_rd.eq(1)]
            with m.Elif(src == isa.BPF_PSEUDO_CALL_LOCAL):
                m.d.comb += out.operation.eq(Operation.CALL_LOCAL)
            with m.Else():
                m.d.comb += out.operation.eq(Operation.INVALID)
        elif kind == InsnKind.CALLX:
            # the register is in dst (LLVM), or its number in imm (older conformance-suite builds)
            legal &= zero(src, off) & (zero(imm) | (zero(dst) & (imm >= 0) & (imm <= isa.FRAME_POINTER)))
            comb += [out.ra.eq(Mux(imm == 0, dst, imm[0:4])), out.reads_a.eq(1), out.rd.eq(0), out.writes_rd.eq(1)]
        elif kind == InsnKind.EXIT:
            legal &= zero(dst, src, off, imm)
        elif kind == InsnKind.LDDW:
            legal &= zero(off) & (src < len(isa.LDDW_PSEUDO_NAMES)) & dst_writable
            comb += [out.writes_rd.eq(1)]
        elif kind == InsnKind.LD_PACKET:
            legal &= zero(dst, off)
            if (opcode & isa.MODE_MASK) == isa.BPF_ABS:
                legal &= zero(src)
        elif kind == InsnKind.LDX:
            legal &= zero(imm) & dst_writable
            comb += [out.ra.eq(src), out.reads_a.eq(1), out.writes_rd.eq(1),
                     out.signed.eq((opcode & isa.MODE_MASK) == isa.BPF_MEMSX)]
        elif kind == InsnKind.ST:
            legal &= zero(src)
            comb += [out.reads_a.eq(1)]
        elif kind == InsnKind.STX:
            legal &= zero(imm)
            comb += [out.reads_a.eq(1), out.reads_b.eq(1)]
        elif kind == InsnKind.ATOMIC:
            operations = sorted(value for value in isa.ATOMIC_OPS)
            legal &= one_of(imm, operations)
            fetch = imm[0]  # BPF_FETCH
            compare_exchange = imm == isa.BPF_CMPXCHG
            assert isa.BPF_FETCH == 1
            # a fetching atomic writes src (cmpxchg: r0), which must not be the frame pointer
            legal &= ~fetch | compare_exchange | (src != isa.FRAME_POINTER)
            comb += [out.reads_a.eq(1), out.reads_b.eq(1), out.writes_rd.eq(fetch),
                     out.rd.eq(Mux(compare_exchange, 0, src))]
        else:  # pragma: no cover - a new InsnKind in the table needs a rule here
            raise AssertionError(f"no decoding rule for {kind}")

        if info.size:
            comb.append(out.size.eq(_SIZE_LOG2[info.opcode & isa.SIZE_MASK] if kind != InsnKind.LDDW else 3))
        if operation is not None:
            comb.append(out.operation.eq(operation))
        m.d.comb += comb
        m.d.comb += out.legal.eq(legal)
