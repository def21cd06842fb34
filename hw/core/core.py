"""The bpfnic eBPF processor core: an in-order pipeline running RFC 9669 programs.

Ref: RFC 9669 (BPF Instruction Set Architecture) §3-§5, all conformance groups of §7 but the legacy
"packet" group: base32, base64, divmul32, divmul64, atomic32, atomic64, and the v4 additions (MOVSX,
LDXSX, SDIV/SMOD, BSWAP, JA32); local calls, helper calls and tail calls. The decoder is generated from
sw/isa.py; the golden VM (sw/vm.py) is the specification of every edge case, and sim/lockstep.py checks
the core against it instruction by instruction. Ports and protocols: interfaces.py.

Pipeline (Minerva-style stages, stage.py; inter-stage layouts fetch.Fetched, _DX, _XM, _MW):

  F  fetch.py: the instruction memory (block RAM in two banks, host write port) and the program counter;
     it delivers each slot with the one after it, and its output registers are the F/D register.
  D  decode: isa_decode.py; an lddw takes its second half from the next slot in the same cycle. D sends
     fetch at once down the path it expects, so that a correct guess costs nothing: jumps, local calls and
     lddw (past its second half) always, returns when the frame cannot change before they reach X, and
     conditional branches as branch_predictor.py says.
  X  execute: reads the register file (regfile.py) and forwards results from M and W, so dependent ALU
     instructions issue back to back; alu.py, shifter.py, byteswap.py in one cycle; multiplier.py
     (2 extra cycles) and divider.py (1 + 8 per significant byte of the dividend) hold X; branch.py
     resolves conditional jumps, and a wrong guess of D sends fetch the other way (one cycle lost).
     Local calls and returns change the call frame here (frames.py): a call pushes the return slot and
     r6..r9, a return pops them back and r10 follows the depth. Memory addresses are computed here.
  M  memory: lsu.py checks the access against the region table (regions.py) and issues it on the data
     port, or marks the instruction BAD_ACCESS without issuing anything; atomics read and write back here.
     A store takes its data from W when the load producing it is there.
  W  write-back: a load's data arrive and are extended; helper calls go out on the helper port (W holds the
     oldest instruction, so r1..r5 are final and earlier stores visible); the register file is written;
     the instruction retires on the retire port; traps and the final exit end the program, a tail call
     continues at another program's entry slot, and either drops everything younger.

Traps are precise: an instruction carries its trap cause down the pipeline and the program ends when it
reaches W, before the instruction changes anything; instructions on a path not taken never trap. Once past
X an instruction always retires unless the program ends, which is why a call or return may change the
frame in X (nothing changes the frame behind a helper call, which may turn into a tail call). A bad memory
access is found in M before any request is issued, so no program, verified or not, reaches memory outside
the regions it was given. The cycle budget is checked at W between instructions.

Memory: all data memory, the stack included, is outside the core behind the data port (interfaces.py):
the NIC gives the stack a block RAM of STACK_REGION_SIZE bytes that answers in one cycle, and helpers (map
lookups with keys on the stack) reach it the same way. The core only needs the regions' sizes and
permissions; the stack region (tag 3) is built in.

Cycle costs (benchmarks/core_cpi.py measures them; with a memory answering in one cycle): three cycles
of pipeline fill per run, then one cycle per instruction, plus one for a load whose value the next
instruction computes with (not for a store of it), one for a mispredicted branch or a return the frame
stack could not predict, two for a multiplication, 1 + 8 per dividend byte for a division, one or two for
an atomic, and the helper port's latency for a helper call.
"""

from amaranth import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from bpfnic.sw import isa, memory

from .alu import Alu
from .branch import BranchUnit
from .branch_predictor import BranchPredictor
from .byteswap import ByteSwap
from .divider import Divider
from .fetch import Fetch, Fetched
from .frames import CallFrames
from .interfaces import (ADDRESS_WIDTH, PC_WIDTH, DataPort, ExitReport, HelperPort, HelperStatus, ImemWrite,
                         RegionWrite, RetireRecord, StartRequest, TrapCause)
from .isa_decode import Decoded, Decoder, Operation
from .lsu import LoadStoreUnit
from .multiplier import Multiplier
from .regfile import SAVED_COUNT, SAVED_FIRST, RegisterFile
from .regions import RegionTable
from .shifter import Shifter
from .stage import Stage

_DX = data.StructLayout({
    "pc": PC_WIDTH,
    "insn": 64,
    "decoded": Decoded,
    "b_immediate": 64,      # operand B when it is not a register: the sign-extended imm, or the lddw value
    "target": PC_WIDTH,     # jump or call target (all ones when outside the slot range)
    "predicted": 1,         # D already sent fetch down the taken path (target, or the return slot)
    "counter": 2,           # the branch predictor's counter D saw, trained in X
    "trap": TrapCause,
})

_XM = data.StructLayout({
    "pc": PC_WIDTH,
    "insn": 64,
    "operation": Operation,
    "rd": 4,
    "writes_rd": 1,
    "value": 64,            # the result, when X computed it
    "address": 64,          # memory operations
    "data": 64,             # store data, the atomic's src operand
    "late_data": 1,         # a store whose data register may still be in the making: M takes it from W
    "rb": 4,
    "size": 2,
    "signed": 1,
    "atomic_op": 8,
    "helper_id": 32,
    "main_exit": 1,         # an exit from the main frame: the program ends when it reaches W
    "frame_op": 1,          # a call or return that changed the frame in X
    "trap": TrapCause,
})

_MW = data.StructLayout({
    "pc": PC_WIDTH,
    "insn": 64,
    "operation": Operation,
    "rd": 4,
    "writes_rd": 1,
    "value": 64,
    "size": 2,
    "signed": 1,
    "computed": 1,          # a load from a computed region (interfaces.py)
    "helper_id": 32,
    "main_exit": 1,
    "frame_op": 1,
    "trap": TrapCause,
    "store": 1,
    "store_address": ADDRESS_WIDTH,
    "store_size": 2,
    "store_data": 64,
})

_NO_TARGET = (1 << PC_WIDTH) - 1


class Core(wiring.Component):
    """The core. Ports are described in interfaces.py.

    imem_depth: instruction slots (a power of two); map_slots: map value regions the region table holds;
    divider_bits_per_cycle: quotient bits the divider makes a cycle (1, 2 or 4: speed against clock rate);
    predictor_entries: counters of the branch predictor (a power of two).
    """

    def __init__(self, imem_depth: int = 4096, map_slots: int = 16, divider_bits_per_cycle: int = 1,
                 predictor_entries: int = 64):
        self.imem_depth = imem_depth
        self.map_slots = map_slots
        super().__init__({
            "imem_write": In(stream.Signature(ImemWrite, always_ready=True)),
            "regions": In(stream.Signature(RegionWrite, always_ready=True)),
            "start": In(stream.Signature(StartRequest)),
            "exit": Out(stream.Signature(ExitReport, always_ready=True)),
            "data": Out(DataPort()),
            "helper": Out(HelperPort()),
            "retire": Out(stream.Signature(RetireRecord, always_ready=True)),
            "busy": Out(1),
        })
        self.fetch = Fetch(imem_depth)
        self.decoder = Decoder()
        self.regfile = RegisterFile()
        self.frames = CallFrames()
        self.region_table = RegionTable(map_slots)
        self.alu = Alu()
        self.shifter = Shifter()
        self.byteswap = ByteSwap()
        self.branch = BranchUnit()
        self.multiplier = Multiplier()
        self.divider = Divider(divider_bits_per_cycle)
        self.lsu = LoadStoreUnit()
        self.branch_predictor = BranchPredictor(predictor_entries)
        #: a call or return in M or W has changed r6..r10 before retiring (for the lockstep harness)
        self.frames_ahead = Signal()

    def ports(self) -> list[Signal]:
        """The signals of the ports, for conversion to RTLIL/Verilog as a top level (the ready of an
        always-ready stream is a constant, not a port)."""
        signals = (Value.cast(value) for _, _, value in self.signature.flatten(self))
        return [signal for signal in signals if isinstance(signal, Signal)]

    def elaborate(self, platform):
        m = Module()
        for name in ("fetch", "decoder", "regfile", "frames", "region_table", "alu", "shifter", "byteswap",
                     "branch", "multiplier", "divider", "lsu", "branch_predictor"):
            m.submodules[name] = getattr(self, name)
        fetch, decoder, regfile, frames = self.fetch, self.decoder, self.regfile, self.frames
        lsu = self.lsu

        m.submodules.d_stage = d_stage = Stage(Fetched, _DX)
        m.submodules.x_stage = x_stage = Stage(_DX, _XM)
        m.submodules.m_stage = m_stage = Stage(_XM, _MW)
        m.submodules.w_stage = w_stage = Stage(_MW)
        wiring.connect(m, fetch.source, d_stage.sink)
        wiring.connect(m, d_stage.source, x_stage.sink)
        wiring.connect(m, x_stage.source, m_stage.sink)
        wiring.connect(m, m_stage.source, w_stage.sink)
        wiring.connect(m, wiring.flipped(self.imem_write), fetch.imem_write)
        wiring.connect(m, wiring.flipped(self.regions), self.region_table.write)
        wiring.connect(m, lsu.region, self.region_table.lookup)
        wiring.connect(m, wiring.flipped(self.data), lsu.bus)

        # -- program state ---------------------------------------------------------------------------
        running = Signal()
        cycles = Signal(32)
        instructions = Signal(32)
        budget = Signal(32)
        starting = Signal()
        program_end = Signal()          # W ends the program this cycle (exit or trap)
        m.d.comb += [
            self.start.ready.eq(~running),
            starting.eq(self.start.valid & self.start.ready),
            self.busy.eq(running),
            fetch.start.eq(starting),
            fetch.start_pc.eq(self.start.payload.pc),
            fetch.program_length.eq(self.start.payload.program_length),
            fetch.stop.eq(program_end),
            regfile.initialise.eq(starting),
            regfile.initial_r1.eq(self.start.payload.r1),
            regfile.initial_r2.eq(self.start.payload.r2),
            regfile.frame_pointer.eq(frames.frame_pointer),
            frames.initialise.eq(starting),
        ]
        with m.If(starting):
            m.d.sync += [running.eq(1), cycles.eq(0), instructions.eq(0), budget.eq(self.start.payload.cycle_budget)]
        with m.Elif(program_end):
            m.d.sync += running.eq(0)
        with m.Elif(running):
            m.d.sync += cycles.eq(cycles + 1)

        w_jump = Signal()               # a tail call continues elsewhere: W sends fetch there
        w_jump_pc = Signal(PC_WIDTH)
        flush = Signal()                # everything younger than W goes (program end or tail call)
        x_redirect = Signal()
        x_target = Signal(PC_WIDTH)
        d_jump = Signal()
        d_target = Signal(PC_WIDTH)
        m.d.comb += [
            fetch.redirect.eq(w_jump | x_redirect | d_jump),
            fetch.redirect_pc.eq(Mux(w_jump, w_jump_pc, Mux(x_redirect, x_target, d_target))),
        ]

        x_payload = x_stage.sink.payload
        m_payload = m_stage.sink.payload
        w_payload = w_stage.sink.payload

        # -- D: decode -------------------------------------------------------------------------------
        fetched = d_stage.sink.payload
        decoded = decoder.decoded
        d_result = d_stage.result
        m.d.comb += decoder.word.eq(fetched.word)

        # an lddw takes its upper half from the next slot, which fetch delivers alongside
        d_lddw = decoded.operation == Operation.LDDW
        low = fetched.word[32:64]
        high = fetched.next_word[32:64]
        d_lddw_value = Signal(64)
        d_lddw_known = Signal()
        map_exists = Signal()
        if self.map_slots:
            index_bits = max(1, (self.map_slots - 1).bit_length())
            m.d.comb += map_exists.eq((low < self.map_slots)
                                      & self.region_table.map_present.bit_select(low[0:index_bits], 1))
        with m.Switch(decoded.src):
            with m.Case(isa.BPF_PSEUDO_IMM64):
                m.d.comb += [d_lddw_value.eq(Cat(low, high)), d_lddw_known.eq(1)]
            with m.Case(isa.BPF_PSEUDO_MAP_FD, isa.BPF_PSEUDO_MAP_IDX):
                m.d.comb += [d_lddw_value.eq(Cat(low, Const(memory.TAG_MAP_HANDLE, 8))), d_lddw_known.eq(map_exists)]
            with m.Case(isa.BPF_PSEUDO_MAP_VALUE, isa.BPF_PSEUDO_MAP_IDX_VALUE):
                m.d.comb += [d_lddw_value.eq(Cat(high, (memory.TAG_MAP_VALUE_BASE + low)[0:8])),
                             d_lddw_known.eq(map_exists)]
        d_second_half_ok = (fetched.next_word[0:32] == 0) & fetched.next_in_program

        d_trap = Signal(TrapCause)
        with m.If(~fetched.in_program):
            m.d.comb += d_trap.eq(TrapCause.PC_OUT_OF_PROGRAM)
        with m.Elif(~decoded.legal | (decoded.operation == Operation.INVALID)
                    | (d_lddw & ~(d_second_half_ok & d_lddw_known))):
            m.d.comb += d_trap.eq(TrapCause.INVALID_INSTRUCTION)
        d_ok = d_trap == TrapCause.NONE

        # jump and call targets: off for jumps, imm for gotol and local calls, relative to the next slot
        displacement = Mux((fetched.word[0:8] == isa.OP_JA32) | (decoded.operation == Operation.CALL_LOCAL),
                           decoded.imm.as_signed(), decoded.off.as_signed())
        raw_target = Signal(PC_WIDTH + 2)
        d_target_pc = Signal(PC_WIDTH)
        m.d.comb += [
            raw_target.eq(fetched.pc + 1 + displacement),
            d_target_pc.eq(Mux(raw_target[PC_WIDTH:] == 0, raw_target[0:PC_WIDTH], _NO_TARGET)),
        ]

        # D sends fetch down the path it expects: jumps and local calls always, conditional branches as
        # the predictor says, returns when the frame stack cannot change before the exit reaches X; and
        # past the second half of an lddw. X corrects a wrong guess.
        predictor = self.branch_predictor
        x_frame_op = x_stage.sink.valid & ((x_payload.decoded.operation == Operation.CALL_LOCAL)
                                           | (x_payload.decoded.operation == Operation.EXIT))
        d_predicted = Signal()
        with m.Switch(decoded.operation):
            with m.Case(Operation.JUMP, Operation.CALL_LOCAL):
                m.d.comb += d_predicted.eq(1)
            with m.Case(Operation.BRANCH):
                m.d.comb += d_predicted.eq(predictor.taken)
            with m.Case(Operation.EXIT):
                m.d.comb += d_predicted.eq(~x_frame_op & (frames.depth != 0))
        m.d.comb += [
            predictor.lookup_pc.eq(fetched.pc),
            d_jump.eq(d_stage.advance & d_ok & (d_predicted | d_lddw)),
            d_target.eq(Mux(d_lddw, fetched.pc + 2,
                            Mux(decoded.operation == Operation.EXIT, frames.return_pc, d_target_pc))),
        ]

        d_stage.kill_on(flush | x_redirect)
        m.d.comb += [
            d_result.pc.eq(fetched.pc),
            d_result.insn.eq(fetched.word),
            d_result.decoded.eq(decoded),
            d_result.decoded.writes_rd.eq(decoded.writes_rd & d_ok),
            d_result.b_immediate.eq(Mux(d_lddw, d_lddw_value, decoded.imm.as_signed())),
            d_result.target.eq(d_target_pc),
            d_result.predicted.eq(d_predicted & d_ok),
            d_result.counter.eq(predictor.counter),
            d_result.trap.eq(d_trap),
        ]

        # -- W values, for forwarding into X -------------------------------------------------------------
        w_no_trap = w_payload.trap == TrapCause.NONE
        w_is_load = (w_payload.operation == Operation.LOAD) & w_no_trap
        w_is_helper = (w_payload.operation == Operation.CALL_HELPER) & w_no_trap
        helper_response = self.helper.response
        w_value = Signal(64)
        w_value_ready = Signal()
        m.d.comb += [
            w_value.eq(Mux(w_is_load, lsu.w_value, Mux(w_is_helper, helper_response.payload.r0, w_payload.value))),
            w_value_ready.eq(Mux(w_is_load, lsu.w_ready,
                                 Mux(w_is_helper, helper_response.valid
                                     & (helper_response.payload.status == HelperStatus.OK), 1))),
        ]

        # -- X: execute ----------------------------------------------------------------------------------
        x_decoded = x_payload.decoded
        x_live = x_stage.valid & (x_payload.trap == TrapCause.NONE)
        # a load's data, an atomic's old value and a helper's r0 are known only in W
        m_value_ready = ((m_payload.operation != Operation.LOAD) & (m_payload.operation != Operation.ATOMIC)
                         & (m_payload.operation != Operation.CALL_HELPER))

        def forward(index, from_file, name):
            """The register's value as the instructions in M and W will leave it, and whether it is known."""
            in_m = m_stage.sink.valid & m_payload.writes_rd & (m_payload.rd == index)
            in_w = w_stage.sink.valid & w_payload.writes_rd & (w_payload.rd == index)
            value = Signal(64, name=f"x_{name}")
            ready = Signal(name=f"x_{name}_ready")
            m.d.comb += [
                value.eq(Mux(in_m, m_payload.value, Mux(in_w, w_value, from_file))),
                ready.eq(Mux(in_m, m_value_ready, Mux(in_w, w_value_ready, 1))),
            ]
            return value, ready

        m.d.comb += [regfile.read_a_index.eq(x_decoded.ra), regfile.read_b_index.eq(x_decoded.rb)]
        x_a, x_a_ready = forward(x_decoded.ra, regfile.read_a_data, "a")
        x_b_register, x_b_ready = forward(x_decoded.rb, regfile.read_b_data, "b_register")
        x_b = Signal(64)
        x_operands_ready = Signal()
        # a store needs its data only in M, which takes it from W if the load making it is there by then
        x_late_data = (x_decoded.operation == Operation.STORE) & x_decoded.reads_b
        m.d.comb += [
            x_b.eq(Mux(x_decoded.reads_b, x_b_register, x_payload.b_immediate)),
            x_operands_ready.eq((~x_decoded.reads_a | x_a_ready) & (~x_decoded.reads_b | x_b_ready | x_late_data)),
        ]
        x_stage.stall_on(x_live & ~x_operands_ready)

        alu, shifter, byteswap, branch = self.alu, self.shifter, self.byteswap, self.branch
        multiplier, divider = self.multiplier, self.divider
        for unit in (alu, shifter, branch):
            m.d.comb += [unit.op.eq(x_decoded.op), unit.is64.eq(x_decoded.is64), unit.a.eq(x_a), unit.b.eq(x_b)]
        m.d.comb += [
            alu.movsx_bits.eq(x_decoded.off[0:6]),
            byteswap.a.eq(x_a),
            # to-big-endian (the source bit of END) and the ALU64 bswap reverse bytes; to-little-endian truncates
            byteswap.swap.eq(x_decoded.is64 | x_decoded.src_reg),
            byteswap.width.eq(x_decoded.imm[0:7]),
        ]
        x_multiply = x_decoded.operation == Operation.MULTIPLY
        x_divide = x_decoded.operation == Operation.DIVIDE
        x_started = Signal()      # the multi-cycle unit is working on the instruction in X
        x_start = x_live & x_operands_ready & ~x_started
        m.d.comb += [
            multiplier.start.eq(x_start & x_multiply),
            multiplier.is64.eq(x_decoded.is64), multiplier.a.eq(x_a), multiplier.b.eq(x_b),
            divider.start.eq(x_start & x_divide),
            divider.is64.eq(x_decoded.is64), divider.a.eq(x_a), divider.b.eq(x_b),
            divider.signed.eq(x_decoded.off[0]),
            divider.remainder.eq(x_decoded.op == (isa.BPF_MOD >> 4)),
        ]
        with m.If(x_stage.advance | ~x_stage.valid):
            m.d.sync += x_started.eq(0)
        with m.Elif(multiplier.start | divider.start):
            m.d.sync += x_started.eq(1)
        x_stage.stall_on(x_live & x_multiply & ~(x_started & multiplier.done))
        x_stage.stall_on(x_live & x_divide & ~(x_started & divider.done))

        x_value = Signal(64)
        with m.Switch(x_decoded.operation):
            with m.Case(Operation.ALU):
                m.d.comb += x_value.eq(alu.result)
            with m.Case(Operation.SHIFT):
                m.d.comb += x_value.eq(shifter.result)
            with m.Case(Operation.BYTESWAP):
                m.d.comb += x_value.eq(byteswap.result)
            with m.Case(Operation.MULTIPLY):
                m.d.comb += x_value.eq(multiplier.result)
            with m.Case(Operation.DIVIDE):
                m.d.comb += x_value.eq(divider.result)
            with m.Case(Operation.LDDW):
                m.d.comb += x_value.eq(x_payload.b_immediate)

        # Local calls and returns change the frame here, when they leave X: a call pushes the return slot
        # and r6..r9 (frames.py), forwarded like operands; an exit from a called frame pops them back into
        # r6..r9, and r10 follows the depth at once. A return waits while the instruction in M still has an
        # r6..r9 write to make (it would land on the restored value); one in W writes in this same cycle and
        # the register file lets the restore win. Once past X an instruction retires unless the program
        # ends or a tail call drops it, and nothing changes the frame behind a helper call (below), so the
        # frame never needs undoing.
        def writes_saved_register(stage, payload):
            return (stage.sink.valid & payload.writes_rd & (payload.rd >= SAVED_FIRST)
                    & (payload.rd < SAVED_FIRST + SAVED_COUNT))

        x_saved = [forward(SAVED_FIRST + index, regfile.saved_registers[index], f"r{SAVED_FIRST + index}")
                   for index in range(SAVED_COUNT)]
        x_saved_ready = Cat(*(ready for _, ready in x_saved)).all()
        x_call = x_decoded.operation == Operation.CALL_LOCAL
        x_exit = x_decoded.operation == Operation.EXIT
        x_returning = x_exit & (frames.depth != 0)
        x_too_deep = x_call & frames.full
        # nothing may change the frame behind an exit from the main frame or a helper call (which may turn
        # out to be a tail call, dropping everything younger)
        x_after_main_exit = ((m_stage.sink.valid & (m_payload.main_exit | (m_payload.operation == Operation.CALL_HELPER)))
                             | (w_stage.sink.valid & (w_payload.main_exit | (w_payload.operation == Operation.CALL_HELPER))))
        x_stage.stall_on(x_live & x_call & (~x_saved_ready | x_after_main_exit))
        x_stage.stall_on(x_live & x_returning & (writes_saved_register(m_stage, m_payload) | x_after_main_exit))

        x_trap = Signal(TrapCause)
        m.d.comb += x_trap.eq(Mux(x_payload.trap != TrapCause.NONE, x_payload.trap,
                                  Mux(x_too_deep, TrapCause.CALL_DEPTH, TrapCause.NONE)))
        x_acts = x_stage.advance & (x_trap == TrapCause.NONE)
        x_taken = Signal()
        with m.Switch(x_decoded.operation):
            with m.Case(Operation.BRANCH):
                m.d.comb += x_taken.eq(branch.taken)
            with m.Case(Operation.JUMP, Operation.CALL_LOCAL):
                m.d.comb += x_taken.eq(1)
            with m.Case(Operation.EXIT):
                m.d.comb += x_taken.eq(x_returning)
        m.d.comb += [
            x_redirect.eq(x_acts & (x_taken != x_payload.predicted)),
            x_target.eq(Mux(x_taken, Mux(x_exit, frames.return_pc, x_payload.target), x_payload.pc + 1)),
            frames.push.eq(x_acts & x_call),
            frames.push_return_pc.eq(x_payload.pc + 1),
            frames.push_registers.eq(Cat(*(value for value, _ in x_saved))),
            frames.pop.eq(x_acts & x_returning),
            regfile.restore_enable.eq(x_acts & x_returning),
            regfile.restore_data.eq(frames.saved_registers),
            self.branch_predictor.update.eq(x_acts & (x_decoded.operation == Operation.BRANCH)),
            self.branch_predictor.update_pc.eq(x_payload.pc),
            self.branch_predictor.update_counter.eq(x_payload.counter),
            self.branch_predictor.update_taken.eq(branch.taken),
        ]
        x_stage.kill_on(flush)

        x_result = x_stage.result
        m.d.comb += [
            x_result.pc.eq(x_payload.pc),
            x_result.insn.eq(x_payload.insn),
            x_result.operation.eq(x_decoded.operation),
            x_result.rd.eq(x_decoded.rd),
            x_result.writes_rd.eq(x_decoded.writes_rd),
            x_result.value.eq(x_value),
            x_result.address.eq(x_a + x_decoded.off.as_signed()),
            x_result.data.eq(x_b),
            x_result.late_data.eq(x_late_data),
            x_result.rb.eq(x_decoded.rb),
            x_result.size.eq(x_decoded.size),
            x_result.signed.eq(x_decoded.signed),
            x_result.atomic_op.eq(x_decoded.imm[0:8]),
            x_result.helper_id.eq(Mux(x_decoded.reads_a, x_a[0:32], x_decoded.imm)),
            x_result.trap.eq(x_trap),
            x_result.main_exit.eq(x_exit & ~x_returning),
            x_result.frame_op.eq((x_call & ~x_too_deep) | x_returning),
        ]

        # -- M: memory -------------------------------------------------------------------------------------
        m_live = m_stage.valid & (m_payload.trap == TrapCause.NONE)
        # a store's data from the instruction in W (the one just older), kept if M has to wait
        m_held_data = Signal(64)
        m_data_held = Signal()
        m_data_from_w = m_payload.late_data & w_stage.sink.valid & w_payload.writes_rd & (w_payload.rd == m_payload.rb)
        m_data = Signal(64)
        m.d.comb += m_data.eq(Mux(m_data_held, m_held_data, Mux(m_data_from_w, w_value, m_payload.data)))
        m_stage.stall_on(m_live & ~m_data_held & m_data_from_w & ~w_value_ready)
        with m.If(m_stage.advance | ~m_stage.valid):
            m.d.sync += m_data_held.eq(0)
        with m.Elif(m_data_from_w & w_value_ready & ~m_data_held):
            m.d.sync += [m_held_data.eq(w_value), m_data_held.eq(1)]
        m.d.comb += [
            lsu.m_valid.eq(m_live),
            lsu.m_operation.eq(m_payload.operation),
            lsu.m_address.eq(m_payload.address),
            lsu.m_size.eq(m_payload.size),
            lsu.m_data.eq(m_data),
            lsu.m_atomic_op.eq(m_payload.atomic_op),
            lsu.m_comparand.eq(regfile.low_registers[0]),
            lsu.m_can_issue.eq(m_stage.source.ready),
            lsu.m_quiet.eq(~w_stage.sink.valid | ~(w_is_load | w_is_helper)),
            lsu.m_leaving.eq(m_stage.advance | ~m_stage.valid),
        ]
        m_stage.stall_on(lsu.m_busy)
        m_stage.kill_on(flush)
        m_result = m_stage.result
        m.d.comb += [
            m_result.pc.eq(m_payload.pc),
            m_result.insn.eq(m_payload.insn),
            m_result.operation.eq(m_payload.operation),
            m_result.rd.eq(m_payload.rd),
            m_result.writes_rd.eq(m_payload.writes_rd & ~lsu.m_fault),
            m_result.value.eq(Mux(m_payload.operation == Operation.ATOMIC, lsu.m_fetched, m_payload.value)),
            m_result.size.eq(m_payload.size),
            m_result.signed.eq(m_payload.signed),
            m_result.computed.eq(lsu.m_computed),
            m_result.helper_id.eq(m_payload.helper_id),
            m_result.main_exit.eq(m_payload.main_exit),
            m_result.frame_op.eq(m_payload.frame_op),
            m_result.trap.eq(Mux(m_payload.trap != TrapCause.NONE, m_payload.trap,
                                 Mux(lsu.m_fault, TrapCause.BAD_ACCESS, TrapCause.NONE))),
            m_result.store.eq(lsu.m_wrote),
            m_result.store_address.eq(m_payload.address[0:ADDRESS_WIDTH]),
            m_result.store_size.eq(m_payload.size),
            m_result.store_data.eq(lsu.m_written),
        ]

        # -- W: write back, helpers, frames, retire, end of program --------------------------------------
        helper_request = self.helper.request
        helper_status = helper_response.payload.status
        w_helper_issued = Signal()
        w_budget_spent = (budget != 0) & (cycles >= budget)
        # the budget ends the program between instructions, never inside a load or helper call under way
        w_budget_trap = w_budget_spent & ~w_is_load & ~w_helper_issued
        m.d.comb += [
            lsu.w_load.eq(w_stage.valid & w_is_load),
            lsu.w_size.eq(w_payload.size),
            lsu.w_signed.eq(w_payload.signed),
            lsu.w_computed.eq(w_payload.computed),
            helper_request.valid.eq(w_stage.valid & w_is_helper & ~w_helper_issued & ~w_budget_trap),
            helper_request.payload.id.eq(w_payload.helper_id),
        ]
        m.d.comb += [helper_request.payload.args[index - 1].eq(regfile.low_registers[index]) for index in range(1, 6)]
        with m.If(w_stage.advance | ~w_stage.valid):
            m.d.sync += w_helper_issued.eq(0)
        with m.Elif(helper_request.valid & helper_request.ready):
            m.d.sync += w_helper_issued.eq(1)
        w_stage.stall_on((w_is_load & ~lsu.w_ready)
                         | (w_is_helper & ~w_budget_trap & ~(w_helper_issued & helper_response.valid)))

        w_cause = Signal(TrapCause)
        w_operation = w_payload.operation
        with m.If(~w_no_trap):
            m.d.comb += w_cause.eq(w_payload.trap)
        with m.Elif(w_budget_trap):
            m.d.comb += w_cause.eq(TrapCause.CYCLE_BUDGET)
        with m.Elif(w_is_helper & (helper_status == HelperStatus.UNKNOWN)):
            m.d.comb += w_cause.eq(TrapCause.UNKNOWN_HELPER)
        with m.Elif(w_is_helper & (helper_status == HelperStatus.FAULT)):
            m.d.comb += w_cause.eq(TrapCause.HELPER_FAULT)
        w_trapped = w_cause != TrapCause.NONE
        w_helper_exit = w_is_helper & ~w_trapped & (helper_status == HelperStatus.EXIT)
        w_tail_call = w_is_helper & ~w_trapped & (helper_status == HelperStatus.TAIL_CALL)
        w_main_exit = (w_operation == Operation.EXIT) & w_payload.main_exit & ~w_trapped
        w_retiring = Signal()
        m.d.comb += [
            program_end.eq(w_stage.advance & (w_trapped | w_helper_exit | w_main_exit)),
            w_retiring.eq(w_stage.advance & ~w_trapped & ~w_helper_exit & ~w_tail_call),
            # a tail call continues at the entry slot the helper gave, behind nothing younger
            w_jump.eq(w_stage.advance & w_tail_call),
            w_jump_pc.eq(helper_response.payload.r0[0:PC_WIDTH]),
            flush.eq(program_end | w_jump),
        ]
        m.d.comb += [
            regfile.write_enable.eq(w_retiring & w_payload.writes_rd),
            regfile.write_index.eq(w_payload.rd),
            regfile.write_data.eq(w_value),
            # for the lockstep harness: r6..r10 already show a call or return that has not retired yet
            self.frames_ahead.eq((m_stage.sink.valid & m_payload.frame_op) | (w_stage.sink.valid & w_payload.frame_op)),
        ]
        with m.If(w_retiring | w_helper_exit | w_jump):
            m.d.sync += instructions.eq(instructions + 1)

        retire = self.retire.payload
        m.d.comb += [
            self.retire.valid.eq(w_retiring),
            retire.pc.eq(w_payload.pc),
            retire.insn.eq(w_payload.insn),
            retire.rd.eq(w_payload.rd),
            retire.rd_written.eq(w_payload.writes_rd),
            retire.value.eq(w_value),
            retire.store.eq(w_payload.store),
            retire.store_address.eq(w_payload.store_address),
            retire.store_size.eq(w_payload.store_size),
            retire.store_data.eq(w_payload.store_data),
        ]

        report = self.exit.payload
        m.d.sync += self.exit.valid.eq(program_end)
        with m.If(program_end):
            m.d.sync += [
                report.r0.eq(Mux(w_trapped, 0, Mux(w_helper_exit, helper_response.payload.r0,
                                                   regfile.low_registers[0]))),
                report.cause.eq(w_cause),
                report.pc.eq(w_payload.pc),
                report.instructions.eq(instructions + (w_retiring | w_helper_exit)),
                report.cycles.eq(cycles + 1),
            ]
        return m
