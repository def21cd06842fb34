"""A pipeline stage: the register in front of a stage's logic and the handshake that moves instructions on.

The shape follows Minerva's stages (minerva-cpu/minerva, stage.py): a stage receives instructions on a
stream `sink` (the previous stage's output register), hands them on through a stream `source` (its own
output register), and its hazards are stated with two verbs:

  stall_on(condition)  the instruction stays in this stage this cycle (the next stage receives a bubble);
  kill_on(condition)   the instruction is dropped (a younger instruction on a path not taken, or behind a
                       program end); killing wins over stalling.

Signals for the stage's own logic:
  valid    an instruction is in the stage and is not being killed;
  stall    it is valid and cannot leave this cycle (its own stall, or the output register is still full);
  advance  it leaves this cycle: `result` is loaded into the output register.
A stage without a source (the last one) advances whenever it is valid and not stalled.
"""

from amaranth import Cat, Const, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class Stage(wiring.Component):
    def __init__(self, sink_layout, source_layout=None):
        members = {
            "sink": In(stream.Signature(sink_layout)),
            "valid": Out(1),
            "stall": Out(1),
            "advance": Out(1),
        }
        if source_layout is not None:
            members["source"] = Out(stream.Signature(source_layout))
            members["result"] = In(source_layout)
        self._has_source = source_layout is not None
        self._stall_sources = []
        self._kill_sources = []
        super().__init__(members)

    def stall_on(self, condition) -> None:
        self._stall_sources.append(condition)

    def kill_on(self, condition) -> None:
        self._kill_sources.append(condition)

    def elaborate(self, platform):
        m = Module()
        own_stall = Cat(*self._stall_sources).any() if self._stall_sources else Const(0)
        kill = Cat(*self._kill_sources).any() if self._kill_sources else Const(0)
        if self._has_source:
            blocked = self.source.valid & ~self.source.ready
        else:
            blocked = Const(0)
        m.d.comb += [
            self.valid.eq(self.sink.valid & ~kill),
            self.stall.eq(self.valid & (own_stall | blocked)),
            self.advance.eq(self.valid & ~own_stall & ~blocked),
            # an empty, killed or departing stage takes the next instruction
            self.sink.ready.eq(~self.stall),
        ]
        if self._has_source:
            with m.If(~blocked):
                m.d.sync += self.source.valid.eq(self.advance)
            with m.If(self.advance):
                m.d.sync += self.source.payload.eq(self.result)
        return m
