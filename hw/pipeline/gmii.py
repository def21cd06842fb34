"""GMII, the 8-bit MAC/PHY interface at 125 MHz, and the byte streams the MAC's framing units exchange.

Ref: IEEE 802.3 clause 35 (GMII: TXD/TX_EN/TX_ER and RXD/RX_DV/RX_ER, one octet per 8 ns clock),
clause 3.2 (MAC frame: preamble, SFD, FCS), clause 4.4.2 (minFrameSize, maxUntaggedFrameSize,
interPacketGap).

Clocks are Amaranth domains, not signals of these signatures: the receive side runs in the PHY's RX_CLK
domain (`gmii_rx` by convention) and the transmit side in the GTX_CLK domain the MAC drives (`gmii_tx`).
Only full-duplex operation is supported (no carrier extension, no collisions).

The PHY-side framing units (preamble.py, crc.py, padding.py, ifg.py) pass one octet a transfer:

- transmit: `TxByte` carries `last` on the final octet of a frame, as usual for packet streams; a frame
  begins with the first transfer after a `last`.
- receive: GMII says a frame has ended only in the cycle after its final octet (RX_DV falls), and a
  broken frame may have no octet at all after its SFD. So the receive stream ends each frame with a
  separate end marker (`RxByte.end`), which carries no data and the frame's `RxStatus` so far. Each unit
  merges its own finding into that status, so the order of the checks does not decide the reason.
"""

from amaranth.hdl import Mux, Value
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out


# -- IEEE 802.3 constants ------------------------------------------------------------------------------
PREAMBLE_BYTE = 0x55          # clause 3.2.1: 7 octets of 10101010 (sent LSB first)
SFD_BYTE = 0xD5               # clause 3.2.2: start frame delimiter 10101011
PREAMBLE_LENGTH = 7
FCS_BYTES = 4                 # clause 3.2.9: CRC-32
MIN_FRAME_BYTES = 64          # clause 4.4.2 minFrameSize (512 bits), FCS included
MIN_PAYLOAD_BYTES = MIN_FRAME_BYTES - FCS_BYTES   # what padding fills a frame up to before its FCS
MAX_FRAME_BYTES = 1518        # clause 4.4.2 maxUntaggedFrameSize, FCS included
MAX_VLAN_FRAME_BYTES = 1522   # with one 802.1Q tag
MAX_JUMBO_FRAME_BYTES = 9018  # the customary 9000-byte MTU jumbo frame with its header and FCS
INTER_FRAME_GAP_BYTES = 12    # clause 4.4.2 interPacketGap: 96 bit times
GMII_CLOCK_HZ = 125_000_000   # clause 35.4.2.1: 125 MHz +/- 100 ppm


class RxStatus(enum.Enum, shape=3):
    """The verdict on a received frame, and the reason it was dropped.

    Values are ordered by precedence: when several checks fail, the highest value is the reason reported
    and counted, so every frame is counted exactly once.
    """
    OK = 0
    FIFO_OVERFLOW = 1   # a good frame that did not fit: the NIC side did not drain the frame store in time
    BAD_FCS = 2         # the CRC-32 over the frame does not match its FCS
    OVERSIZE = 3        # longer than the configured maximum frame length
    RUNT = 4            # shorter than 64 octets with the FCS
    PHY_ERROR = 5       # RX_ER during the frame: the PHY saw a coding error or lost the signal (truncated)


# The RX MAC's counter for each verdict: every frame (a burst that reached its SFD) counts in exactly one.
RX_COUNTER_OF_STATUS = {
    RxStatus.OK: "frames_ok",
    RxStatus.BAD_FCS: "bad_fcs",
    RxStatus.RUNT: "runt",
    RxStatus.OVERSIZE: "oversize",
    RxStatus.PHY_ERROR: "phy_error",
    RxStatus.FIFO_OVERFLOW: "fifo_overflow",
}


def merge_status(first, second):
    """Hardware: the more severe of two `RxStatus` values (see `RxStatus` for the order)."""
    first, second = Value.cast(first), Value.cast(second)
    return Mux(first > second, first, second)


def bad_parameter(component, message):
    """The ValueError for a build parameter `component` cannot be built with. The half-built object is
    marked as used, so Amaranth does not add a warning that it was never elaborated."""
    component._MustUse__silence = True
    return ValueError(message)


class GmiiSample(data.Struct):
    """One RX_CLK cycle of the receive side: RXD, RX_DV, RX_ER."""
    data: 8
    dv: 1
    er: 1


class RxByte(data.Struct):
    """A receive octet, or (`end` = 1, `data` unused) the end of the frame with its status so far."""
    data: 8
    end: 1
    status: RxStatus


class TxByte(data.Struct):
    """A transmit octet; `last` marks the final one of a frame."""
    data: 8
    last: 1


class GmiiRxSignature(wiring.Signature):
    """GMII receive signals, as driven by the PHY (a MAC has `In(GmiiRxSignature())`)."""
    def __init__(self):
        super().__init__({
            "data": Out(8),   # RXD<7:0>
            "dv": Out(1),     # RX_DV: the octets from the SFD on (possibly part of the preamble) to the last
            "er": Out(1),     # RX_ER: with RX_DV, the current octet is in error
        })


class GmiiTxSignature(wiring.Signature):
    """GMII transmit signals, as driven by the MAC (a MAC has `Out(GmiiTxSignature())`)."""
    def __init__(self):
        super().__init__({
            "data": Out(8),   # TXD<7:0>
            "en": Out(1),     # TX_EN: preamble, SFD, frame and FCS octets
            "er": Out(1),     # TX_ER: with TX_EN, makes the PHY send an error symbol (used on underrun)
        })


class GmiiSignature(wiring.Signature):
    """A whole GMII port from the MAC's side: receive in, transmit out."""
    def __init__(self):
        super().__init__({
            "rx": In(GmiiRxSignature()),
            "tx": Out(GmiiTxSignature()),
        })
