"""Frame check sequence: the checker of the receive path and the inserter of the transmit path.

Ref: IEEE 802.3 clause 3.2.9 (FCS: CRC-32 over destination address to the end of the data field,
complemented, sent least significant octet first) and clause 3.3 (order of bit transmission). Both units
use `amaranth.lib.crc` with `catalog.CRC32_ETHERNET`, the algorithm definition whose software `compute`
the model (mac_model.py) uses.
"""

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.crc import catalog
from amaranth.lib.wiring import In, Out

from .gmii import FCS_BYTES, RxByte, RxStatus, TxByte, merge_status

ETHERNET_CRC = catalog.CRC32_ETHERNET(8)


class FcsChecker(wiring.Component):
    """Checks the CRC-32 of each received frame and strips its 4 FCS octets.

    The last 4 octets seen are held back, because only the end marker tells that they were the FCS;
    an octet is passed on when a fifth one arrives behind it. At the end marker the CRC register holds
    the CRC of every octet of the frame, FCS included, which is the algorithm's residue exactly when the
    FCS matches; otherwise (or when the frame is too short to have an FCS) the end marker's status
    becomes BAD_FCS, unless it already carries a more severe reason.
    """
    sink: In(stream.Signature(RxByte))
    source: Out(stream.Signature(RxByte))

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc = ETHERNET_CRC.create()

        held = Array(Signal(8, name=f"held{i}") for i in range(FCS_BYTES))   # held[0] is the oldest
        held_count = Signal(range(FCS_BYTES + 1))   # 0 until the frame's first octet: restart the CRC

        beat = self.sink.payload
        transfer_in = self.sink.valid & self.sink.ready
        m.d.comb += [
            crc.data.eq(beat.data),
            crc.valid.eq(transfer_in & ~beat.end),
            crc.start.eq(held_count == 0),
        ]

        with m.If(beat.end):
            # The end marker goes out with the verdict; the held octets were the FCS.
            m.d.comb += [
                self.source.valid.eq(self.sink.valid),
                self.source.payload.end.eq(1),
                self.source.payload.status.eq(beat.status),
                self.sink.ready.eq(self.source.ready),
            ]
            with m.If((held_count != FCS_BYTES) | ~crc.match_detected):
                m.d.comb += self.source.payload.status.eq(merge_status(beat.status, RxStatus.BAD_FCS))
            with m.If(transfer_in):
                m.d.sync += held_count.eq(0)
        with m.Else():
            full = held_count == FCS_BYTES
            m.d.comb += [
                self.source.valid.eq(self.sink.valid & full),
                self.source.payload.data.eq(held[0]),
                self.source.payload.end.eq(0),
                self.sink.ready.eq(self.source.ready | ~full),
            ]
            with m.If(transfer_in):
                with m.If(full):
                    for index in range(FCS_BYTES - 1):
                        m.d.sync += held[index].eq(held[index + 1])
                    m.d.sync += held[FCS_BYTES - 1].eq(beat.data)
                with m.Else():
                    m.d.sync += [
                        held[held_count].eq(beat.data),
                        held_count.eq(held_count + 1),
                    ]
        return m


class FcsInserter(wiring.Component):
    """Appends the 4-octet FCS to every frame (the frame's `last` moves to the final FCS octet)."""
    sink: In(stream.Signature(TxByte))
    source: Out(stream.Signature(TxByte))

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc = ETHERNET_CRC.create()

        fcs_sent = Signal(range(FCS_BYTES + 1))
        in_frame = Signal()      # octets of the current frame have gone through
        sending_fcs = Signal()

        transfer_in = self.sink.valid & self.sink.ready
        m.d.comb += [
            crc.data.eq(self.sink.payload.data),
            crc.valid.eq(transfer_in),
            crc.start.eq(~in_frame),
        ]

        with m.If(sending_fcs):
            # The CRC register took the frame's last octet on the previous transfer, so its output is
            # final and stays put while no octet comes in.
            fcs_octets = Array(crc.crc[8 * i:8 * (i + 1)] for i in range(FCS_BYTES))
            m.d.comb += [
                self.source.valid.eq(1),
                self.source.payload.data.eq(fcs_octets[fcs_sent]),
                self.source.payload.last.eq(fcs_sent == FCS_BYTES - 1),
            ]
            with m.If(self.source.ready):
                m.d.sync += fcs_sent.eq(fcs_sent + 1)
                with m.If(fcs_sent == FCS_BYTES - 1):
                    m.d.sync += [sending_fcs.eq(0), in_frame.eq(0), fcs_sent.eq(0)]
        with m.Else():
            m.d.comb += [
                self.source.valid.eq(self.sink.valid),
                self.source.payload.data.eq(self.sink.payload.data),
                self.source.payload.last.eq(0),
                self.sink.ready.eq(self.source.ready),
            ]
            with m.If(transfer_in):
                m.d.sync += in_frame.eq(1)
                with m.If(self.sink.payload.last):
                    m.d.sync += sending_fcs.eq(1)
        return m
