"""The RX and TX MACs end to end under amaranth.sim, with the PHY clock (125 MHz GMII) and the NIC clock
(100 or 150 MHz) running at once: frame sizes 60..127, 512 and 1514, bursts of back-to-back minimum
frames at line rate, bad FCS, runts, oversize and truncated frames mixed in, FIFO overflow, jumbo
frames, a TX->RX loopback, and conversion of both MACs to Verilog.

Expected deliveries and counters come from the software model (mac_model.py). The full size sweep
60..1514 is marked slow (run with --run-slow).
"""

import random

import pytest
from amaranth.back import verilog

from bpfnic.hw.pipeline import mac_model as model
from bpfnic.hw.pipeline.gmii import (INTER_FRAME_GAP_BYTES, MAX_FRAME_BYTES, MAX_JUMBO_FRAME_BYTES,
                                     RX_COUNTER_OF_STATUS, RxStatus)
from bpfnic.hw.pipeline.rx_mac import RxMAC
from bpfnic.hw.pipeline.tx_mac import TX_COUNTER_NAMES, TxMAC

from test_mac_units import random_frame, rx_frames_of_words, simulate, with_domains

PHY_PERIOD = 8e-9        # 125 MHz GMII
NIC_PERIOD = 10e-9       # 100 MHz NIC clock
NIC_STALL = 0.3


# -- RX ----------------------------------------------------------------------------------------------------

def run_rx(bursts, *, nic_period=NIC_PERIOD, nic_stall=NIC_STALL, **mac_options):
    """Plays `bursts` into an RxMAC's GMII and drains its NIC side with `ready` low at random.
    Returns the delivered frames as (octets, status), the counters, and the NIC-side cycle count."""
    mac = RxMAC(phy_domain="gmii_rx", nic_domain="sync", **mac_options)
    design = with_domains(["gmii_rx", "sync"], mac=mac)
    samples = model.gmii_samples(bursts)
    state = {"phy_done": False}
    rng = random.Random(len(samples))

    async def phy(ctx):
        for data, dv, er in samples:
            ctx.set(mac.gmii.data, data)
            ctx.set(mac.gmii.dv, dv)
            ctx.set(mac.gmii.er, er)
            await ctx.tick("gmii_rx")
        await ctx.tick("gmii_rx").repeat(16)   # the last frame through the chain and its commit out
        state["phy_done"] = True

    async def nic(ctx):
        words, idle_cycles, cycles = [], 0, 0
        while idle_cycles < 64:     # after the PHY side is done: the store is empty, counters settled
            ready = rng.random() >= nic_stall
            ctx.set(mac.frames.ready, ready)
            _, _, valid, word = await ctx.tick("sync").sample(mac.frames.valid, mac.frames.payload)
            cycles += 1
            if valid and ready:
                words.append(word)
            idle_cycles = idle_cycles + 1 if state["phy_done"] and not valid else 0
        state["frames"] = rx_frames_of_words(words, mac.data_bytes)
        counters = ctx.get(mac.counters)
        state["counters"] = {name: getattr(counters, name) for name in RX_COUNTER_OF_STATUS.values()}
        state["nic_cycles"] = cycles

    simulate(design, [phy, nic], clocks={"gmii_rx": PHY_PERIOD, "sync": nic_period},
             timeout_cycles=4 * len(samples) + 10_000)
    return state["frames"], state["counters"], state["nic_cycles"]


def good(payload, preamble_length=7, gap=INTER_FRAME_GAP_BYTES):
    return model.WireFrame(model.wire_octets(payload, preamble_length), gap=gap)


def bad_fcs(payload, rng):
    octets = bytearray(model.wire_octets(payload))
    octets[rng.randrange(8, len(octets))] ^= 1 << rng.randrange(8)
    return model.WireFrame(bytes(octets))


def unpadded(payload):
    """A frame sent as is, without padding, with a correct FCS: a runt when short."""
    return model.WireFrame(model.preamble() + payload + model.fcs(payload))


def truncated(payload, rng, *, with_error):
    """A frame cut short; a PHY that loses the signal flags RX_ER on the last octet it delivers."""
    octets = model.wire_octets(payload)
    cut = rng.randrange(9, len(octets) - 1)
    return model.WireFrame(octets[:cut], frozenset({cut - 1}) if with_error else frozenset())


def with_error_at(payload, rng):
    octets = model.wire_octets(payload)
    return model.WireFrame(octets, frozenset({rng.randrange(8, len(octets))}))


def check_rx(bursts, **options):
    expectation = model.rx_expectation(model.gmii_samples(bursts),
                                       max_frame_bytes=options.get("max_frame_bytes", MAX_FRAME_BYTES),
                                       keep_bad_frames=options.get("keep_bad_frames", False))
    frames, counters, _ = run_rx(bursts, **options)
    assert counters == expectation.counters
    assert len(frames) == len(expectation.delivered)
    for index, (got, want) in enumerate(zip(frames, expectation.delivered)):
        assert got == want, f"frame {index} differs"
    return expectation


def test_rx_size_sweep_with_bad_frames_mixed_in():
    """Good frames of 60..127, 512 and 1514 octets with the minimum gap, and every kind of bad frame
    between them; the good ones arrive byte-exact, the bad ones are counted by reason."""
    rng = random.Random(20)
    sizes = list(range(60, 128)) + [512, 1514]
    bursts = []
    for index, size in enumerate(sizes):
        bursts.append(good(random_frame(rng, size), preamble_length=rng.choice([7, 7, 7, 5, 1, 0])))
        kind = index % 10
        payload = random_frame(rng, rng.randrange(60, 200))
        if kind == 1:
            bursts.append(bad_fcs(payload, rng))
        elif kind == 3:
            bursts.append(unpadded(random_frame(rng, rng.randrange(0, 60))))           # runt
        elif kind == 5:
            bursts.append(truncated(payload, rng, with_error=rng.random() < 0.5))
        elif kind == 7:
            bursts.append(with_error_at(payload, rng))
        elif kind == 9:
            bursts.append(model.WireFrame(model.preamble() + bytes(rng.randrange(1, 5))))  # fragment
    bursts.append(unpadded(random_frame(rng, MAX_FRAME_BYTES - 4 + 1)))              # oversize by one
    bursts.append(unpadded(random_frame(rng, MAX_FRAME_BYTES - 4)))                  # longest good
    bursts.append(model.WireFrame(bytes([0x55, 0x55, 0x12, 0xD5]) + bytes(70)))      # not a frame
    bursts.append(good(random_frame(rng, 60), gap=1))                                # shrunk gap
    bursts.append(good(random_frame(rng, 61)))
    expectation = check_rx(bursts)
    assert all(expectation.counters[name] for name in ("bad_fcs", "runt", "oversize", "phy_error"))


@pytest.mark.parametrize("data_bytes, store_depth", [(4, 32), (8, 16), (1, 128)])
def test_rx_keeps_up_with_back_to_back_minimum_frames(data_bytes, store_depth):
    """Line rate: minimum frames with a 7-octet preamble and a 12-octet gap, one octet every 8 ns, into
    a 100 MHz NIC that is always ready. A store of barely two minimum frames never overflows.
    (8 bits at 100 MHz is 100 MB/s, enough for minimum frames: 60 octets per 84 octet times.)"""
    rng = random.Random(21)
    bursts = [good(random_frame(rng, 60)) for _ in range(60)]
    expectation = check_rx(bursts, data_bytes=data_bytes, max_frame_bytes=124, store_depth=store_depth,
                           nic_stall=0.0)
    assert expectation.counters["frames_ok"] == 60


def test_rx_8_bit_nic_side_at_100_mhz_falls_behind_on_long_frames():
    """Why the NIC side is wider than 8 bits: back-to-back 1514-octet frames carry 123 MB/s of data,
    more than an 8-bit stream at 100 MHz moves. The store fills, whole frames are dropped and counted
    as FIFO_OVERFLOW, and every frame delivered is intact. With 4 octets a word the same burst passes."""
    rng = random.Random(22)
    payloads = [random_frame(rng, 1514) for _ in range(5)]
    bursts = [good(payload) for payload in payloads]
    frames, counters, _ = run_rx(bursts, data_bytes=1, store_depth=2048, nic_stall=0.0)
    assert counters["fifo_overflow"] >= 1
    assert counters["frames_ok"] + counters["fifo_overflow"] == len(payloads)
    delivered = [octets for octets, _ in frames]
    assert len(delivered) == counters["frames_ok"]
    sent = iter(payloads)
    assert all(any(frame == candidate for candidate in sent) for frame in delivered)


def test_rx_store_overflow_drops_whole_frames():
    """A NIC that takes one word in twenty: frames that do not fit are dropped whole and counted; the
    others arrive exact and in order; bad frames are still counted by their own reason."""
    rng = random.Random(23)
    bursts = []
    for index in range(50):
        payload = random_frame(rng, rng.randrange(60, 250))
        bursts.append(bad_fcs(payload, rng) if index % 7 == 3 else good(payload))
    expectation = model.rx_expectation(model.gmii_samples(bursts), max_frame_bytes=256)
    frames, counters, _ = run_rx(bursts, max_frame_bytes=256, store_depth=64, nic_stall=0.95)
    assert counters["fifo_overflow"] > 0 and counters["frames_ok"] > 0
    assert counters["frames_ok"] + counters["fifo_overflow"] == expectation.counters["frames_ok"]
    assert counters["bad_fcs"] == expectation.counters["bad_fcs"]
    assert len(frames) == counters["frames_ok"]
    wanted = iter(expectation.delivered)
    assert all(any(frame == candidate for candidate in wanted) for frame in frames)


def test_rx_keep_bad_frames_delivers_them_with_their_reason():
    rng = random.Random(24)
    bursts = [good(random_frame(rng, 70)), bad_fcs(random_frame(rng, 80), rng),
              unpadded(random_frame(rng, 30)), truncated(random_frame(rng, 90), rng, with_error=True),
              unpadded(random_frame(rng, 200)), model.WireFrame(model.preamble() + bytes(3)),
              good(random_frame(rng, 60))]
    expectation = check_rx(bursts, keep_bad_frames=True, max_frame_bytes=160)
    statuses = [status for _, status in expectation.delivered]
    assert {RxStatus.BAD_FCS, RxStatus.RUNT, RxStatus.PHY_ERROR, RxStatus.OVERSIZE} <= set(statuses)


def test_rx_jumbo_frames_by_parameter():
    rng = random.Random(25)
    bursts = [unpadded(random_frame(rng, 3000)), good(random_frame(rng, 1600)),
              unpadded(random_frame(rng, 3001)), good(random_frame(rng, 64))]
    expectation = check_rx(bursts, max_frame_bytes=3004, nic_period=6.6e-9)   # a 150 MHz NIC clock
    assert (expectation.counters["frames_ok"], expectation.counters["oversize"]) == (3, 1)


@pytest.mark.slow
def test_rx_full_size_sweep_and_largest_jumbo():
    rng = random.Random(26)
    bursts = [good(random_frame(rng, size)) for size in range(60, 1515)]
    check_rx(bursts)
    check_rx([unpadded(random_frame(rng, MAX_JUMBO_FRAME_BYTES - 4)),
              unpadded(random_frame(rng, MAX_JUMBO_FRAME_BYTES - 3))], max_frame_bytes=MAX_JUMBO_FRAME_BYTES)


# -- TX ----------------------------------------------------------------------------------------------------

def tx_words(frame, data_bytes):
    return [{"data": value, "bytes": count, "last": int(last)}
            for value, count, _first, last in model.words_of_frame(frame, data_bytes)]


def run_tx(word_frames, *, expected_on_wire, nic_period=NIC_PERIOD, nic_stall=NIC_STALL, **mac_options):
    """Sends frames (lists of NIC-side words) into a TxMAC and records GMII until `expected_on_wire`
    frames went out. Returns the GMII samples, the counters, and whether `ready` was ever low."""
    mac = TxMAC(phy_domain="gmii_tx", nic_domain="sync", **mac_options)
    design = with_domains(["gmii_tx", "sync"], mac=mac)
    rng = random.Random(len(word_frames))
    state = {"back_pressure": False}

    async def nic(ctx):
        for words in word_frames:
            for word in words:
                while rng.random() < nic_stall:
                    await ctx.tick("sync")
                ctx.set(mac.frames.payload, word)
                ctx.set(mac.frames.valid, 1)
                async for _, _, ready in ctx.tick("sync").sample(mac.frames.ready):
                    if ready:
                        break
                    state["back_pressure"] = True
                ctx.set(mac.frames.valid, 0)
        await ctx.tick("sync")
        state["counters"] = {name: getattr(ctx.get(mac.counters), name) for name in TX_COUNTER_NAMES}

    async def phy(ctx):
        samples, ended, last_en = [], 0, 0
        while ended < expected_on_wire or len(samples) < 20:
            _, _, data, en, er = await ctx.tick("gmii_tx").sample(mac.gmii.data, mac.gmii.en, mac.gmii.er)
            samples.append((data, en, er))
            ended += last_en and not en
            last_en = en
        state["samples"] = samples

    simulate(design, [nic, phy], clocks={"gmii_tx": PHY_PERIOD, "sync": nic_period},
             timeout_cycles=200 * sum(len(words) for words in word_frames) + 10_000)
    return state["samples"], state["counters"], state["back_pressure"]


def check_tx_wire(samples, payloads):
    assert not any(er for _, _, er in samples), "TX_ER raised: the transmit path underran"
    decoded = model.decode_gmii(samples)
    assert [frame.preamble_length for frame in decoded] == [7] * len(decoded)
    assert [frame.octets for frame in decoded] == [model.with_fcs(payload) for payload in payloads]
    gaps = [later.start_cycle - earlier.end_cycle for earlier, later in zip(decoded, decoded[1:])]
    assert not gaps or min(gaps) == INTER_FRAME_GAP_BYTES
    return gaps


def test_tx_sizes_padding_fcs_gap_and_refused_frames():
    """Frames from 1 to 1514 octets go out padded, with FCS, preamble and a 12-octet gap; an oversize
    and a malformed frame are consumed and counted, and the frames after them are unharmed."""
    rng = random.Random(30)
    data_bytes = 4
    sizes = [1, 14, 59, 60, 61, 127, 512, 1514, 1514, 100, 64]
    payloads = [random_frame(rng, size) for size in sizes]
    word_frames = [tx_words(payload, data_bytes) for payload in payloads]
    oversize = tx_words(random_frame(rng, MAX_FRAME_BYTES - 4 + 1), data_bytes)
    malformed = tx_words(random_frame(rng, 70), data_bytes)
    malformed[-1]["bytes"] = 0
    word_frames[3:3] = [oversize]
    word_frames[6:6] = [malformed]
    samples, counters, back_pressure = run_tx(word_frames, expected_on_wire=len(payloads),
                                              data_bytes=data_bytes, store_depth=512)
    gaps = check_tx_wire(samples, payloads)
    assert counters == {"frames_ok": len(payloads), "oversize": 1, "malformed": 1}
    assert back_pressure, "two 1514-octet frames should have filled the store and held the NIC back"
    assert gaps.count(INTER_FRAME_GAP_BYTES) >= len(gaps) // 2


@pytest.mark.parametrize("data_bytes", [1, 8])
def test_tx_back_to_back_minimum_frames_at_line_rate(data_bytes):
    """With the NIC ahead of the wire, minimum frames leave back to back: 8 + 64 + 12 octet times each."""
    rng = random.Random(31 + data_bytes)
    payloads = [random_frame(rng, rng.randrange(1, 61)) for _ in range(30)]
    samples, counters, _ = run_tx([tx_words(payload, data_bytes) for payload in payloads],
                                  expected_on_wire=len(payloads), nic_stall=0.0, nic_period=6.6e-9,
                                  data_bytes=data_bytes)
    gaps = check_tx_wire(samples, payloads)
    assert set(gaps[2:]) == {INTER_FRAME_GAP_BYTES}
    assert counters["frames_ok"] == len(payloads)


@pytest.mark.slow
def test_tx_full_size_sweep():
    rng = random.Random(32)
    payloads = [random_frame(rng, size) for size in range(1, 1515, 7)]
    samples, counters, _ = run_tx([tx_words(payload, 4) for payload in payloads],
                                  expected_on_wire=len(payloads))
    check_tx_wire(samples, payloads)
    assert counters["frames_ok"] == len(payloads)


# -- TX -> RX loopback -------------------------------------------------------------------------------------

@pytest.mark.parametrize("nic_period", [NIC_PERIOD, 6.6e-9])
def test_loopback_tx_to_rx(nic_period):
    """The TX MAC's GMII wired to the RX MAC's, both NIC sides in one NIC clock: what goes in comes back
    out padded to the minimum, with every counter as expected."""
    rng = random.Random(40)
    payloads = [random_frame(rng, size) for size in [1, 59, 60, 61, 64, 127, 300, 1514] +
                [rng.randrange(1, 200) for _ in range(12)]]
    tx = TxMAC(phy_domain="gmii", nic_domain="sync")
    rx = RxMAC(phy_domain="gmii", nic_domain="sync")
    design = with_domains(["gmii", "sync"], tx=tx, rx=rx)
    design.d.comb += [rx.gmii.data.eq(tx.gmii.data), rx.gmii.dv.eq(tx.gmii.en), rx.gmii.er.eq(tx.gmii.er)]
    state = {"sent": False}

    async def sender(ctx):
        for payload in payloads:
            for word in tx_words(payload, 4):
                while rng.random() < NIC_STALL:
                    await ctx.tick("sync")
                ctx.set(tx.frames.payload, word)
                ctx.set(tx.frames.valid, 1)
                await ctx.tick("sync").until(tx.frames.ready)
                ctx.set(tx.frames.valid, 0)

    async def receiver(ctx):
        words, frames = [], 0
        while frames < len(payloads):
            ready = rng.random() >= NIC_STALL
            ctx.set(rx.frames.ready, ready)
            _, _, valid, word = await ctx.tick("sync").sample(rx.frames.valid, rx.frames.payload)
            if valid and ready:
                words.append(word)
                frames += word.last
        await ctx.tick("sync").repeat(40)
        state["frames"] = rx_frames_of_words(words, 4)
        state["rx_counters"] = ctx.get(rx.counters)
        state["tx_counters"] = ctx.get(tx.counters)

    simulate(design, [sender, receiver], clocks={"gmii": PHY_PERIOD, "sync": nic_period},
             timeout_cycles=200_000)
    assert state["frames"] == [(model.pad(payload), RxStatus.OK) for payload in payloads]
    assert state["rx_counters"].frames_ok == len(payloads)
    assert state["tx_counters"].frames_ok == len(payloads)
    assert sum(getattr(state["rx_counters"], name) for name in RX_COUNTER_OF_STATUS.values()) == len(payloads)


# -- Verilog -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, ports, store", [
    (lambda: RxMAC(),
     {"gmii__data", "gmii__dv", "gmii__er", "gmii_rx_clk", "gmii_rx_rst", "clk", "rst",
      "frames__payload", "frames__valid", "frames__ready", "counters"}, "reg [39:0] storage [1023:0];"),
    (lambda: RxMAC(data_bytes=8, max_frame_bytes=MAX_JUMBO_FRAME_BYTES, keep_bad_frames=True),
     None, "reg [72:0] storage [4095:0];"),
    (lambda: TxMAC(),
     {"gmii__data", "gmii__en", "gmii__er", "gmii_tx_clk", "gmii_tx_rst", "clk", "rst",
      "frames__payload", "frames__valid", "frames__ready", "counters"}, "reg [35:0] storage [1023:0];"),
    (lambda: TxMAC(data_bytes=1), None, "reg [9:0] storage [4095:0];"),
], ids=["rx", "rx-jumbo-64bit", "tx", "tx-8bit"])
def test_macs_convert_to_verilog(make, ports, store):
    """Both MACs convert; the top-level ports are the GMII pins, the NIC stream, the counters and one
    clock and reset per domain; the frame store is one memory array (block RAM)."""
    text = verilog.convert(make(), name="mac")
    header = text[text.index("module mac("):]
    top_ports = {name.strip() for name in header[len("module mac("):header.index(");")].split(",")}
    if ports is not None:
        assert top_ports == ports
    assert store in text


def test_bad_parameters_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="data_bytes must be one of"):
        RxMAC(data_bytes=3)
    with pytest.raises(ValueError, match="store_depth must be a power of two of at least 379 words"):
        RxMAC(store_depth=256)
    with pytest.raises(ValueError, match="max_frame_bytes must be at least 64"):
        RxMAC(max_frame_bytes=60)
    with pytest.raises(ValueError, match="store_depth"):
        TxMAC(store_depth=100)
