"""The transmit MAC of a port: frames from the NIC in, in the NIC's clock, GMII to the PHY out.

Ref: IEEE 802.3 clause 4.2.3 (frame transmission: pad, FCS, preamble, deference for the inter-frame
gap), clause 35.2.2 (GMII TXD/TX_EN/TX_ER; TX_ER with TX_EN propagates an error to the link partner).

Chain:

    `frames` (NIC domain) -> TxFrameWriter -> AsyncFrameFIFO (frame store)
        -> WordUnpacker -> PaddingInserter -> FcsInserter -> PreambleInserter -> InterFrameGap
        -> GmiiTransmitter -> GMII (PHY domain, 125 MHz GTX_CLK)

Store and forward: the writer commits a frame to the store only at its `last` word, so the PHY side
sees whole frames only and starts one on the wire when all of it is already in the store. From there
every unit passes an octet a cycle without a gap, so the frame cannot underrun. (Should a gap ever
appear in a frame, the transmitter raises TX_ER, so the partner drops the frame instead of taking it
as good.) While the store is full, `frames.ready` is low: back-pressure, never a silent drop.

Frames that cannot be sent are consumed and counted, never left to block the port: a frame longer
than `max_frame_bytes` with its FCS (`oversize`) and a frame whose last word has a `bytes` count
outside 1..`data_bytes` (`malformed`). `frames_ok` counts frames committed for transmission.

NIC-side word: `data_bytes` octets, octet i in bits 8i..8i+7; `bytes`, the valid octets of a `last`
word (other words are full; their `bytes` is not looked at); `last`. A frame begins after a `last`.
"""

from amaranth.hdl import DomainRenamer, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .async_fifo import AsyncFrameFIFO
from .crc import FcsInserter
from .gmii import (FCS_BYTES, INTER_FRAME_GAP_BYTES, MAX_FRAME_BYTES, GmiiTxSignature, TxByte,
                   bad_parameter)
from .ifg import InterFrameGap
from .padding import PaddingInserter
from .preamble import PreambleInserter
from .rx_mac import check_data_bytes, default_store_depth

TX_COUNTER_NAMES = ("frames_ok", "oversize", "malformed")
TxCounters = data.StructLayout({name: unsigned(32) for name in TX_COUNTER_NAMES})


def tx_word_layout(data_bytes):
    """The NIC-side word of frames to send: `data_bytes` octets, the count on the last word, last."""
    return data.StructLayout({
        "data": unsigned(8 * data_bytes),
        "bytes": unsigned(data_bytes.bit_length()),
        "last": unsigned(1),
    })


class TxFrameWriter(wiring.Component):
    """Writes each frame from the NIC into the frame store, committing it at its `last` word, and drops
    (discards and counts) frames that are too long or malformed."""
    def __init__(self, *, data_bytes=4, max_frame_bytes=MAX_FRAME_BYTES):
        check_data_bytes(self, data_bytes)
        self.data_bytes = data_bytes
        self.max_payload_bytes = max_frame_bytes - FCS_BYTES
        layout = tx_word_layout(data_bytes)
        super().__init__({
            "sink": In(stream.Signature(layout)),
            "store": Out(stream.Signature(layout)),
            "commit": Out(1),
            "discard": Out(1),
            "counters": Out(TxCounters),
        })

    def elaborate(self, platform):
        m = Module()
        width = self.data_bytes
        word = self.sink.payload
        octets = Signal(range(self.max_payload_bytes + 1))   # of the frame so far, before this word
        dropping = Signal()                                   # the frame went over the maximum

        malformed = word.last & ((word.bytes == 0) | (word.bytes > width))
        word_octets = Mux(word.last, word.bytes, width)
        too_long = octets + word_octets > self.max_payload_bytes
        refused = dropping | too_long | malformed

        m.d.comb += self.store.payload.eq(word)
        with m.If(refused):
            # Consumed without being stored; the frame's stored words are rolled back.
            m.d.comb += [self.sink.ready.eq(1), self.discard.eq(self.sink.valid)]
            with m.If(self.sink.valid):
                m.d.sync += dropping.eq(~word.last)
                with m.If(word.last):
                    m.d.sync += octets.eq(0)
                    with m.If(malformed & ~dropping):
                        m.d.sync += self.counters.malformed.eq(self.counters.malformed + 1)
                    with m.Else():
                        m.d.sync += self.counters.oversize.eq(self.counters.oversize + 1)
        with m.Else():
            m.d.comb += [
                self.store.valid.eq(self.sink.valid),
                self.sink.ready.eq(self.store.ready),
            ]
            with m.If(self.sink.valid & self.store.ready):
                with m.If(word.last):
                    m.d.comb += self.commit.eq(1)
                    m.d.sync += [octets.eq(0), self.counters.frames_ok.eq(self.counters.frames_ok + 1)]
                with m.Else():
                    m.d.sync += octets.eq(octets + width)
        return m


class WordUnpacker(wiring.Component):
    """Turns NIC-side words into octets, one a cycle, with no gap between words."""
    def __init__(self, *, data_bytes=4):
        check_data_bytes(self, data_bytes)
        self.data_bytes = data_bytes
        super().__init__({
            "sink": In(stream.Signature(tx_word_layout(data_bytes))),
            "source": Out(stream.Signature(TxByte)),
        })

    def elaborate(self, platform):
        m = Module()
        held = Signal(tx_word_layout(self.data_bytes))
        have_word = Signal()
        index = Signal(range(self.data_bytes))
        at_word_end = index == Mux(held.last, held.bytes, self.data_bytes) - 1

        m.d.comb += [
            self.source.valid.eq(have_word),
            self.source.payload.data.eq(held.data.word_select(index, 8)),
            self.source.payload.last.eq(held.last & at_word_end),
            self.sink.ready.eq(~have_word | (self.source.ready & at_word_end)),
        ]
        with m.If(self.source.valid & self.source.ready):
            m.d.sync += index.eq(index + 1)
            with m.If(at_word_end):
                m.d.sync += have_word.eq(0)
        with m.If(self.sink.valid & self.sink.ready):
            m.d.sync += [held.eq(self.sink.payload), have_word.eq(1), index.eq(0)]
        return m


class GmiiTransmitter(wiring.Component):
    """Drives TXD/TX_EN/TX_ER from registers, one octet a cycle; always ready.

    A cycle without an octet inside a frame (an underrun, which the store-and-forward design never
    produces) keeps TX_EN up and raises TX_ER, so the PHY sends an error symbol and the frame is lost
    loudly rather than delivered cut short.
    """
    sink: In(stream.Signature(TxByte))
    gmii: Out(GmiiTxSignature())

    def elaborate(self, platform):
        m = Module()
        in_frame = Signal()
        m.d.comb += self.sink.ready.eq(1)
        m.d.sync += [
            self.gmii.data.eq(Mux(self.sink.valid, self.sink.payload.data, 0)),
            self.gmii.en.eq(self.sink.valid | in_frame),
            self.gmii.er.eq(~self.sink.valid & in_frame),
        ]
        with m.If(self.sink.valid):
            m.d.sync += in_frame.eq(~self.sink.payload.last)
        return m


class TxMAC(wiring.Component):
    """The transmit MAC: `frames` and `counters` in `nic_domain`, `gmii` in `phy_domain` (GTX_CLK).

    Parameters: `data_bytes` octets per NIC-side word (1, 2, 4 or 8); `max_frame_bytes`, the longest
    frame sent, FCS included; `store_depth` in words (a power of two holding at least one longest frame;
    by default two); `gap_bytes`, the inter-frame gap (12).
    """
    def __init__(self, *, data_bytes=4, max_frame_bytes=MAX_FRAME_BYTES, store_depth=None,
                 gap_bytes=INTER_FRAME_GAP_BYTES, phy_domain="gmii_tx", nic_domain="sync"):
        check_data_bytes(self, data_bytes)
        if max_frame_bytes <= FCS_BYTES:
            raise bad_parameter(self, f"TxMAC: max_frame_bytes must be more than {FCS_BYTES}, "
                                      f"got {max_frame_bytes}")
        longest_words = -(-(max_frame_bytes - FCS_BYTES) // data_bytes)
        if store_depth is None:
            store_depth = default_store_depth(max_frame_bytes, data_bytes)
        if store_depth < longest_words or store_depth & (store_depth - 1):
            raise bad_parameter(self, f"TxMAC: store_depth must be a power of two of at least "
                                      f"{longest_words} words (one frame of {max_frame_bytes} octets), "
                                      f"got {store_depth}")
        self.data_bytes = data_bytes
        self.max_frame_bytes = max_frame_bytes
        self.store_depth = store_depth
        self.gap_bytes = gap_bytes
        self.phy_domain = phy_domain
        self.nic_domain = nic_domain
        super().__init__({
            "frames": In(stream.Signature(tx_word_layout(data_bytes))),
            "gmii": Out(GmiiTxSignature()),
            "counters": Out(TxCounters),
        })

    def elaborate(self, platform):
        m = Module()
        in_nic = DomainRenamer(self.nic_domain)
        in_phy = DomainRenamer(self.phy_domain)
        m.submodules.writer = writer = in_nic(TxFrameWriter(data_bytes=self.data_bytes,
                                                            max_frame_bytes=self.max_frame_bytes))
        m.submodules.store = store = AsyncFrameFIFO(tx_word_layout(self.data_bytes), self.store_depth,
                                                    w_domain=self.nic_domain, r_domain=self.phy_domain)
        m.submodules.unpacker = unpacker = in_phy(WordUnpacker(data_bytes=self.data_bytes))
        m.submodules.padding = padding = in_phy(PaddingInserter())
        m.submodules.fcs = fcs = in_phy(FcsInserter())
        m.submodules.preamble = preamble = in_phy(PreambleInserter())
        m.submodules.gap = gap = in_phy(InterFrameGap(self.gap_bytes))
        m.submodules.transmitter = transmitter = in_phy(GmiiTransmitter())

        wiring.connect(m, wiring.flipped(self.frames), writer.sink)
        wiring.connect(m, writer.store, store.w_stream)
        m.d.comb += [
            store.w_commit.eq(writer.commit),
            store.w_discard.eq(writer.discard),
            self.counters.eq(writer.counters),
        ]
        wiring.connect(m, store.r_stream, unpacker.sink)
        wiring.connect(m, unpacker.source, padding.sink)
        wiring.connect(m, padding.source, fcs.sink)
        wiring.connect(m, fcs.source, preamble.sink)
        wiring.connect(m, preamble.source, gap.sink)
        wiring.connect(m, gap.source, transmitter.sink)
        wiring.connect(m, transmitter.gmii, wiring.flipped(self.gmii))
        return m
