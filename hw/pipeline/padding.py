"""Frame length: padding of short frames on transmit, and the minimum/maximum length checks on receive.

Ref: IEEE 802.3 clause 3.2.8 (pad: a frame's data is extended so the frame, FCS included, reaches
minFrameSize), clause 4.4.2 (minFrameSize = 64 octets, maxUntaggedFrameSize = 1518 octets), clause
4.2.4.2.2 (frames shorter than minFrameSize are fragments and are discarded on receive).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .gmii import (MAX_FRAME_BYTES, MIN_FRAME_BYTES, MIN_PAYLOAD_BYTES, RxByte, RxStatus, TxByte,
                   bad_parameter, merge_status)


class PaddingInserter(wiring.Component):
    """Extends every transmitted frame shorter than `min_bytes` (60: the FCS comes after) with zeros."""
    sink: In(stream.Signature(TxByte))
    source: Out(stream.Signature(TxByte))

    def __init__(self, min_bytes=MIN_PAYLOAD_BYTES):
        if min_bytes < 1:
            raise bad_parameter(self, f"PaddingInserter: min_bytes must be at least 1, got {min_bytes}")
        self.min_bytes = min_bytes
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        sent = Signal(range(self.min_bytes + 1))   # octets of the current frame, saturating at the minimum
        padding = Signal()                          # the frame has ended; zeros go out until the minimum
        long_enough = sent >= self.min_bytes - 1    # the octet going out now reaches the minimum

        with m.If(self.source.valid & self.source.ready):
            m.d.sync += sent.eq(sent + (sent != self.min_bytes))

        with m.If(padding):
            m.d.comb += [
                self.source.valid.eq(1),
                self.source.payload.data.eq(0),
                self.source.payload.last.eq(long_enough),
            ]
            with m.If(self.source.ready & long_enough):
                m.d.sync += [padding.eq(0), sent.eq(0)]
        with m.Else():
            m.d.comb += [
                self.source.valid.eq(self.sink.valid),
                self.source.payload.data.eq(self.sink.payload.data),
                self.source.payload.last.eq(self.sink.payload.last & long_enough),
                self.sink.ready.eq(self.source.ready),
            ]
            with m.If(self.sink.valid & self.source.ready & self.sink.payload.last):
                with m.If(long_enough):
                    m.d.sync += sent.eq(0)
                with m.Else():
                    m.d.sync += padding.eq(1)
        return m


class LengthChecker(wiring.Component):
    """Checks each received frame's length, FCS included, against `min_bytes` and `max_bytes`.

    A frame shorter than `min_bytes` gets status RUNT at its end marker. Octets beyond `max_bytes` are
    not passed on, so a frame store sized for `max_bytes` never overflows on a long frame; such a frame
    gets status OVERSIZE. A larger `max_bytes` (e.g. `gmii.MAX_JUMBO_FRAME_BYTES`) admits jumbo frames.
    """
    sink: In(stream.Signature(RxByte))
    source: Out(stream.Signature(RxByte))

    def __init__(self, *, min_bytes=MIN_FRAME_BYTES, max_bytes=MAX_FRAME_BYTES):
        if not 1 <= min_bytes <= max_bytes:
            raise bad_parameter(self, f"LengthChecker: need 1 <= min_bytes <= max_bytes, "
                                      f"got min_bytes={min_bytes}, max_bytes={max_bytes}")
        self.min_bytes = min_bytes
        self.max_bytes = max_bytes
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        seen = Signal(range(self.max_bytes + 2))   # octets of the current frame, saturating past the max
        too_long = seen > self.max_bytes
        beat = self.sink.payload

        m.d.comb += [
            self.source.payload.eq(beat),
            self.source.valid.eq(self.sink.valid & (beat.end | (seen < self.max_bytes))),
            self.sink.ready.eq(self.source.ready | ~self.source.valid),
        ]
        with m.If(beat.end):
            with m.If(seen < self.min_bytes):
                m.d.comb += self.source.payload.status.eq(merge_status(beat.status, RxStatus.RUNT))
            with m.Elif(too_long):
                m.d.comb += self.source.payload.status.eq(merge_status(beat.status, RxStatus.OVERSIZE))

        with m.If(self.sink.valid & self.sink.ready):
            with m.If(beat.end):
                m.d.sync += seen.eq(0)
            with m.Elif(~too_long):
                m.d.sync += seen.eq(seen + 1)
        return m
