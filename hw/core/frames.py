"""The call-frame stack of the core: local calls and their returns (bpf-to-bpf calls).

Ref: RFC 9669 §4.3.2 (program-local functions): a local call preserves r6..r9 for the caller and gives
the callee its own stack frame; the kernel allows MAX_CALL_FRAMES (8) frames, the main program included
(kernel/bpf/verifier.c), and so does the golden VM (sw/vm.py `_call_local`).

Each frame has its own 512-byte stack: r10 of frame k is memory.frame_pointer(k), inside the one stack
region (tag STACK, sw/memory.py). A call pushes the return slot and r6..r9 and makes depth one deeper; an
exit from a frame other than the main one pops them. The saved frames sit in a small memory read
asynchronously at the top of the stack, so a return finds its slot and registers without waiting.
"""

from amaranth import Array, Const, Module, Mux, Signal
from amaranth.lib import data, memory as amaranth_memory, wiring
from amaranth.lib.wiring import In, Out

from bpfnic.sw import isa, memory

from .interfaces import PC_WIDTH
from .regfile import SAVED_COUNT

SavedFrame = data.StructLayout({
    "return_pc": PC_WIDTH,
    "registers": data.ArrayLayout(64, SAVED_COUNT),   # r6..r9 of the caller
})


class CallFrames(wiring.Component):
    initialise: In(1)        # start of a program: depth 0
    push: In(1)              # a local call retires
    push_return_pc: In(PC_WIDTH)
    push_registers: In(data.ArrayLayout(64, SAVED_COUNT))
    pop: In(1)               # an exit from a called frame retires

    depth: Out(range(isa.MAX_CALL_FRAMES))
    full: Out(1)             # a call now would go beyond MAX_CALL_FRAMES
    frame_pointer: Out(64)   # r10 of the current frame
    return_pc: Out(PC_WIDTH)                            # of the innermost saved frame (depth > 0)
    saved_registers: Out(data.ArrayLayout(64, SAVED_COUNT))

    def elaborate(self, platform):
        m = Module()
        slots = isa.MAX_CALL_FRAMES - 1   # the main frame is never saved
        m.submodules.saved = saved = amaranth_memory.Memory(shape=SavedFrame, depth=slots, init=[])
        top = saved.read_port(domain="comb")
        write = saved.write_port()
        depth = Signal(range(isa.MAX_CALL_FRAMES))
        pointers = Array(Const(memory.frame_pointer(level), 64) for level in range(isa.MAX_CALL_FRAMES))
        m.d.comb += [
            self.depth.eq(depth),
            self.full.eq(depth == isa.MAX_CALL_FRAMES - 1),
            self.frame_pointer.eq(pointers[depth]),
            top.addr.eq(Mux(depth == 0, 0, depth - 1)),
            self.return_pc.eq(top.data.return_pc),
            self.saved_registers.eq(top.data.registers),
            write.addr.eq(depth),
            write.data.return_pc.eq(self.push_return_pc),
            write.data.registers.eq(self.push_registers),
            write.en.eq(self.push & ~self.full),
        ]
        with m.If(self.initialise):
            m.d.sync += depth.eq(0)
        with m.Elif(self.push & ~self.full):
            m.d.sync += depth.eq(depth + 1)
        with m.Elif(self.pop & (depth != 0)):
            m.d.sync += depth.eq(depth - 1)
        return m
