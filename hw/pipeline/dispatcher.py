"""The dispatcher and completion of the NIC: each received frame to a core, and each verdict applied.

Ref: include/uapi/linux/bpf.h (enum xdp_action; struct xdp_md), net/core/filter.c (bpf_warn_invalid_xdp_action:
an unknown action is an exception and the frame is dropped; xdp_do_redirect fails when no target was set),
sw/xdp.py (the golden model of one frame: the context the program sees, its verdict and redirect target),
hw/core/interfaces.py (the core's start and exit ports, trap causes).

Dispatch. While CONTROL.ENABLE is set (`program.enable`), a received frame (`received`, from the packet buffer)
goes to a free core k: its memory system's context is loaded (`context[k]`: the slot; data = data_meta =
HEADROOM, data_end = HEADROOM + length, as sw/xdp.py's buffer; ingress_ifindex = port + 1; rx_queue_index 0,
one receive queue a port), and once the core's region descriptors are written (`settled[k]`) the core is
started (`start[k]`: the program's entry slot, r1 = the context pointer, its length and the cycle budget);
`started[k]` pulses then, so the helper unit can forget the previous frame's redirect target. Cores are taken
lowest first. Ports are numbered 0..ports-1 and their ifindexes are 1..ports.

Completion. When core k exits (`exit[k]`) its result is kept with the context's final data and data_end
(`pointers[k]`, moved by the adjust helpers) and the helper unit's redirect target (`redirect[k]`). Results are
applied in the order the frames were dispatched, whatever order the cores finish in, so frames leave every
output in the order they arrived (per port, and over all ports too):

  trap (cause != NONE)      XDP_ABORTED: dropped, counted per trap cause
  r0 = XDP_ABORTED (0)      dropped
  r0 = XDP_DROP (1)         dropped
  r0 = XDP_PASS (2)         to the host queue (output `ports`)
  r0 = XDP_TX (3)           out of the ingress port
  r0 = XDP_REDIRECT (4)     out of port ifindex - 1 when the target is one of the NIC's ifindexes, else to the
                            host queue (the host owns every other interface); with no target set, dropped and
                            counted as `redirect_failed` (the kernel's xdp_do_redirect fails the same way)
  any other r0              an invalid action: counted (`invalid_action`) and as XDP_ABORTED, dropped

The low 32 bits of r0 are the action, as the kernel reads them. A frame sent anywhere is [data, data_end) of
its slot; the `info` byte with it is the ingress port (bits 0..3) and, for the host queue, bit 4 set for a
redirect (a pass leaves it clear). Counters: per verdict, per trap cause, invalid actions, failed redirects,
frames sent per port and to the host, and the instructions and cycles the programs took (wrapping).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from bpfnic.sw import memory, xdp

from bpfnic.hw.core.interfaces import ExitReport, StartRequest, TrapCause
from .csr import ProgramSettings
from .memory_system import frame_context_layout, PacketPointers
from .packet_buffer import HEADROOM, completion_layout, received_frame_layout

INFO_REDIRECT = 1 << 4
CONTEXT_POINTER = memory.make_pointer(memory.TAG_CONTEXT, 0)
VERDICTS = (xdp.XDP_ABORTED, xdp.XDP_DROP, xdp.XDP_PASS, xdp.XDP_TX, xdp.XDP_REDIRECT)

RedirectTarget = data.StructLayout({"valid": unsigned(1), "ifindex": unsigned(32)})


def dispatcher_counters_layout(ports: int) -> data.StructLayout:
    return data.StructLayout({
        "verdicts": data.ArrayLayout(32, len(VERDICTS)),     # by enum xdp_action
        "traps": data.ArrayLayout(32, len(TrapCause)),       # by TrapCause (NONE unused)
        "invalid_action": unsigned(32),
        "redirect_failed": unsigned(32),
        "to_port": data.ArrayLayout(32, ports),              # frames sent out of each port (TX and REDIRECT)
        "to_host": unsigned(32),                              # frames sent to the host queue
        "instructions": unsigned(32),
        "cycles": unsigned(32),
    })


def _bits_for(count: int) -> int:
    return max(1, (count - 1).bit_length())


class Dispatcher(wiring.Component):
    """See the module docstring. `cores`: how many cores; `ports`: NIC ports (the host is output `ports`)."""

    def __init__(self, *, cores: int = 1, ports: int = 2, slot_bits: int = 4):
        if cores < 1 or ports < 1 or ports > 15:
            raise ValueError(f"Dispatcher: needs at least one core and 1..15 ports, got {cores} and {ports}")
        self.cores = cores
        self.ports = ports
        self.slot_bits = slot_bits
        self.port_bits = _bits_for(ports)
        self.output_bits = _bits_for(ports + 1)
        super().__init__({
            "received": In(stream.Signature(received_frame_layout(slot_bits, self.port_bits))),
            "program": In(ProgramSettings),
            "context": Out(stream.Signature(frame_context_layout(slot_bits), always_ready=True)).array(cores),
            "settled": In(1).array(cores),
            "start": Out(stream.Signature(StartRequest)).array(cores),
            "started": Out(1).array(cores),
            "exit": In(stream.Signature(ExitReport, always_ready=True)).array(cores),
            "pointers": In(PacketPointers).array(cores),
            "redirect": In(RedirectTarget).array(cores),
            "complete": Out(stream.Signature(completion_layout(slot_bits, self.output_bits))),
            "counters": Out(dispatcher_counters_layout(ports)),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cores = self.cores
        frame = self.received.payload

        # In-order completion: the cores in the order they were given frames.
        m.submodules.order = order = fifo.SyncFIFO(width=_bits_for(cores), depth=cores + 1)

        loading = Signal(cores)     # context loaded, waiting to start
        running = Signal(cores)
        finished = Signal(cores)    # exited; result waiting to be applied
        slot = [Signal(self.slot_bits, name=f"core{k}_slot") for k in range(cores)]
        port = [Signal(self.port_bits, name=f"core{k}_port") for k in range(cores)]
        result = [Signal(ExitReport, name=f"core{k}_exit") for k in range(cores)]
        final = [Signal(PacketPointers, name=f"core{k}_pointers") for k in range(cores)]
        target = [Signal(RedirectTarget, name=f"core{k}_redirect") for k in range(cores)]
        busy = loading | running | finished
        releasing = Signal(cores)   # the result of core k is applied this cycle: the core takes a frame now

        # -- dispatch -----------------------------------------------------------------------------------
        chosen = Signal(range(cores))
        any_free = Signal()
        for k in reversed(range(cores)):
            with m.If(~busy[k] | releasing[k]):
                m.d.comb += [chosen.eq(k), any_free.eq(1)]
        dispatch = Signal()
        m.d.comb += [
            dispatch.eq(self.program.enable & self.received.valid & any_free & order.w_rdy),
            self.received.ready.eq(dispatch),
            order.w_en.eq(dispatch),
            order.w_data.eq(chosen),
        ]
        for k in range(cores):
            context = self.context[k].payload
            m.d.comb += [
                context.slot.eq(frame.slot),
                context.pointers.data.eq(HEADROOM),
                context.pointers.data_meta.eq(HEADROOM),
                context.pointers.data_end.eq(HEADROOM + frame.length),
                context.ingress_ifindex.eq(frame.port + 1),
                context.rx_queue_index.eq(0),
                self.context[k].valid.eq(dispatch & (chosen == k)),
            ]
            with m.If(dispatch & (chosen == k)):
                m.d.sync += [loading[k].eq(1), slot[k].eq(frame.slot), port[k].eq(frame.port)]
            # From the cycle after the load, `settled` says whether the core's descriptors are written.
            start = self.start[k]
            m.d.comb += [
                start.valid.eq(loading[k] & self.settled[k]),
                start.payload.pc.eq(self.program.entry),
                start.payload.r1.eq(CONTEXT_POINTER),
                start.payload.r2.eq(0),
                start.payload.program_length.eq(self.program.length),
                start.payload.cycle_budget.eq(self.program.cycle_budget),
                self.started[k].eq(start.valid & start.ready),
            ]
            with m.If(start.valid & start.ready):
                m.d.sync += [loading[k].eq(0), running[k].eq(1)]
            with m.If(running[k] & self.exit[k].valid):
                m.d.sync += [running[k].eq(0), finished[k].eq(1), result[k].eq(self.exit[k].payload),
                             final[k].eq(self.pointers[k]), target[k].eq(self.redirect[k])]

        # -- completion, in dispatch order ----------------------------------------------------------------
        head = Signal(range(cores))
        m.d.comb += head.eq(order.r_data)
        head_result = Signal(ExitReport)
        head_final = Signal(PacketPointers)
        head_target = Signal(RedirectTarget)
        head_slot = Signal(self.slot_bits)
        head_port = Signal(self.port_bits)
        head_finished = Signal()
        for k in range(cores):
            with m.If(head == k):
                m.d.comb += [head_result.eq(result[k]), head_final.eq(final[k]), head_target.eq(target[k]),
                             head_slot.eq(slot[k]), head_port.eq(port[k]), head_finished.eq(finished[k])]

        action = head_result.r0[:32]
        trapped = head_result.cause != TrapCause.NONE
        host_output = self.ports
        completion = self.complete.payload
        target_port = head_target.ifindex - 1
        target_is_port = (head_target.ifindex >= 1) & (head_target.ifindex <= self.ports)
        verdict = Signal(range(len(VERDICTS)))
        invalid = Signal()
        failed_redirect = Signal()
        m.d.comb += [
            completion.slot.eq(head_slot),
            completion.start.eq(head_final.data),
            completion.end.eq(head_final.data_end),
            completion.info.eq(head_port),
            completion.drop.eq(1),
        ]
        with m.If(trapped):
            m.d.comb += verdict.eq(xdp.XDP_ABORTED)
        with m.Else():
            with m.Switch(action):
                with m.Case(xdp.XDP_ABORTED, xdp.XDP_DROP):
                    m.d.comb += verdict.eq(action)
                with m.Case(xdp.XDP_PASS):
                    m.d.comb += [verdict.eq(xdp.XDP_PASS), completion.drop.eq(0), completion.output.eq(host_output)]
                with m.Case(xdp.XDP_TX):
                    m.d.comb += [verdict.eq(xdp.XDP_TX), completion.drop.eq(0), completion.output.eq(head_port)]
                with m.Case(xdp.XDP_REDIRECT):
                    m.d.comb += verdict.eq(xdp.XDP_REDIRECT)
                    with m.If(~head_target.valid):
                        m.d.comb += failed_redirect.eq(1)
                    with m.Elif(target_is_port):
                        m.d.comb += [completion.drop.eq(0), completion.output.eq(target_port)]
                    with m.Else():
                        m.d.comb += [completion.drop.eq(0), completion.output.eq(host_output),
                                     completion.info.eq(head_port | INFO_REDIRECT)]
                with m.Default():
                    m.d.comb += [verdict.eq(xdp.XDP_ABORTED), invalid.eq(1)]

        m.d.comb += self.complete.valid.eq(order.r_rdy & head_finished)
        completing = self.complete.valid & self.complete.ready
        m.d.comb += order.r_en.eq(completing)
        counters = self.counters
        with m.If(completing):
            for k in range(cores):
                with m.If(head == k):
                    m.d.comb += releasing[k].eq(1)
                    m.d.sync += finished[k].eq(0)
            m.d.sync += [
                counters.verdicts[verdict].eq(counters.verdicts[verdict] + 1),
                counters.instructions.eq(counters.instructions + head_result.instructions),
                counters.cycles.eq(counters.cycles + head_result.cycles),
            ]
            with m.If(trapped):
                m.d.sync += counters.traps[head_result.cause.as_value()].eq(
                    counters.traps[head_result.cause.as_value()] + 1)
            with m.If(invalid):
                m.d.sync += counters.invalid_action.eq(counters.invalid_action + 1)
            with m.If(failed_redirect):
                m.d.sync += counters.redirect_failed.eq(counters.redirect_failed + 1)
            with m.If(~completion.drop):
                with m.If(completion.output == host_output):
                    m.d.sync += counters.to_host.eq(counters.to_host + 1)
                with m.Else():
                    m.d.sync += counters.to_port[completion.output].eq(counters.to_port[completion.output] + 1)

        m.d.comb += self.idle.eq(~busy.any())
        return m


# -- the software model ----------------------------------------------------------------------------------

@dataclass
class DispatcherCounters:
    ports: int
    verdicts: list[int] = field(default_factory=lambda: [0] * len(VERDICTS))
    traps: list[int] = field(default_factory=lambda: [0] * len(TrapCause))
    invalid_action: int = 0
    redirect_failed: int = 0
    to_port: list[int] = field(default_factory=list)
    to_host: int = 0

    def __post_init__(self):
        if not self.to_port:
            self.to_port = [0] * self.ports


@dataclass(frozen=True)
class Fate:
    """Where a frame goes: dropped (output None) or output k (ports..., `ports` = the host), with its info."""
    output: int | None
    info: int = 0


def apply_verdict(counters: DispatcherCounters, *, r0: int, trap: int, redirect: int | None,
                  ingress_port: int) -> Fate:
    """The naive reference of completion: the fate of one frame and the counters it moves.

    `r0` and `trap` are the program's result (a TrapCause value; 0 = none), `redirect` the ifindex the helper
    unit recorded (None when bpf_redirect/bpf_redirect_map set none)."""
    ports = counters.ports
    if trap:
        counters.traps[trap] += 1
        counters.verdicts[xdp.XDP_ABORTED] += 1
        return Fate(None)
    action = r0 & 0xFFFF_FFFF
    if action not in VERDICTS:
        counters.invalid_action += 1
        counters.verdicts[xdp.XDP_ABORTED] += 1
        return Fate(None)
    counters.verdicts[action] += 1
    fate = Fate(None)
    if action == xdp.XDP_PASS:
        fate = Fate(ports, ingress_port)
    elif action == xdp.XDP_TX:
        fate = Fate(ingress_port, ingress_port)
    elif action == xdp.XDP_REDIRECT:
        if redirect is None:
            counters.redirect_failed += 1
        elif 1 <= redirect <= ports:
            fate = Fate(redirect - 1, ingress_port)
        else:
            fate = Fate(ports, ingress_port | INFO_REDIRECT)
    if fate.output == ports:
        counters.to_host += 1
    elif fate.output is not None:
        counters.to_port[fate.output] += 1
    return fate
