"""The software NIC: the golden VM behind the NIC's register map, as a driver transport (sw/transport.py).

Ref: hw/pipeline/csr.py (the register map, and the host sequences of `CsrDriver` it answers: return codes, STATUS,
MAP_STATUS, BUFFER, INJECT_STATUS and HOST_RX_* as the RTL gives them), hw/pipeline/nic_model.py (the NIC per
frame: MAC verdict, packet buffer, golden VM, the dispatcher's verdict, TX MAC; its pieces are reused here),
hw/pipeline/map_config.py and the map units (host commands with the bpf() syscall's semantics, the staging buffer,
READ_ENTRY positions), hw/pipeline/helper_unit.py (trace_printk records, get_prandom_u32),
hw/pipeline/packet_buffer.py (slots, and the host queue's reader, which frees a slot when it has read the frame).

`SoftNicTransport(config)` is a NIC built with `config` (hw/pipeline/nic.NicConfig). What the host wrote is what
runs: the program is decoded (sw/isa.py) from the instruction memory, from PROG_ENTRY up to PROG_LENGTH; its maps
are the config's map slots (`MapSlotConfig.model`, hash slots behind map_hash.HashUnitModel so that buckets,
-E2BIG on a full bucket pair and READ_ENTRY positions are the hash unit's), filled by the host's map commands;
program-array entries are instruction slots (map_progarray.ProgramEntry) and a tail call continues at the slot
its entry names; the map value regions are the host's region descriptors. A frame runs on the golden VM
(sw/xdp.XdpSession) when it arrives while CONTROL.ENABLE is set, otherwise it waits in the packet buffer (up to
`config.slots` frames, more are counted dropped_buffer_full) and runs when ENABLE is set.

No time: a software NIC does all its work when a frame arrives or a register is written. `cycle` stays 0, `run`
does nothing, no wire is ever busy, the `cycles` counter stays 0, STATUS says the dispatcher is idle and no core
runs. `instructions` counts the instructions the programs retired, as the golden VM counts them.

As the RTL's helper unit (and not as the golden VM alone): get_prandom_u32 is its xorshift32 from its seed;
trace_printk puts a record in the trace queue (a full queue drops it and counts trace_dropped) and returns the
format's length; a helper whose arguments a map refuses faults.

Where this NIC differs from the RTL (none of it shows with a verified object loaded by the driver):
  - CYCLE_BUDGET bounds the instructions a frame may retire (there are no cycles); 0 leaves the VM's own limit.
    Running out traps as CYCLE_BUDGET; the RTL, taking more than a cycle for some instructions, runs out sooner.
  - ktime_get_ns is always 0 (nic_model.NicModel's clock); the RTL counts nanoseconds of its clock.
  - An instruction memory that does not decode from PROG_ENTRY to PROG_LENGTH (an invalid encoding, a jump out
    of it, nothing there) traps every frame before its first instruction (INVALID_INSTRUCTION, or
    PC_OUT_OF_PROGRAM for a jump out or an empty program); the RTL runs up to the bad instruction. The same holds
    for the slots a tail call goes to.
  - Region descriptors other than map value regions (tags 0x80 + n) are ignored: the VM builds the context,
    packet and stack regions itself. An LDDW of a map whose region is not present is not refused.
  - Frames leave at once: a TX port never backs up. (A frame to the host does hold its slot, as in the RTL, until
    the host has read all of it but what the reader's 4-word FIFO holds.)
  - The packet buffer of a frame is the golden VM's (4096 bytes, sw/xdp.py): with a slot_size above 4096, frames
    longer than its 3520 bytes are counted dropped_too_long, and adjust_tail keeps the VM's limit.
  - INJECT_CONTROL naming a port the NIC does not have raises TransportError (the RTL keeps the port number's
    low bits); READ_ENTRY of a BPF_F_WRONLY LPM trie or devmap_hash finds nothing (the model refuses to list
    its keys).
"""

from __future__ import annotations

import errno
from collections import deque
from typing import Sequence

from bpfnic.hw.core.interfaces import TrapCause
from bpfnic.hw.pipeline import mac_model
from bpfnic.hw.pipeline.csr import (COUNTERS_BASE, ID_VALUE, KEY_BYTES, MAP_DONE, MAP_FOUND, REGION_PRESENT,
                                    REGION_WRITABLE, STATUS_DISPATCHER_IDLE, STATUS_HOST_FRAME, STATUS_TRACE,
                                    VERSION, MapOp, Reg)
from bpfnic.hw.pipeline.dispatcher import VERDICTS, DispatcherCounters, apply_verdict
from bpfnic.hw.pipeline.gmii import FCS_BYTES, PREAMBLE_LENGTH, RX_COUNTER_OF_STATUS, RxStatus
from bpfnic.hw.pipeline.helper_unit import DEFAULT_TRACE_FORMAT_MAX, TRACE_MARKER, XorShift32
from bpfnic.hw.pipeline.map_hash import HashUnitModel
from bpfnic.hw.pipeline.map_progarray import ProgramEntry
from bpfnic.hw.pipeline.nic import NicConfig, counter_names
from bpfnic.hw.pipeline.nic_model import DEFAULT_PRANDOM_SEED
from bpfnic.hw.pipeline.packet_buffer import HEADROOM, OUTPUT_FIFO_DEPTH
from . import isa, maps, memory, xdp
from .driver import VERDICT_NAMES
from .isa import InsnKind
from .transport import Transport, TransportError
from .vm import DEFAULT_INSTRUCTION_LIMIT, M32, M64, VmFault

TRAP_CAUSES = [cause for cause in TrapCause if cause != TrapCause.NONE]


class _HashSlot:
    """A hash map slot as its unit keeps it: sw/maps.py's map behind map_hash.HashUnitModel (the unit's two tables
    of buckets: -E2BIG when both buckets of a new key are full, LRU evictions among them, READ_ENTRY positions).
    Everything but update and delete is the map's own."""

    def __init__(self, slot):
        self.unit = HashUnitModel(slot)

    def __getattr__(self, name):
        if name == "unit":          # not set yet (copy, pickle): no delegation loop
            raise AttributeError(name)
        return getattr(self.unit.map, name)

    def update(self, key: bytes, value, flags: int = maps.BPF_ANY, cpu: int | None = None) -> int:
        return self.unit.update(key, value, flags, cpu)

    def delete(self, key: bytes, cpu: int | None = None) -> int:
        return self.unit.delete(key, cpu)


class _TailCallTarget:
    """A program array entry: where a program sits in the instruction memory. A tail call reads `insns`, the
    slots decoded when it is taken (a trap when they do not decode, see the module docstring)."""

    def __init__(self, nic: "SoftNicTransport", entry: ProgramEntry):
        self.nic = nic
        self.entry = entry

    @property
    def section(self) -> str:
        return f"slot {self.entry.entry_pc}"

    @property
    def insns(self) -> isa.Program:
        end = min(self.entry.entry_pc + self.entry.length, self.nic._program_length)
        decoded = self.nic._decoded(self.entry.entry_pc, end)
        if isinstance(decoded, isa.Program):
            return decoded
        cause, reason = decoded
        self.nic._trap_override = cause
        raise self.nic._session.vm.fault(f"tail call to {self.section}: {reason}")


def _map_errors_fault(helper):
    """A helper whose map raises MapError (arguments the map cannot take) faults, as the helper unit answers
    FAULT (hw/pipeline/helper_model.py)."""
    def call(vm, *args):
        try:
            return helper(vm, *args)
        except maps.MapError as error:
            raise vm.fault(str(error)) from None
    return call


def _map_call(function, *args):
    """A sw/maps.py call as a map unit answers it: MapError (e.g. a host read of a BPF_F_WRONLY map) -> -errno."""
    try:
        return function(*args)
    except maps.MapError as error:
        return -error.errno


class SoftNicTransport(Transport):
    """A NIC built with `config`, on the golden VM (see the module docstring)."""

    name = "vm"

    def __init__(self, config: NicConfig):
        if not isinstance(config, NicConfig):
            raise TransportError(f"SoftNicTransport: expected a hw/pipeline/nic.NicConfig, got {type(config).__name__}")
        self._config = config
        self._closed = False
        slots = config.maps.slots
        self._names = counter_names(config)
        self._counts = dict.fromkeys(self._names, 0)
        self._fates = DispatcherCounters(config.ports)
        self._max_buffer_frame = min(config.slot_size - HEADROOM - config.tailroom, xdp.MAX_PACKET_SIZE)

        # program and instruction memory
        self._enabled = False
        self._program_entry = 0
        self._program_length = 0
        self._cycle_budget = 0
        self._imem = [0] * config.imem_depth
        self._imem_address = 0
        self._imem_low = 0
        self._decode_cache: dict[tuple[int, int], object] = {}
        self._region_tag = 0
        self._region_size = 0

        # maps, and the golden VM over them
        self._maps = [_HashSlot(slot) if slot.kind == "hash" else slot.model() for slot in slots]
        self._session = xdp.XdpSession.for_program(isa.Program(), self._maps, name="soft nic",
                                                   ncpus=config.maps.ncpus, cpu=0, clock_ns=lambda: 0,
                                                   map_regions=False)
        self._session.random = XorShift32(DEFAULT_PRANDOM_SEED)
        helpers = self._session.vm.helpers
        for helper_id, helper in helpers.items():
            helpers[helper_id] = _map_errors_fault(helper)
        helpers[xdp.HELPER_TRACE_PRINTK] = self._trace_printk
        self._trace_format_max = 8 * max(config.maps.value_buffer_words, -(-DEFAULT_TRACE_FORMAT_MAX // 8))
        self._trap_override: TrapCause | None = None
        self._frames_run = 0

        # map command registers
        self._map_select = 0
        self._map_flags = 0
        self._map_index = 0
        self._map_key = bytearray(KEY_BYTES)
        self._map_status = 0
        self._map_result = 0
        self._staging = [[0] * slot.staging_words for slot in slots]
        self._staging_address = 0
        self._staging_low = 0
        self._positions: dict[int, dict[int, bytes]] = {}    # READ_ENTRY positions of LPM tries and devmap_hash

        # frames: waiting for dispatch, injected, to the host, on the TX wires; the trace queue
        self._waiting: deque[tuple[int, bytes]] = deque()
        self._inject_remaining = 0
        self._inject_port = 0
        self._inject_refused = False
        self._inject_frame = bytearray()
        self._host_queue: deque[tuple[bytes, int]] = deque()
        self._host_reads = 0                 # 4-byte reads of the head frame so far
        self._transmitted: dict[int, list[mac_model.DecodedFrame]] = {port: [] for port in range(config.ports)}
        self._trace_words: deque[int] = deque()

        self._readers = self._register_readers()
        self._writers = self._register_writers()

    # -- Transport -------------------------------------------------------------------------------------------
    @property
    def config(self) -> NicConfig:
        return self._config

    def read(self, address: int) -> int:
        self._check_open()
        address = self._checked_address(address)
        reader = self._readers.get(address)
        if reader is not None:
            return reader() & M32
        counter = (address - COUNTERS_BASE) // 4
        if address >= COUNTERS_BASE and address % 4 == 0 and counter < len(self._names):
            return self._counts[self._names[counter]] & M32
        return 0

    def write(self, address: int, value: int) -> None:
        self._check_open()
        address = self._checked_address(address)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TransportError(f"register 0x{address:04x}: the value must be an int, got {value!r}")
        writer = self._writers.get(address)
        if writer is not None:
            writer(value & M32)

    def send(self, port: int, bursts: Sequence) -> None:
        self._check_open()
        self._check_port(port, "send")
        bursts = list(bursts)
        for position, burst in enumerate(bursts):
            if not isinstance(burst, mac_model.WireFrame):
                raise TransportError(f"send: port {port}: burst {position} is a {type(burst).__name__}, not a "
                                     f"mac_model.WireFrame")
        try:
            samples = mac_model.gmii_samples(bursts)
        except ValueError as error:
            raise TransportError(f"send: port {port}: {error}") from None
        for frame in mac_model.decode_gmii(samples):
            self._receive_from_wire(port, frame)

    def take_transmitted(self, port: int) -> list:
        self._check_open()
        self._check_port(port, "take_transmitted")
        frames, self._transmitted[port] = self._transmitted[port], []
        return frames

    def wire_busy(self) -> bool:
        self._check_open()
        return False

    def run(self, cycles: int) -> None:
        self._check_open()
        if isinstance(cycles, bool) or not isinstance(cycles, int) or cycles < 0:
            raise TransportError(f"run: cycles must be a non-negative int, got {cycles!r}")

    @property
    def cycle(self) -> int:
        return 0

    def close(self) -> None:
        self._closed = True

    # -- input checks ------------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise TransportError("the software NIC is closed")

    def _check_port(self, port, what: str) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < self._config.ports:
            raise TransportError(f"{what}: port {port!r}: the NIC has ports 0..{self._config.ports - 1}")

    @staticmethod
    def _checked_address(address) -> int:
        if isinstance(address, bool) or not isinstance(address, int) or not 0 <= address <= 0xFFFF:
            raise TransportError(f"register address {address!r}: the CSR bus takes byte addresses 0..0xffff")
        return address

    # -- registers ---------------------------------------------------------------------------------------------
    def _register_readers(self) -> dict:
        config = self._config
        readers = {
            Reg.ID: lambda: ID_VALUE,
            Reg.VERSION: lambda: VERSION,
            Reg.CONFIG: lambda: (config.ports | config.cores << 8 | len(config.maps.slots) << 16
                                 | (config.slot_size.bit_length() - 1) << 24),
            Reg.BUFFER: lambda: config.slots | self._free_slots() << 16,
            Reg.CONTROL: lambda: int(self._enabled),
            Reg.STATUS: self._status,
            Reg.PROG_ENTRY: lambda: self._program_entry,
            Reg.PROG_LENGTH: lambda: self._program_length,
            Reg.CYCLE_BUDGET: lambda: self._cycle_budget,
            Reg.IMEM_ADDRESS: lambda: self._imem_address,
            Reg.IMEM_DATA_LOW: lambda: self._imem_low,
            Reg.REGION_TAG: lambda: self._region_tag,
            Reg.REGION_SIZE: lambda: self._region_size,
            Reg.INJECT_STATUS: lambda: (int(self._inject_remaining != 0) | int(self._inject_refused) << 1
                                        | min(config.inject_words * 8, 0xFFFF) << 16),
            Reg.HOST_RX_STATUS: self._host_rx_status,
            Reg.HOST_RX_DATA: self._host_rx_data,
            Reg.TRACE_STATUS: lambda: int(bool(self._trace_words)) << 31,
            Reg.TRACE_LOW: lambda: self._trace_words[0] & M32 if self._trace_words else 0,
            Reg.TRACE_HIGH: self._trace_high,
            Reg.MAP_SELECT: lambda: self._map_select,
            Reg.MAP_STATUS: lambda: self._map_status,
            Reg.MAP_RESULT: lambda: self._map_result,
            Reg.MAP_FLAGS_LOW: lambda: self._map_flags & M32,
            Reg.MAP_FLAGS_HIGH: lambda: self._map_flags >> 32,
            Reg.MAP_INDEX: lambda: self._map_index,
            Reg.STAGING_ADDRESS: lambda: self._staging_address,
            Reg.STAGING_LOW: lambda: self._staging_word() & M32,
            Reg.STAGING_HIGH: self._staging_high,
        }
        for word in range(KEY_BYTES // 4):
            readers[Reg.MAP_KEY + 4 * word] = (
                lambda word=word: int.from_bytes(self._map_key[4 * word:4 * word + 4], "little"))
        return readers

    def _register_writers(self) -> dict:
        def setter(name: str, mask: int = M32):
            def write(value: int) -> None:
                setattr(self, name, value & mask)
            return write

        writers = {
            Reg.CONTROL: self._write_control,
            Reg.PROG_ENTRY: setter("_program_entry"),
            Reg.PROG_LENGTH: setter("_program_length"),
            Reg.CYCLE_BUDGET: setter("_cycle_budget"),
            Reg.IMEM_ADDRESS: setter("_imem_address"),
            Reg.IMEM_DATA_LOW: setter("_imem_low"),
            Reg.IMEM_DATA_HIGH: self._write_imem,
            Reg.REGION_TAG: setter("_region_tag", 0xFF),
            Reg.REGION_SIZE: setter("_region_size"),
            Reg.REGION_COMMIT: self._commit_region,
            Reg.INJECT_CONTROL: self._start_injection,
            Reg.INJECT_DATA: self._inject_data,
            Reg.HOST_RX_DISCARD: self._host_rx_discard,
            Reg.MAP_SELECT: setter("_map_select", 0xFF),
            Reg.MAP_COMMAND: self._map_command,
            Reg.MAP_FLAGS_LOW: lambda value: setattr(self, "_map_flags", self._map_flags & ~M32 | value),
            Reg.MAP_FLAGS_HIGH: lambda value: setattr(self, "_map_flags", self._map_flags & M32 | value << 32),
            Reg.MAP_INDEX: setter("_map_index"),
            Reg.STAGING_ADDRESS: setter("_staging_address", 0xFFFF),
            Reg.STAGING_LOW: setter("_staging_low"),
            Reg.STAGING_HIGH: self._write_staging,
        }
        for word in range(KEY_BYTES // 4):
            def write_key(value: int, word=word) -> None:
                self._map_key[4 * word:4 * word + 4] = value.to_bytes(4, "little")
            writers[Reg.MAP_KEY + 4 * word] = write_key
        return writers

    def _status(self) -> int:
        status = STATUS_DISPATCHER_IDLE     # no core is ever left running between two register accesses
        if self._host_queue:
            status |= STATUS_HOST_FRAME
        if self._trace_words:
            status |= STATUS_TRACE
        return status

    def _write_control(self, value: int) -> None:
        self._enabled = bool(value & 1)
        self._dispatch()

    def _write_imem(self, high: int) -> None:
        if self._imem_address < len(self._imem):
            self._imem[self._imem_address] = self._imem_low | high << 32
            self._decode_cache.clear()
        self._imem_address = (self._imem_address + 1) & M32

    def _commit_region(self, value: int) -> None:
        index = self._region_tag - memory.TAG_MAP_VALUE_BASE
        if not 0 <= index < len(self._maps):
            return      # the VM makes the context, packet and stack regions itself
        tag = self._region_tag
        vm = self._session.vm
        if not value & REGION_PRESENT:
            vm.remove_region(tag)
            return
        bpf_map = self._maps[index]
        vm.add_region(memory.Region(f"map {bpf_map.name}", tag, bpf_map.value_memory,
                                    writable=bool(value & REGION_WRITABLE),
                                    size=min(self._region_size, len(bpf_map.value_memory))))

    # -- frames in -----------------------------------------------------------------------------------------------
    def _receive_from_wire(self, port: int, frame: mac_model.DecodedFrame) -> None:
        status = mac_model.rx_verdict(frame.octets, phy_error=frame.error,
                                      max_frame_bytes=self._config.max_frame_bytes)
        self._counts[f"port{port}.rx_{RX_COUNTER_OF_STATUS[status]}"] += 1
        if status == RxStatus.OK:
            self._store(port, frame.octets[:-FCS_BYTES])

    def _start_injection(self, value: int) -> None:
        length, port = value & 0xFFFF, value >> 16 & 0xFF
        refused = length == 0 or length > self._config.inject_words * 8 or self._inject_remaining != 0
        if not refused and port >= self._config.ports:
            raise TransportError(f"INJECT_CONTROL: ingress port {port}: the NIC has ports 0..{self._config.ports - 1}")
        self._inject_refused = refused
        if not refused:
            self._inject_remaining, self._inject_port, self._inject_frame = length, port, bytearray()

    def _inject_data(self, value: int) -> None:
        if not self._inject_remaining:
            return
        taken = min(4, self._inject_remaining)
        self._inject_frame += value.to_bytes(4, "little")[:taken]
        self._inject_remaining -= taken
        if not self._inject_remaining:
            self._store(self._inject_port, bytes(self._inject_frame))

    def _store(self, port: int, frame: bytes) -> None:
        """A frame into the packet buffer (a slot is taken at its first word, its length known at its end)."""
        if not self._free_slots():
            self._counts[f"port{port}.dropped_buffer_full"] += 1
        elif len(frame) > self._max_buffer_frame:
            self._counts[f"port{port}.dropped_too_long"] += 1
        else:
            self._counts[f"port{port}.buffer_stored"] += 1
            self._waiting.append((port, frame))
            self._dispatch()

    def _free_slots(self) -> int:
        return self._config.slots - len(self._waiting) - self._host_slots()

    def _host_slots(self) -> int:
        """Slots the host queue holds: the reader frees a frame's slot once it has put its last word in its
        FIFO of OUTPUT_FIFO_DEPTH words, which the host empties."""
        issued = self._host_reads // 2 + OUTPUT_FIFO_DEPTH
        held = words = 0
        for frame, _ in self._host_queue:
            words += -(-len(frame) // 8)
            held += words > issued
        return held

    # -- running frames --------------------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        while self._enabled and self._waiting:
            port, frame = self._waiting.popleft()
            self._run_frame(port, frame)

    def _decoded(self, start: int, end: int):
        """The program in instruction slots [start, end), or (trap cause, why) when there is none."""
        end = min(end, len(self._imem))
        cached = self._decode_cache.get((start, end))
        if cached is not None:
            return cached
        if start >= end:
            decoded = (TrapCause.PC_OUT_OF_PROGRAM, f"no instruction at slot {start} (program length {end})")
        else:
            code = b"".join(word.to_bytes(8, "little") for word in self._imem[start:end])
            try:
                decoded = isa.decode_program(code, check_targets=False)
            except isa.IsaError as error:
                decoded = (TrapCause.INVALID_INSTRUCTION, f"slots {start}..{end - 1}: {error}")
            else:
                try:
                    isa.check_jump_targets(decoded)
                except isa.IsaError as error:
                    decoded = (TrapCause.PC_OUT_OF_PROGRAM, f"slots {start}..{end - 1}: {error}")
        self._decode_cache[(start, end)] = decoded
        return decoded

    def _run_frame(self, port: int, frame: bytes) -> None:
        self._positions.clear()
        self._trap_override = None
        program = self._decoded(self._program_entry, self._program_length)
        if isinstance(program, isa.Program):
            vm = self._session.vm
            vm.program = program
            vm.instruction_limit = self._cycle_budget or DEFAULT_INSTRUCTION_LIMIT
            result = self._session.run_packet(frame, self._frames_run, ingress_ifindex=port + 1, rx_queue_index=0)
            action, data, redirect = result.action, result.data, result.redirect
            instructions = result.instructions or 0
            cause = TrapCause.NONE if result.vm_fault is None else self._trap_cause(result.vm_fault)
        else:
            action, data, redirect, instructions, cause = xdp.XDP_ABORTED, frame, None, 0, program[0]
        self._frames_run += 1
        self._counts["instructions"] += instructions
        fate = apply_verdict(self._fates, r0=action, trap=cause.value, redirect=redirect, ingress_port=port)
        self._count_fates()
        if fate.output is None:
            return
        if fate.output == self._config.ports:
            self._host_queue.append((data, fate.info))
        elif len(data) + FCS_BYTES > self._config.max_frame_bytes:
            self._counts[f"port{fate.output}.tx_oversize"] += 1
        else:
            self._counts[f"port{fate.output}.tx_frames_ok"] += 1
            self._transmitted[fate.output].append(mac_model.DecodedFrame(
                mac_model.with_fcs(data), error=False, preamble_length=PREAMBLE_LENGTH, start_cycle=0, end_cycle=0))

    def _trap_cause(self, fault: VmFault) -> TrapCause:
        """The core's trap cause for a golden VM fault, from the instruction that faulted."""
        if self._trap_override is not None:
            return self._trap_override
        # the two faults of the VM's dispatch loop, which are not any instruction's own
        if fault.reason.startswith("instruction limit"):
            return TrapCause.CYCLE_BUDGET
        if fault.reason.startswith("execution fell off"):
            return TrapCause.PC_OUT_OF_PROGRAM
        insn = fault.insn
        kind = isa.OPCODES[insn.opcode].kind if insn is not None and insn.opcode in isa.OPCODES else None
        if kind in (InsnKind.LDX, InsnKind.ST, InsnKind.STX, InsnKind.ATOMIC):
            return TrapCause.BAD_ACCESS
        if kind == InsnKind.CALL and insn.src == isa.BPF_PSEUDO_CALL_LOCAL:
            return TrapCause.CALL_DEPTH
        if kind == InsnKind.CALL and insn.src == isa.BPF_PSEUDO_CALL_HELPER or kind == InsnKind.CALLX:
            unknown = fault.reason.startswith("call to unknown helper")
            return TrapCause.UNKNOWN_HELPER if unknown else TrapCause.HELPER_FAULT
        return TrapCause.INVALID_INSTRUCTION     # kfunc calls, LDDW of a missing map

    def _count_fates(self) -> None:
        fates, counts = self._fates, self._counts
        for port in range(self._config.ports):
            counts[f"port{port}.sent"] = fates.to_port[port]
        counts["host.passed"] = fates.to_host
        for name, action in zip(VERDICT_NAMES, VERDICTS):
            counts[f"verdict.{name}"] = fates.verdicts[action]
        for cause in TRAP_CAUSES:
            counts[f"trap.{cause.name.lower()}"] = fates.traps[cause.value]
        counts["invalid_action"] = fates.invalid_action
        counts["redirect_failed"] = fates.redirect_failed

    def _trace_printk(self, vm, fmt_pointer: int, fmt_size: int, arg1: int, arg2: int, arg3: int) -> int:
        """bpf_trace_printk as the helper unit answers it: the format up to its NUL and r3..r5 as one record in
        the trace queue (helper_unit.decode_trace_records reads it), r0 the format's length; a record that does
        not fit the queue is dropped and counted."""
        if fmt_size > self._trace_format_max:
            return -errno.EINVAL & M64
        raw = vm.read(fmt_pointer, fmt_size)
        length = raw.find(b"\x00")
        if length < 0:
            return -errno.EINVAL & M64
        words = (length + 8) >> 3                     # the NUL included
        if len(self._trace_words) + words + 4 > self._config.trace_depth:
            self._counts["trace_dropped"] += 1
            return length
        text = raw[:8 * words].ljust(8 * words, b"\x00")
        self._trace_words.append(length | words << 24 | TRACE_MARKER << 56)      # core 0 in bits 16..23
        self._trace_words.extend(int.from_bytes(text[i:i + 8], "little") for i in range(0, len(text), 8))
        self._trace_words.extend((arg1, arg2, arg3))
        return length

    # -- frames out ------------------------------------------------------------------------------------------------
    def _host_rx_status(self) -> int:
        if not self._host_queue:
            return 0
        frame, info = self._host_queue[0]
        return 1 << 31 | int(self._host_reads == 0) << 30 | info << 16 | len(frame) & 0xFFFF

    def _host_rx_data(self) -> int:
        if not self._host_queue:
            return 0
        frame, _ = self._host_queue[0]
        offset = 4 * self._host_reads
        self._host_reads += 1
        if offset + 4 >= len(frame):
            self._host_queue.popleft()
            self._host_reads = 0
        return int.from_bytes(frame[offset:offset + 4], "little")

    def _host_rx_discard(self, value: int) -> None:
        if self._host_queue:
            self._host_queue.popleft()
            self._host_reads = 0

    def _trace_high(self) -> int:
        return self._trace_words.popleft() >> 32 if self._trace_words else 0

    # -- maps --------------------------------------------------------------------------------------------------------
    def _staging_position(self) -> int | None:
        """The selected map's staging word that STAGING_ADDRESS names (a program array has one word, which every
        address reaches), or None."""
        if self._map_select >= len(self._staging):
            return None
        if self._config.maps.slots[self._map_select].kind == "progarray":
            return 0
        return self._staging_address if self._staging_address < len(self._staging[self._map_select]) else None

    def _staging_word(self) -> int:
        position = self._staging_position()
        return 0 if position is None else self._staging[self._map_select][position]

    def _staging_high(self) -> int:
        word = self._staging_word()
        self._staging_address = (self._staging_address + 1) & 0xFFFF
        return word >> 32

    def _write_staging(self, high: int) -> None:
        position = self._staging_position()
        if position is not None:
            self._staging[self._map_select][position] = self._staging_low | high << 32
        self._staging_address = (self._staging_address + 1) & 0xFFFF

    def _map_command(self, value: int) -> None:
        index = self._map_select
        if index >= len(self._maps):
            self._map_status, self._map_result = MAP_DONE, -errno.EINVAL & M32   # no such map, as the syscall
            return
        slot = self._config.maps.slots[index]
        op = value & 7
        if op != MapOp.READ_ENTRY.value:
            self._positions.clear()
        rc, found_key = self._host_command(index, slot, op, bytes(self._map_key[:slot.key_size]))
        self._map_result = rc & M32
        self._map_status = MAP_DONE
        if found_key is not None:
            self._map_status |= MAP_FOUND
            self._map_key[:slot.key_size] = found_key

    def _host_command(self, index: int, slot, op: int, key: bytes) -> tuple[int, bytes | None]:
        """(rc, the key the unit answers when it found something: the entry's for READ_ENTRY, zeros for LOOKUP)."""
        bpf_map = self._maps[index]
        if op == MapOp.LOOKUP.value:
            value = _map_call(bpf_map.lookup, key)
            if isinstance(value, int):
                return value, None
            if value is None:
                return -errno.ENOENT, None
            if slot.kind == "progarray":
                self._staging[index][0] = value.entry.word
            else:
                copies = value if isinstance(value, list) else [value]
                raw = b"".join(copy.ljust(slot.value_stride, b"\x00") for copy in copies)
                self._staging[index][:] = [int.from_bytes(raw[o:o + 8], "little") for o in range(0, len(raw), 8)]
            return 0, bytes(slot.key_size)
        if op == MapOp.UPDATE.value:
            return _map_call(bpf_map.update, key, self._staged_value(index, slot), self._map_flags, None), None
        if op == MapOp.DELETE.value:
            return _map_call(bpf_map.delete, key, None), None
        if op == MapOp.READ_ENTRY.value:
            return 0, self._entry_key(index, slot, self._map_index)
        if op == MapOp.FREEZE.value:
            return _map_call(bpf_map.freeze), None
        return -errno.EINVAL, None

    def _staged_value(self, index: int, slot):
        staging = self._staging[index]
        if slot.kind == "progarray":
            return _TailCallTarget(self, ProgramEntry.from_word(staging[0]))
        raw = b"".join(word.to_bytes(8, "little") for word in staging)
        copies = [raw[copy * slot.value_stride:copy * slot.value_stride + slot.value_size]
                  for copy in range(slot.copies)]
        return copies if slot.per_cpu else copies[0]

    def _entry_key(self, index: int, slot, position: int) -> bytes | None:
        """READ_ENTRY: the key at entry `position` as the map's unit numbers its entries, or None."""
        bpf_map = self._maps[index]
        if slot.kind == "hash":
            return bpf_map.unit.entry(position)
        if slot.kind in ("lpm", "devmap") and slot.map_type != maps.BPF_MAP_TYPE_DEVMAP:
            # entry position = value slot (map_lpm.py, map_devmap.py's DEVMAP_HASH)
            if index not in self._positions:
                try:
                    keys = list(bpf_map.keys())
                except maps.MapError:
                    keys = []
                self._positions[index] = {bpf_map.lookup_slot(key) // slot.value_stride: key for key in keys}
            return self._positions[index].get(position)
        return position.to_bytes(4, "little") if position < slot.max_entries else None
