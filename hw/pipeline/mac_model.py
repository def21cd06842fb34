"""Software models of the Ethernet MAC: GMII encoding and decoding of frames, and the RX MAC's verdicts.

Ref: IEEE 802.3 clause 3.2 (frame format: preamble, SFD, pad, FCS), clause 3.2.9 (CRC-32 FCS, sent
least significant octet first), clause 4.4.2 (minFrameSize, interPacketGap), clause 35 (GMII).

These are the naive references the hardware units are tested against: each works on whole frames in
plain Python, with no notion of cycles. The CRC is the `amaranth.lib.crc` catalog's software model, the
same algorithm definition the hardware CRC units are built from.

Receive-side framing units exchange `RxItem`s: an octet (int) or an `End(status)` marker, mirroring
`gmii.RxByte`. Transmit-side units exchange frames as `bytes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amaranth.lib.crc import catalog

from .gmii import (FCS_BYTES, INTER_FRAME_GAP_BYTES, MAX_FRAME_BYTES, MIN_FRAME_BYTES, MIN_PAYLOAD_BYTES,
                   PREAMBLE_BYTE, PREAMBLE_LENGTH, RX_COUNTER_OF_STATUS, SFD_BYTE, RxStatus)

ETHERNET_CRC = catalog.CRC32_ETHERNET(8)


# -- Frame encoding --------------------------------------------------------------------------------------

def fcs(frame: bytes) -> bytes:
    """The 4-octet FCS of `frame`, in wire order (the CRC's least significant octet first)."""
    return ETHERNET_CRC.compute(frame).to_bytes(FCS_BYTES, "little")


def fcs_ok(frame_with_fcs: bytes) -> bool:
    """Whether the last 4 octets of `frame_with_fcs` are the FCS of the octets before them."""
    if len(frame_with_fcs) < FCS_BYTES:
        return False
    return fcs(frame_with_fcs[:-FCS_BYTES]) == frame_with_fcs[-FCS_BYTES:]


def pad(payload: bytes, min_bytes: int = MIN_PAYLOAD_BYTES) -> bytes:
    """`payload` extended with zero octets to `min_bytes` (clause 3.2.8)."""
    return bytes(payload) + bytes(max(0, min_bytes - len(payload)))


def with_fcs(payload: bytes) -> bytes:
    """`payload` padded to the minimum and followed by its FCS: the frame as the MAC sends it."""
    padded = pad(payload)
    return padded + fcs(padded)


def preamble(length: int = PREAMBLE_LENGTH) -> bytes:
    """`length` preamble octets and the SFD."""
    return bytes([PREAMBLE_BYTE] * length + [SFD_BYTE])


def wire_octets(payload: bytes, preamble_length: int = PREAMBLE_LENGTH) -> bytes:
    """Every octet the MAC puts on GMII for `payload`: preamble, SFD, padded payload, FCS."""
    return preamble(preamble_length) + with_fcs(payload)


# -- GMII ------------------------------------------------------------------------------------------------

@dataclass
class WireFrame:
    """One burst of RX_DV on GMII: its octets (preamble included) and the indices of octets sent with
    RX_ER, followed by `gap` cycles of idle (RX_DV low)."""
    octets: bytes
    error_at: frozenset = frozenset()
    gap: int = INTER_FRAME_GAP_BYTES


def gmii_samples(bursts: list[WireFrame]) -> list[tuple[int, int, int]]:
    """The (RXD, RX_DV, RX_ER) value of every cycle for `bursts`, each followed by its idle gap."""
    samples = []
    for burst in bursts:
        if burst.gap < 1:
            raise ValueError(f"GMII burst needs at least one idle cycle after it, got gap={burst.gap}")
        for index, octet in enumerate(burst.octets):
            samples.append((octet, 1, int(index in burst.error_at)))
        samples.extend([(0, 0, 0)] * burst.gap)
    return samples


@dataclass
class DecodedFrame:
    """A frame found on GMII: the octets after the SFD, and whether the error line was up during it."""
    octets: bytes
    error: bool
    preamble_length: int
    start_cycle: int
    end_cycle: int   # the cycle after the last octet


def decode_gmii(samples: list[tuple[int, int, int]]) -> list[DecodedFrame]:
    """Frames on a GMII stream of (data, enable, error) cycles.

    A burst of enable counts as a frame when it starts with zero or more preamble octets followed by the
    SFD; a burst that shows anything else before an SFD is not a frame and is skipped, as is a burst
    that ends before its SFD.
    """
    frames = []
    index = 0
    while index < len(samples):
        if not samples[index][1]:
            index += 1
            continue
        start = index
        while index < len(samples) and samples[index][1]:
            index += 1
        burst = samples[start:index]
        preamble_length = 0
        while preamble_length < len(burst) and burst[preamble_length][0] == PREAMBLE_BYTE:
            preamble_length += 1
        if preamble_length == len(burst) or burst[preamble_length][0] != SFD_BYTE:
            continue
        frames.append(DecodedFrame(
            octets=bytes(sample[0] for sample in burst[preamble_length + 1:]),
            error=any(sample[2] for sample in burst),
            preamble_length=preamble_length,
            start_cycle=start,
            end_cycle=index,
        ))
    return frames


# -- The RX MAC's verdict on a frame ----------------------------------------------------------------------

def rx_verdict(octets: bytes, *, phy_error: bool = False,
               max_frame_bytes: int = MAX_FRAME_BYTES) -> RxStatus:
    """What the RX MAC decides for a frame whose octets after the SFD (FCS included) are `octets`."""
    if phy_error:
        return RxStatus.PHY_ERROR
    if len(octets) < MIN_FRAME_BYTES:
        return RxStatus.RUNT
    if len(octets) > max_frame_bytes:
        return RxStatus.OVERSIZE
    if not fcs_ok(octets):
        return RxStatus.BAD_FCS
    return RxStatus.OK


@dataclass
class RxExpectation:
    """What the RX MAC should deliver, as (octets without FCS, status) per frame, and count."""
    delivered: list[tuple[bytes, RxStatus]] = field(default_factory=list)
    counters: dict[str, int] = field(
        default_factory=lambda: {name: 0 for name in RX_COUNTER_OF_STATUS.values()})


def rx_expectation(samples: list[tuple[int, int, int]], *, max_frame_bytes: int = MAX_FRAME_BYTES,
                   keep_bad_frames: bool = False) -> RxExpectation:
    """The frames an RX MAC delivers from `samples`, and its counters, if no frame is lost to a FIFO
    overflow. With `keep_bad_frames`, bad frames are delivered too, cut after `max_frame_bytes`, unless
    nothing is left of them once the FCS is removed."""
    expectation = RxExpectation()
    for frame in decode_gmii(samples):
        verdict = rx_verdict(frame.octets, phy_error=frame.error, max_frame_bytes=max_frame_bytes)
        expectation.counters[RX_COUNTER_OF_STATUS[verdict]] += 1
        payload = frame.octets[:max_frame_bytes][:-FCS_BYTES]
        if payload and (verdict == RxStatus.OK or keep_bad_frames):
            expectation.delivered.append((payload, verdict))
    return expectation


# -- Receive framing units, one model each ------------------------------------------------------------------

@dataclass(frozen=True)
class End:
    """The end-of-frame marker of the receive byte stream, with the frame's status so far."""
    status: RxStatus


def merge_status(first: RxStatus, second: RxStatus) -> RxStatus:
    """The more severe of two statuses (`RxStatus` values are ordered by precedence)."""
    return first if first.value > second.value else second


def split_frames(items: list) -> list[tuple[list[int], RxStatus]]:
    """Receive items grouped as (octets, status at the end marker) per frame."""
    frames, octets = [], []
    for item in items:
        if isinstance(item, End):
            frames.append((octets, item.status))
            octets = []
        else:
            octets.append(item)
    if octets:
        raise ValueError(f"receive stream ends with {len(octets)} octets and no end marker")
    return frames


def join_frames(frames: list[tuple[list[int], RxStatus]]) -> list:
    items = []
    for octets, status in frames:
        items.extend(octets)
        items.append(End(status))
    return items


def preamble_check(samples: list[tuple[int, int, int]]) -> list:
    """Model of `preamble.PreambleChecker`: GMII samples in, receive items out."""
    items = []
    for frame in decode_gmii(samples):
        items.extend(frame.octets)
        items.append(End(RxStatus.PHY_ERROR if frame.error else RxStatus.OK))
    return items


def length_check(items: list, *, min_bytes: int = MIN_FRAME_BYTES,
                 max_bytes: int = MAX_FRAME_BYTES) -> list:
    """Model of `padding.LengthChecker`: octets past `max_bytes` are dropped, and the status says why."""
    out = []
    for octets, status in split_frames(items):
        if len(octets) < min_bytes:
            status = merge_status(status, RxStatus.RUNT)
        elif len(octets) > max_bytes:
            status = merge_status(status, RxStatus.OVERSIZE)
        out.append((octets[:max_bytes], status))
    return join_frames(out)


def fcs_check(items: list) -> list:
    """Model of `crc.FcsChecker`: the FCS is checked and removed."""
    out = []
    for octets, status in split_frames(items):
        if not fcs_ok(bytes(octets)):
            status = merge_status(status, RxStatus.BAD_FCS)
        out.append((octets[:-FCS_BYTES] if len(octets) >= FCS_BYTES else [], status))
    return join_frames(out)


# -- Transmit framing units, one model each ---------------------------------------------------------------

def pad_frames(frames: list[bytes], min_bytes: int = MIN_PAYLOAD_BYTES) -> list[bytes]:
    """Model of `padding.PaddingInserter`."""
    return [pad(frame, min_bytes) for frame in frames]


def append_fcs(frames: list[bytes]) -> list[bytes]:
    """Model of `crc.FcsInserter`."""
    return [bytes(frame) + fcs(frame) for frame in frames]


def insert_preamble(frames: list[bytes]) -> list[bytes]:
    """Model of `preamble.PreambleInserter`."""
    return [preamble() + bytes(frame) for frame in frames]


# -- Word streams on the NIC side ----------------------------------------------------------------------------

def words_of_frame(frame: bytes, data_bytes: int) -> list[tuple[int, int, bool, bool]]:
    """`frame` as NIC-side words (data, byte count, first, last): octet i of a word in bits 8i..8i+7."""
    if not frame:
        raise ValueError("a frame on the NIC side has at least one octet")
    words = []
    for offset in range(0, len(frame), data_bytes):
        chunk = frame[offset:offset + data_bytes]
        words.append((int.from_bytes(chunk, "little"), len(chunk),
                      offset == 0, offset + data_bytes >= len(frame)))
    return words


def frame_of_words(words: list[tuple[int, int]]) -> bytes:
    """The octets of a frame from its (data, byte count) words."""
    frame = b""
    for value, count in words:
        frame += (value & ((1 << (8 * count)) - 1)).to_bytes(count, "little")
    return frame
