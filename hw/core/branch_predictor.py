"""The branch predictor of the core: a table of two-bit saturating counters indexed by the branch's slot.

Decode (D) reads the counter of the conditional jump it holds and, when it predicts "taken", sends fetch
to the jump's target at once, so that a correctly predicted branch costs no cycle either way; execute (X)
resolves the branch, corrects a wrong guess (one cycle) and trains the counter. The table keeps its state
from one program run to the next, as a NIC runs the same program on every packet; it only ever changes
cycle counts, never results.

The counter read in D travels with the instruction and X writes back its successor, so the table needs one
read and one write port (LUT RAM).
"""

from amaranth import Module, Mux
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .interfaces import PC_WIDTH

#: A counter is "taken" in its upper half; new entries start weakly not taken.
WEAKLY_NOT_TAKEN = 1


class BranchPredictor(wiring.Component):
    def __init__(self, entries: int = 64):
        if entries < 2 or entries & (entries - 1):
            raise ValueError(f"BranchPredictor: entries must be a power of two >= 2, not {entries}")
        self.entries = entries
        super().__init__({
            "lookup_pc": In(PC_WIDTH),
            "counter": Out(2),          # of the branch at lookup_pc
            "taken": Out(1),            # the prediction
            "update": In(1),            # a branch resolved in X
            "update_pc": In(PC_WIDTH),
            "update_counter": In(2),    # the counter it was predicted with
            "update_taken": In(1),      # what it did
        })

    def elaborate(self, platform):
        m = Module()
        index_bits = ceil_log2(self.entries)
        m.submodules.table = table = memory.Memory(shape=2, depth=self.entries,
                                                   init=[WEAKLY_NOT_TAKEN] * self.entries)
        read = table.read_port(domain="comb")
        write = table.write_port()
        counter = self.update_counter
        m.d.comb += [
            read.addr.eq(self.lookup_pc[0:index_bits]),
            self.counter.eq(read.data),
            self.taken.eq(read.data[1]),
            write.addr.eq(self.update_pc[0:index_bits]),
            write.en.eq(self.update),
            write.data.eq(Mux(self.update_taken, Mux(counter == 3, 3, counter + 1),
                              Mux(counter == 0, 0, counter - 1))),
        ]
        return m
