"""The fetch unit of the core: the instruction memory and the program counter that reads it.

Ref: RFC 9669 §3 (instructions are 64-bit slots, jumps count in slots; an lddw takes two). The instruction
memory is written by the host through `imem_write` while the core is idle, one slot (a little-endian word,
opcode in bits 0..7) at a time. It is kept as two banks, even and odd slots, so that every cycle delivers
the slot at the pc and the one after it: decode sees both halves of an lddw at once. The read ports are
synchronous (block RAM): the address given in one cycle is what decode sees in the next, so the memories'
output registers are the F/D pipeline register, and a redirect given in cycle t puts the target in decode
at t+1.

The address of each cycle is, by priority: a redirect (a mispredicted branch or a call or return from X,
a jump, predicted branch, call, return or lddw from D), the entry slot of a start, or the next sequential
slot. The output holds while decode stalls. A slot at or beyond the program length is delivered with
`in_program` low: decode turns it into a PC_OUT_OF_PROGRAM trap, taken only if the instruction is really
executed.
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .interfaces import PC_WIDTH, ImemWrite

Fetched = data.StructLayout({
    "pc": PC_WIDTH,
    "word": 64,              # the slot at pc
    "in_program": 1,
    "next_word": 64,         # the slot at pc + 1 (the second half, if `word` is an lddw)
    "next_in_program": 1,
})


class Fetch(wiring.Component):
    def __init__(self, depth: int):
        if depth < 4 or depth & (depth - 1):
            raise ValueError(f"Fetch: the instruction memory depth must be a power of two >= 4, not {depth}")
        self.depth = depth
        super().__init__({
            "imem_write": In(stream.Signature(ImemWrite, always_ready=True)),
            "start": In(1),
            "start_pc": In(PC_WIDTH),
            "program_length": In(PC_WIDTH),
            "stop": In(1),
            "redirect": In(1),
            "redirect_pc": In(PC_WIDTH),
            "source": Out(stream.Signature(Fetched)),
        })

    def elaborate(self, platform):
        m = Module()
        rows = self.depth // 2
        row_bits = ceil_log2(rows)
        m.submodules.even = even = memory.Memory(shape=64, depth=rows, init=[])
        m.submodules.odd = odd = memory.Memory(shape=64, depth=rows, init=[])
        even_read, odd_read = even.read_port(), odd.read_port()
        even_write, odd_write = even.write_port(), odd.write_port()

        host = self.imem_write
        # slots beyond the memory are never written: they would alias real rows
        host_write = host.valid & (host.payload.address < self.depth)
        for bank, write in ((0, even_write), (1, odd_write)):
            m.d.comb += [
                write.addr.eq(host.payload.address[1:1 + row_bits]),
                write.data.eq(host.payload.data),
                write.en.eq(host_write & (host.payload.address[0] == bank)),
            ]

        running = Signal()
        next_pc = Signal(PC_WIDTH)
        length = Signal(PC_WIDTH)
        pc = Signal(PC_WIDTH)
        in_program = Signal()
        next_in_program = Signal()
        fetch_pc = Signal(PC_WIDTH)
        following = Signal(PC_WIDTH + 1)
        refill = Signal()
        requested_length = Mux(self.program_length > self.depth, self.depth, self.program_length)
        limit = Mux(self.start, requested_length, length)

        m.d.comb += [
            fetch_pc.eq(Mux(self.redirect, self.redirect_pc, Mux(self.start, self.start_pc, next_pc))),
            following.eq(fetch_pc + 1),
            refill.eq(~self.source.valid | self.source.ready | self.redirect | self.start | self.stop),
            even_read.en.eq(refill),
            odd_read.en.eq(refill),
            # slot p is in bank p % 2; slot p + 1 in the other one
            even_read.addr.eq(following[1:1 + row_bits]),
            odd_read.addr.eq(fetch_pc[1:1 + row_bits]),
            self.source.payload.pc.eq(pc),
            self.source.payload.word.eq(Mux(pc[0], odd_read.data, even_read.data)),
            self.source.payload.next_word.eq(Mux(pc[0], even_read.data, odd_read.data)),
            self.source.payload.in_program.eq(in_program),
            self.source.payload.next_in_program.eq(next_in_program),
        ]
        with m.If(self.start):
            m.d.sync += [running.eq(1), length.eq(requested_length)]
        with m.If(self.stop):
            m.d.sync += running.eq(0)
        with m.If(refill):
            m.d.sync += [
                self.source.valid.eq((running | self.start) & ~self.stop),
                pc.eq(fetch_pc),
                next_pc.eq(following),
                in_program.eq(fetch_pc < limit),
                next_in_program.eq(following < limit),
            ]
        return m
