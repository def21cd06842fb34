"""Preamble and start-frame delimiter: the checker of the receive path and the inserter of the transmit path.

Ref: IEEE 802.3 clause 3.2.1 (preamble: 7 octets 0x55), clause 3.2.2 (SFD: 0xD5), clause 35.2.2.6-8
(GMII RX_DV and RX_ER), clause 35.2.3.2 (a PHY may deliver fewer preamble octets than were sent).

Both units work one octet a transfer in the PHY clock domain (they are written for `sync` and renamed
by the MAC that uses them).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .gmii import PREAMBLE_BYTE, PREAMBLE_LENGTH, SFD_BYTE, GmiiSample, RxByte, RxStatus, TxByte


class PreambleChecker(wiring.Component):
    """Finds the SFD in each RX_DV burst, strips the preamble and marks the end of each frame.

    A burst is a frame when its first octets are any number of preamble octets (none included: PHYs may
    eat preamble) and then the SFD; a burst showing anything else first is not a frame and is ignored
    up to its end. The octets after the SFD are passed on; the cycle where RX_DV falls produces the end
    marker, with status PHY_ERROR when RX_ER was seen anywhere in the frame's burst, else OK.

    `sink` takes one GMII sample a transfer; in a MAC it is valid every RX_CLK cycle and `source`
    is always ready, since GMII cannot be stalled.
    """
    sink: In(stream.Signature(GmiiSample))
    source: Out(stream.Signature(RxByte))

    def elaborate(self, platform):
        m = Module()
        sample = self.sink.payload
        error_seen = Signal()   # RX_ER during the current burst

        # A sample that must produce an output waits for `source.ready`; the others are consumed at once.
        m.d.comb += self.sink.ready.eq(1)

        with m.FSM(name="state"):
            with m.State("IDLE"):
                with m.If(self.sink.valid & sample.dv):
                    m.d.sync += error_seen.eq(sample.er)
                    with m.If(sample.data == SFD_BYTE):
                        m.next = "FRAME"
                    with m.Elif(sample.data == PREAMBLE_BYTE):
                        m.next = "PREAMBLE"
                    with m.Else():
                        m.next = "NOT_A_FRAME"

            with m.State("PREAMBLE"):
                with m.If(self.sink.valid):
                    m.d.sync += error_seen.eq(error_seen | (sample.dv & sample.er))
                    with m.If(~sample.dv):
                        m.next = "IDLE"          # the burst ended before its SFD
                    with m.Elif(sample.data == SFD_BYTE):
                        m.next = "FRAME"
                    with m.Elif(sample.data != PREAMBLE_BYTE):
                        m.next = "NOT_A_FRAME"

            with m.State("FRAME"):
                m.d.comb += [
                    self.source.valid.eq(self.sink.valid),
                    self.source.payload.data.eq(sample.data),
                    self.source.payload.end.eq(~sample.dv),
                    self.source.payload.status.eq(RxStatus.OK),
                    self.sink.ready.eq(self.source.ready),
                ]
                with m.If(~sample.dv & error_seen):
                    m.d.comb += self.source.payload.status.eq(RxStatus.PHY_ERROR)
                with m.If(self.sink.valid & self.source.ready):
                    m.d.sync += error_seen.eq(error_seen | (sample.dv & sample.er))
                    with m.If(~sample.dv):
                        m.next = "IDLE"

            with m.State("NOT_A_FRAME"):
                with m.If(self.sink.valid & ~sample.dv):
                    m.next = "IDLE"
        return m


class PreambleInserter(wiring.Component):
    """Puts 7 preamble octets and the SFD in front of every frame."""
    sink: In(stream.Signature(TxByte))
    source: Out(stream.Signature(TxByte))

    def elaborate(self, platform):
        m = Module()
        # Octets of preamble and SFD sent for the current frame; PREAMBLE_LENGTH + 1 once the frame flows.
        sent = Signal(range(PREAMBLE_LENGTH + 2))
        in_preamble = sent != PREAMBLE_LENGTH + 1

        # The upstream holds `valid` once raised, so the preamble may start on it and wait for it.
        m.d.comb += self.source.valid.eq(self.sink.valid)
        with m.If(in_preamble):
            m.d.comb += self.source.payload.data.eq(PREAMBLE_BYTE)
            with m.If(sent == PREAMBLE_LENGTH):
                m.d.comb += self.source.payload.data.eq(SFD_BYTE)
            with m.If(self.source.valid & self.source.ready):
                m.d.sync += sent.eq(sent + 1)
        with m.Else():
            m.d.comb += [
                self.source.payload.eq(self.sink.payload),
                self.sink.ready.eq(self.source.ready),
            ]
            with m.If(self.sink.valid & self.source.ready & self.sink.payload.last):
                m.d.sync += sent.eq(0)
        return m
