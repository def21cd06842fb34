"""The divider of the core: div, mod (unsigned) and sdiv, smod (signed, v4), on 64 or 32 bits.

Ref: RFC 9669 §4.1 (BPF_DIV and BPF_MOD, offset 0 unsigned, 1 signed) and its edge cases, which the
golden VM (sw/vm.py) follows: division by zero gives 0; modulo by zero leaves the dividend (32-bit: its
low half, zero-extended); signed division truncates toward zero, so the remainder takes the dividend's
sign; INT_MIN / -1 wraps to INT_MIN and INT_MIN % -1 is 0.

Restoring division on magnitudes, `bits_per_cycle` quotient bits a cycle, with the signs applied at the
end. A 32-bit dividend sits in the upper half of the shift register so that the same loop serves both
widths. A first cycle skips the dividend's leading zero bytes, so a division takes 1 + 8 * (significant
bytes of the dividend) / bits_per_cycle cycles: 9 for a dividend below 256, 65 for a full 64-bit one.

Protocol: `start` loads the operands (and abandons any division in progress); `done` rises when the
result is ready and both stay until the next `start`.
"""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class Divider(wiring.Component):
    start: In(1)
    is64: In(1)
    signed: In(1)       # sdiv/smod
    remainder: In(1)    # mod rather than div
    a: In(64)           # dividend
    b: In(64)           # divisor
    done: Out(1)
    result: Out(64)

    def __init__(self, bits_per_cycle: int = 1):
        if bits_per_cycle not in (1, 2, 4):
            raise ValueError(f"Divider: bits_per_cycle must be 1, 2 or 4, not {bits_per_cycle}")
        self.bits_per_cycle = bits_per_cycle
        super().__init__()

    def latency(self, dividend_bytes: int) -> int:
        """Cycles from start to done for a dividend of that many significant bytes."""
        return 1 + 8 * dividend_bytes // self.bits_per_cycle

    def elaborate(self, platform):
        m = Module()
        # operand magnitudes, with the 32-bit case sign-extended from bit 31 first
        a_wide = Signal(64)
        b_wide = Signal(64)
        m.d.comb += [
            a_wide.eq(Mux(self.is64, self.a, Mux(self.signed, self.a[0:32].as_signed(), self.a[0:32]))),
            b_wide.eq(Mux(self.is64, self.b, Mux(self.signed, self.b[0:32].as_signed(), self.b[0:32]))),
        ]
        a_negative = self.signed & a_wide[63]
        b_negative = self.signed & b_wide[63]
        a_magnitude = Mux(a_negative, -a_wide, a_wide)[0:64]
        b_magnitude = Mux(b_negative, -b_wide, b_wide)[0:64]

        quotient = Signal(64)        # shifts the dividend out and the quotient bits in
        partial = Signal(65)         # the partial remainder
        divisor = Signal(64)
        dividend = Signal(64)        # kept for modulo by zero
        is64 = Signal()
        remainder = Signal()
        negate_quotient = Signal()
        negate_remainder = Signal()
        steps_left = Signal(range(64 // self.bits_per_cycle + 1))
        active = Signal()

        normalising = Signal()
        with m.If(self.start):
            m.d.sync += [
                quotient.eq(Mux(self.is64, a_magnitude, a_magnitude[0:32] << 32)),
                partial.eq(0),
                divisor.eq(b_magnitude),
                dividend.eq(Mux(self.is64, self.a, self.a[0:32])),
                is64.eq(self.is64),
                remainder.eq(self.remainder),
                negate_quotient.eq(a_negative ^ b_negative),
                negate_remainder.eq(a_negative),
                normalising.eq(1),
                active.eq(1),
            ]
        with m.Elif(normalising):
            # steps on the dividend's leading zero bits only shift zeros: skip them, a byte at a time
            width_bytes = Mux(is64, 8, 4)
            zero_bytes = Signal(range(9))
            chain = 8
            for count in reversed(range(8)):
                chain = Mux(quotient[64 - 8 * (count + 1):64] == 0, chain, count)
            m.d.comb += zero_bytes.eq(Mux(chain > width_bytes, width_bytes, chain))
            m.d.sync += [
                quotient.eq(quotient << (zero_bytes * 8)),
                steps_left.eq(((width_bytes - zero_bytes) * 8) // self.bits_per_cycle),
                normalising.eq(0),
            ]
        with m.Elif(active & (steps_left != 0)):
            q, r = quotient, partial
            for _ in range(self.bits_per_cycle):
                shifted = Cat(q[63], r[0:64])
                fits = shifted >= divisor
                r = Mux(fits, shifted - divisor, shifted)[0:65]
                q = Cat(fits, q[0:63])
            m.d.sync += [quotient.eq(q), partial.eq(r), steps_left.eq(steps_left - 1)]

        signed_quotient = Mux(negate_quotient, -quotient, quotient)[0:64]
        signed_remainder = Mux(negate_remainder, -partial[0:64], partial[0:64])[0:64]
        value = Signal(64)
        with m.If(divisor == 0):
            m.d.comb += value.eq(Mux(remainder, dividend, 0))
        with m.Else():
            m.d.comb += value.eq(Mux(remainder, signed_remainder, signed_quotient))
        m.d.comb += [
            self.result.eq(Mux(is64, value, value[0:32])),
            self.done.eq(active & ~normalising & (steps_left == 0)),
        ]
        return m
