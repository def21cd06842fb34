"""The register file of the core: r0..r9 in flip-flops; r10 reads as the current frame pointer.

Ref: RFC 9669 §2.1 (registers): eleven 64-bit registers, r10 the read-only frame pointer. r10 is not
stored: it is a function of the call depth (frames.py), so a call or a return changes it without a write.
Flip-flops rather than block RAM because the core reads up to five registers at once (the helper
arguments r1..r5; cmpxchg's comparand r0) and a return from a local call restores r6..r9 together.

At the start of a program every register is zero except r1 and r2 (the golden VM's convention).
"""

from amaranth import Array, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from bpfnic.sw import isa

#: Registers kept in flip-flops: r0..r9.
STORED_REGISTERS = isa.FRAME_POINTER
#: The callee-saved registers a local call saves and its return restores (RFC 9669 §4.3.2).
SAVED_FIRST = 6
SAVED_COUNT = 4


class RegisterFile(wiring.Component):
    read_a_index: In(4)
    read_a_data: Out(64)
    read_b_index: In(4)
    read_b_data: Out(64)

    write_enable: In(1)
    write_index: In(4)
    write_data: In(64)

    restore_enable: In(1)                           # a return from a local call: r6..r9 at once
    restore_data: In(data.ArrayLayout(64, SAVED_COUNT))

    initialise: In(1)                               # start of a program: all zero but r1 and r2
    initial_r1: In(64)
    initial_r2: In(64)

    frame_pointer: In(64)                           # what r10 reads as
    low_registers: Out(data.ArrayLayout(64, 6))     # r0..r5: helper arguments, cmpxchg comparand
    saved_registers: Out(data.ArrayLayout(64, SAVED_COUNT))  # r6..r9, pushed by a local call

    def elaborate(self, platform):
        m = Module()
        registers = [Signal(64, name=f"r{index}") for index in range(STORED_REGISTERS)]
        readable = Array(registers + [self.frame_pointer] + [Signal(64, name=f"no_r{i}") for i in range(11, 16)])
        m.d.comb += [
            self.read_a_data.eq(readable[self.read_a_index]),
            self.read_b_data.eq(readable[self.read_b_index]),
        ]
        m.d.comb += [self.low_registers[index].eq(registers[index]) for index in range(6)]
        m.d.comb += [self.saved_registers[index].eq(registers[SAVED_FIRST + index]) for index in range(SAVED_COUNT)]

        with m.If(self.initialise):
            m.d.sync += [register.eq(0) for register in registers]
            m.d.sync += [registers[1].eq(self.initial_r1), registers[2].eq(self.initial_r2)]
        with m.Else():
            for index, register in enumerate(registers):
                with m.If(self.write_enable & (self.write_index == index)):
                    m.d.sync += register.eq(self.write_data)
            # a restore comes from a return younger than the instruction writing back: it wins
            with m.If(self.restore_enable):
                m.d.sync += [registers[SAVED_FIRST + index].eq(self.restore_data[index])
                             for index in range(SAVED_COUNT)]
        return m
