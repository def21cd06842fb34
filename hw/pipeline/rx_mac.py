"""The receive MAC of a port: GMII from the PHY in, checked frames out to the NIC, in the NIC's clock.

Ref: IEEE 802.3 clause 4.2.4.2 (frame reception: discard of frames with a bad FCS, fragments and
over-long frames), clause 35 (GMII), clause 30.3.1.1 (the MAC's counters: FramesReceivedOK,
FrameCheckSequenceErrors, FrameTooLongErrors, ...).

Chain, one octet per RX_CLK cycle in the PHY domain, then across to the NIC domain:

    GMII -> input registers -> PreambleChecker -> | -> LengthChecker -> | -> FcsChecker -> | -> RxFrameWriter
         -> AsyncFrameFIFO (frame store) -> `frames` (NIC domain, `data_bytes` octets a word)

Each `|` is an `RxStageRegister`: the checks are combinational from their input to their output, so without
them a frame's end marker would ripple through every status merge, the FCS compare, the writer's verdict and
the store's pointers in one RX_CLK cycle of 8 ns.

The lengths limits of 802.3 count the FCS, so the length check comes before the FCS is stripped; the
order does not decide the drop reason (see `gmii.RxStatus`).

Dropping. A frame's fate is known only at its end, after its FCS. The writer appends the frame's words
to the frame store speculatively and after the end marker either commits them (they become readable on
the NIC side, all at once) or discards them: the store's write pointer rolls back to the previous commit
(see async_fifo.py). A dropped frame therefore leaves no trace on the NIC side and cannot disturb the
next one. If the store is full when a word must be written (the NIC side did not drain it in time), the
rest of the frame is not written and the frame is discarded and counted as FIFO_OVERFLOW, never
delivered cut short. GMII cannot be stalled: every unit of the chain is always ready here.

NIC-side stream. At 100 MHz an 8-bit stream moves 100 MB/s, less than the 125 MB/s of GMII; the NIC
side therefore carries `data_bytes` octets a word (4 by default: 400 MB/s at 100 MHz), octet i of a word
in bits 8i..8i+7, with `bytes` (valid octets: `data_bytes` except on a frame's last word), `first`,
`last` and, on the last word, the frame's `status`. It is always OK unless `keep_bad_frames` is set:
then frames with a bad FCS, runts, frames with PHY errors, and oversize frames (cut after
`max_frame_bytes`) are delivered too, with their reason (as for Linux's "rx-all"); frames with no octet
left after the FCS and frames lost to overflow are never delivered.

Counters (`counters`, NIC domain): one 32-bit count per verdict, wrapping, counted in the PHY domain
(the cycle after the frame's end) and carried across as one consistent snapshot by a handshake, a few
cycles behind.
"""

from amaranth.hdl import DomainRenamer, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .async_fifo import AsyncFrameFIFO, HandshakeSynchronizer
from .crc import FcsChecker
from .gmii import (FCS_BYTES, MAX_FRAME_BYTES, MIN_FRAME_BYTES, RX_COUNTER_OF_STATUS, GmiiRxSignature,
                   GmiiSample, RxByte, RxStatus, bad_parameter, merge_status)
from .padding import LengthChecker
from .preamble import PreambleChecker

DATA_BYTES_CHOICES = (1, 2, 4, 8)

RxCounters = data.StructLayout({name: unsigned(32) for name in RX_COUNTER_OF_STATUS.values()})


def rx_word_layout(data_bytes):
    """The NIC-side word of received frames: `data_bytes` octets, their count, first, last, status."""
    return data.StructLayout({
        "data": unsigned(8 * data_bytes),
        "bytes": unsigned(data_bytes.bit_length()),   # 1..data_bytes
        "first": unsigned(1),
        "last": unsigned(1),
        "status": RxStatus,
    })


def check_data_bytes(component, data_bytes):
    if data_bytes not in DATA_BYTES_CHOICES:
        raise bad_parameter(component, f"{type(component).__name__}: data_bytes must be one of "
                                       f"{DATA_BYTES_CHOICES}, got {data_bytes}")


def default_store_depth(max_frame_bytes, data_bytes):
    """Words in a frame store: room for two of the longest frames, rounded up to a power of two."""
    longest = -(-max_frame_bytes // data_bytes)
    return 1 << (2 * longest - 1).bit_length()


class RxStageRegister(wiring.Component):
    """A pipeline register between two units of the receive chain, which never stalls.

    Every unit of the chain is always ready (GMII cannot wait), so the register only delays `valid` and
    the payload by one cycle and has no `ready` to respect: `sink` is always ready and `source.ready` is
    not looked at. Only for such a chain; a unit that may stall needs a skid buffer instead.
    """
    sink: In(stream.Signature(RxByte))
    source: Out(stream.Signature(RxByte))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.sink.ready.eq(1)
        m.d.sync += [self.source.valid.eq(self.sink.valid), self.source.payload.eq(self.sink.payload)]
        return m


class RxFrameWriter(wiring.Component):
    """Packs the octets of each frame into words, writes them to the frame store, and after the frame's
    end marker commits or discards them and counts the frame by its verdict.

    `sink` is always ready. The store side is not a stream handshake: the store either has `space` for
    the word being written or the word, and so the frame, is lost (GMII cannot wait).
    The last word of a frame is held back until the end marker, which brings its `last` and status.
    """
    def __init__(self, *, data_bytes=4, keep_bad_frames=False):
        check_data_bytes(self, data_bytes)
        self.data_bytes = data_bytes
        self.keep_bad_frames = keep_bad_frames
        layout = rx_word_layout(data_bytes)
        super().__init__({
            "sink": In(stream.Signature(RxByte)),
            "word": Out(layout),
            "write": Out(1),
            "space": In(1),
            "commit": Out(1),
            "discard": Out(1),
            "counters": Out(RxCounters),
        })

    def elaborate(self, platform):
        m = Module()
        width = self.data_bytes
        word_data = Signal(8 * width)
        fill = Signal(range(width + 1))       # octets in word_data
        first_word = Signal(init=1)           # the next word written is the frame's first
        overflowed = Signal()                 # a word of this frame found the store full
        beat = self.sink.payload

        m.d.comb += [
            self.sink.ready.eq(1),
            self.word.data.eq(word_data),
            self.word.first.eq(first_word),
            self.word.bytes.eq(width),
            self.word.status.eq(RxStatus.OK),
        ]

        with m.If(self.sink.valid & ~beat.end):
            with m.If(fill == width):
                # A full word is followed by another octet, so it is not the last: write it now.
                m.d.comb += self.write.eq(~overflowed)
                with m.If(~overflowed & ~self.space):
                    m.d.sync += overflowed.eq(1)
                m.d.sync += [first_word.eq(0), word_data.eq(beat.data), fill.eq(1)]   # unused lanes read 0
            with m.Else():
                m.d.sync += [word_data.word_select(fill, 8).eq(beat.data), fill.eq(fill + 1)]

        verdict = Signal(RxStatus)
        commit = Signal()                     # the frame's last word went in, and the frame is delivered
        with m.If(self.sink.valid & beat.end):
            status = Signal(RxStatus)
            m.d.comb += status.eq(beat.status)
            with m.If(overflowed):
                m.d.comb += status.eq(merge_status(beat.status, RxStatus.FIFO_OVERFLOW))
            with m.If(fill == 0):
                # Nothing left once the FCS is removed (never OK after the length check; stated here
                # so that the writer alone never counts an empty frame as delivered).
                m.d.comb += status.eq(merge_status(beat.status, RxStatus.RUNT))
            if self.keep_bad_frames:
                deliver = (fill != 0) & (status != RxStatus.FIFO_OVERFLOW)
            else:
                deliver = (fill != 0) & (status == RxStatus.OK)
            m.d.comb += [
                self.word.bytes.eq(fill),
                self.word.last.eq(1),
                self.word.status.eq(status),
                self.write.eq(deliver),
                verdict.eq(status),
            ]
            m.d.comb += commit.eq(deliver & self.space)
            with m.If(deliver & ~self.space):
                m.d.comb += verdict.eq(merge_status(status, RxStatus.FIFO_OVERFLOW))
            m.d.sync += [word_data.eq(0), fill.eq(0), first_word.eq(1), overflowed.eq(0)]

        # The frame is committed or discarded, and counted, in the cycle after its end marker, from
        # registers: the verdict depends on the store's `space`, and with the store's pointer update and six
        # 32-bit increments behind it the path did not fit in an RX_CLK cycle. No word is written in that
        # cycle: a word goes out when an octet arrives behind a full one, two octets after the end at best.
        settle = Signal()
        settle_commit = Signal()
        counted = Signal(RxStatus)
        m.d.sync += [settle.eq(self.sink.valid & beat.end), settle_commit.eq(commit), counted.eq(verdict)]
        m.d.comb += [
            self.commit.eq(settle & settle_commit),
            self.discard.eq(settle & ~settle_commit),
        ]
        with m.If(settle):
            with m.Switch(counted):
                for status_value, name in RX_COUNTER_OF_STATUS.items():
                    with m.Case(status_value):
                        counter = getattr(self.counters, name)
                        m.d.sync += counter.eq(counter + 1)
        return m


class RxMAC(wiring.Component):
    """The receive MAC: `gmii` in `phy_domain` (125 MHz RX_CLK), `frames` and `counters` in `nic_domain`.

    Parameters: `data_bytes` octets per NIC-side word (1, 2, 4 or 8); `max_frame_bytes`, the longest
    frame accepted, FCS included (1518; 1522 for VLAN tags; `gmii.MAX_JUMBO_FRAME_BYTES` for jumbo
    frames); `store_depth`, the frame store's size in words (a power of two holding at least one longest
    frame; by default two); `keep_bad_frames`, see the module's description.
    """
    def __init__(self, *, data_bytes=4, max_frame_bytes=MAX_FRAME_BYTES, store_depth=None,
                 keep_bad_frames=False, phy_domain="gmii_rx", nic_domain="sync"):
        check_data_bytes(self, data_bytes)
        if max_frame_bytes < MIN_FRAME_BYTES:
            raise bad_parameter(self, f"RxMAC: max_frame_bytes must be at least {MIN_FRAME_BYTES}, "
                                      f"got {max_frame_bytes}")
        longest_words = -(-(max_frame_bytes - FCS_BYTES) // data_bytes)
        if store_depth is None:
            store_depth = default_store_depth(max_frame_bytes, data_bytes)
        if store_depth < longest_words or store_depth & (store_depth - 1):
            raise bad_parameter(self, f"RxMAC: store_depth must be a power of two of at least "
                                      f"{longest_words} words (one frame of {max_frame_bytes} octets), "
                                      f"got {store_depth}")
        self.data_bytes = data_bytes
        self.max_frame_bytes = max_frame_bytes
        self.store_depth = store_depth
        self.keep_bad_frames = keep_bad_frames
        self.phy_domain = phy_domain
        self.nic_domain = nic_domain
        super().__init__({
            "gmii": In(GmiiRxSignature()),
            "frames": Out(stream.Signature(rx_word_layout(data_bytes))),
            "counters": Out(RxCounters),
        })

    def elaborate(self, platform):
        m = Module()
        in_phy = DomainRenamer(self.phy_domain)
        m.submodules.preamble = preamble = in_phy(PreambleChecker())
        m.submodules.length = length = in_phy(LengthChecker(max_bytes=self.max_frame_bytes))
        m.submodules.fcs = fcs = in_phy(FcsChecker())
        m.submodules.writer = writer = in_phy(RxFrameWriter(data_bytes=self.data_bytes,
                                                            keep_bad_frames=self.keep_bad_frames))
        m.submodules.store = store = AsyncFrameFIFO(rx_word_layout(self.data_bytes), self.store_depth,
                                                    w_domain=self.phy_domain, r_domain=self.nic_domain)
        m.submodules.counters_sync = counters_sync = HandshakeSynchronizer(
            RxCounters, i_domain=self.phy_domain, o_domain=self.nic_domain)

        # GMII inputs are registered once, at the pins.
        sample = Signal(GmiiSample)
        m.d[self.phy_domain] += [
            sample.data.eq(self.gmii.data),
            sample.dv.eq(self.gmii.dv),
            sample.er.eq(self.gmii.er),
        ]
        m.d.comb += [preamble.sink.valid.eq(1), preamble.sink.payload.eq(sample)]

        stages = [in_phy(RxStageRegister()) for _ in range(3)]
        for index, stage in enumerate(stages):
            m.submodules[f"stage{index}"] = stage
        for upstream, stage, downstream in zip([preamble, length, fcs], stages, [length, fcs, writer]):
            wiring.connect(m, upstream.source, stage.sink)
            wiring.connect(m, stage.source, downstream.sink)
        m.d.comb += [
            store.w_stream.payload.eq(writer.word),
            store.w_stream.valid.eq(writer.write),
            writer.space.eq(store.w_stream.ready),
            store.w_commit.eq(writer.commit),
            store.w_discard.eq(writer.discard),
            counters_sync.i.eq(writer.counters),
            self.counters.eq(counters_sync.o),
        ]
        wiring.connect(m, store.r_stream, wiring.flipped(self.frames))
        return m
