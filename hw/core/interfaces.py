"""The ports of the eBPF core toward the NIC around it: layouts, port signatures and the trap causes.

Everything the core exchanges with the outside is declared here, so that the core, the lockstep harness
(sim/lockstep.py) and the NIC pipeline agree on one definition.

Pointers are 64-bit eBPF values in the project's pointer map (sw/memory.py, docs/architecture.md "Pointer
map"): a region tag in bits 32..39, a byte offset in bits 0..31, bits 40..63 zero. The data port carries
the 40 meaningful bits of a pointer as its address; the memory system outside the core decodes the tag.

Ports (directions as seen from the core):
  imem_write  host -> core   write one 64-bit instruction slot (little-endian word, opcode in bits 0..7)
  regions     host -> core   set one region descriptor (tag, size, writable, present) for the bounds checks
  start       host -> core   start a program: entry slot, r1, r2, program length, cycle budget
  exit        core -> host   one-cycle report when the program ends: r0, cause, pc, instructions, cycles
  data        core -> memory loads, stores and atomics (request/response, any latency)
  helper      core -> helper helper calls (RFC 9669 §4.3.1 src_reg 0): id, r1..r5 out; r0 and a status back
  retire      core -> trace  one record per retired instruction, for lockstep checking
  busy        core -> host   a program is running (start is not ready)

The instruction memory is written only while the core is idle. Region descriptors may change while a
program runs: a helper that moves the end of the packet (bpf_xdp_adjust_head/_tail) rewrites the packet
region's descriptor before it answers, and the next access is checked against the new size.

Data port protocol: a request is a transfer on `data.request` (valid and ready high in the same cycle).
A read (write = 0) is answered by exactly one `data.response` in a later cycle, in request order; a write
has no response and must be visible to every later request and helper once accepted. Read data come
right-aligned (the byte at `address` in bits 0..7); bytes above the access size are ignored. Accesses may
be unaligned. The core never issues a request outside the regions it was given (it traps instead).
A region described as `computed` holds fields whose values the memory system computes, as the golden VM's
load hooks do: the XDP context, whose 4-byte `data`, `data_end` and `data_meta` fields read as 64-bit
packet pointers (the kernel rewrites those loads the same way). A load from it takes all 64 bits of the
response as the value, neither cut to the access size nor extended.

Helper port protocol: a call is a transfer on `helper.request`; its answer is one `helper.response` in a
later cycle, with r0 and a status: OK (r0 is written), EXIT (the program ends with this r0, as the
conformance suite's helper 5 does), UNKNOWN (no such helper: trap UNKNOWN_HELPER), FAULT (the helper
refused its arguments: trap HELPER_FAULT), or TAIL_CALL (bpf_tail_call succeeded: r0 is the entry slot of
the next program, already in the instruction memory; execution continues there with the registers and the
call frame unchanged, and the call itself does not retire, as in the golden VM).
"""

from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from bpfnic.sw import memory

#: Width of a program counter (an instruction slot index, RFC 9669 §3).
PC_WIDTH = 32
#: Bits of a pointer that name a byte: 8 bits of region tag over 32 bits of offset (sw/memory.py).
ADDRESS_WIDTH = memory.REGION_SHIFT + 8


class TrapCause(enum.Enum, shape=4):
    """Why a program ended. Anything but NONE is reported as XDP_ABORTED with r0 = 0."""

    NONE = 0                 # EXIT from the main frame, or a helper answered EXIT
    BAD_ACCESS = 1           # load/store/atomic outside its region, into a read-only region, or a null pointer
    INVALID_INSTRUCTION = 2  # not an RFC 9669 encoding, or one the core does not run (legacy packet loads,
                             # kfunc calls, lddw of a BTF variable or code address, lddw of a missing map)
    CYCLE_BUDGET = 3         # the cycle budget of the start port ran out
    CALL_DEPTH = 4           # a local call beyond isa.MAX_CALL_FRAMES frames
    UNKNOWN_HELPER = 5       # the helper port answered UNKNOWN
    HELPER_FAULT = 6         # the helper port answered FAULT
    PC_OUT_OF_PROGRAM = 7    # execution ran past the last instruction (or jumped outside the program)


class HelperStatus(enum.Enum, shape=3):
    OK = 0
    EXIT = 1
    UNKNOWN = 2
    FAULT = 3
    TAIL_CALL = 4


#: Size of a memory access as log2 of its byte count: 0 = 1 byte, 1 = 2, 2 = 4, 3 = 8.
SIZE_LOG2 = {1: 0, 2: 1, 4: 2, 8: 3}

MemoryRequest = data.StructLayout({
    "address": ADDRESS_WIDTH,   # the pointer's tag and offset
    "size": 2,                  # log2 of the byte count
    "write": 1,
    "data": 64,                 # write data, right-aligned
})

HelperRequest = data.StructLayout({
    "id": 32,                              # imm of CALL, or the register of CALLX (low 32 bits)
    "args": data.ArrayLayout(64, 5),       # r1..r5
})

HelperResponse = data.StructLayout({
    "r0": 64,
    "status": HelperStatus,
})

StartRequest = data.StructLayout({
    "pc": PC_WIDTH,               # entry slot
    "r1": 64,                     # context pointer (bare programs: pointer to their memory)
    "r2": 64,                     # bare programs: memory length; 0 otherwise
    "program_length": PC_WIDTH,   # slots; fetching at or beyond it traps PC_OUT_OF_PROGRAM
    "cycle_budget": 32,           # cycles the program may take; 0 = no limit
})

ExitReport = data.StructLayout({
    "r0": 64,
    "cause": TrapCause,
    "pc": PC_WIDTH,               # the instruction that exited or trapped
    "instructions": 32,           # instructions retired
    "cycles": 32,                 # cycles from the start transfer to this report
})

ImemWrite = data.StructLayout({
    "address": PC_WIDTH,          # slot index
    "data": 64,                   # the slot's 64-bit little-endian word
})

RegionWrite = data.StructLayout({
    "tag": 8,                     # memory.TAG_* or memory.TAG_MAP_VALUE_BASE + n
    "size": 32,                   # bytes
    "writable": 1,
    "computed": 1,                # loads take all 64 bits of the response (see below)
    "present": 1,                 # 0 removes the region
})

RetireRecord = data.StructLayout({
    "pc": PC_WIDTH,
    "insn": 64,                   # the instruction word (the first slot of an lddw)
    "rd": 4,                      # register written, when rd_written
    "rd_written": 1,
    "value": 64,                  # the value written to rd
    "store": 1,                   # the instruction wrote memory (store, or an atomic that wrote)
    "store_address": ADDRESS_WIDTH,
    "store_size": 2,
    "store_data": 64,             # the value written, right-aligned
})


class DataPort(wiring.Signature):
    """The core's port to the memory system (see the module docstring for the protocol)."""

    def __init__(self):
        super().__init__({
            "request": Out(stream.Signature(MemoryRequest)),
            "response": In(stream.Signature(64, always_ready=True)),
        })


class HelperPort(wiring.Signature):
    def __init__(self):
        super().__init__({
            "request": Out(stream.Signature(HelperRequest)),
            "response": In(stream.Signature(HelperResponse, always_ready=True)),
        })
