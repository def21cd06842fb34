"""Lockstep co-simulation: the RTL core (hw/core) under amaranth.sim against the golden VM (sw/vm.py).

A program runs twice from identical environments: once on the golden VM, whose trace hook records the
state after every instruction, and once on the RTL core, whose retire port reports every instruction it
retires. The harness compares them instruction by instruction: the pc, the register written and its value
(the retire record), the whole register file r0..r10 in the cycle after (LockstepTop's `registers`
port), and the bytes each store leaves in memory; then the final r0, the trap cause and its instruction,
the number of instructions, and the contents of every writable region. The first difference stops the
run with a `LockstepMismatch` that names the instruction (with its disassembly), the cycle, and both
states.

Around the core, the testbench is the NIC: it loads the program through the instruction memory's host
port, describes the regions in the region table, answers the data port from the regions of its own VM
instance (with a configurable latency and random back-pressure), and answers the helper port by calling
that VM's helpers (so maps and helper side effects act on the memory the core sees). It also checks the
core's safety promise independently: a request outside the regions it was given fails the run.

One simulator is built per harness and reused for every program: the testbench serves programs one after
the other, so that a run costs simulated cycles only (a slot already holding the right word is not written
again). `Simulator.reset()` brings it back after a mismatch.

Everything but the simulator is shared with the cocotb + Verilator harness (sim/cocotb_core.py):
`LockstepTop` is the design both simulate (the core with registered inputs and a port that shows the
register file), `LockstepModel` holds the reference run, the memory system, the helper answers and the
comparisons, and its `serve` coroutine is the testbench, written against `CorePorts` (get, set, tick by
port name) that each simulator implements.

Ref: RFC 9669 (semantics, through the golden VM); hw/core/interfaces.py (ports and protocols).
"""

from __future__ import annotations

import collections
import random
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable

from amaranth import Cat, Elaboratable, Module, Shape, Signal, Value
from amaranth.lib import data
from amaranth.lib.wiring import In
from amaranth.sim import Simulator

from bpfnic.hw.core.core import Core
from bpfnic.hw.core.interfaces import (ExitReport, HelperRequest, HelperResponse, HelperStatus, ImemWrite,
                                       MemoryRequest, RegionWrite, RetireRecord, StartRequest, TrapCause)
from bpfnic.sw import isa, memory
from bpfnic.sw.vm import ProgramExit, TailCall, Vm, VmFault

M64 = (1 << 64) - 1

#: Environment factory: given the program, build a VM with its regions, helpers and maps set up, and return
#: it with r1 and r2 for the start. Called twice a run (the reference and the core's memory system).
Environment = Callable[[isa.Program], tuple[Vm, int, int]]


class LockstepMismatch(AssertionError):
    """The RTL core and the golden VM disagree (or the core broke a protocol promise)."""


class HarnessError(RuntimeError):
    """The run could not be set up (a program too large for the instruction memory, a tail call...)."""


@dataclass
class RtlResult:
    r0: int
    cause: TrapCause
    pc: int                    # the instruction that exited or trapped
    instructions: int
    cycles: int
    reference: object = None   # the golden VM's RunResult or VmFault, when it ran
    retired: list = field(default_factory=list)   # (pc, cycle) per retired instruction, when recorded

    @property
    def cpi(self) -> float:
        return self.cycles / self.instructions if self.instructions else float("nan")


@dataclass
class _Step:
    """The golden VM's state after one instruction."""

    pc: int
    insn: isa.Insn
    regs: tuple
    store: tuple | None        # (address, bytes) the instruction left in memory


@dataclass
class _Job:
    program: isa.Program | None
    words: list[int]
    env: Vm
    r1: int
    r2: int
    reference: list[_Step] | None
    cycle_budget: int
    cycle_limit: int
    record_retired: bool
    bases: dict = field(default_factory=dict)    # id(program) -> its first slot in the instruction memory
    retired: list = field(default_factory=list)
    result: RtlResult | None = None
    error: BaseException | None = None
    done: bool = False
    reference_outcome: object = None             # the golden VM's RunResult or VmFault
    reference_vm: Vm | None = None


def bare_environment(mem: bytes | None, helpers=None) -> Environment:
    """The conformance suite's setting: `mem` as a writable INPUT region, r1 its pointer, r2 its length."""

    def make(program: isa.Program) -> tuple[Vm, int, int]:
        vm = Vm(program, helpers=helpers)
        if not mem:
            return vm, 0, 0
        pointer = vm.add_region(memory.Region("input", memory.TAG_INPUT, bytearray(mem)))
        return vm, pointer, len(mem)

    return make


class XdpEnvironment:
    """XDP programs in lockstep: two sessions of one loaded object (sw/xdp.py), one under the golden VM and
    one behind the core's ports, each with the packet buffer and the struct xdp_md context of a frame, and
    maps that live across frames in both, as in the NIC. The clock and the random generator are fixed so
    that both sessions see the same helper results.

    Relies on XdpSession's packet set-up (`_buffer`, `_redirect`, `_trace`, `_ingress`, `_load_context`):
    the same steps as its `run_packet`, without running the VM."""

    def __init__(self, obj, section: str | None = None, map_init: dict | None = None):
        from bpfnic.sw import xdp
        self._xdp = xdp
        self.sessions = [xdp.XdpSession(obj, section, clock_ns=lambda: 1_000_000, prandom_seed=1) for _ in range(2)]
        for session in self.sessions:
            if map_init:
                session.apply_map_init(map_init)
        self.program = self.sessions[0].program_def.insns
        #: the object's other programs, for tail calls (LockstepHarness.run's extra_programs)
        self.other_programs = [definition.insns for definition in obj.programs.values()
                               if definition.insns is not self.program]

    def for_frame(self, frame: bytes, ingress_ifindex: int = 1, rx_queue_index: int = 0) -> Environment:
        sessions = iter(self.sessions)
        xdp = self._xdp

        def make(program: isa.Program) -> tuple[Vm, int, int]:
            session = next(sessions)
            buffer = xdp.PacketBuffer(frame)
            session._buffer = buffer
            session._redirect = None
            session._trace = []
            session._ingress = (ingress_ifindex, rx_queue_index)
            session.vm.add_region(buffer.region)
            context = memory.Region("context", memory.TAG_CONTEXT, bytearray(xdp.XDP_MD_SIZE), writable=False,
                                    load_hook=session._load_context)
            return session.vm, session.vm.add_region(context), 0

        return make

    def check_packets(self) -> None:
        """After a frame: the packet the core's session holds must be the golden VM's."""
        mine, reference = (session._buffer.packet() for session in reversed(self.sessions))
        if mine != reference:
            first = next((i for i, (a, b) in enumerate(zip(mine, reference)) if a != b), min(len(mine), len(reference)))
            raise LockstepMismatch(f"the packet after the program differs from the golden VM's, first at byte "
                                   f"{first} ({len(mine)} bytes against {len(reference)})")

    def check_maps(self) -> None:
        """After the frames: every map of the core's session must hold what the golden VM's holds."""
        mine, reference = (session.dump_maps() for session in reversed(self.sessions))
        if mine != reference:
            names = sorted(name for name in set(mine) | set(reference) if mine.get(name) != reference.get(name))
            raise LockstepMismatch(f"maps differ from the golden VM's after the frames: {', '.join(map(str, names))}")


def run_bare_program(program: isa.Program, mem: bytes | None = None, helpers=None) -> RtlResult:
    """One bare program (the conformance suite's setting) on a core sized for it, in lockstep with the
    golden VM: for `bpfnic conformance-plugin --backend rtl`. Raises LockstepMismatch on a difference;
    a trap comes back as the result's cause."""
    depth = 16
    while depth < len(program):
        depth *= 2
    return LockstepHarness(imem_depth=depth).run(program, mem, helpers=helpers)


def expected_cause(fault: VmFault, program: isa.Program) -> TrapCause | None:
    """The trap the core must take where the golden VM faulted (None: not comparable, the instruction limit)."""
    reason = fault.reason
    if "instruction limit" in reason:
        return None
    if "unknown helper" in reason:
        return TrapCause.UNKNOWN_HELPER
    if "call depth" in reason:
        return TrapCause.CALL_DEPTH
    if "fell off the end" in reason:
        return TrapCause.PC_OUT_OF_PROGRAM
    if "not supported" in reason or "refers to map" in reason:
        return TrapCause.INVALID_INSTRUCTION
    insn = program[fault.pc] if 0 <= fault.pc < len(program) else None
    if insn is not None and insn is not isa.LDDW_TAIL and isa.OPCODES[insn.opcode].kind in (
            isa.InsnKind.CALL, isa.InsnKind.CALLX):
        return TrapCause.HELPER_FAULT   # raised by the helper itself
    return TrapCause.BAD_ACCESS


def _describe(program: isa.Program | None, pc: int) -> str:
    if program is None or not 0 <= pc < len(program) or program[pc] is isa.LDDW_TAIL:
        return f"slot {pc}"
    from bpfnic.sw.disasm import format_insn
    return f"slot {pc} ({format_insn(program[pc], pc)})"


def _registers(regs) -> str:
    return " ".join(f"r{i}={value:x}" for i, value in enumerate(regs))


#: Bits of LockstepTop.events: a data request transferred, a helper call transferred, an instruction
#: retired, the program ended, and a call or return in M or W has changed r6..r10 before retiring.
EVENT_NAMES = ("data_request", "helper_request", "retire", "exit", "frames_ahead")
EVENT_DATA_REQUEST, EVENT_HELPER_REQUEST, EVENT_RETIRE, EVENT_EXIT, EVENT_FRAMES_AHEAD = (
    1 << bit for bit in range(len(EVENT_NAMES)))


class LockstepTop(Elaboratable):
    """The core as the lockstep testbenches see it, under amaranth.sim and as the Verilator top level.

    Every input of the core is registered: a testbench sets the inputs of the next cycle after it has read
    the outputs of the current one, so that it needs one wake-up a cycle (in cocotb an `await` is what a
    cycle costs) and still sees outputs that depend combinationally on the current inputs (a load retires
    in the cycle its data arrive). The ports have the Verilog names of the core's ports (`data__request__
    payload`...) as plain unsigned signals, plus three for the testbench: `registers` (r0..r10, 64 bits
    each, r0 lowest), `events` (one read a cycle tells it what happened: the EVENT_* bits), and the constant
    `configuration` (the core's options, so that a prebuilt simulator is not driven with other ones).
    """

    def __init__(self, core: Core):
        self.core = core
        self.inputs: dict[str, Signal] = {}
        self.outputs: dict[str, Signal] = {}
        self._wiring: list[tuple[Signal, Value, bool]] = []
        for path, member, value in core.signature.flatten(core):
            value = Value.cast(value)
            if not isinstance(value, Signal):
                continue      # the constant ready of an always-ready stream
            name = "__".join(str(part) for part in path)
            is_input = member.flow == In
            port = Signal(len(value), name=name, init=value.init if is_input else 0)
            (self.inputs if is_input else self.outputs)[name] = port
            self._wiring.append((port, value, is_input))
        self.registers = Signal(11 * 64, name="registers")
        self.events = Signal(len(EVENT_NAMES), name="events")
        self.configuration = Signal(40, name="configuration")
        self.outputs["registers"] = self.registers
        self.outputs["events"] = self.events
        self.outputs["configuration"] = self.configuration

    def ports(self) -> list[Signal]:
        return [*self.inputs.values(), *self.outputs.values()]

    @staticmethod
    def configuration_of(core: Core) -> int:
        """What the `configuration` port shows: the options a testbench must share with the design it drives."""
        return core.imem_depth | core.map_slots << 32

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        for port, value, is_input in self._wiring:
            if is_input:
                m.d.sync += value.eq(port)
            else:
                m.d.comb += port.eq(value)
        regfile = core.regfile
        m.d.comb += [
            self.registers.eq(Cat(regfile.low_registers, regfile.saved_registers, core.frames.frame_pointer)),
            self.configuration.eq(self.configuration_of(core)),
            self.events.eq(Cat(core.data.request.valid & core.data.request.ready,
                               core.helper.request.valid & core.helper.request.ready,
                               core.retire.valid, core.exit.valid, core.frames_ahead)),
        ]
        return m


class CorePorts:
    """How the shared testbench (LockstepModel.serve) reaches a LockstepTop: by port name, as integers.
    `set` takes effect in the next cycle (the inputs are registered); `tick` waits for the next cycle,
    after which `get` reads its outputs. One implementation a simulator: AmaranthPorts below, and
    sim/cocotb_core.py's for cocotb. `ticks` counts the cycles it waited."""

    ticks = 0

    async def tick(self) -> None:
        raise NotImplementedError

    def get(self, name: str) -> int:
        raise NotImplementedError

    def set(self, name: str, value: int) -> None:
        raise NotImplementedError


class AmaranthPorts(CorePorts):
    def __init__(self, ctx, top: LockstepTop):
        self._ctx = ctx
        self._signals = {**top.inputs, **top.outputs}

    async def tick(self) -> None:
        self.ticks += 1
        await self._ctx.tick()

    def get(self, name: str) -> int:
        return self._ctx.get(self._signals[name])

    def set(self, name: str, value: int) -> None:
        self._ctx.set(self._signals[name], value)


class Packing:
    """A struct layout of interfaces.py as plain integers, fast enough for a testbench's every cycle
    (`Layout.from_bits` and `Layout.const` rebuild the layout's view each call): `unpack` gives a named
    tuple of the fields (arrays as tuples, enum fields as their enum), `pack` the bits of given fields."""

    def __init__(self, layout: data.StructLayout, name: str):
        self._fields = []     # (name, offset, width, element width or 0, enum or None)
        for field_name, field in layout:
            shape = field.shape
            if isinstance(shape, data.ArrayLayout):
                self._fields.append((field_name, field.offset, Shape.cast(shape.elem_shape).width, shape.length, None))
            else:
                enum_type = shape if isinstance(shape, type) and issubclass(shape, Enum) else None
                self._fields.append((field_name, field.offset, field.width, 0, enum_type))
        self._tuple = collections.namedtuple(name, [field[0] for field in self._fields])
        self._offsets = {field_name: (offset, (1 << width) - 1) for field_name, offset, width, _, _ in self._fields}

    def unpack(self, bits: int):
        values = []
        for _, offset, width, length, enum_type in self._fields:
            mask = (1 << width) - 1
            if length:
                values.append(tuple((bits >> (offset + width * index)) & mask for index in range(length)))
            else:
                value = (bits >> offset) & mask
                values.append(enum_type(value) if enum_type is not None else value)
        return self._tuple(*values)

    def pack(self, **fields) -> int:
        bits = 0
        for field_name, value in fields.items():
            offset, mask = self._offsets[field_name]
            bits |= (int(getattr(value, "value", value)) & mask) << offset
        return bits


IMEM_WRITE = Packing(ImemWrite, "ImemWrite")
REGION_WRITE = Packing(RegionWrite, "RegionWrite")
START_REQUEST = Packing(StartRequest, "StartRequest")
MEMORY_REQUEST = Packing(MemoryRequest, "MemoryRequest")
HELPER_REQUEST = Packing(HelperRequest, "HelperRequest")
HELPER_RESPONSE = Packing(HelperResponse, "HelperResponse")
RETIRE_RECORD = Packing(RetireRecord, "RetireRecord")
EXIT_REPORT = Packing(ExitReport, "ExitReport")


def _words(program: isa.Program) -> list[int]:
    encoded = program.encode()
    return [int.from_bytes(encoded[i:i + 8], "little") for i in range(0, len(encoded), 8)]


def _unpack_registers(bits: int) -> list[int]:
    return [(bits >> (64 * index)) & M64 for index in range(11)]


class LockstepModel:
    """Everything of a lockstep run but the simulator: the golden VM's reference run, the NIC around the
    core (instruction loading, the region table, the memory system behind the data port, the helpers behind
    the helper port) as one testbench coroutine over CorePorts, and the comparisons. LockstepHarness runs
    it under amaranth.sim, sim/cocotb_core.py under cocotb with Verilator.

    memory_latency: cycles from a read request to its response (>= 1); memory_stall: probability that the
    data port refuses a request in a cycle; helper_latency: cycles from a helper call to its answer;
    seed: for the random back-pressure.
    """

    def __init__(self, core: Core, memory_latency: int = 1, memory_stall: float = 0.0, helper_latency: int = 1,
                 seed: int = 0):
        if memory_latency < 1 or helper_latency < 1:
            raise ValueError("memory_latency and helper_latency count cycles after the request: at least 1")
        self.core = core
        self.memory_latency = memory_latency
        self.memory_stall = memory_stall
        self.helper_latency = helper_latency
        self._random = random.Random(seed)
        self._described: dict[int, tuple] = {}
        self._loaded: list[int | None] = [None] * core.imem_depth   # the instruction memory, as last written
        self._table_tags = set(core.region_table.tags())

    def forget_state(self) -> None:
        """After a reset of the simulator: the region table is empty; reload every slot to be sure."""
        self._described = {}
        self._loaded = [None] * self.core.imem_depth

    # -- before and after the simulation -------------------------------------------------------------------
    def prepare(self, program: isa.Program | bytes, mem: bytes | None = None, *,
                environment: Environment | None = None, helpers=None, cycle_budget: int = 0,
                reference: bool = True, cycle_limit: int | None = None, record_retired: bool = False,
                extra_programs=()) -> _Job:
        """A run of `program` (see LockstepHarness.run), with the golden VM's reference already made."""
        if isinstance(program, (bytes, bytearray)):
            words = [int.from_bytes(program[i:i + 8], "little") for i in range(0, len(program), 8)]
            try:
                decoded = isa.decode_program(bytes(program), check_targets=False)
            except isa.IsaError:
                decoded = None
            reference = False
        else:
            decoded = program
            words = _words(program)
        bases = {id(decoded): 0}
        for extra in extra_programs:
            if id(extra) not in bases:
                bases[id(extra)] = len(words)
                words += _words(extra)
        if len(words) > self.core.imem_depth:
            raise HarnessError(f"program of {len(words)} slots does not fit the instruction memory "
                               f"({self.core.imem_depth} slots)")
        make = environment or bare_environment(mem, helpers)
        vm_program = decoded if decoded is not None else isa.Program([isa.exit_insn()])
        steps = None
        reference_outcome = ref_vm = None
        if reference:
            ref_vm, r1, r2 = make(vm_program)
            steps, reference_outcome = self._reference(ref_vm, r1, r2, bases)
        env, r1, r2 = make(vm_program)
        env.stack.buf[:] = bytes(len(env.stack.buf))
        env._pc_hint = 0   # the VM sets these when it runs; helpers and load hooks of this one read them
        env.tail_calls = 0
        if cycle_limit is None:
            expected = len(steps) if steps is not None else 10_000
            cycle_limit = 100 * expected + 2_000
        return _Job(decoded, words, env, r1, r2, steps, cycle_budget, cycle_limit, record_retired, bases,
                    reference_outcome=reference_outcome, reference_vm=ref_vm)

    def finish(self, job: _Job) -> RtlResult:
        """The result of a served job, its final state checked against the golden VM's."""
        result = job.result
        result.reference = job.reference_outcome
        if job.reference is not None:
            self._check_outcome(job, job.reference_outcome, job.reference_vm)
        return result

    # -- the golden VM -------------------------------------------------------------------------------------
    @staticmethod
    def _reference(vm: Vm, r1: int, r2: int, bases: dict):
        steps: list[_Step] = []
        before = [0, r1 & M64, r2 & M64, 0, 0, 0, 0, 0, 0, 0, memory.frame_pointer(0)]

        def trace(pc, insn, regs):
            nonlocal before
            current = vm._current.program if vm._current is not None else vm.program
            if id(current) not in bases:
                raise HarnessError("the golden VM tail-called a program that is not in the instruction memory "
                                   "(pass it in extra_programs)")
            pc += bases[id(current)]
            store = None
            kind = isa.OPCODES[insn.opcode].kind
            if kind in (isa.InsnKind.ST, isa.InsnKind.STX, isa.InsnKind.ATOMIC):
                address = (before[insn.dst] + insn.off) & M64
                size = isa.OPCODES[insn.opcode].size
                region = vm.regions.get(address >> memory.REGION_SHIFT)
                offset = address & memory.OFFSET_MASK
                if region is not None:
                    store = (address, bytes(region.buf[offset:offset + size]))
            after = tuple(regs)
            steps.append(_Step(pc, insn, after, store))
            before = list(after)

        vm.trace = trace
        try:
            outcome = vm.execute(r1, r2)
        except VmFault as fault:
            outcome = fault
        vm.trace = None
        return steps, outcome
    def _check_outcome(self, job: _Job, outcome, ref_vm: Vm) -> None:
        result = job.result
        program = job.program
        if isinstance(outcome, VmFault):
            cause = expected_cause(outcome, program)
            if cause is None:
                return
            # the VM names the last instruction; the core, the first slot past it
            pc = len(program) if cause == TrapCause.PC_OUT_OF_PROGRAM else outcome.pc
            if result.cause != cause or result.pc != pc:
                raise LockstepMismatch(
                    f"the golden VM faulted at {_describe(program, outcome.pc)} ({outcome.reason}); the core "
                    f"ended with {result.cause.name} at {_describe(program, result.pc)}")
        else:
            if result.cause != TrapCause.NONE:
                raise LockstepMismatch(
                    f"the core trapped {result.cause.name} at {_describe(program, result.pc)} after "
                    f"{result.instructions} instructions; the golden VM exited with r0 = 0x{outcome.r0:x}")
            if result.r0 != outcome.r0:
                raise LockstepMismatch(f"final r0: core 0x{result.r0:x}, golden VM 0x{outcome.r0:x}")
            if result.instructions != outcome.instructions:
                raise LockstepMismatch(f"instructions executed: core {result.instructions}, "
                                       f"golden VM {outcome.instructions}")
        for tag, region in ref_vm.regions.items():
            mine = job.env.regions.get(tag)
            if region.writable and region.load_hook is None and mine is not None and mine.buf != region.buf:
                first = next(i for i, (a, b) in enumerate(zip(mine.buf, region.buf)) if a != b)
                raise LockstepMismatch(
                    f"region {region.name} differs at the end, first at offset {first}: core "
                    f"{bytes(mine.buf[first:first + 8]).hex()}, golden VM {bytes(region.buf[first:first + 8]).hex()}")

    # -- the testbench, for any simulator ------------------------------------------------------------------
    async def serve(self, ports: CorePorts, job: _Job) -> None:
        """Load `job`, start it and serve the core's ports cycle by cycle until it ends, comparing every
        retired instruction; sets job.result, or raises LockstepMismatch / HarnessError."""
        await self._load(ports, job)
        env = job.env
        steps = job.reference
        program = job.program

        ports.set("start__payload", START_REQUEST.pack(pc=0, r1=job.r1, r2=job.r2, program_length=len(job.words),
                                                       cycle_budget=job.cycle_budget))
        ports.set("start__valid", 1)
        await ports.tick()                 # start is valid in this cycle; the core is idle: it takes it
        ports.set("start__valid", 0)

        reads = collections.deque()      # (due cycle, data) of accepted reads, in order
        region_writes = collections.deque()   # descriptor changes a helper made, written before its answer
        writing_regions = False
        helper_answer = None             # (due cycle, r0, status)
        helper_pc = None
        retired = 0
        check_registers = None           # the step whose register file is read in this cycle
        response_valid = False
        helper_valid = False
        data_ready = self._random.random() >= self.memory_stall if self.memory_stall else True
        ports.set("data__request__ready", data_ready)
        ports.set("helper__request__ready", 1)
        cycle = 0

        def mismatch(text: str, step_index: int | None = None) -> LockstepMismatch:
            where = f" at cycle {cycle}"
            if step_index is not None and steps is not None and step_index < len(steps):
                step = steps[step_index]
                mine = _unpack_registers(ports.get("registers"))
                where += (f", retired instruction #{step_index}, {_describe(program, step.pc)}\n"
                          f"  golden VM after it:  {_registers(step.regs)}\n"
                          f"  core registers (before this cycle's write-back): {_registers(mine)}")
            return LockstepMismatch(f"{text}{where}")

        while True:
            await ports.tick()
            cycle += 1
            if cycle > job.cycle_limit:
                raise mismatch(f"the core did not finish within {job.cycle_limit} cycles "
                               f"({retired} instructions retired)")
            events = ports.get("events")

            # the register file after the instruction retired in the previous cycle
            if check_registers is not None:
                step = steps[check_registers]
                mine = _unpack_registers(ports.get("registers"))
                # a call or return changes r6..r10 when it leaves X, two cycles before it retires
                compared = 6 if events & EVENT_FRAMES_AHEAD else 11
                if tuple(mine[:compared]) != step.regs[:compared]:
                    raise mismatch("register file differs after the instruction\n"
                                   f"  core:      {_registers(mine)}\n  golden VM: {_registers(step.regs)}",
                                   check_registers)
                check_registers = None

            # what the core does in this cycle
            if events & EVENT_DATA_REQUEST:
                request = MEMORY_REQUEST.unpack(ports.get("data__request__payload"))
                answer = self._access(env, request.address, request.size, request.write, request.data, cycle)
                if answer is not None:
                    reads.append((cycle + self.memory_latency, answer))
            if events & EVENT_HELPER_REQUEST:
                request = HELPER_REQUEST.unpack(ports.get("helper__request__payload"))
                if steps is not None and retired < len(steps):
                    helper_pc = steps[retired].pc
                answer = self._call_helper(env, request.id, list(request.args), helper_pc, job.bases)
                region_writes.extend(self._descriptor_writes(env))
                helper_answer = (cycle + max(self.helper_latency, len(region_writes) + 1),) + answer
            if events & EVENT_RETIRE:
                if steps is not None or job.record_retired:
                    record = RETIRE_RECORD.unpack(ports.get("retire__payload"))
                    if job.record_retired:
                        job.retired.append((record.pc, cycle))
                    if steps is not None:
                        self._compare_retire(record, steps, retired, mismatch)
                        check_registers = retired
                retired += 1
            if events & EVENT_EXIT:
                report = EXIT_REPORT.unpack(ports.get("exit__payload"))
                if steps is not None and report.cause == TrapCause.NONE and retired != len(steps):
                    raise mismatch(f"the core exited after {retired} instructions, the golden VM ran {len(steps)}")
                job.result = RtlResult(report.r0, report.cause, report.pc, report.instructions, report.cycles,
                                       retired=job.retired)
                if response_valid:
                    ports.set("data__response__valid", 0)
                if helper_valid:
                    ports.set("helper__response__valid", 0)
                if writing_regions:
                    ports.set("regions__valid", 0)
                if reads or helper_answer is not None:
                    raise mismatch("the core ended the program with a read or helper call still unanswered")
                return

            # inputs of the next cycle: a due read response, a due helper answer, back-pressure
            upcoming = cycle + 1
            if reads and reads[0][0] <= upcoming:
                ports.set("data__response__payload", reads.popleft()[1])
                if not response_valid:
                    ports.set("data__response__valid", 1)
                    response_valid = True
            elif response_valid:
                ports.set("data__response__valid", 0)
                response_valid = False
            if helper_answer is not None and helper_answer[0] <= upcoming:
                ports.set("helper__response__payload", HELPER_RESPONSE.pack(r0=helper_answer[1],
                                                                            status=helper_answer[2]))
                ports.set("helper__response__valid", 1)
                helper_valid = True
                helper_answer = None
            elif helper_valid:
                ports.set("helper__response__valid", 0)
                helper_valid = False
            if region_writes:
                ports.set("regions__payload", self._descriptor_bits(region_writes.popleft()))
                if not writing_regions:
                    ports.set("regions__valid", 1)
                    writing_regions = True
            elif writing_regions:
                ports.set("regions__valid", 0)
                writing_regions = False
            if self.memory_stall:
                ready = self._random.random() >= self.memory_stall
                if ready != data_ready:
                    ports.set("data__request__ready", ready)
                    data_ready = ready

    async def _load(self, ports: CorePorts, job: _Job) -> None:
        """Write the program's slots (those that differ from what the instruction memory holds: the frames
        of one XDP program need one load) and the region table."""
        writing = False
        for address, word in enumerate(job.words):
            if self._loaded[address] == word:
                continue
            ports.set("imem_write__payload", IMEM_WRITE.pack(address=address, data=word))
            if not writing:
                ports.set("imem_write__valid", 1)
                writing = True
            await ports.tick()
            self._loaded[address] = word
        if writing:
            ports.set("imem_write__valid", 0)
        writes = self._descriptor_writes(job.env)
        for write in writes:
            ports.set("regions__payload", self._descriptor_bits(write))
            ports.set("regions__valid", 1)
            await ports.tick()
        if writes:
            ports.set("regions__valid", 0)

    def _descriptor_writes(self, env: Vm) -> list[tuple]:
        """Region-table writes that make the core's table match the environment's regions: (tag, present,
        size, writable, computed) for each change since the last writes. Helpers that move the packet's end
        (bpf_xdp_adjust_head/_tail) change a size during a run."""
        wanted = {}
        for tag, region in env.regions.items():
            if tag == memory.TAG_STACK:
                continue
            if tag not in self._table_tags:
                raise HarnessError(f"region {region.name} (tag 0x{tag:02x}) has no slot in the core's region table")
            hooked = region.load_hook is not None
            wanted[tag] = (region.size, bool(region.writable and not hooked), hooked)
        writes = []
        for tag in sorted(set(self._described) | set(wanted)):
            if self._described.get(tag) != wanted.get(tag):
                size, writable, computed = wanted.get(tag, (0, False, False))
                writes.append((tag, tag in wanted, size, writable, computed))
        self._described = wanted
        return writes

    @staticmethod
    def _descriptor_bits(write: tuple) -> int:
        tag, present, size, writable, computed = write
        return REGION_WRITE.pack(tag=tag, present=present, size=size, writable=writable, computed=computed)

    @staticmethod
    def _compare_retire(record, steps: list[_Step], index: int, mismatch) -> None:
        if index >= len(steps):
            raise mismatch(f"the core retired a {index + 1}th instruction (pc {record.pc}); "
                           f"the golden VM stopped after {len(steps)}")
        step = steps[index]
        if record.pc != step.pc:
            raise mismatch(f"the core retired pc {record.pc}, the golden VM pc {step.pc}", index)
        if record.rd_written and step.regs[record.rd] != record.value:
            raise mismatch(f"r{record.rd}: core wrote 0x{record.value:x}, golden VM has "
                           f"0x{step.regs[record.rd]:x}", index)
        if step.store is not None and record.store:
            address, written = step.store
            size = 1 << record.store_size
            mine = (record.store_data & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
            if record.store_address != address or mine != written:
                raise mismatch(f"store: core wrote {mine.hex()} at 0x{record.store_address:x}, golden VM "
                               f"{written.hex()} at 0x{address:x}", index)
        elif record.store and step.store is None:
            raise mismatch("the core stored, the golden VM did not", index)
        elif step.store is not None and isa.OPCODES[step.insn.opcode].kind != isa.InsnKind.ATOMIC:
            raise mismatch("the golden VM stored, the core did not", index)

    @staticmethod
    def _access(env: Vm, address: int, size_log2: int, write: int, value: int, cycle: int) -> int | None:
        """Serve one data-port request from the environment's regions; refuse (fail the run) any request
        outside them, which the core promises never to issue."""
        size = 1 << size_log2
        region = env.regions.get(address >> memory.REGION_SHIFT)
        offset = address & memory.OFFSET_MASK
        if region is None or offset + size > region.size or (write and not region.writable):
            raise LockstepMismatch(f"cycle {cycle}: the core issued a {'write' if write else 'read'} of {size} "
                                   f"bytes at 0x{address:x}, outside its regions")
        if write:
            region.buf[offset:offset + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
            return None
        if region.load_hook is not None:
            return region.load_hook(offset, size, env._pc_hint) & M64
        return int.from_bytes(region.buf[offset:offset + size], "little")

    @staticmethod
    def _call_helper(env: Vm, helper_id: int, args: list[int], pc: int | None, bases: dict) -> tuple[int, HelperStatus]:
        helper = env.helpers.get(helper_id)
        if helper is None:
            return 0, HelperStatus.UNKNOWN
        env._pc_hint = pc if pc is not None else 0
        try:
            return helper(env, *args) & M64, HelperStatus.OK
        except ProgramExit as stop:
            return stop.value, HelperStatus.EXIT
        except VmFault:
            return 0, HelperStatus.FAULT
        except TailCall as call:
            if id(call.program) not in bases:
                raise HarnessError(f"helper {helper_id} tail-called {call.name or 'a program'}, which is not in "
                                   "the instruction memory (pass it in extra_programs)") from None
            env.tail_calls += 1
            return bases[id(call.program)], HelperStatus.TAIL_CALL


class LockstepHarness(LockstepModel):
    """Runs programs on the RTL core under amaranth.sim and the golden VM side by side (see the module
    docstring). Options: LockstepModel's, and the core's (imem_depth, map_slots, ...)."""

    def __init__(self, imem_depth: int = 1024, map_slots: int = 16, memory_latency: int = 1,
                 memory_stall: float = 0.0, helper_latency: int = 1, seed: int = 0, **core_options):
        super().__init__(Core(imem_depth=imem_depth, map_slots=map_slots, **core_options),
                         memory_latency, memory_stall, helper_latency, seed)
        self.top = LockstepTop(self.core)
        self._jobs: collections.deque[_Job] = collections.deque()
        self._ports: AmaranthPorts | None = None
        self.simulator = Simulator(self.top)
        self.simulator.add_clock(1e-8)
        self.simulator.add_testbench(self._serve)

    def run(self, program: isa.Program | bytes, mem: bytes | None = None, *, environment: Environment | None = None,
            helpers=None, cycle_budget: int = 0, reference: bool = True, cycle_limit: int | None = None,
            record_retired: bool = False, extra_programs=()) -> RtlResult:
        """Run `program` on the core (and, with `reference`, on the golden VM, comparing every step).

        A program given as bytes is decoded without checking jump targets and runs without a reference
        (hostile programs that the VM's decoder would refuse). `extra_programs` are placed in the
        instruction memory after it, for tail calls into them; the golden VM's slots within them are
        translated to the core's. Raises LockstepMismatch on a difference."""
        job = self.prepare(program, mem, environment=environment, helpers=helpers, cycle_budget=cycle_budget,
                           reference=reference, cycle_limit=cycle_limit, record_retired=record_retired,
                           extra_programs=extra_programs)
        self._jobs.append(job)
        while not job.done:
            self.simulator.advance()
        if job.error is not None:
            # the core is left mid-program: start the next run from a fresh reset
            self.simulator.reset()
            self.forget_state()
            raise job.error
        return self.finish(job)

    @property
    def simulated_cycles(self) -> int:
        """Cycles simulated so far (program loads included)."""
        return self._ports.ticks if self._ports is not None else 0

    async def _serve(self, ctx):
        ports = self._ports = AmaranthPorts(ctx, self.top)
        while True:
            if not self._jobs:
                await ctx.tick()
                continue
            job = self._jobs[0]
            try:
                await self.serve(ports, job)
            except Exception as error:   # reported to run(), which resets the simulator
                job.error = error
            finally:
                self._jobs.popleft()
                job.done = True
            if job.error is not None:
                # wait here for the reset
                while True:
                    await ctx.tick()
