"""The arithmetic and logic unit of the core: add, sub, or, and, xor, mov, sign-extending mov, neg.

Ref: RFC 9669 §4.1 (arithmetic instructions) and §4.1.1-§4.1.2 for MOVSX. A 32-bit operation (ALU class)
works on the low halves of its operands and zero-extends its result into the 64-bit register; the core
hands the unit 64-bit operands (an immediate already sign-extended to 64 bits) and `is64`. Shifts,
multiplication, division and byte swaps have their own units (shifter.py, multiplier.py, divider.py,
byteswap.py). The operation is the opcode's operation field, compared with the isa constants.
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfnic.sw import isa

_OP = {name: value >> 4 for name, value in (("add", isa.BPF_ADD), ("sub", isa.BPF_SUB), ("or", isa.BPF_OR),
                                           ("and", isa.BPF_AND), ("xor", isa.BPF_XOR), ("mov", isa.BPF_MOV),
                                           ("neg", isa.BPF_NEG))}


class Alu(wiring.Component):
    op: In(4)          # opcode bits 4..7
    is64: In(1)
    movsx_bits: In(6)  # the offset field of MOV: 0, or 8/16/32 for a sign-extending move
    a: In(64)          # dst
    b: In(64)          # src, or the sign-extended immediate
    result: Out(64)

    def elaborate(self, platform):
        m = Module()
        a, b = self.a, self.b
        raw = Signal(64)
        with m.Switch(self.op):
            with m.Case(_OP["add"]):
                m.d.comb += raw.eq(a + b)
            with m.Case(_OP["sub"]):
                m.d.comb += raw.eq(a - b)
            with m.Case(_OP["or"]):
                m.d.comb += raw.eq(a | b)
            with m.Case(_OP["and"]):
                m.d.comb += raw.eq(a & b)
            with m.Case(_OP["xor"]):
                m.d.comb += raw.eq(a ^ b)
            with m.Case(_OP["neg"]):
                m.d.comb += raw.eq(-a)
            with m.Case(_OP["mov"]):
                with m.Switch(self.movsx_bits):
                    with m.Case(8):
                        m.d.comb += raw.eq(b[0:8].as_signed())
                    with m.Case(16):
                        m.d.comb += raw.eq(b[0:16].as_signed())
                    with m.Case(32):
                        m.d.comb += raw.eq(b[0:32].as_signed())
                    with m.Default():
                        m.d.comb += raw.eq(b)
        m.d.comb += self.result.eq(Mux(self.is64, raw, raw[0:32]))
        return m
