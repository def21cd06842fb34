"""The static verifier: proves an XDP program safe before it is offloaded, or says precisely why it is not.

In the spirit of the Linux kernel's verifier (kernel/bpf/verifier.c; Documentation/bpf/verifier.rst), written
anew for bpfnic. Two passes:

1. The control-flow graph (the kernel's check_subprogs/check_cfg): every instruction is valid (RFC 9669 §3-§5,
   via `isa.check_insn`), jumps stay inside the program and inside their function and never land on the second
   half of an LDDW, no path falls off the end, every instruction is reachable, calls are not recursive.
2. Path exploration (do_check): every path is followed with an abstract state (sw/verifier_state.py): scalars
   as known bits and signed/unsigned ranges, pointers to the context, packet, packet end, packet metadata,
   stack, map value (or null) and maps. Each instruction is checked against that state. At prune points
   (conditional jumps, targets of unconditional jumps, return sites) states are kept (as in the kernel, one
   only after 8 instructions and 2 jumps since the path's last); a later path arriving in a state within a
   fully verified one is pruned, so bounded loops verify while a loop that returns in the same state, or
   that has not finished within the kernel's 1,000,000 processed instructions, is refused: never a hang.
   As in the kernel, only the scalars some safety decision rested on (a pointer offset, a helper
   size, a branch the ranges decided) must match exactly for a pruning: registers dead at that point and other
   scalars match anything, which keeps branchy code linear.

Limits are the kernel's (`VerifierLimits`): program size, 1,000,000 processed instructions, 8192 branches
waiting, 8 call frames, 512 bytes of stack for a whole call chain, at most 256 bytes of callers' stack below
a function that makes a tail call. A tail call may only go through a program array; the chain of at most 33
tail calls (MAX_TAIL_CALL_CNT) is counted at run time, by the golden VM and the NIC, as in the kernel.

The XDP context is `struct xdp_md` of include/uapi/linux/bpf.h (six u32 fields, 4-byte loads only, read-only);
the helper prototypes below follow the kernel's (net/core/filter.c, kernel/bpf/helpers.c) and their ids the
UAPI's `___BPF_FUNC_MAPPER`. Where this verifier is knowingly stricter or looser than the kernel (which here
loads as root, with pointer leaks and uninitialised stack reads allowed), tests/test_verifier_kernel.py says
so and why. The main ones: no reads of never-written stack bytes (the NIC's stack holds the previous packet's
data), no pointers stored into maps or the packet (pointer tags are internal to the NIC), no arithmetic on
the context pointer.

Use: `verify(program, maps)` returns a `VerifierResult` (statistics) or raises `VerifierError` (program,
instruction index, disassembly, the registers involved, one sentence of reason; str() is one line).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from . import isa
from . import verifier_state as vs
from .disasm import format_insn
from .isa import InsnKind
from .maps import map_type_name
from .verifier_state import (CTX, MAP, MAP_VALUE, MAP_VALUE_OR_NULL, PKT, PKT_END, PKT_META, STACK, Pointer,
                             Scalar, State, Frame)

__all__ = ["MapInfo", "VerifierLimits", "DEFAULT", "UNPRIVILEGED", "VerifierError", "VerifierResult",
           "HelperProto", "HELPERS", "verify", "program_from_bytes", "map_infos", "main_verify"]

# -- Map types (enum bpf_map_type, include/uapi/linux/bpf.h) ---------------------------------------------------
HASH, ARRAY, PROG_ARRAY, PERCPU_HASH, PERCPU_ARRAY, LRU_HASH, LRU_PERCPU_HASH, LPM_TRIE = 1, 2, 3, 5, 6, 9, 10, 11
DEVMAP, CPUMAP, XSKMAP, QUEUE, STACK_MAP, DEVMAP_HASH = 14, 16, 17, 22, 23, 25
BPF_F_RDONLY_PROG = 1 << 7

#: Map types whose values a program may only read (the kernel creates devmaps with BPF_F_RDONLY_PROG).
_READ_ONLY_VALUES = frozenset({DEVMAP, DEVMAP_HASH, XSKMAP})


@dataclass
class MapInfo:
    """The verifier's view of a map: what `lddw rX, map_idx N` refers to (N = index in the list)."""

    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    readonly: bool = False   # programs may not write its values (.rodata, BPF_F_RDONLY_PROG)
    name: str = ""

    @property
    def values_read_only(self) -> bool:
        return self.readonly or bool(self.flags & BPF_F_RDONLY_PROG) or self.map_type in _READ_ONLY_VALUES


def _map_label(maps: Sequence[MapInfo], index: int) -> str:
    return maps[index].name or f"#{index}"


def map_infos(maps: Iterable) -> list[MapInfo]:
    """MapInfo for each map definition of the ELF loader (anything with the same attribute names)."""
    return [m if isinstance(m, MapInfo) else
            MapInfo(m.map_type, m.key_size, m.value_size, m.max_entries, getattr(m, "flags", 0),
                    getattr(m, "readonly", False), getattr(m, "name", "")) for m in maps]


@dataclass(frozen=True)
class VerifierLimits:
    """The kernel's limits (include/linux/bpf.h, kernel/bpf/verifier.c)."""

    max_instructions: int = 1_000_000   # program size: BPF_COMPLEXITY_LIMIT_INSNS for privileged loaders
    complexity: int = 1_000_000         # instructions processed while exploring paths (the same constant)
    max_call_frames: int = isa.MAX_CALL_FRAMES   # MAX_CALL_FRAMES: the main program and 7 nested calls
    max_stack: int = isa.STACK_SIZE     # MAX_BPF_STACK: the combined stack of a call chain
    tail_call_stack: int = 256          # callers' stack allowed below a subprogram that tail-calls
    pending_branches: int = 8192        # BPF_COMPLEXITY_LIMIT_JMP_SEQ: branches queued for later at once
    max_log_lines: int = 200_000


DEFAULT = VerifierLimits()
#: What the kernel allows a loader without CAP_BPF: 4096 instructions (BPF_MAXINSNS).
UNPRIVILEGED = VerifierLimits(max_instructions=4096)


class VerifierError(Exception):
    """A program refused: which program, where, the abstract state of the registers involved, and why.

    str() is one line: `prog xdp: instruction 12 (ldxw %r0, [%r2+0]): packet access not proven within
    data_end: r2 = pkt(off=0,r=0)`. `.log` holds the path followed when verify() was asked for a log."""

    def __init__(self, program: str, insn_index: int | None, insn_text: str, registers: dict[str, str],
                 reason: str, log: list[str] | None = None):
        self.program = program
        self.insn_index = insn_index
        self.insn_text = insn_text
        self.registers = registers
        self.reason = reason
        self.log = log or []
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"prog {self.program}: "
        if self.insn_index is not None:
            where += f"instruction {self.insn_index} ({self.insn_text}): "
        registers = ", ".join(f"{name} = {text}" for name, text in self.registers.items())
        return where + self.reason + (f": {registers}" if registers else "")


@dataclass
class VerifierResult:
    """Statistics of an accepted program."""

    instructions: int        # instruction slots, as the kernel counts them (an LDDW is two)
    states_explored: int     # states kept at prune points to compare later paths with
    peak_states: int         # most states held at once: those kept, and the paths waiting to be explored
    max_stack_depth: int     # bytes of stack of the deepest call chain
    seconds: float
    log: list[str] = field(default_factory=list)
    processed: int = 0       # instructions processed over all paths (the kernel's "processed N insns")
    pruned: int = 0          # paths cut short because an equivalent state was already verified
    max_call_depth: int = 1  # frames of the deepest call chain (1: no calls)
    functions: int = 1       # the main program and its subprograms
    helpers: dict[int, list[int]] = field(default_factory=dict)   # helper id -> instruction indices


# -- Helper prototypes --------------------------------------------------------------------------------------------

# Argument kinds (the kernel's enum bpf_arg_type, reduced to what XDP helpers take).
ANYTHING = "anything"          # any initialised value
CTX_ARG = "ctx"                # the context pointer itself
MAP_ARG = "map"                # a map (lddw map_idx)
MAP_KEY = "map_key"            # memory holding key_size initialised bytes of the map in the map argument
MAP_VALUE_ARG = "map_value"    # memory holding value_size initialised bytes
MEM = "mem"                    # readable memory; its size is the next argument
MEM_OR_NULL = "mem_or_null"    # readable memory or NULL (with size 0)
MEM_OUT = "mem_out"            # memory the helper writes; its size is the next argument
SIZE = "size"                  # the size of the memory before it: a bounded scalar, not 0
SIZE_OR_ZERO = "size_or_zero"

# Return kinds.
RET_INTEGER = "integer"
RET_MAP_VALUE_OR_NULL = "map_value_or_null"
RET_VOID = "void"

_HASH_LIKE = frozenset({HASH, ARRAY, PERCPU_HASH, PERCPU_ARRAY, LRU_HASH, LRU_PERCPU_HASH, LPM_TRIE})


@dataclass(frozen=True)
class HelperProto:
    """A helper's prototype: what each argument r1..r5 must be, what r0 becomes."""

    name: str
    args: tuple[str, ...]
    ret: str = RET_INTEGER
    map_types: frozenset[int] | None = None   # the map types its map argument may be
    changes_packet: bool = False              # invalidates every packet pointer (bpf_helper_changes_pkt_data)
    gpl_only: bool = False


HELPERS: dict[int, HelperProto] = {
    1: HelperProto("map_lookup_elem", (MAP_ARG, MAP_KEY), RET_MAP_VALUE_OR_NULL,
                   _HASH_LIKE | {DEVMAP, DEVMAP_HASH, XSKMAP}),
    2: HelperProto("map_update_elem", (MAP_ARG, MAP_KEY, MAP_VALUE_ARG, ANYTHING), map_types=_HASH_LIKE),
    3: HelperProto("map_delete_elem", (MAP_ARG, MAP_KEY), map_types=_HASH_LIKE),
    5: HelperProto("ktime_get_ns", ()),
    6: HelperProto("trace_printk", (MEM, SIZE), gpl_only=True),  # the format's values are not checked
    7: HelperProto("get_prandom_u32", ()),
    8: HelperProto("get_smp_processor_id", ()),
    12: HelperProto("tail_call", (CTX_ARG, MAP_ARG, ANYTHING), RET_VOID, frozenset({PROG_ARRAY})),
    23: HelperProto("redirect", (ANYTHING, ANYTHING)),
    28: HelperProto("csum_diff", (MEM_OR_NULL, SIZE_OR_ZERO, MEM_OR_NULL, SIZE_OR_ZERO, ANYTHING)),
    44: HelperProto("xdp_adjust_head", (CTX_ARG, ANYTHING), changes_packet=True),
    51: HelperProto("redirect_map", (MAP_ARG, ANYTHING, ANYTHING),
                    map_types=frozenset({DEVMAP, DEVMAP_HASH, CPUMAP, XSKMAP})),
    54: HelperProto("xdp_adjust_meta", (CTX_ARG, ANYTHING), changes_packet=True),
    65: HelperProto("xdp_adjust_tail", (CTX_ARG, ANYTHING), changes_packet=True),
    87: HelperProto("map_push_elem", (MAP_ARG, MAP_VALUE_ARG, ANYTHING), map_types=frozenset({QUEUE, STACK_MAP})),
    88: HelperProto("map_pop_elem", (MAP_ARG, MEM_OUT), map_types=frozenset({QUEUE, STACK_MAP})),
    89: HelperProto("map_peek_elem", (MAP_ARG, MEM_OUT), map_types=frozenset({QUEUE, STACK_MAP})),
    118: HelperProto("jiffies64", ()),
    125: HelperProto("ktime_get_boot_ns", ()),
    188: HelperProto("xdp_get_buff_len", (CTX_ARG,)),
    189: HelperProto("xdp_load_bytes", (CTX_ARG, ANYTHING, MEM_OUT, SIZE)),
    190: HelperProto("xdp_store_bytes", (CTX_ARG, ANYTHING, MEM, SIZE)),
    195: HelperProto("map_lookup_percpu_elem", (MAP_ARG, MAP_KEY, ANYTHING), RET_MAP_VALUE_OR_NULL,
                     frozenset({PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH})),
}
# The pop/peek helpers write a value of the map's value size, which MEM_OUT then needs as its size.
_VALUE_SIZED_OUTPUT = frozenset({88, 89})

TAIL_CALL = 12

# -- struct xdp_md (include/uapi/linux/bpf.h) ----------------------------------------------------------------------
XDP_MD_FIELDS = {0: "data", 4: "data_end", 8: "data_meta", 12: "ingress_ifindex", 16: "rx_queue_index",
                 20: "egress_ifindex"}
PROG_TYPES = ("xdp", "xdp_devmap")


# -- Decoding without validation ---------------------------------------------------------------------------------

def program_from_bytes(code: bytes) -> isa.Program:
    """Raw instruction bytes as an `isa.Program` without checking them, so that `verify` reports every problem
    (an invalid instruction, a write to r10, a jump out of the program) as a VerifierError."""
    if len(code) % isa.INSN_SIZE:
        raise ValueError(f"program length {len(code)} is not a multiple of {isa.INSN_SIZE} bytes")
    program = isa.Program()
    index = 0
    count = len(code) // isa.INSN_SIZE
    while index < count:
        insn = isa.decode_word(code[index * 8:index * 8 + 8], index)
        if insn.opcode == isa.OP_LDDW and index + 1 < count:
            tail = isa.decode_word(code[index * 8 + 8:index * 8 + 16], index + 1)
            program.append(insn._replace(imm64=(insn.imm & vs.M32) | ((tail.imm & vs.M32) << 32)))
            program.append(isa.LDDW_TAIL if not (tail.opcode or tail.dst or tail.src or tail.off) else tail)
            index += 2
            continue
        program.append(insn)
        index += 1
    return program


# -- Pass 1: the control-flow graph ------------------------------------------------------------------------------

_R0_TO_R5 = 0b111111
_R6_TO_R9 = 0b1111000000
_ALL_REGS = (1 << isa.NUM_REGISTERS) - 1


class _Problem(Exception):
    """A refusal found while analysing, before the VerifierError is dressed with the program's name."""

    def __init__(self, index: int | None, reason: str, registers: dict[str, str] | None = None):
        super().__init__(reason)
        self.index = index
        self.reason = reason
        self.registers = registers or {}


class _ControlFlow:
    """Functions, successors, reachability, register liveness and prune points of a program."""

    def __init__(self, program: isa.Program, maps: Sequence[MapInfo], limits: VerifierLimits):
        self.program = program
        n = len(program)
        if n == 0:
            raise _Problem(None, "the program is empty")
        if n > limits.max_instructions:
            raise _Problem(None, f"the program has {n} instructions, over the limit of {limits.max_instructions}")
        self._check_instructions(maps)
        self._find_functions()
        self._check_edges()
        self._check_reachable()
        self._check_recursion()
        self._liveness()

    # every instruction on its own
    def _check_instructions(self, maps: Sequence[MapInfo]) -> None:
        program = self.program
        for index, insn in enumerate(program):
            if insn is isa.LDDW_TAIL:
                if index == 0 or not program[index - 1].is_lddw:
                    raise _Problem(index, "the second half of an lddw without its first half")
                continue
            try:
                info = isa.check_insn(insn, index)
            except isa.IsaError as error:
                reason = error.reason
                if "writes r10" in reason:
                    reason = "r10 is the read-only frame pointer and cannot be written"
                raise _Problem(index, f"invalid instruction: {reason}") from None
            if insn.is_lddw and (index + 1 >= len(program) or program[index + 1] is not isa.LDDW_TAIL):
                raise _Problem(index, "lddw without its second half (it takes two instruction slots)")
            kind = info.kind
            if kind == InsnKind.LD_PACKET:
                raise _Problem(index, "legacy packet loads (ldabs/ldind) are not allowed in XDP programs: "
                                      "read the packet through ctx->data")
            if kind == InsnKind.CALLX:
                raise _Problem(index, "calls through a register are not allowed")
            if kind == InsnKind.CALL:
                if insn.src == isa.BPF_PSEUDO_KFUNC_CALL:
                    raise _Problem(index, f"calls of kernel functions (kfunc {insn.imm}) are not supported")
                if insn.src == isa.BPF_PSEUDO_CALL_HELPER and insn.imm not in HELPERS:
                    raise _Problem(index, f"call to unknown helper {insn.imm}")
            if kind == InsnKind.LDDW:
                self._check_lddw(index, insn, maps)

    def _check_lddw(self, index: int, insn: isa.Insn, maps: Sequence[MapInfo]) -> None:
        src = insn.src
        if src == isa.BPF_PSEUDO_IMM64:
            return
        if src == isa.BPF_PSEUDO_BTF_ID:
            raise _Problem(index, "lddw var_addr (a kernel variable by BTF id) is not supported")
        if src == isa.BPF_PSEUDO_FUNC:
            raise _Problem(index, "lddw code_addr (a callback function) is not supported")
        map_index = insn.imm64 & vs.M32
        if map_index >= len(maps):
            have = f"the program has {len(maps)} map{'s' if len(maps) != 1 else ''}" if maps else "no maps were given"
            raise _Problem(index, f"lddw refers to map {map_index}, but {have}")
        if src in (isa.BPF_PSEUDO_MAP_VALUE, isa.BPF_PSEUDO_MAP_IDX_VALUE):
            info = maps[map_index]
            offset = insn.imm64 >> 32
            if info.map_type != ARRAY or info.max_entries != 1:
                raise _Problem(index, f"lddw of an address inside map {_map_label(maps, map_index)} needs a "
                                      f"single-entry array (global data), not a {map_type_name(info.map_type)} "
                                      f"of {info.max_entries} entries")
            if offset >= info.value_size:
                raise _Problem(index, f"lddw address offset {offset} is outside the {info.value_size}-byte value "
                                      f"of map {_map_label(maps, map_index)}")

    # functions: the main program from 0, and one from each local call target
    def _find_functions(self) -> None:
        program = self.program
        starts = {0}
        for index, insn in program.instructions():
            if insn.opcode == isa.OP_CALL and insn.src == isa.BPF_PSEUDO_CALL_LOCAL:
                target = index + 1 + insn.imm
                if not 0 <= target < len(program):
                    raise _Problem(index, f"call to instruction {target}, outside the program "
                                          f"(0..{len(program) - 1})")
                if program[target] is isa.LDDW_TAIL:
                    raise _Problem(index, f"call to instruction {target}, the second half of an lddw")
                starts.add(target)
        self.function_starts = sorted(starts)
        self.function_of = [0] * len(program)
        current = 0
        for index in range(len(program)):
            if index in starts:
                current = index
            self.function_of[index] = current

    def _check_edges(self) -> None:
        program = self.program
        n = len(program)
        self.successors: list[tuple[int, ...]] = [()] * n
        self.jump_targets: set[int] = set()
        for index, insn in program.instructions():
            kind = isa.OPCODES[insn.opcode].kind
            target = isa.jump_target(insn, index)
            following = index + insn.slots
            successors: list[int] = []
            if kind in (InsnKind.JA, InsnKind.JCOND):
                if not 0 <= target < n:
                    raise _Problem(index, f"jump to instruction {target}, outside the program (0..{n - 1})")
                if program[target] is isa.LDDW_TAIL:
                    raise _Problem(index, f"jump to instruction {target}, into the middle of the lddw at "
                                          f"{target - 1}")
                if self.function_of[target] != self.function_of[index]:
                    raise _Problem(index, f"jump to instruction {target}, out of its function (which starts at "
                                          f"{self.function_of[index]}) into another")
                successors.append(target)
                self.jump_targets.add(target)
            if kind not in (InsnKind.JA, InsnKind.EXIT):
                if following >= n or following in self.function_starts:
                    what = "program" if following >= n else f"function (the next one starts at {following})"
                    raise _Problem(index, f"execution can fall off the end of the {what}: a function must end "
                                          f"with exit or a jump")
                successors.append(following)
            self.successors[index] = tuple(successors)

    def _callee(self, index: int) -> int | None:
        insn = self.program[index]
        if insn.opcode == isa.OP_CALL and insn.src == isa.BPF_PSEUDO_CALL_LOCAL:
            return index + 1 + insn.imm
        return None

    def _check_reachable(self) -> None:
        seen = bytearray(len(self.program))
        pending = [0]
        seen[0] = 1
        while pending:
            index = pending.pop()
            following = list(self.successors[index])
            callee = self._callee(index)
            if callee is not None:
                following.append(callee)
            for nxt in following:
                if not seen[nxt]:
                    seen[nxt] = 1
                    pending.append(nxt)
        for index, insn in self.program.instructions():
            if not seen[index]:
                raise _Problem(index, f"instruction {index} is unreachable: no path from the start leads to it")

    def _check_recursion(self) -> None:
        self.calls: dict[int, set[int]] = {start: set() for start in self.function_starts}
        for index, _ in self.program.instructions():
            callee = self._callee(index)
            if callee is not None:
                self.calls[self.function_of[index]].add(callee)
        state: dict[int, int] = {}  # 1: on the current chain, 2: done

        def visit(function: int, chain: list[int]) -> None:
            state[function] = 1
            for callee in sorted(self.calls[function]):
                if state.get(callee) == 1:
                    cycle = " -> ".join(str(f) for f in chain[chain.index(callee):] + [callee])
                    call_site = next(i for i, _ in self.program.instructions()
                                     if self.function_of[i] == function and self._callee(i) == callee)
                    raise _Problem(call_site, f"recursive call: the functions at {cycle} call each other")
                if callee not in state:
                    visit(callee, chain + [callee])
            state[function] = 2

        visit(0, [0])

    # registers live at each instruction (read on some path before being written)
    def _liveness(self) -> None:
        program = self.program
        n = len(program)
        use = [0] * n
        define = [0] * n
        for index, insn in program.instructions():
            use[index], define[index] = _uses_and_defs(insn)
        live = [0] * n
        order = [index for index, _ in program.instructions()][::-1]
        changed = True
        while changed:
            changed = False
            for index in order:
                out = 0
                for nxt in self.successors[index]:
                    out |= live[nxt]
                new = use[index] | (out & ~define[index])
                if new != live[index]:
                    live[index] = new
                    changed = True
        self.live = live
        # Where states are kept and compared (as in the kernel): each conditional jump, each target of an
        # unconditional jump, each return site. Every loop holds one, which is what bounds loops.
        prune = set()
        for index, insn in program.instructions():
            kind = isa.OPCODES[insn.opcode].kind
            if kind == InsnKind.JCOND:
                prune.add(index)
            elif kind == InsnKind.JA:
                prune.add(isa.jump_target(insn, index))
            elif kind == InsnKind.CALL and insn.src == isa.BPF_PSEUDO_CALL_LOCAL:
                prune.add(index + 1)
        self.prune_points = frozenset(prune)


def _bit(register: int) -> int:
    return 1 << register


def _uses_and_defs(insn: isa.Insn) -> tuple[int, int]:
    info = isa.OPCODES[insn.opcode]
    kind = info.kind
    dst, src = _bit(insn.dst), _bit(insn.src)
    register_source = bool(insn.opcode & isa.BPF_X)
    if kind == InsnKind.ALU:
        op = insn.opcode & isa.OP_MASK
        if op == isa.BPF_MOV:
            return (src if register_source else 0), dst
        return dst | (src if register_source else 0), dst
    if kind == InsnKind.END:
        return dst, dst
    if kind == InsnKind.JCOND:
        return dst | (src if register_source else 0), 0
    if kind == InsnKind.CALL:
        if insn.src == isa.BPF_PSEUDO_CALL_HELPER and insn.imm in HELPERS:
            arguments = (1 << (len(HELPERS[insn.imm].args) + 1)) - 2
        else:
            arguments = 0b111110
        return arguments, _R0_TO_R5
    if kind == InsnKind.EXIT:
        return 1, 0
    if kind == InsnKind.LDDW:
        return 0, dst
    if kind == InsnKind.LDX:
        return src, dst
    if kind == InsnKind.ST:
        return dst, 0
    if kind == InsnKind.STX:
        return dst | src, 0
    if kind == InsnKind.ATOMIC:
        if insn.imm == isa.BPF_CMPXCHG:
            return dst | src | 1, 1
        return dst | src, (src if insn.imm & isa.BPF_FETCH else 0)
    return 0, 0


# -- Pass 2: exploring the paths -------------------------------------------------------------------------------

class _Checkpoint:
    """A state kept at a prune point. `pending` counts the paths from it still being explored; at 0 every
    path from it was verified, and a state within it can be pruned. Once no path is compared with it any
    more, only its origins are kept: precision marks still travel through it to the states before."""

    __slots__ = ("index", "state", "origins", "parent", "pending", "hits", "misses", "precise")

    def __init__(self, index: int, state: State, parent: "_Checkpoint | None"):
        self.index = index
        self.state: State | None = state
        # per frame, (register origins, spill origins): which scalars of the parent each scalar came from
        self.origins = [(frame.origin, frame.spill_origin) for frame in state.frames]
        self.parent = parent
        self.pending = 1
        self.hits = 0
        self.misses = 0
        self.precise = 0        # bits of its scalars whose ranges some path from it relied on


_PRUNED = object()
_MAX_SIZE_ARG = 1 << 29  # BPF_MAX_VAR_SIZ: the largest helper memory size the kernel accepts


class _Explorer:
    def __init__(self, program: isa.Program, cfg: _ControlFlow, maps: Sequence[MapInfo], prog_type: str,
                 limits: VerifierLimits, log: list[str] | None):
        self.program = program
        self.cfg = cfg
        self.maps = list(maps)
        self.map_names = [_map_label(self.maps, index) for index in range(len(self.maps))]
        self.prog_type = prog_type
        self.limits = limits
        self.log = log
        self.checkpoints: dict[int, list[_Checkpoint]] = {}
        self.kept = 0
        self.peak = 0
        self.states_explored = 0
        self.processed = 0
        self.jumps = 0
        self.kept_at = self.jumps_at = 0  # processed instructions and jumps when the last state was kept
        self.pruned = 0
        self.next_id = 0
        self.stack_depth: dict[int, int] = {start: 0 for start in cfg.function_starts}
        self.tail_calling: set[int] = set()
        self.max_frames = 1
        self.helpers_used: dict[int, list[int]] = {}
        self.worklist: list[tuple[int, State, _Checkpoint | None, int]] = []
        # the instruction being checked, the state it runs in and the path's last kept state
        self.index = 0
        self.state: State | None = None
        self.checkpoint: _Checkpoint | None = None
        self.loaded_origin = 0   # the origin of the value the last stack load returned
        self.handlers = {
            InsnKind.ALU: self.do_alu, InsnKind.END: self.do_end, InsnKind.JA: self.do_ja,
            InsnKind.JCOND: self.do_jcond, InsnKind.CALL: self.do_call, InsnKind.EXIT: self.do_exit,
            InsnKind.LDDW: self.do_lddw, InsnKind.LDX: self.do_ldx, InsnKind.ST: self.do_st,
            InsnKind.STX: self.do_stx, InsnKind.ATOMIC: self.do_atomic}

    # -- errors and log ---------------------------------------------------------------------------------
    def fail(self, reason: str, *registers: int | None) -> None:
        """Refuse the program at the current instruction, showing the registers involved."""
        state = self.state
        shown: dict[str, str] = {}
        if state is not None:
            frame_number = len(state.frames) - 1
            for number in registers:
                if number is not None:
                    shown[f"r{number}"] = vs.value_text(state.regs[number], self.map_names, frame_number)
        raise _Problem(self.index, reason, shown)

    def note(self, text: str) -> None:
        log = self.log
        if log is not None:
            if len(log) < self.limits.max_log_lines:
                log.append(text)
            elif len(log) == self.limits.max_log_lines:
                log.append(f"... the log stops here: more than {self.limits.max_log_lines} lines")

    def text(self, value) -> str:
        return vs.value_text(value, self.map_names, len(self.state.frames) - 1 if self.state else None)

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    # -- the exploration loop ---------------------------------------------------------------------------
    def run(self) -> None:
        regs = [None] * isa.NUM_REGISTERS
        regs[1] = Pointer(CTX)
        regs[isa.FRAME_POINTER] = Pointer(STACK, frame=0)
        initial = State([Frame(regs, vs.EMPTY_STACK, {}, -1, 0)])
        self.worklist.append((0, initial, None, -1))
        while self.worklist:
            index, state, checkpoint, origin = self.worklist.pop()
            if origin >= 0:
                if self.log is not None:
                    self.note(f"from {origin} to {index}: the other branch")
            self.follow(index, state, checkpoint)

    def follow(self, index: int, state: State, checkpoint: _Checkpoint | None) -> None:
        """Follow one path from `index` until it exits or is pruned."""
        program = self.program
        prune_points = self.cfg.prune_points
        limit = self.limits.complexity
        handlers = self.handlers
        self.checkpoint = checkpoint
        while True:
            self.index, self.state = index, state
            self.processed += 1
            if self.processed > limit:
                self.fail(f"the program is too complex to verify: over {limit} instructions processed; "
                          f"a loop may not be bounded")
            if index in prune_points:
                checkpoint_or_pruned = self.visit(index, state, checkpoint)
                if checkpoint_or_pruned is _PRUNED:
                    self.finish(checkpoint)
                    return
                checkpoint = self.checkpoint = checkpoint_or_pruned
            insn = program[index]
            next_index = handlers[isa.OPCODES[insn.opcode].kind](index, insn, state)
            if next_index is None:
                self.finish(checkpoint)
                return
            index = next_index

    def visit(self, index: int, state: State, parent: _Checkpoint | None):
        self._forget_dead(index, state)
        saved = self.checkpoints.setdefault(index, [])
        for old in list(saved):
            if old.pending:
                # a state still being explored: if it is this path's own past and equal to now, the path loops
                if vs.within(old.state, state) and vs.within(state, old.state) and _is_ancestor(old, parent):
                    self.fail("loop is not bounded: the program comes back to this instruction in the same state, "
                              "so it could run forever")
            elif vs.within(old.state, state, old.precise):
                old.hits += 1
                self.pruned += 1
                # what old's paths relied on, this path relies on too
                self.mark_precise(_origins_of([(f.origin, f.spill_origin) for f in state.frames], old.precise),
                                  parent)
                if self.log is not None:
                    self.note(f"{index}: pruned: the state is within one verified before")
                return _PRUNED
            old.misses += 1
            if old.misses > old.hits * 3 + 3:  # rarely useful: stop comparing with it (as the kernel does)
                saved.remove(old)
                old.state = None
                self.kept -= 1
        # As the kernel does, keep a new state only after some instructions and jumps since the last one, so
        # that a tight loop does not keep one state per turn.
        if parent is not None and (self.processed - self.kept_at < 8 or self.jumps - self.jumps_at < 2):
            return parent
        self.kept_at, self.jumps_at = self.processed, self.jumps
        checkpoint = _Checkpoint(index, state.copy(), parent)
        _reset_origins(state)
        saved.append(checkpoint)
        self.states_explored += 1
        self.kept += 1
        self.peak = max(self.peak, self.kept + len(self.worklist))
        return checkpoint

    def _forget_dead(self, index: int, state: State) -> None:
        """Clear the registers no path reads again before writing, so that states differing only there
        compare equal."""
        live = self.cfg.live
        frames = state.frames
        top = len(frames) - 1
        for depth, frame in enumerate(frames):
            mask = live[index] if depth == top else (live[frames[depth + 1].callsite + 1] & _R6_TO_R9)
            regs = frame.regs
            for number in range(isa.FRAME_POINTER):
                if regs[number] is not None and not mask >> number & 1:
                    regs[number] = None

    def mark_precise(self, bits: int, checkpoint: _Checkpoint | None = None) -> None:
        """The scalars behind `bits` (origins, relative to `checkpoint`, by default the path's last kept
        state) matter exactly: mark them precise there, and what they came from in the states before."""
        if checkpoint is None:
            checkpoint = self.checkpoint
        while bits and checkpoint is not None:
            new = bits & ~checkpoint.precise
            if not new:
                return
            checkpoint.precise |= new
            bits = _origins_of(checkpoint.origins, new)
            checkpoint = checkpoint.parent

    def use_exactly(self, *registers: int) -> None:
        """A decision rests on the exact ranges of these registers of the running frame."""
        origin = self.state.frame.origin
        bits = 0
        for number in registers:
            bits |= origin[number]
        if bits:
            self.mark_precise(bits)

    def finish(self, checkpoint: _Checkpoint | None) -> None:
        while checkpoint is not None:
            checkpoint.pending -= 1
            if checkpoint.pending:
                return
            checkpoint = checkpoint.parent

    def branch(self, target: int, state: State, checkpoint: _Checkpoint | None, origin: int) -> None:
        """Queue another path to explore later."""
        if len(self.worklist) >= self.limits.pending_branches:
            self.fail(f"the program is too complex to verify: over {self.limits.pending_branches} branches wait "
                      f"to be explored; a loop may not be bounded")
        if checkpoint is not None:
            checkpoint.pending += 1
        self.worklist.append((target, state, checkpoint, origin))

    # -- registers --------------------------------------------------------------------------------------
    def read(self, number: int, what: str = "") -> object:
        value = self.state.regs[number]
        if value is None:
            detail = f" ({what})" if what else ""
            self.fail(f"r{number}{detail} is read before it is written: it was never set, or a call clobbered it",
                      number)
        return value

    # -- instructions -------------------------------------------------------------------------------------
    def logged(self, index: int, insn: isa.Insn, *registers: int) -> None:
        if self.log is not None:
            regs = self.state.regs
            after = ", ".join(f"r{n} = {self.text(regs[n])}" for n in registers)
            self.note(f"{index}: {format_insn(insn)}" + (f"    ; {after}" if after else ""))

    def do_alu(self, index: int, insn: isa.Insn, state: State) -> int:
        info = isa.OPCODES[insn.opcode]
        op = insn.opcode & isa.OP_MASK
        is64 = info.is64
        regs = state.regs
        dst = insn.dst
        register_source = bool(insn.opcode & isa.BPF_X)
        origin = state.frame.origin
        if op == isa.BPF_MOV:
            regs[dst] = value = self.move(insn, is64, register_source)
            origin[dst] = origin[insn.src] if register_source and isinstance(value, Scalar) else 0
            self.logged(index, insn, dst)
            return index + 1
        target = self.read(dst)
        if op == isa.BPF_NEG:
            source = vs.ZERO
        elif register_source:
            source = self.read(insn.src)
        else:
            source = vs.const(insn.imm)
        if isinstance(target, Scalar) and isinstance(source, Scalar):
            regs[dst] = vs.alu(op, target, source, is64, insn.off)
            if register_source:
                origin[dst] |= origin[insn.src]
        elif op == isa.BPF_NEG:
            regs[dst] = vs.UNKNOWN  # the kernel lets a negated address become a plain number
            origin[dst] = 0
        else:
            regs[dst] = self.pointer_arithmetic(insn, op, is64, target, source)
            origin[dst] = 0
        self.logged(index, insn, dst)
        return index + 1

    def move(self, insn: isa.Insn, is64: bool, register_source: bool):
        if not register_source:
            return vs.const(insn.imm if is64 else insn.imm & vs.M32)
        source = self.read(insn.src)
        if insn.off:  # MOVSX
            if not isinstance(source, Scalar):
                self.fail("sign-extending move of a pointer is not allowed", insn.src)
            return vs.sign_extend(source, insn.off, 64 if is64 else 32)
        if isinstance(source, Pointer):
            if is64:
                return source
            return vs.unknown_bits(32)  # the low half of an address is just a number
        if not is64 and source.umax > vs.M32:
            return vs.truncate(source, 4)
        if source.is_const or source.id < 0:
            return source
        if source.id == 0:  # link the copies, so that a comparison of one narrows the other
            source = source.with_id(self.new_id())
            self.state.regs[insn.src] = source
        return source

    def pointer_arithmetic(self, insn: isa.Insn, op: int, is64: bool, target, source):
        dst, src = insn.dst, insn.src
        involved = (dst, src) if insn.opcode & isa.BPF_X else (dst,)
        if not is64:
            self.fail("32-bit arithmetic on a pointer is not allowed", *involved)
        if op == isa.BPF_ADD:
            if isinstance(target, Pointer) and isinstance(source, Pointer):
                self.fail("adding two pointers is not allowed", *involved)
            if isinstance(target, Pointer):
                if insn.opcode & isa.BPF_X:
                    self.use_exactly(src)  # where the pointer points depends on the scalar's exact range
                return self.move_pointer(target, source, 1, involved)
            self.use_exactly(dst)
            return self.move_pointer(source, target, 1, involved)
        if op == isa.BPF_SUB:
            if isinstance(target, Pointer) and isinstance(source, Pointer):
                return vs.UNKNOWN  # the distance between two pointers is a number
            if isinstance(source, Pointer):
                self.fail("subtracting a pointer from a scalar is not allowed", *involved)
            if insn.opcode & isa.BPF_X:
                self.use_exactly(src)
            return self.move_pointer(target, source, -1, involved)
        name = isa.ALU_OP_NAMES[op]
        self.fail(f"{name} on a pointer is not allowed: only adding or subtracting a scalar is", *involved)

    def move_pointer(self, pointer: Pointer, offset: Scalar, sign: int, involved: tuple[int, ...]) -> Pointer:
        kind = pointer.kind
        if kind == CTX:
            self.fail("arithmetic on the context pointer is not allowed: load the xdp_md fields at their offsets",
                      *involved)
        if kind == PKT_END:
            self.fail("arithmetic on the packet end pointer is not allowed: compare other packet pointers with it",
                      *involved)
        if kind == MAP:
            self.fail("arithmetic on a map pointer is not allowed", *involved)
        if kind == MAP_VALUE_OR_NULL:
            self.fail("arithmetic on a map value that may be null is not allowed: compare it with 0 first",
                      *involved)
        if offset.is_const:
            delta = offset.signed_value * sign
            new_off = pointer.off + delta
            if not -vs.MAX_VAR_OFF < delta < vs.MAX_VAR_OFF or not -vs.MAX_VAR_OFF < new_off < vs.MAX_VAR_OFF:
                self.fail(f"moving a pointer by {delta} takes it out of any region", *involved)
            return pointer._replace(off=new_off)
        if offset.smin == vs.S64_MIN:
            self.fail("adding a scalar with no lower bound to a pointer is not allowed: bound it with a "
                      "comparison first", *involved)
        if not -vs.MAX_VAR_OFF < offset.smin < vs.MAX_VAR_OFF:
            self.fail(f"a pointer offset of at least {offset.smin} takes it out of any region", *involved)
        var = vs.alu(isa.BPF_ADD if sign > 0 else isa.BPF_SUB, pointer.var, offset, True)
        if var.smin <= -vs.MAX_VAR_OFF:
            self.fail("the pointer's variable offset may be far below its region", *involved)
        moved = pointer._replace(var=var)
        if kind in (PKT, PKT_META):  # a new variable offset: the proven range must be proven again
            moved = moved._replace(id=self.new_id(), range=0)
        return moved

    def do_end(self, index: int, insn: isa.Insn, state: State) -> int:
        value = self.read(insn.dst)
        if not isinstance(value, Scalar):
            value = vs.UNKNOWN  # as in the kernel, a byte-swapped address is just a number
            state.frame.origin[insn.dst] = 0
        info = isa.OPCODES[insn.opcode]
        swap = info.cls == isa.BPF_ALU64 or (insn.opcode & isa.SOURCE_MASK) == isa.BPF_TO_BE
        state.regs[insn.dst] = vs.byte_swap(value, insn.imm, swap)
        self.logged(index, insn, insn.dst)
        return index + 1

    def do_ja(self, index: int, insn: isa.Insn, state: State) -> int:
        self.jumps += 1
        self.logged(index, insn)
        return isa.jump_target(insn, index)

    # -- conditional jumps ------------------------------------------------------------------------------
    def do_jcond(self, index: int, insn: isa.Insn, state: State) -> int | None:
        self.jumps += 1
        info = isa.OPCODES[insn.opcode]
        op = insn.opcode & isa.OP_MASK
        is64 = info.is64
        register_source = bool(insn.opcode & isa.BPF_X)
        a = self.read(insn.dst)
        b = self.read(insn.src) if register_source else vs.const(insn.imm)
        target, fall = isa.jump_target(insn, index), index + 1
        if isinstance(a, Scalar) and isinstance(b, Scalar):
            taken = vs.compare(op, a, b, is64)
            not_taken = vs.compare(vs.NEGATION.get(op, vs.JSET_FALSE), a, b, is64)
            taken_update = None if taken is None else self._scalar_update(insn, a, b, *taken, register_source)
            fall_update = None if not_taken is None else self._scalar_update(insn, a, b, *not_taken,
                                                                               register_source)
            if taken is None or not_taken is None:  # the ranges decide the branch: they must stay as exact
                self.use_exactly(insn.dst, *((insn.src,) if register_source else ()))
        else:
            taken_update, fall_update = self._pointer_comparison(insn, op, is64, a, b, register_source)
        if taken_update is None and fall_update is None:  # no value satisfies either side: a dead path
            if self.log is not None:
                self.note(f"{index}: {format_insn(insn)}    ; neither branch is possible here")
            return None
        if taken_update is not None and fall_update is not None:
            other = state.copy()
            taken_update(other)
            self.branch(target, other, self.checkpoint, index)
            fall_update(state)
            if self.log is not None:
                self.note(f"{index}: {format_insn(insn)}    ; both branches: falls through, {target} later")
            return fall
        if taken_update is not None:
            taken_update(state)
            if self.log is not None:
                self.note(f"{index}: {format_insn(insn)}    ; always jumps to {target}")
            return target
        fall_update(state)
        if self.log is not None:
            self.note(f"{index}: {format_insn(insn)}    ; never jumps")
        return fall

    def _scalar_update(self, insn: isa.Insn, a: Scalar, b: Scalar, new_a: Scalar, new_b: Scalar,
                       register_source: bool) -> Callable[[State], None]:
        dst, src = insn.dst, insn.src

        def update(state: State) -> None:
            # The new ranges rest on the compared registers' values: so do those of their linked copies, and
            # with a register source each side's on the other side's too.
            origin = state.frame.origin
            basis = origin[dst] | (origin[src] if register_source else 0)
            _set_linked(state, dst, a, new_a, basis)
            if register_source and src != dst:
                _set_linked(state, src, b, new_b, basis)
        return update

    def _pointer_comparison(self, insn: isa.Insn, op: int, is64: bool, a, b, register_source: bool):
        """(taken update, not-taken update) of a comparison involving a pointer; None for an impossible side."""
        nothing = _no_change
        dst, src = insn.dst, insn.src
        if not is64:
            return nothing, nothing
        # null checks of a map lookup's result
        for pointer, other, register in ((a, b, dst), (b, a, src)):
            if isinstance(pointer, Pointer) and isinstance(other, Scalar) and other.is_const and other.v == 0 \
                    and op in (isa.BPF_JEQ, isa.BPF_JNE) and (register == dst or register_source):
                if register_source:  # the register's being exactly 0 is what the check rests on
                    self.use_exactly(src if register == dst else dst)
                if pointer.kind == MAP_VALUE_OR_NULL:
                    is_null, not_null = _null_check(pointer.id, True), _null_check(pointer.id, False)
                    return (is_null, not_null) if op == isa.BPF_JEQ else (not_null, is_null)
                if pointer.kind == MAP_VALUE:  # a map value pointer is never null
                    return (None, nothing) if op == isa.BPF_JEQ else (nothing, None)
        # bounds checks of packet pointers against the packet end (or of metadata against the packet start)
        if isinstance(a, Pointer) and isinstance(b, Pointer):
            if (a.kind == PKT and b.kind == PKT_END) or (a.kind == PKT_META and _is_packet_start(b)):
                checked, relation = a, op
            elif (a.kind == PKT_END and b.kind == PKT) or (_is_packet_start(a) and b.kind == PKT_META):
                checked, relation = b, vs.SWAPPED[op]
            else:
                return nothing, nothing
            # "checked relation bound": which side proves checked <= bound (or < bound)?
            proofs = {isa.BPF_JGT: (None, False), isa.BPF_JGE: (None, True),
                      isa.BPF_JLT: (True, None), isa.BPF_JLE: (False, None)}
            if relation not in proofs:
                return nothing, nothing
            taken_open, fall_open = proofs[relation]
            return (_range_proof(checked, taken_open) if taken_open is not None else nothing,
                    _range_proof(checked, fall_open) if fall_open is not None else nothing)
        return nothing, nothing

    # -- calls and exits ------------------------------------------------------------------------------
    def do_call(self, index: int, insn: isa.Insn, state: State) -> int:
        if insn.src == isa.BPF_PSEUDO_CALL_LOCAL:
            return self.call_local(index, insn, state)
        return self.call_helper(index, insn, state)

    def call_local(self, index: int, insn: isa.Insn, state: State) -> int:
        frames = state.frames
        if len(frames) + 1 > self.limits.max_call_frames:
            self.fail(f"call depth over the limit of {self.limits.max_call_frames} frames "
                      f"(the main program and {self.limits.max_call_frames - 1} nested calls)")
        target = isa.jump_target(insn, index)
        caller = frames[-1]
        regs = [None] * isa.NUM_REGISTERS
        regs[1:6] = caller.regs[1:6]
        regs[isa.FRAME_POINTER] = Pointer(STACK, frame=len(frames))
        origin = [0] * isa.NUM_REGISTERS
        origin[1:6] = caller.origin[1:6]
        for number in range(6):  # the caller gets r0 back and loses r1-r5 on return
            caller.regs[number] = None
            caller.origin[number] = 0
        frames.append(Frame(regs, vs.EMPTY_STACK, {}, index, target, origin))
        self.max_frames = max(self.max_frames, len(frames))
        if self.log is not None:
            self.note(f"{index}: {format_insn(insn)}    ; frame {len(frames) - 1} starts at {target}")
        return target

    def do_exit(self, index: int, insn: isa.Insn, state: State) -> int | None:
        frames = state.frames
        r0 = state.regs[0]
        if len(frames) == 1:
            if r0 is None:
                self.fail("r0 is not initialized at exit: the program must set its return value (an XDP action)", 0)
            if not isinstance(r0, Scalar):
                self.fail("exit with r0 not a scalar: an XDP program returns an action number", 0)
            if self.log is not None:
                self.note(f"{index}: exit    ; r0 = {self.text(r0)}")
            return None
        if isinstance(r0, Pointer) and r0.kind == STACK and r0.frame == len(frames) - 1:
            self.fail("the function returns a pointer to its own stack, which is gone after the return", 0)
        callee = frames.pop()
        caller = frames[-1]
        caller.regs[0] = r0  # a function returning void leaves r0 unset: the caller may not read it
        caller.origin[0] = callee.origin[0]
        if self.log is not None:
            self.note(f"{index}: exit    ; back to {callee.callsite + 1} with r0 = {self.text(r0)}")
        return callee.callsite + 1

    def call_helper(self, index: int, insn: isa.Insn, state: State) -> int:
        helper_id = insn.imm
        proto = HELPERS[helper_id]
        self.helpers_used.setdefault(helper_id, [])
        if index not in self.helpers_used[helper_id]:
            self.helpers_used[helper_id].append(index)
        map_index = None
        arguments = proto.args
        for position, kind in enumerate(arguments, 1):
            value = self.read(position, f"argument {position} of {proto.name}")
            if kind == ANYTHING or kind in (SIZE, SIZE_OR_ZERO):
                continue
            where = f"{proto.name}: argument {position} (r{position})"
            if kind == CTX_ARG:
                if not (isinstance(value, Pointer) and value.kind == CTX and value.off == 0):
                    self.fail(f"{where} must be the context pointer", position)
            elif kind == MAP_ARG:
                if not (isinstance(value, Pointer) and value.kind == MAP):
                    self.fail(f"{where} must be a map (lddw map_idx)", position)
                map_index = value.map
                info = self.maps[map_index]
                if proto.map_types is not None and info.map_type not in proto.map_types:
                    self.fail(f"{where}: map {self.map_names[map_index]} is a {map_type_name(info.map_type)}, which "
                              f"{proto.name} cannot use", position)
            elif kind in (MAP_KEY, MAP_VALUE_ARG):
                info = self.maps[map_index]
                size = info.key_size if kind == MAP_KEY else info.value_size
                what = "key" if kind == MAP_KEY else "value"
                self.helper_memory(position, value, size, size, False,
                                   f"{where} must point to the {size}-byte {what} of map "
                                   f"{self.map_names[map_index]}")
            elif kind in (MEM, MEM_OR_NULL, MEM_OUT):
                size_kind = arguments[position] if position < len(arguments) else None
                if helper_id in _VALUE_SIZED_OUTPUT:
                    low = high = self.maps[map_index].value_size
                else:
                    size = self.read(position + 1, f"the size of argument {position} of {proto.name}")
                    if not isinstance(size, Scalar):
                        self.fail(f"{proto.name}: argument {position + 1} (r{position + 1}) must be a size, "
                                  f"not a pointer", position + 1)
                    if size.smin < 0:
                        self.fail(f"{proto.name}: the size in r{position + 1} may be negative", position + 1)
                    if size.umax >= _MAX_SIZE_ARG:
                        self.fail(f"{proto.name}: the size in r{position + 1} is not bounded: compare it with "
                                  f"a limit first", position + 1)
                    if size.umin == 0 and size_kind == SIZE:
                        self.fail(f"{proto.name}: the size in r{position + 1} may be zero", position + 1)
                    self.use_exactly(position + 1)
                    low, high = size.umin, size.umax
                if kind == MEM_OR_NULL and isinstance(value, Scalar) and value.is_const and value.v == 0:
                    self.use_exactly(position)
                    if high:
                        self.fail(f"{where} is null, so its size must be 0", position, position + 1)
                    continue
                self.helper_memory(position, value, low, high, kind == MEM_OUT,
                                   f"{where} must point to {high} {'writable' if kind == MEM_OUT else 'readable'} "
                                   f"bytes")
        if helper_id == TAIL_CALL:
            self.tail_calling.add(state.frame.function)
        regs = state.regs
        state.frame.origin[0] = 0
        if proto.ret == RET_MAP_VALUE_OR_NULL and self._lookup_never_null(helper_id, map_index, regs[2]):
            regs[0] = Pointer(MAP_VALUE, map=map_index)
        elif proto.ret == RET_MAP_VALUE_OR_NULL:
            regs[0] = Pointer(MAP_VALUE_OR_NULL, map=map_index, id=self.new_id())
        elif proto.ret == RET_VOID:
            regs[0] = None
        else:
            regs[0] = vs.UNKNOWN
        for number in range(1, 6):
            regs[number] = None
        if proto.changes_packet:
            stale = vs.UNKNOWN._replace(id=-index - 1)
            state.replace_all(lambda value: stale if isinstance(value, Pointer) and value.kind in
                              (PKT, PKT_META, PKT_END) else None)
        self.logged(index, insn, 0)
        return index + 1

    def _lookup_never_null(self, helper_id: int, map_index: int, key) -> bool:
        """An array lookup with a constant key below max_entries always finds its value (the kernel's
        can_elide_value_nullness, Linux 6.13 and later). The kernel knows the key only from a spill of the
        key's size at an 8-byte-aligned slot, or from zeros stored elsewhere; so do we, to agree with it."""
        info = self.maps[map_index]
        if helper_id != 1 or info.map_type not in (ARRAY, PERCPU_ARRAY) or not isinstance(key, Pointer) \
                or key.kind != STACK or not key.var.is_const:
            return False
        start = vs.STACK_BYTES + key.off + vs._signed(key.var.v, 64)
        size = info.key_size
        frame = self.state.frames[key.frame]
        if start < 0 or start + size > vs.STACK_BYTES:
            return False
        owners = frame.spills_overlapping(start, start + size)
        if not owners or any(not isinstance(frame.spills[i][1], Scalar) for i in owners):
            return False
        exact = frame.spills.get(start)
        if exact is not None and exact[0] == size and start % 8 == 0:
            value = exact[1]
        elif all(i % 8 for i in owners):
            value = _assemble_bytes(frame, start, size)
            if not (value.is_const and value.v == 0):
                return False
        else:
            return False
        if not (value.is_const and value.v < info.max_entries):
            return False
        bits = 0  # the key's value decides: the scalars it was stored from must stay exact
        for index in owners:
            bits |= frame.spill_origin.get(index, 0)
        self.mark_precise(bits)
        return True

    def helper_memory(self, position: int, pointer, low: int, high: int, write: bool, requirement: str) -> None:
        """Check that [pointer, pointer + size) is accessible for every size in [low, high]."""
        if not isinstance(pointer, Pointer) or pointer.kind not in (STACK, PKT, PKT_META, MAP_VALUE):
            self.fail(f"{requirement} (the stack, the packet or a map value)", position)
        if high == 0:
            return
        kind = pointer.kind
        if kind == STACK:
            self.stack_range(position, pointer, low, high, write, requirement)
        elif kind in (PKT, PKT_META):
            self.packet_range(position, pointer, 0, high, requirement)
        else:
            self.map_value_range(position, pointer, 0, high, write, requirement)

    # -- 64-bit immediates -------------------------------------------------------------------------------
    def do_lddw(self, index: int, insn: isa.Insn, state: State) -> int:
        src = insn.src
        if src == isa.BPF_PSEUDO_IMM64:
            value = vs.const(insn.imm64)
        elif src in (isa.BPF_PSEUDO_MAP_FD, isa.BPF_PSEUDO_MAP_IDX):
            value = Pointer(MAP, map=insn.imm64 & vs.M32)
        else:
            value = Pointer(MAP_VALUE, off=insn.imm64 >> 32, map=insn.imm64 & vs.M32)
        state.regs[insn.dst] = value
        state.frame.origin[insn.dst] = 0
        self.logged(index, insn, insn.dst)
        return index + 2

    # -- memory ---------------------------------------------------------------------------------------
    def do_ldx(self, index: int, insn: isa.Insn, state: State) -> int:
        size = isa.OPCODES[insn.opcode].size
        base = self.read(insn.src, "the address")
        self.loaded_origin = 0
        value = self.access(insn.src, base, insn.off, size, "read")
        if (insn.opcode & isa.MODE_MASK) == isa.BPF_MEMSX:
            if not isinstance(value, Scalar):
                self.fail("sign-extending load of a pointer is not allowed", insn.src)
            value = vs.sign_extend(value, size * 8, 64)
        state.regs[insn.dst] = value
        state.frame.origin[insn.dst] = self.loaded_origin if isinstance(value, Scalar) else 0
        self.logged(index, insn, insn.dst)
        return index + 1

    def do_st(self, index: int, insn: isa.Insn, state: State) -> int:
        size = isa.OPCODES[insn.opcode].size
        base = self.read(insn.dst, "the address")
        self.access(insn.dst, base, insn.off, size, "write", vs.truncate(vs.const(insn.imm), size))
        self.logged(index, insn)
        return index + 1

    def do_stx(self, index: int, insn: isa.Insn, state: State) -> int:
        size = isa.OPCODES[insn.opcode].size
        base = self.read(insn.dst, "the address")
        value = self.read(insn.src, "the value stored")
        self.access(insn.dst, base, insn.off, size, "write", value, value_register=insn.src)
        self.logged(index, insn)
        return index + 1

    def do_atomic(self, index: int, insn: isa.Insn, state: State) -> int:
        size = isa.OPCODES[insn.opcode].size
        base = self.read(insn.dst, "the address")
        value = self.read(insn.src, "the operand")
        if not isinstance(value, Scalar):
            self.fail("an atomic operation with a pointer operand is not allowed", insn.src)
        if insn.imm == isa.BPF_CMPXCHG and not isinstance(self.read(0, "the expected value"), Scalar):
            self.fail("cmpxchg compares with r0, which holds a pointer", 0)
        if isinstance(base, Pointer) and base.kind not in (STACK, MAP_VALUE):
            where = {CTX: "the context", PKT: "the packet", PKT_META: "the packet metadata"}.get(base.kind)
            if where:
                self.fail(f"atomic operations on {where} are not allowed", insn.dst)
        self.access(insn.dst, base, insn.off, size, "atomic")
        if insn.imm == isa.BPF_CMPXCHG:
            state.regs[0] = vs.unknown_bits(size * 8)
            state.frame.origin[0] = 0
            self.logged(index, insn, 0)
        elif insn.imm & isa.BPF_FETCH:
            state.regs[insn.src] = vs.unknown_bits(size * 8)
            state.frame.origin[insn.src] = 0
            self.logged(index, insn, insn.src)
        else:
            self.logged(index, insn)
        return index + 1

    def access(self, register: int, base, offset: int, size: int, mode: str, value=None,
               value_register: int | None = None):
        """A load ("read"), store ("write") or atomic ("atomic") of `size` bytes at base + offset.
        Returns the loaded value for reads."""
        if isinstance(base, Scalar):
            if base.id < 0:
                self.fail(f"r{register} was a packet pointer, but the helper call at instruction {-base.id - 1} "
                          f"changed the packet, which invalidates every packet pointer: load ctx->data and "
                          f"ctx->data_end again and check the bounds again", register)
            self.fail(f"r{register} is a scalar, not a pointer: memory is only reached through a pointer", register)
        kind = base.kind
        if kind == CTX:
            return self.context_access(register, base, offset, size, mode)
        if kind in (PKT, PKT_META):
            self.packet_range(register, base, offset, offset + size, "packet access not proven within data_end"
                              if kind == PKT else "metadata access not proven within data")
            if mode == "write" and isinstance(value, Pointer):
                self.fail("storing a pointer into the packet is not allowed", register, value_register)
            return vs.unknown_bits(size * 8) if mode == "read" else None
        if kind == STACK:
            return self.stack_access(register, base, offset, size, mode, value, value_register)
        if kind == MAP_VALUE:
            if mode != "read" and isinstance(value, Pointer):
                self.fail("storing a pointer into a map value is not allowed", register, value_register)
            self.map_value_range(register, base, offset, offset + size, mode != "read",
                                 "map value access out of bounds")
            if mode == "atomic":
                self.check_aligned(register, base, offset, size, "atomic access to a map value")
            return vs.unknown_bits(size * 8) if mode == "read" else None
        if kind == MAP_VALUE_OR_NULL:
            self.fail("dereference of a map value that may be null: compare it with 0 first", register)
        if kind == PKT_END:
            self.fail("the packet end pointer cannot be dereferenced: it points just past the packet", register)
        self.fail("a map pointer cannot be dereferenced: look its values up with bpf_map_lookup_elem", register)

    def check_aligned(self, register: int, pointer: Pointer, offset: int, size: int, what: str) -> None:
        total = pointer.off + offset + pointer.var.v
        if size > 1 and (total % size or pointer.var.m & (size - 1)):
            self.fail(f"misaligned {what}: {size} bytes at an offset that is not a multiple of {size}", register)

    def context_access(self, register: int, base: Pointer, offset: int, size: int, mode: str):
        if mode != "read":
            self.fail("the XDP context (struct xdp_md) is read-only", register)
        field_name = XDP_MD_FIELDS.get(offset)
        if size != 4 or field_name is None:
            fields = ", ".join(f"{name} at {off}" for off, name in XDP_MD_FIELDS.items())
            self.fail(f"context access of {size} bytes at offset {offset} is not allowed: struct xdp_md has "
                      f"4-byte fields ({fields})", register)
        if field_name == "egress_ifindex" and self.prog_type != "xdp_devmap":
            self.fail("ctx->egress_ifindex is only readable by programs attached to a devmap "
                      "(prog_type xdp_devmap)", register)
        if field_name == "data":
            return Pointer(PKT)
        if field_name == "data_end":
            return Pointer(PKT_END)
        if field_name == "data_meta":
            return Pointer(PKT_META)
        return vs.unknown_bits(32)

    def packet_range(self, register: int, pointer: Pointer, start: int, end: int, reason: str) -> None:
        """Bytes [pointer + start, pointer + end) must lie within the proven range."""
        if pointer.var.smin < 0:
            self.fail("the packet pointer's variable offset may be negative: bound it with an unsigned "
                      "comparison first", register)
        first = pointer.off + start
        if first < 0:
            self.fail(f"packet access at offset {first}, before the start of the "
                      f"{'packet' if pointer.kind == PKT else 'metadata'}", register)
        if pointer.off + end > pointer.range:
            self.fail(f"{reason} (bytes {first}..{pointer.off + end - 1} from the pointer's base, "
                      f"{pointer.range} proven)", register)

    def map_value_range(self, register: int, pointer: Pointer, start: int, end: int, write: bool,
                        reason: str) -> None:
        info = self.maps[pointer.map]
        var = pointer.var
        if var.smin < 0:
            self.fail("the map value pointer's variable offset may be negative: bound it with an unsigned "
                      "comparison first", register)
        if var.umax >= vs.MAX_VAR_OFF:
            self.fail("map value access with an unbounded offset: compare the offset with a limit first", register)
        first = pointer.off + var.umin + start
        last = pointer.off + var.umax + end
        if pointer.off + start + var.smin < 0 or last > info.value_size:
            self.fail(f"{reason}: bytes {first}..{last - 1} of the {info.value_size}-byte value of map "
                      f"{self.map_names[pointer.map]}", register)
        if write and info.values_read_only:
            self.fail(f"map {self.map_names[pointer.map]} is read-only to programs", register)

    def stack_access(self, register: int, base: Pointer, offset: int, size: int, mode: str, value,
                     value_register: int | None):
        frame = self.state.frames[base.frame]
        var = base.var
        if var.is_const:
            start = base.off + vs._signed(var.v, 64) + offset
            if start < -vs.STACK_BYTES or start + size > 0:
                self.fail(f"stack access outside the {vs.STACK_BYTES}-byte frame: {size} bytes at fp{start:+d}",
                          register)
            if start % size:
                self.fail(f"misaligned stack access: {size} bytes at fp{start:+d}", register)
            self._record_depth(base.frame, -start)
            at = vs.STACK_BYTES + start
            if mode == "write":
                if isinstance(value, Pointer):
                    if size != 8:
                        self.fail(f"a pointer is spilled to the stack as 8 bytes, not {size}", register,
                                  value_register)
                    if value.kind == STACK and value.frame > base.frame:
                        self.fail("a pointer to a called function's stack cannot be stored in its caller's stack",
                                  register, value_register)
                    frame.spill(at, 8, value)
                else:
                    origin = self.state.frame.origin[value_register] if value_register is not None else 0
                    frame.spill(at, size, vs.truncate(value, size), origin)
                return None
            self._require_written(register, frame, at, at + size, f"fp{start:+d}")
            if mode == "atomic":
                self._no_pointer_bytes(register, frame, at, at + size)
                frame.forget(at, at + size)
                return None
            spill = frame.spills.get(at)
            if spill is not None and spill[0] >= size:
                self.loaded_origin = frame.spill_origin.get(at, 0)
                if spill[0] == size:
                    return spill[1]
                if isinstance(spill[1], Scalar):
                    return vs.truncate(spill[1], size)
            self._no_pointer_bytes(register, frame, at, at + size)
            for index in frame.spills_overlapping(at, at + size):
                self.loaded_origin |= frame.spill_origin.get(index, 0)
            return _assemble_bytes(frame, at, size)
        # a variable offset: every place it may be must be allowed
        low = base.off + offset + var.smin
        high = base.off + offset + var.smax
        if low < -vs.STACK_BYTES or high + size > 0:
            self.fail(f"stack access with a variable offset may leave the {vs.STACK_BYTES}-byte frame "
                      f"(fp{low:+d} to fp{high + size:+d})", register)
        if size > 1 and ((base.off + offset + var.v) % size or var.m & (size - 1)):
            self.fail(f"misaligned stack access: {size} bytes at a variable offset", register)
        self._record_depth(base.frame, -low)
        first, last = vs.STACK_BYTES + low, vs.STACK_BYTES + high + size
        if mode == "write":
            if isinstance(value, Pointer):
                self.fail("storing a pointer at a variable stack offset is not allowed", register, value_register)
            frame.forget(first, last, only_written=True)
            return None
        self._require_written(register, frame, first, last, f"fp{low:+d}..fp{high + size:+d}")
        self._no_pointer_bytes(register, frame, first, last)
        if mode == "atomic":
            frame.forget(first, last)
            return None
        return vs.unknown_bits(size * 8)

    def stack_range(self, register: int, pointer: Pointer, low_size: int, high_size: int, write: bool,
                    requirement: str) -> None:
        """Helper memory on the stack: [pointer, pointer + size) inside the frame for every size in
        [low_size, high_size], initialised if the helper reads it, initialised afterwards if it writes it."""
        frame = self.state.frames[pointer.frame]
        var = pointer.var
        low = pointer.off + var.smin
        high = pointer.off + var.smax + high_size
        if low < -vs.STACK_BYTES or high > 0:
            self.fail(f"{requirement}, but that reaches outside the {vs.STACK_BYTES}-byte stack frame "
                      f"(fp{low:+d} to fp{high:+d})", register)
        self._record_depth(pointer.frame, -low)
        first, last = vs.STACK_BYTES + low, vs.STACK_BYTES + high
        if write:
            # only the bytes written whatever the offset and size become known to be written
            surely_end = vs.STACK_BYTES + pointer.off + var.smin + low_size if var.is_const else first
            frame.forget(first, max(first, surely_end))
            frame.forget(max(first, surely_end), last, only_written=True)
            return
        self._require_written(register, frame, first, last, f"fp{low:+d}..fp{high - 1:+d}", requirement)
        self._no_pointer_bytes(register, frame, first, last, helper=True)

    def _record_depth(self, frame_number: int, depth: int) -> None:
        function = self.state.frames[frame_number].function
        if depth > self.stack_depth[function]:
            self.stack_depth[function] = depth

    def _require_written(self, register: int, frame: Frame, first: int, last: int, where: str,
                         requirement: str = "") -> None:
        stack = frame.stack
        if vs.NEVER_WRITTEN in stack[first:last]:
            missing = [index - vs.STACK_BYTES for index in range(first, last) if stack[index] == vs.NEVER_WRITTEN]
            spans = _spans(missing)
            prefix = f"{requirement}, but " if requirement else ""
            self.fail(f"{prefix}stack bytes {spans} are read before they are written (reading {where})", register)

    def _no_pointer_bytes(self, register: int, frame: Frame, first: int, last: int, helper: bool = False) -> None:
        for index in frame.spills_overlapping(first, last):
            if isinstance(frame.spills[index][1], Pointer):
                where = f"fp{index - vs.STACK_BYTES:+d}"
                if helper:
                    self.fail(f"the stack bytes passed to the helper hold a pointer (spilled at {where})", register)
                self.fail(f"reads part of the pointer spilled at {where}: a spilled pointer is read back whole",
                          register)


def _spans(offsets: list[int]) -> str:
    """[-16, -15, -14, -8] -> 'fp-16..fp-14, fp-8'."""
    spans: list[str] = []
    start = previous = offsets[0]
    for offset in offsets[1:] + [None]:
        if offset is not None and offset == previous + 1:
            previous = offset
            continue
        spans.append(f"fp{start:+d}" if start == previous else f"fp{start:+d}..fp{previous:+d}")
        if offset is not None:
            start = previous = offset
    return ", ".join(spans)


def _assemble_bytes(frame: Frame, at: int, size: int) -> Scalar:
    """A load from stack bytes that hold parts of spilled scalars or unknown data: the bits known are kept."""
    v = m = 0
    spills = frame.spills
    owners = {index: spills[index] for index in frame.spills_overlapping(at, at + size)}
    for position in range(size):
        byte_at = at + position
        known_v, known_m = 0, 0xFF
        for start, (spill_size, spilled) in owners.items():
            if start <= byte_at < start + spill_size:
                shift = 8 * (byte_at - start)
                known_v, known_m = (spilled.v >> shift) & 0xFF, (spilled.m >> shift) & 0xFF
                break
        v |= known_v << (8 * position)
        m |= known_m << (8 * position)
    if m == 0:
        return vs.const(v)
    fields = vs._sync(v, m, 0, (1 << (8 * size)) - 1, vs.S64_MIN, vs.S64_MAX, 64)
    return Scalar(*fields) if fields else vs.unknown_bits(size * 8)


def _origins_of(frames: list[tuple[list[int], dict[int, int]]], bits: int) -> int:
    """The origins of the scalars that `bits` name, given each frame's (register, spill) origins."""
    origins = 0
    while bits:
        low = bits & -bits
        bits ^= low
        is_register, depth, where = vs.decode_bit(low.bit_length() - 1)
        if depth < len(frames):
            registers, spills = frames[depth]
            origins |= registers[where] if is_register else spills.get(where, 0)
    return origins


def _reset_origins(state: State) -> None:
    """After a state is kept, each scalar comes from itself in it."""
    for depth, frame in enumerate(state.frames):
        frame.origin = [1 << vs.register_bit(depth, number) if isinstance(value, Scalar) else 0
                        for number, value in enumerate(frame.regs)]
        frame.spill_origin = {index: 1 << vs.slot_bit(depth, index)
                              for index, (_, value) in frame.spills.items() if isinstance(value, Scalar)}


def _no_change(state: State) -> None:
    return None


def _set_linked(state: State, register: int, old: Scalar, new: Scalar, extra_origin: int) -> None:
    """Write a narrowed scalar to its register and to every copy linked to it; the narrowing rests on
    `extra_origin` too."""
    link = old.id
    if link > 0:
        for frame in state.frames:
            regs, origin = frame.regs, frame.origin
            for number, value in enumerate(regs):
                if isinstance(value, Scalar) and value.id == link:
                    regs[number] = new
                    origin[number] |= extra_origin
            for index, (size, value) in list(frame.spills.items()):
                if isinstance(value, Scalar) and value.id == link:
                    frame.spills[index] = (size, new)
                    frame.spill_origin[index] = frame.spill_origin.get(index, 0) | extra_origin
    state.regs[register] = new
    state.frame.origin[register] |= extra_origin


def _null_check(lookup_id: int, is_null: bool) -> Callable[[State], None]:
    def update(state: State) -> None:
        def mark(value):
            if isinstance(value, Pointer) and value.kind == MAP_VALUE_OR_NULL and value.id == lookup_id:
                return vs.ZERO if is_null else value._replace(kind=MAP_VALUE, id=0)
            return None
        state.replace_all(mark)
    return update


def _is_packet_start(value) -> bool:
    return isinstance(value, Pointer) and value.kind == PKT and value.off == 0 and value.var.is_const \
        and value.var.v == 0


def _range_proof(checked: Pointer, right_open: bool) -> Callable[[State], None]:
    """The update on the side where `checked` <= bound (or < bound when right_open): every pointer sharing
    its variable offset may be read up to checked.off (checked.off + 1) bytes past its base."""
    if checked.off < 0 or (checked.off == 0 and right_open) or checked.var.umax > vs.MAX_PACKET_OFF \
            or checked.var.umax + checked.off > vs.MAX_PACKET_OFF:
        return _no_change
    new_range = checked.off + (1 if right_open else 0)
    kind, ident = checked.kind, checked.id

    def update(state: State) -> None:
        def widen(value):
            if isinstance(value, Pointer) and value.kind == kind and value.id == ident and value.range < new_range:
                return value._replace(range=new_range)
            return None
        state.replace_all(widen)
    return update


def _is_ancestor(checkpoint: _Checkpoint, descendant: _Checkpoint | None) -> bool:
    while descendant is not None:
        if descendant is checkpoint:
            return True
        descendant = descendant.parent
    return False


# -- The combined stack of call chains ---------------------------------------------------------------------------

def _round_stack(depth: int) -> int:
    return (depth + 15) // 16 * 16  # the kernel rounds each frame to 16 bytes when it JIT-compiles


def _check_stack_chains(cfg: _ControlFlow, explorer: _Explorer, limits: VerifierLimits) -> int:
    """Refuse a call chain whose frames together exceed the stack limit, or a tail call below too deep a stack.
    Returns the deepest chain's stack in bytes (unrounded)."""
    depths = explorer.stack_depth
    deepest = 0

    def walk(function: int, below: int, below_real: int, chain: list[int]) -> None:
        nonlocal deepest
        if function != 0 and function in explorer.tail_calling and below >= limits.tail_call_stack:
            raise _Problem(function, f"the function at {function} makes a tail call while its callers use "
                                     f"{below} bytes of stack, over {limits.tail_call_stack}")
        total = below + _round_stack(depths[function])
        real = below_real + depths[function]
        if total > limits.max_stack:
            chain_text = " -> ".join(str(f) for f in chain)
            raise _Problem(None, f"the combined stack of the call chain of functions {chain_text} is {total} bytes, "
                                 f"over the limit of {limits.max_stack}")
        deepest = max(deepest, real)
        for callee in sorted(cfg.calls[function]):
            walk(callee, total, real, chain + [callee])

    walk(0, 0, 0, [0])
    return deepest


# -- Public entry points ---------------------------------------------------------------------------------------

def verify(program: isa.Program, maps: Sequence[MapInfo] = (), prog_type: str = "xdp", name: str = "",
           log: bool = False, limits: VerifierLimits = DEFAULT) -> VerifierResult:
    """Prove `program` safe to run as an XDP program with `maps` (lddw map_idx N refers to maps[N]).

    Returns the statistics; raises VerifierError naming the instruction and the reason otherwise. With
    `log`, the path followed is kept (in the result, or in the error's `.log`)."""
    if prog_type not in PROG_TYPES:
        raise ValueError(f"prog_type {prog_type!r} is not one the verifier knows ({', '.join(PROG_TYPES)})")
    started = time.perf_counter()
    maps = map_infos(maps)
    label = name or prog_type
    log_lines: list[str] | None = [] if log else None
    explorer = None
    try:
        cfg = _ControlFlow(program, maps, limits)
        explorer = _Explorer(program, cfg, maps, prog_type, limits, log_lines)
        explorer.run()
        depth = _check_stack_chains(cfg, explorer, limits)
    except _Problem as problem:
        index = problem.index
        text = format_insn(program[index]) if index is not None and 0 <= index < len(program) else ""
        if log_lines is not None and index is not None:
            log_lines.append(f"{index}: {text}    ; refused")
        raise VerifierError(label, index, text, problem.registers, problem.reason, log_lines) from None
    return VerifierResult(
        instructions=len(program), states_explored=explorer.states_explored, peak_states=explorer.peak,
        max_stack_depth=depth, seconds=time.perf_counter() - started, log=log_lines or [],
        processed=explorer.processed, pruned=explorer.pruned, max_call_depth=explorer.max_frames,
        functions=len(cfg.function_starts), helpers=dict(explorer.helpers_used))


def main_verify(path: str, section: str | None = None, log: bool = False, out: Callable[[str], None] = print) -> int:
    """`bpfnic verify prog.o [--section S] [--log]`: verify the programs of an ELF object (the one named by
    `section`, else every one) or of an assembly or raw-bytes file (with no maps), and print for each either
    the refusal (one line, then the registers involved, one a line) or its statistics; with `log`, the path
    followed first. Returns the exit status: 0 all accepted, 1 one refused, 2 a section given for a file
    that has none."""
    from pathlib import Path
    data = Path(path).read_bytes()
    if data[:4] == b"\x7fELF":
        from .elf_loader import load_object
        obj = load_object(path)
        maps = map_infos(obj.maps)
        chosen = [obj.program(section)] if section is not None else list(obj.programs.values())
        programs = [(prog.section if len(chosen) == 1 or section is not None else f"{prog.section} ({prog.name})",
                     prog.insns) for prog in chosen]
    else:
        if section is not None:
            out(f"{path}: --section names a program of an ELF object; this file is a single program")
            return 2
        from .cli import read_program
        programs, maps = [(Path(path).name, read_program(path))], []
    status = 0
    for name, program in programs:
        try:
            result = verify(program, maps, name=name, log=log)
        except VerifierError as error:
            for line in error.log:
                out(line)
            out(str(error))
            for register, text in error.registers.items():
                out(f"    {register} = {text}")
            status = 1
            continue
        for line in result.log:
            out(line)
        calls = f", {result.max_call_depth} call frames" if result.max_call_depth > 1 else ""
        out(f"prog {name}: accepted: {result.instructions} instructions, {result.processed} processed, "
            f"{result.states_explored} states explored (peak {result.peak_states}, {result.pruned} pruned), "
            f"max stack {result.max_stack_depth} bytes{calls}, {result.seconds:.3f} s")
    return status
