"""The byte-order unit of the core: le16/32/64, be16/32/64 (ALU class) and bswap16/32/64 (ALU64 class, v4).

Ref: RFC 9669 §4.2 (byte swap instructions). The core is little-endian, so "to little-endian" only
truncates the value to the width (zero-extending it back to 64 bits), while "to big-endian" and the
unconditional bswap reverse the bytes of the low `width` bits.
"""

from amaranth import Cat, Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class ByteSwap(wiring.Component):
    swap: In(1)     # 0: truncate (to-LE on this little-endian core); 1: reverse the bytes
    width: In(7)    # the imm: 16, 32 or 64
    a: In(64)
    result: Out(64)

    def elaborate(self, platform):
        m = Module()
        a = self.a

        def reversed_bytes(nbytes):
            return Cat(*(a[8 * i:8 * i + 8] for i in reversed(range(nbytes))))

        with m.Switch(self.width):
            for nbytes in (2, 4):
                with m.Case(8 * nbytes):
                    m.d.comb += self.result.eq(Mux(self.swap, reversed_bytes(nbytes), a[0:8 * nbytes]))
            with m.Default():
                m.d.comb += self.result.eq(Mux(self.swap, reversed_bytes(8), a))
        return m
