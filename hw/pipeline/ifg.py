"""Inter-frame gap on transmit: at least 12 idle octet times between the end of one frame and the next.

Ref: IEEE 802.3 clause 4.4.2 (interPacketGap = 96 bit times) and clause 4.2.3.2.2 (the MAC defers for
the gap after each transmission). On GMII one octet time is one cycle of the 125 MHz transmit clock.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .gmii import INTER_FRAME_GAP_BYTES, TxByte, bad_parameter


class InterFrameGap(wiring.Component):
    """Passes frames through and holds the next one back for `gap_cycles` cycles after each `last`."""
    sink: In(stream.Signature(TxByte))
    source: Out(stream.Signature(TxByte))

    def __init__(self, gap_cycles=INTER_FRAME_GAP_BYTES):
        if gap_cycles < 1:
            raise bad_parameter(self, f"InterFrameGap: gap_cycles must be at least 1, got {gap_cycles}")
        self.gap_cycles = gap_cycles
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        gap_left = Signal(range(self.gap_cycles + 1))

        with m.If(gap_left != 0):
            m.d.sync += gap_left.eq(gap_left - 1)
        with m.Else():
            m.d.comb += [
                self.source.valid.eq(self.sink.valid),
                self.source.payload.eq(self.sink.payload),
                self.sink.ready.eq(self.source.ready),
            ]
            with m.If(self.sink.valid & self.source.ready & self.sink.payload.last):
                m.d.sync += gap_left.eq(self.gap_cycles)
        return m
