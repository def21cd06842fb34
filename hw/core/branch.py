"""The branch unit of the core: the condition of a conditional jump, on 64 bits (JMP) or 32 bits (JMP32).

Ref: RFC 9669 §4.3 (jump instructions): jeq jne jset, unsigned jgt jge jlt jle, signed jsgt jsge jslt
jsle. A JMP32 compare looks at the low 32 bits of both operands only. The operation is the opcode's
operation field, compared with the isa constants.
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfnic.sw import isa


class BranchUnit(wiring.Component):
    op: In(4)       # opcode bits 4..7
    is64: In(1)
    a: In(64)       # dst
    b: In(64)       # src, or the sign-extended immediate
    taken: Out(1)

    def elaborate(self, platform):
        m = Module()
        # A 32-bit compare is a 64-bit compare of operands extended from their low halves: zero-extended
        # for the unsigned relations, sign-extended for the signed ones.
        ua = Mux(self.is64, self.a, self.a[0:32])
        ub = Mux(self.is64, self.b, self.b[0:32])
        sa = Signal(64)
        sb = Signal(64)
        m.d.comb += [
            sa.eq(Mux(self.is64, self.a, self.a[0:32].as_signed())),
            sb.eq(Mux(self.is64, self.b, self.b[0:32].as_signed())),
        ]
        sa, sb = sa.as_signed(), sb.as_signed()
        conditions = {
            isa.BPF_JEQ: ua == ub,
            isa.BPF_JNE: ua != ub,
            isa.BPF_JSET: (ua & ub).any(),
            isa.BPF_JGT: ua > ub,
            isa.BPF_JGE: ua >= ub,
            isa.BPF_JLT: ua < ub,
            isa.BPF_JLE: ua <= ub,
            isa.BPF_JSGT: sa > sb,
            isa.BPF_JSGE: sa >= sb,
            isa.BPF_JSLT: sa < sb,
            isa.BPF_JSLE: sa <= sb,
        }
        assert set(conditions) == set(isa.JMP_COND_NAMES)
        with m.Switch(self.op):
            for op, condition in conditions.items():
                with m.Case(op >> 4):
                    m.d.comb += self.taken.eq(condition)
        return m
