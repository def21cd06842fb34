"""The load/store unit of the core: region checks, loads, stores and atomics on the data port.

Ref: RFC 9669 §5.1 (loads and stores: ldx, ldxs (v4 MEMSX), st, stx of 1, 2, 4, 8 bytes), §5.3 (atomic
operations: add, or, and, xor with and without FETCH, xchg, cmpxchg, 32 and 64 bits); the pointer map of
sw/memory.py; the golden VM's checks (sw/vm.py): an access of n bytes at offset o of a region is allowed
when o + n <= size, and for stores and atomics when the region is writable; bits 40..63 of the pointer
must be zero (tag 0 is null and never a region).

The unit spans two stages:
  M  checks the access against the region table, and issues the request only when it is in bounds: a bad
     access raises `m_fault` (the core traps BAD_ACCESS) and nothing reaches the data port. A load or
     store is issued in the cycle the instruction moves on to W (`m_can_issue`), so an issued load is
     always the one in W when its response comes, and no request is issued behind an instruction that
     has not finished (a helper call in W, say). An atomic waits in M until W holds neither a load waiting for its data nor a helper call (either may
     still answer on a port or change memory), then reads, and writes the new value back in the cycle
     the data arrive (cmpxchg only when the old value equals r0); `m_fetched` is the old value.
  W  waits for the response of its load and extends it (zero or sign) to 64 bits, but for a load from a
     computed region (interfaces.py), whose value is the response's 64 bits.
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

from bpfnic.sw import isa

from .interfaces import DataPort
from .isa_decode import Operation
from .regions import RegionLookup


class _Atomic(enum.Enum, shape=2):
    IDLE = 0
    READING = 1
    WRITING = 2
    DONE = 3


def size_mask(size_log2, value):
    """`value` cut to the access size (1 << size_log2 bytes), zero-extended."""
    return Mux(size_log2 == 0, value[0:8], Mux(size_log2 == 1, value[0:16],
               Mux(size_log2 == 2, value[0:32], value[0:64])))


class LoadStoreUnit(wiring.Component):
    bus: Out(DataPort())
    region: Out(RegionLookup())

    # M stage
    m_valid: In(1)            # a live instruction without a trap is in M
    m_operation: In(Operation)
    m_address: In(64)
    m_size: In(2)
    m_data: In(64)            # store data, or the atomic's src operand
    m_atomic_op: In(8)        # the atomic's imm (an isa.ATOMIC_OPS key)
    m_comparand: In(64)       # r0, for cmpxchg
    m_can_issue: In(1)        # the instruction in M moves to W this cycle if it is not stalled
    m_quiet: In(1)            # W holds no load waiting for data and no helper call under way
    m_leaving: In(1)          # the instruction in M leaves or is dropped this cycle
    m_fault: Out(1)
    m_busy: Out(1)            # M must stall
    m_fetched: Out(64)        # an atomic's old value
    m_wrote: Out(1)           # the instruction writes memory (for the retire record)
    m_written: Out(64)        # what it writes, cut to the size
    m_computed: Out(1)        # the load reads a computed region: W takes the response's 64 bits

    # W stage
    w_load: In(1)             # a live load without a trap is in W, waiting for its data
    w_size: In(2)
    w_signed: In(1)
    w_computed: In(1)
    w_ready: Out(1)
    w_value: Out(64)

    def elaborate(self, platform):
        m = Module()
        request = self.bus.request
        response = self.bus.response

        is_load = self.m_operation == Operation.LOAD
        is_store = self.m_operation == Operation.STORE
        is_atomic = self.m_operation == Operation.ATOMIC
        is_access = is_load | is_store | is_atomic

        # -- the region check --------------------------------------------------------------------
        offset = self.m_address[0:32]
        end = Signal(33)
        m.d.comb += [
            self.region.tag.eq(self.m_address[32:40]),
            end.eq(offset + (1 << self.m_size)),
        ]
        inside = (self.m_address[40:64] == 0) & self.region.present & (end <= self.region.size)
        allowed = inside & (is_load | self.region.writable)
        m.d.comb += self.m_fault.eq(self.m_valid & is_access & ~allowed)
        good = self.m_valid & is_access & allowed

        # -- atomics: read, then write back -------------------------------------------------------------
        # The read goes out when nothing older can still touch memory or answer on the port (`m_quiet`);
        # the write goes out in the cycle the read's data arrive, and the atomic leaves M when it is taken.
        state = Signal(_Atomic)
        old = Signal(64)
        new = Signal(64)
        writes_back = Signal()   # the atomic stores (all but a cmpxchg whose comparison failed)
        compare_exchange = self.m_atomic_op == isa.BPF_CMPXCHG
        returned = size_mask(self.m_size, response.payload)
        source = size_mask(self.m_size, self.m_data)
        combined = Signal(64)
        with m.Switch(self.m_atomic_op & ~isa.BPF_FETCH):
            with m.Case(isa.BPF_ADD):
                m.d.comb += combined.eq(returned + source)
            with m.Case(isa.BPF_OR):
                m.d.comb += combined.eq(returned | source)
            with m.Case(isa.BPF_AND):
                m.d.comb += combined.eq(returned & source)
            with m.Case(isa.BPF_XOR):
                m.d.comb += combined.eq(returned ^ source)
            with m.Default():   # xchg, cmpxchg
                m.d.comb += combined.eq(source)
        exchange_fails = compare_exchange & (returned != size_mask(self.m_size, self.m_comparand))

        atomic = good & is_atomic
        arrived = atomic & (state == _Atomic.READING) & response.valid
        atomic_read = atomic & (state == _Atomic.IDLE) & self.m_quiet
        atomic_write = (arrived & ~exchange_fails) | (atomic & (state == _Atomic.WRITING))
        atomic_complete = ((arrived & (exchange_fails | request.ready)) | (atomic & (state == _Atomic.WRITING)
                                                                          & request.ready)
                           | (atomic & (state == _Atomic.DONE)))
        plain = good & (is_load | is_store) & self.m_can_issue
        current_old = Mux(state == _Atomic.READING, returned, old)
        current_new = Mux(state == _Atomic.READING, combined, new)
        current_writes = Mux(state == _Atomic.READING, ~exchange_fails, writes_back)

        m.d.comb += [
            request.valid.eq(plain | atomic_read | atomic_write),
            request.payload.address.eq(self.m_address),
            request.payload.size.eq(self.m_size),
            request.payload.write.eq(is_store | atomic_write),
            request.payload.data.eq(Mux(is_atomic, current_new, self.m_data)),
            self.m_busy.eq(good & Mux(is_atomic, ~atomic_complete, ~request.ready)),
            self.m_fetched.eq(current_old),
            self.m_wrote.eq(good & (is_store | (is_atomic & current_writes))),
            self.m_written.eq(Mux(is_atomic, current_new, source)),
            self.m_computed.eq(self.region.computed),
        ]

        with m.If(self.m_leaving):
            m.d.sync += state.eq(_Atomic.IDLE)
        with m.Elif(atomic_read & request.ready):
            m.d.sync += state.eq(_Atomic.READING)
        with m.Elif(arrived):
            m.d.sync += [old.eq(returned), new.eq(combined), writes_back.eq(~exchange_fails),
                         state.eq(Mux(exchange_fails | request.ready, _Atomic.DONE, _Atomic.WRITING))]
        with m.Elif(atomic_write & request.ready):
            m.d.sync += state.eq(_Atomic.DONE)

        # -- W: the load's data --------------------------------------------------------------------
        data = response.payload
        extended = Signal(64)
        with m.Switch(self.w_size):
            with m.Case(0):
                m.d.comb += extended.eq(Mux(self.w_signed, data[0:8].as_signed(), data[0:8]))
            with m.Case(1):
                m.d.comb += extended.eq(Mux(self.w_signed, data[0:16].as_signed(), data[0:16]))
            with m.Case(2):
                m.d.comb += extended.eq(Mux(self.w_signed, data[0:32].as_signed(), data[0:32]))
            with m.Default():
                m.d.comb += extended.eq(data)
        m.d.comb += [
            self.w_ready.eq(self.w_load & response.valid),
            self.w_value.eq(Mux(self.w_computed, data, extended)),
        ]
        return m
