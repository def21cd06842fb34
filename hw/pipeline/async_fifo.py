"""Clock-domain crossing for the MACs: an asynchronous frame store and a handshake synchronizer.

Ref: C. E. Cummings, "Simulation and Synthesis Techniques for Asynchronous FIFO Design" (SNUG 2002):
Gray-coded pointers crossing through two-flop synchronizers; the same paper's section on multi-bit
crossings for the handshake (toggle request/acknowledge, data held stable while it is sampled).

`AsyncFrameFIFO` is the asynchronous FIFO of `amaranth.lib.fifo.AsyncFIFO` with one addition that
the frames of a MAC need: the writer appends words to a frame speculatively and then either commits
the frame (its words become visible to the reader, all at once) or discards it (the write pointer rolls
back to the last commit, so a frame found bad at its end is never seen). Because a commit moves the
visible end by a whole frame, which is not a one-step Gray change, the committed pointer crosses through
a `HandshakeSynchronizer`; the reader's pointer moves one word at a time and crosses in Gray code.

Both domains must be reset together (as at power-up); a reset of one side alone is not supported.
"""

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out


def _gray_encode(value):
    return value ^ (value >> 1)


def _gray_decode(gray, width):
    bits = [gray[width - 1]]
    for index in reversed(range(width - 1)):
        bits.insert(0, bits[0] ^ gray[index])
    return Cat(*bits)


class HandshakeSynchronizer(wiring.Component):
    """Carries a value of any width, which may change by any amount, from `i_domain` to `o_domain`.

    The value is captured into a holding register, a request toggle crosses to the other side, which
    copies the (by then stable) holding register and returns the toggle as acknowledgement; then the
    next capture starts. `o` follows `i` with a delay of a few cycles of both clocks and only ever takes
    values `i` really had, never a mix of bits of two of them. All of a structured value crosses together,
    so a set of counters arrives as one consistent snapshot.
    """
    def __init__(self, shape, *, i_domain, o_domain, stages=2):
        self._shape = shape
        self._i_domain = i_domain
        self._o_domain = o_domain
        self._stages = stages
        super().__init__({"i": In(shape), "o": Out(shape)})

    def elaborate(self, platform):
        m = Module()
        held = Signal(self._shape)
        request = Signal()          # i side: toggles when `held` has a new value to take
        request_seen = Signal()     # request, in the o domain
        acknowledge = Signal()      # o side: set equal to the request once `held` was copied
        acknowledge_seen = Signal() # acknowledge, in the i domain
        m.submodules.request_sync = FFSynchronizer(request, request_seen,
                                                   o_domain=self._o_domain, stages=self._stages)
        m.submodules.acknowledge_sync = FFSynchronizer(acknowledge, acknowledge_seen,
                                                       o_domain=self._i_domain, stages=self._stages)
        # Re-sent continuously: the round trip bounds how stale `o` can be, and no change is missed.
        with m.If(acknowledge_seen == request):
            m.d[self._i_domain] += [held.eq(self.i), request.eq(~request)]
        with m.If(request_seen != acknowledge):
            m.d[self._o_domain] += [self.o.eq(held), acknowledge.eq(request_seen)]
        return m


class AsyncFrameFIFO(wiring.Component):
    """A FIFO of `depth` words of `shape` from `w_domain` to `r_domain`, in which words become readable
    only when the writer commits them.

    Write side (`w_domain`): words transferred on `w_stream` are appended to the current frame; a
    transfer needs a free slot, so `w_stream.ready` is low while the store is full (uncommitted words
    count as held). `w_commit` makes every word of the frame so far, including one transferred in the
    same cycle, readable; `w_discard` drops every word since the last commit, including one transferred
    in the same cycle (it wins over `w_commit`). `w_level` is the number of words held, as the writer
    sees it.

    Read side (`r_domain`): `r_stream` gives committed words in order, one a cycle at best, from a
    synchronous read port (it maps onto block RAM).
    """
    def __init__(self, shape, depth, *, w_domain, r_domain):
        if depth < 2 or depth & (depth - 1):
            self._MustUse__silence = True   # refused: no "never elaborated" warning on top of the error
            raise ValueError(f"AsyncFrameFIFO: depth must be a power of two of at least 2, got {depth}")
        self._shape = shape
        self.depth = depth
        self._w_domain = w_domain
        self._r_domain = r_domain
        super().__init__({
            "w_stream": In(stream.Signature(shape)),
            "w_commit": In(1),
            "w_discard": In(1),
            "w_level": Out(range(depth + 1)),
            "r_stream": Out(stream.Signature(shape)),
        })

    def elaborate(self, platform):
        m = Module()
        address_bits = self.depth.bit_length() - 1
        pointer = unsigned(address_bits + 1)   # one bit more than the address tells full from empty

        m.submodules.storage = storage = Memory(shape=self._shape, depth=self.depth, init=[])
        write_port = storage.write_port(domain=self._w_domain)
        read_port = storage.read_port(domain=self._r_domain)

        # -- write side ------------------------------------------------------------------------------
        w = m.d[self._w_domain]
        w_next = Signal(pointer)        # where the next word goes
        w_committed = Signal(pointer)   # end of the readable words
        r_gray = Signal(pointer)        # the reader's position, Gray-coded, in the read domain
        r_gray_seen = Signal(pointer)
        m.submodules.read_pointer_sync = FFSynchronizer(r_gray, r_gray_seen, o_domain=self._w_domain)
        r_seen = _gray_decode(r_gray_seen, pointer.width)

        # Timing: the writer may be a 125 MHz GMII receiver whose every write depends on `ready`.
        # Full is tested in Gray code, as the reader's pointer with its two top bits inverted (Cummings,
        # section 5.3.1): an equality, where `w_next - r_seen == depth` put the Gray decoder and a
        # subtractor in front of `ready`. And `w_next + 1` is ready before the writer decides, so that
        # its decision drives a multiplexer, not an adder.
        lap_ahead = Signal(pointer)
        w_next_plus1 = Signal(pointer)
        write = Signal()
        m.d.comb += [
            lap_ahead.eq(r_gray_seen ^ (0b11 << (pointer.width - 2))),
            w_next_plus1.eq(w_next + 1),
            self.w_stream.ready.eq(_gray_encode(w_next) != lap_ahead),
            write.eq(self.w_stream.valid & self.w_stream.ready),
            self.w_level.eq(w_next - r_seen),
        ]
        # The write port's inputs are registered, so the path to a block RAM placed far away starts at a
        # flip-flop. The word lands a cycle after its transfer, long before the commit that makes it
        # readable has crossed to the reader (the handshake takes cycles of both clocks).
        w += [
            write_port.addr.eq(w_next[:address_bits]),
            write_port.data.eq(self.w_stream.payload),
            write_port.en.eq(write),
        ]

        with m.If(self.w_discard):
            w += w_next.eq(w_committed)
        with m.Elif(write):
            w += w_next.eq(w_next_plus1)
            with m.If(self.w_commit):
                w += w_committed.eq(w_next_plus1)
        with m.Elif(self.w_commit):
            w += w_committed.eq(w_next)

        # -- commits cross whole, by handshake -------------------------------------------------------
        m.submodules.commit_sync = commit_sync = HandshakeSynchronizer(
            pointer, i_domain=self._w_domain, o_domain=self._r_domain)
        m.d.comb += commit_sync.i.eq(w_committed)
        r_limit = commit_sync.o

        # -- read side -------------------------------------------------------------------------------
        r_next = Signal(pointer)        # the next word to fetch from the memory
        r_valid = Signal()
        fetch = (r_next != r_limit) & (~r_valid | self.r_stream.ready)
        m.d.comb += [
            read_port.addr.eq(r_next[:address_bits]),
            read_port.en.eq(fetch),
            self.r_stream.payload.eq(read_port.data),
            self.r_stream.valid.eq(r_valid),
        ]
        # A fetched word sits in the read port's output register, so its slot is free at once.
        r_following = Signal(pointer)
        m.d.comb += r_following.eq(r_next + 1)
        with m.If(fetch):
            m.d[self._r_domain] += [r_next.eq(r_following), r_gray.eq(_gray_encode(r_following))]
        with m.If(~r_valid | self.r_stream.ready):
            m.d[self._r_domain] += r_valid.eq(fetch)
        return m
