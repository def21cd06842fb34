"""Lockstep co-simulation: the RTL core (hw/core) under amaranth.sim against the golden VM (sw/vm.py).

A program runs twice from identical environments: once on the golden VM, whose trace hook records the
state after every instruction, and once on the RTL core, whose retire port reports every instruction it
retires. The harness compares them instruction by instruction: the pc, the register written and its value
(the retire record), the whole register file r0..r10 in the cycle after (read from the register file's
ports), and the bytes each store leaves in memory; then the final r0, the trap cause and its instruction,
the number of instructions, and the contents of every writable region. The first difference stops the
run with a `LockstepMismatch` that names the instruction (with its disassembly), the cycle, and both
states.

Around the core, the testbench is the NIC: it loads the program through the instruction memory's host
port, describes the regions in the region table, answers the data port from the regions of its own VM
instance (with a configurable latency and random back-pressure), and answers the helper port by calling
that VM's helpers (so maps and helper side effects act on the memory the core sees). It also checks the
core's safety promise independently: a request outside the regions it was given fails the run.

One simulator is built per harness and reused for every program: the testbench serves programs one after
the other, so that a run costs simulated cycles only. `Simulator.reset()` brings it back after a mismatch.

Ref: RFC 9669 (semantics, through the golden VM); hw/core/interfaces.py (ports and protocols).
"""

from __future__ import annotations

import collections
import random
from dataclasses import dataclass, field
from typing import Callable

from amaranth.sim import Simulator

from bpfnic.hw.core.core import Core
from bpfnic.hw.core.interfaces import HelperStatus, TrapCause
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


class LockstepHarness:
    """Runs programs on the RTL core and the golden VM side by side (see the module docstring).

    memory_latency: cycles from a read request to its response (>= 1); memory_stall: probability that the
    data port refuses a request in a cycle; helper_latency: cycles from a helper call to its answer;
    seed: for the random back-pressure.
    """

    def __init__(self, imem_depth: int = 1024, map_slots: int = 16, memory_latency: int = 1,
                 memory_stall: float = 0.0, helper_latency: int = 1, seed: int = 0, **core_options):
        if memory_latency < 1 or helper_latency < 1:
            raise ValueError("memory_latency and helper_latency count cycles after the request: at least 1")
        self.core = Core(imem_depth=imem_depth, map_slots=map_slots, **core_options)
        self.memory_latency = memory_latency
        self.memory_stall = memory_stall
        self.helper_latency = helper_latency
        self._random = random.Random(seed)
        self._jobs: collections.deque[_Job] = collections.deque()
        self._described: dict[int, tuple] = {}
        self._table_tags = set(self.core.region_table.tags())
        self.simulator = Simulator(self.core)
        self.simulator.add_clock(1e-8)
        self.simulator.add_testbench(self._serve)

    # -- the public entry --------------------------------------------------------------------------------
    def run(self, program: isa.Program | bytes, mem: bytes | None = None, *, environment: Environment | None = None,
            helpers=None, cycle_budget: int = 0, reference: bool = True, cycle_limit: int | None = None,
            record_retired: bool = False, extra_programs=()) -> RtlResult:
        """Run `program` on the core (and, with `reference`, on the golden VM, comparing every step).

        A program given as bytes is decoded without checking jump targets and runs without a reference
        (hostile programs that the VM's decoder would refuse). `extra_programs` are placed in the
        instruction memory after it, for tail calls into them; the golden VM's slots within them are
        translated to the core's. Raises LockstepMismatch on a difference."""
        if isinstance(program, (bytes, bytearray)):
            words = [int.from_bytes(program[i:i + 8], "little") for i in range(0, len(program), 8)]
            try:
                decoded = isa.decode_program(bytes(program), check_targets=False)
            except isa.IsaError:
                decoded = None
            reference = False
        else:
            decoded = program
            encoded = program.encode()
            words = [int.from_bytes(encoded[i:i + 8], "little") for i in range(0, len(encoded), 8)]
        bases = {id(decoded): 0}
        for extra in extra_programs:
            if id(extra) not in bases:
                bases[id(extra)] = len(words)
                encoded = extra.encode()
                words += [int.from_bytes(encoded[i:i + 8], "little") for i in range(0, len(encoded), 8)]
        if len(words) > self.core.imem_depth:
            raise HarnessError(f"program of {len(words)} slots does not fit the instruction memory "
                               f"({self.core.imem_depth} slots)")
        make = environment or bare_environment(mem, helpers)
        vm_program = decoded if decoded is not None else isa.Program([isa.exit_insn()])
        steps = None
        reference_outcome = None
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
        job = _Job(decoded, words, env, r1, r2, steps, cycle_budget, cycle_limit, record_retired, bases)
        self._jobs.append(job)
        while not job.done:
            self.simulator.advance()
        if job.error is not None:
            # the core is left mid-program: start the next run from a fresh reset
            self.simulator.reset()
            self._described = {}
            raise job.error
        result = job.result
        result.reference = reference_outcome
        if reference:
            self._check_outcome(job, reference_outcome, ref_vm)
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

    # -- the testbench ---------------------------------------------------------------------------------------
    async def _serve(self, ctx):
        while True:
            if not self._jobs:
                await ctx.tick()
                continue
            job = self._jobs[0]
            try:
                await self._run_job(ctx, job)
            except Exception as error:   # reported to run(), which resets the simulator
                job.error = error
            finally:
                self._jobs.popleft()
                job.done = True
            if job.error is not None:
                # wait here for the reset
                while True:
                    await ctx.tick()

    async def _load(self, ctx, job: _Job) -> None:
        core = self.core
        for address, word in enumerate(job.words):
            ctx.set(core.imem_write.valid, 1)
            ctx.set(core.imem_write.payload.address, address)
            ctx.set(core.imem_write.payload.data, word)
            await ctx.tick()
        ctx.set(core.imem_write.valid, 0)
        for write in self._descriptor_writes(job.env):
            self._set_descriptor(ctx, write)
            await ctx.tick()
        ctx.set(core.regions.valid, 0)

    def _descriptor_writes(self, env: Vm) -> list[tuple]:
        """Region-table writes that make the core's table match the environment's regions: (tag, present,
        size, writable) for each change since the last writes. Helpers that move the packet's end
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

    def _set_descriptor(self, ctx, write: tuple) -> None:
        tag, present, size, writable, computed = write
        port = self.core.regions
        ctx.set(port.valid, 1)
        ctx.set(port.payload.tag, tag)
        ctx.set(port.payload.present, present)
        ctx.set(port.payload.size, size)
        ctx.set(port.payload.writable, writable)
        ctx.set(port.payload.computed, computed)

    async def _run_job(self, ctx, job: _Job) -> None:
        core = self.core
        await self._load(ctx, job)
        env = job.env
        steps = job.reference
        program = job.program
        data_request = core.data.request
        data_response = core.data.response
        helper_request = core.helper.request
        helper_response = core.helper.response
        regfile = core.regfile
        frames = core.frames

        ctx.set(core.start.payload.pc, 0)
        ctx.set(core.start.payload.r1, job.r1 & M64)
        ctx.set(core.start.payload.r2, job.r2 & M64)
        ctx.set(core.start.payload.program_length, len(job.words))
        ctx.set(core.start.payload.cycle_budget, job.cycle_budget)
        ctx.set(core.start.valid, 1)
        await ctx.tick()
        ctx.set(core.start.valid, 0)

        reads = collections.deque()      # (due cycle, data) of accepted reads, in order
        region_writes = collections.deque()   # descriptor changes a helper made, written before its answer
        writing_regions = False
        helper_answer = None             # (due cycle, r0, status)
        helper_pc = None
        retired = 0
        check_registers = None           # the step whose register file is read in this cycle
        response_valid = False
        helper_valid = False
        data_ready = True
        ctx.set(data_request.ready, 1)
        ctx.set(helper_request.ready, 1)
        cycle = 0

        def mismatch(text: str, step_index: int | None = None) -> LockstepMismatch:
            where = f" at cycle {cycle}"
            if step_index is not None and steps is not None and step_index < len(steps):
                step = steps[step_index]
                low = ctx.get(regfile.low_registers)
                saved = ctx.get(regfile.saved_registers)
                mine = [low[i] for i in range(6)] + [saved[i] for i in range(4)] + [ctx.get(frames.frame_pointer)]
                where += (f", retired instruction #{step_index}, {_describe(program, step.pc)}\n"
                          f"  golden VM after it:  {_registers(step.regs)}\n"
                          f"  core registers (before this cycle's write-back): {_registers(mine)}")
            return LockstepMismatch(f"{text}{where}")

        while True:
            cycle += 1
            if cycle > job.cycle_limit:
                raise mismatch(f"the core did not finish within {job.cycle_limit} cycles "
                               f"({retired} instructions retired)")

            # the register file after the instruction retired in the previous cycle
            if check_registers is not None:
                step = steps[check_registers]
                low = ctx.get(regfile.low_registers)
                saved = ctx.get(regfile.saved_registers)
                mine = [low[i] for i in range(6)] + [saved[i] for i in range(4)] + [ctx.get(frames.frame_pointer)]
                # a call or return changes r6..r10 when it leaves X, two cycles before it retires
                compared = 6 if ctx.get(core.frames_ahead) else 11
                if tuple(mine[:compared]) != step.regs[:compared]:
                    raise mismatch("register file differs after the instruction\n"
                                   f"  core:      {_registers(mine)}\n  golden VM: {_registers(step.regs)}",
                                   check_registers)
                check_registers = None

            # inputs of this cycle: a due read response, a due helper answer, back-pressure
            if reads and reads[0][0] <= cycle:
                ctx.set(data_response.payload, reads.popleft()[1])
                if not response_valid:
                    ctx.set(data_response.valid, 1)
                    response_valid = True
            elif response_valid:
                ctx.set(data_response.valid, 0)
                response_valid = False
            if helper_answer is not None and helper_answer[0] <= cycle:
                ctx.set(helper_response.payload.r0, helper_answer[1])
                ctx.set(helper_response.payload.status, helper_answer[2])
                ctx.set(helper_response.valid, 1)
                helper_valid = True
                helper_answer = None
            elif helper_valid:
                ctx.set(helper_response.valid, 0)
                helper_valid = False
            if region_writes:
                self._set_descriptor(ctx, region_writes.popleft())
                writing_regions = True
            elif writing_regions:
                ctx.set(core.regions.valid, 0)
                writing_regions = False
            if self.memory_stall:
                ready = self._random.random() >= self.memory_stall
                if ready != data_ready:
                    ctx.set(data_request.ready, ready)
                    data_ready = ready

            # what the core does in this cycle
            if data_ready and ctx.get(data_request.valid):
                request = ctx.get(data_request.payload)
                answer = self._access(env, request.address, request.size, request.write, request.data, cycle)
                if answer is not None:
                    reads.append((cycle + self.memory_latency, answer))
            if ctx.get(helper_request.valid):
                request = ctx.get(helper_request.payload)
                if steps is not None and retired < len(steps):
                    helper_pc = steps[retired].pc
                answer = self._call_helper(env, request.id, [request.args[i] for i in range(5)], helper_pc, job.bases)
                region_writes.extend(self._descriptor_writes(env))
                helper_answer = (cycle + max(self.helper_latency, len(region_writes) + 1),) + answer
            if ctx.get(core.retire.valid):
                record = ctx.get(core.retire.payload)
                if job.record_retired:
                    job.retired.append((record.pc, cycle))
                if steps is not None:
                    self._compare_retire(record, steps, retired, mismatch)
                    check_registers = retired
                retired += 1
            if ctx.get(core.exit.valid):
                report = ctx.get(core.exit.payload)
                if steps is not None and report.cause == TrapCause.NONE and retired != len(steps):
                    raise mismatch(f"the core exited after {retired} instructions, the golden VM ran {len(steps)}")
                job.result = RtlResult(report.r0, report.cause, report.pc, report.instructions, report.cycles,
                                       retired=job.retired)
                await ctx.tick()
                if response_valid:
                    ctx.set(data_response.valid, 0)
                if helper_valid:
                    ctx.set(helper_response.valid, 0)
                if reads or helper_answer is not None:
                    raise mismatch("the core ended the program with a read or helper call still unanswered")
                return
            await ctx.tick()

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
