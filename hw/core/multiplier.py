"""The multiplier of the core: mul and mul32 (the low 64 or 32 bits of the product), in three cycles.

Ref: RFC 9669 §4.1 (BPF_MUL; the divmul32/divmul64 conformance groups). The low 64 bits of a 64x64
product are a_lo*b_lo + ((a_lo*b_hi + a_hi*b_lo) << 32), so three 32x32 products suffice, each of which
maps onto DSP blocks; they are registered between an operand cycle and a sum cycle so that no cycle holds
a full 64-bit multiplier. A 32-bit multiplication uses the same path with the high halves zeroed.

Protocol: `start` loads the operands (and abandons any product in progress); `done` rises two cycles
later with `result` and both stay until the next `start`.
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class Multiplier(wiring.Component):
    start: In(1)
    is64: In(1)
    a: In(64)
    b: In(64)
    done: Out(1)
    result: Out(64)

    #: cycles from start to done (the core's CPI benchmark reports what this costs)
    LATENCY = 2

    def elaborate(self, platform):
        m = Module()
        a = Signal(64)
        b = Signal(64)
        is64 = Signal()
        low_low = Signal(64)
        cross = Signal(32)
        phase = Signal(range(3))   # 0 idle, 1 operands held, 2 products held (done)

        with m.If(self.start):
            m.d.sync += [
                a.eq(Mux(self.is64, self.a, self.a[0:32])),
                b.eq(Mux(self.is64, self.b, self.b[0:32])),
                is64.eq(self.is64),
                phase.eq(1),
            ]
        with m.Elif(phase == 1):
            m.d.sync += [
                low_low.eq(a[0:32] * b[0:32]),
                cross.eq(a[0:32] * b[32:64] + a[32:64] * b[0:32]),
                phase.eq(2),
            ]
        product = Signal(64)
        m.d.comb += [
            product.eq(low_low + (cross << 32)),
            self.result.eq(Mux(is64, product, product[0:32])),
            self.done.eq(phase == 2),
        ]
        return m
