"""The shift unit of the core: lsh, rsh, arsh on 64 or 32 bits.

Ref: RFC 9669 §4.1: the shift amount is masked to the operand width (`& 63`, 32-bit: `& 31`), as the
kernel's interpreter does; arsh fills with the sign bit of the operand width; 32-bit results are
zero-extended. The operation is the opcode's operation field, compared with the isa constants.
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfnic.sw import isa


class Shifter(wiring.Component):
    op: In(4)      # opcode bits 4..7: BPF_LSH, BPF_RSH or BPF_ARSH
    is64: In(1)
    a: In(64)      # the value shifted
    b: In(64)      # the amount (register or immediate)
    result: Out(64)

    def elaborate(self, platform):
        m = Module()
        amount = Mux(self.is64, self.b[0:6], self.b[0:5])
        low = self.a[0:32]
        left = Signal(64)
        right = Signal(64)
        arithmetic = Signal(64)
        m.d.comb += [
            left.eq(Mux(self.is64, self.a << amount, (low << amount)[0:32])),
            right.eq(Mux(self.is64, self.a >> amount, low >> amount)),
            arithmetic.eq(Mux(self.is64, (self.a.as_signed() >> amount)[0:64],
                              (low.as_signed() >> amount)[0:32])),
        ]
        with m.Switch(self.op):
            with m.Case(isa.BPF_LSH >> 4):
                m.d.comb += self.result.eq(left)
            with m.Case(isa.BPF_RSH >> 4):
                m.d.comb += self.result.eq(right)
            with m.Case(isa.BPF_ARSH >> 4):
                m.d.comb += self.result.eq(arithmetic)
        return m
