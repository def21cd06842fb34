"""The verifier's test programs: small XDP programs, each a known accept or a known reject with its reason.

Written as data in the assembler dialect of sw/asm.py (the bpf_conformance `-- asm` dialect); the few that the
assembler refuses to write (a write to r10, a jump out of the program or into an lddw) are raw instruction
bytes in hex. tests/test_verifier.py checks our verdict and reason for each; tests/test_verifier_kernel.py
loads each into the Linux kernel and checks that it agrees on accept/reject, except for the cases marked
STRICTER (we refuse, the kernel accepts) or LOOSER, each with the reason in `why`.

Programs use the maps of STANDARD_MAPS by index (`lddw %r1, map_idx 1` is the hash map `table`).
The XDP context is in r1: data at [r1+0], data_end at [r1+4], data_meta at [r1+8], ingress_ifindex at
[r1+12], rx_queue_index at [r1+16] (struct xdp_md, include/uapi/linux/bpf.h).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bpfnic.sw import isa
from bpfnic.sw.asm import assemble
from bpfnic.sw.verifier import MapInfo, program_from_bytes

# enum bpf_map_type and map flags (include/uapi/linux/bpf.h)
HASH, ARRAY, PROG_ARRAY, DEVMAP = 1, 2, 3, 14
BPF_F_RDONLY_PROG = 1 << 7

#: The maps every test program may use, by index.
STANDARD_MAPS = [
    MapInfo(ARRAY, 4, 16, 4, name="values"),                              # 0: four 16-byte values
    MapInfo(HASH, 8, 8, 16, name="table"),                                # 1: u64 -> u64
    MapInfo(PROG_ARRAY, 4, 4, 2, name="jumps"),                           # 2: tail-call targets
    MapInfo(DEVMAP, 4, 4, 4, name="ports"),                               # 3: redirect targets
    MapInfo(ARRAY, 4, 8, 1, BPF_F_RDONLY_PROG, readonly=True, name="config"),  # 4: like .rodata
    MapInfo(ARRAY, 4, 16, 1, name="counters"),                            # 5: like .bss
]

AGREE = "agree"
STRICTER = "stricter"   # we refuse what the kernel accepts
LOOSER = "looser"       # we accept what the kernel refuses

# Why each knowingly different verdict differs.
WHY_UNINIT_STACK = ("the kernel lets root read stack bytes never written (allow_uninit_stack); the NIC's "
                    "stack still holds the previous packet's data, so we refuse as the unprivileged kernel does")
WHY_POINTER_LEAK = ("root may store pointers anywhere in the kernel (allow_ptr_leaks); on the NIC a pointer is "
                    "a region tag and offset that mean nothing outside the program, so it may not leave it")
WHY_NARROW_SPILL = ("the kernel remembers a spilled value's bounds only for spills at 8-byte-aligned stack "
                    "offsets; we keep them for every aligned spill, so we prove more (safely)")
WHY_TAIL_CALL_BTF = ("the kernel allows a tail call from a function only when the program comes with BTF "
                     "function information; we need no BTF and check the kernel's stack rule for such calls "
                     "(at most 256 bytes of callers' stack) ourselves")
WHY_DIVISION = ("the kernel forgets everything about a value divided or taken modulo; we keep its range (a "
                "quotient is at most the dividend), so an offset computed by division can be proven in bounds")
WHY_CTX_ARITHMETIC = ("the kernel allows moving the context pointer as long as it is back at offset 0 when "
                      "used; we refuse any arithmetic on it, which no compiler emits")


@dataclass(frozen=True)
class Case:
    """One test program. `reason` is None for a program we accept, else words of our refusal's reason;
    `index` the instruction we refuse at, when it is worth pinning."""

    name: str
    reason: str | None
    source: str = ""
    raw: str = ""                    # hex bytes, for programs the assembler will not write
    build: Callable[[], isa.Program] | None = None   # for programs too big to write out
    kernel: str = AGREE
    why: str = ""
    index: int | None = None
    complexity: int | None = None    # a smaller budget for our verifier, only to keep the test short

    def program(self) -> isa.Program:
        if self.build is not None:
            return self.build()
        if self.raw:
            return program_from_bytes(bytes.fromhex(self.raw))
        return assemble(self.source, source=self.name)

    @property
    def accepted(self) -> bool:
        return self.reason is None

    @property
    def kernel_accepts(self) -> bool:
        if self.kernel == AGREE:
            return self.accepted
        return self.kernel == STRICTER


def _too_large() -> isa.Program:
    """1,000,001 instructions: one over the size limit of privileged programs."""
    body = [isa.Insn(isa.BPF_ALU64 | isa.BPF_MOV | isa.BPF_K, 0, 0, 0, 2)] * 1_000_000
    return isa.Program(body + [isa.exit_insn()])


def _nested_calls(depth: int) -> str:
    """A chain of `depth` functions, each calling the next."""
    lines = ["call local f1", "exit"]
    for level in range(1, depth):
        lines += [f"f{level}:", f"call local f{level + 1}", "exit"]
    lines += [f"f{depth}:", "mov %r0, 2", "exit"]
    return "\n".join(lines)


CASES: list[Case] = [
    # -- accepted ------------------------------------------------------------------------------------------
    Case("return_pass", None, """
        mov %r0, 2
        exit
    """),
    Case("packet_read_after_check", None, """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 14
        jgt %r4, %r3, drop        # fewer than 14 bytes
        ldxh %r0, [%r2+12]        # the EtherType
        exit
    drop:
        mov %r0, 1
        exit
    """),
    Case("packet_check_strictly_less", None, """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 14
        jlt %r4, %r3, ok          # data + 14 < data_end: 15 bytes are there
        mov %r0, 1
        exit
    ok:
        ldxb %r0, [%r2+14]
        exit
    """),
    Case("packet_end_on_the_left", None, """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 14
        jge %r3, %r4, ok          # data_end >= data + 14
        mov %r0, 1
        exit
    ok:
        ldxh %r0, [%r2+12]
        exit
    """),
    Case("packet_end_less_or_equal", None, """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 14
        jle %r3, %r4, drop        # data_end <= data + 14; after it, 15 bytes
        ldxb %r0, [%r2+14]
        exit
    drop:
        mov %r0, 1
        exit
    """),
    Case("packet_write_mac", None, """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 6
        jgt %r4, %r3, drop
        stw [%r2+0], -1
        sth [%r2+4], -1
        mov %r0, 3
        exit
    drop:
        mov %r0, 1
        exit
    """),
    Case("packet_variable_offset", None, """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 15
        jgt %r4, %r3, drop
        ldxb %r5, [%r2+14]        # IPv4 version/ihl
        and %r5, 15
        lsh %r5, 2                # header length: 0..60
        mov %r6, %r2
        add %r6, %r5
        mov %r7, %r6
        add %r7, 4
        jgt %r7, %r3, drop
        ldxw %r0, [%r6+0]
        exit
    drop:
        mov %r0, 1
        exit
    """),
    Case("hash_lookup_null_checked", None, """
        stdw [%r10-8], 7
        mov %r2, %r10
        add %r2, -8
        lddw %r1, map_idx 1
        call 1
        jeq %r0, 0, out
        ldxdw %r1, [%r0+0]
        add %r1, 1
        stxdw [%r0+0], %r1
    out:
        mov %r0, 2
        exit
    """),
    Case("array_lookup_constant_key_never_null", None, """
        stw [%r10-8], 3
        mov %r2, %r10
        add %r2, -8
        lddw %r1, map_idx 0
        call 1
        ldxw %r0, [%r0+12]        # key 3 < max_entries 4: always found
        exit
    """),
    Case("map_update_from_stack", None, """
        stdw [%r10-8], 1
        stdw [%r10-16], 100
        mov %r2, %r10
        add %r2, -8
        mov %r3, %r10
        add %r3, -16
        mov %r4, 0
        lddw %r1, map_idx 1
        call 2
        mov %r0, 2
        exit
    """),
    Case("map_delete", None, """
        stdw [%r10-8], 1
        mov %r2, %r10
        add %r2, -8
        lddw %r1, map_idx 1
        call 3
        mov %r0, 2
        exit
    """),
    Case("bounded_loop", None, """
        mov %r0, 0
        mov %r1, 0
    loop:
        add %r0, %r1
        add %r1, 1
        jlt %r1, 100, loop
        exit
    """),
    Case("loop_over_packet_bytes", None, """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r0, 0
        mov %r4, 0
    loop:
        mov %r5, %r2
        add %r5, 1
        jgt %r5, %r3, done
        ldxb %r6, [%r2+0]
        add %r0, %r6
        mov %r2, %r5
        add %r4, 1
        jlt %r4, 8, loop
    done:
        exit
    """),
    Case("loop_bounded_by_a_packet_byte", None, """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 1
        mov %r0, 0
        jgt %r4, %r3, done
        ldxb %r5, [%r2+0]
        and %r5, 15
    loop:
        jge %r0, %r5, done
        add %r0, 1
        ja loop
    done:
        exit
    """),
    Case("spilled_packet_pointer_keeps_its_range", None, """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        stxdw [%r10-8], %r2       # spilled before the check
        mov %r4, %r2
        add %r4, 2
        jgt %r4, %r3, drop
        ldxdw %r5, [%r10-8]       # the check applies to the spilled copy too
        ldxh %r0, [%r5+0]
        exit
    drop:
        mov %r0, 1
        exit
    """),
    Case("spilled_scalar_keeps_its_bounds", None, """
        ldxw %r6, [%r1+12]
        and %r6, 12               # 0..12
        stxdw [%r10-16], %r6
        stw [%r10-4], 0
        mov %r2, %r10
        add %r2, -4
        lddw %r1, map_idx 0
        call 1                    # constant key: never null
        ldxdw %r6, [%r10-16]
        add %r0, %r6
        ldxw %r0, [%r0+0]         # bytes 12..15 at most, of 16
        exit
    """),
    Case("local_call_returns_a_value", None, """
        mov %r1, 5
        call local double
        exit
    double:
        mov %r0, %r1
        add %r0, %r1
        exit
    """),
    Case("callee_writes_callers_stack", None, """
        mov %r1, %r10
        add %r1, -8
        call local fill
        ldxdw %r0, [%r10-8]
        exit
    fill:
        stdw [%r1+0], 2
        mov %r0, 0
        exit
    """),
    Case("void_function", None, """
        call local nothing
        mov %r0, 2
        exit
    nothing:
        mov %r1, 1
        exit
    """),
    Case("callee_reads_packet_range_of_caller", None, """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 20
        jgt %r4, %r3, drop
        mov %r1, %r2
        call local first_word
        exit
    drop:
        mov %r0, 1
        exit
    first_word:
        ldxw %r0, [%r1+16]
        exit
    """),
    Case("tail_call_then_fallback", None, """
        lddw %r2, map_idx 2
        mov %r3, 0
        call 12
        mov %r0, 1                # reached when slot 0 is empty
        exit
    """),
    Case("redirect_map", None, """
        lddw %r1, map_idx 3
        mov %r2, 1
        mov %r3, 0
        call 51
        exit
    """),
    Case("redirect_helpers", None, """
        mov %r1, 1
        mov %r2, 0
        call 23
        exit
    """),
    Case("adjust_head_then_check_again", None, """
        mov %r6, %r1
        mov %r2, -20
        call 44
        jne %r0, 0, abort
        ldxw %r2, [%r6+0]
        ldxw %r3, [%r6+4]
        mov %r4, %r2
        add %r4, 20
        jgt %r4, %r3, abort
        stw [%r2+0], 0
        mov %r0, 3
        exit
    abort:
        mov %r0, 0
        exit
    """),
    Case("csum_diff_from_null", None, """
        stdw [%r10-8], 0x1234
        mov %r1, 0
        mov %r2, 0
        mov %r3, %r10
        add %r3, -8
        mov %r4, 8
        mov %r5, 0
        call 28
        mov %r0, 2
        exit
    """),
    Case("atomic_add_to_map_value", None, """
        stw [%r10-4], 0
        mov %r2, %r10
        add %r2, -4
        lddw %r1, map_idx 0
        call 1
        mov %r1, 1
        lock add [%r0+8], %r1
        lock fetch add32 [%r0+4], %r1
        mov %r0, %r1
        exit
    """),
    Case("global_data", None, """
        lddw %r1, map_idx_value 4     # .rodata-like: read
        ldxdw %r2, [%r1+0]
        lddw %r3, map_idx_value 5+8   # .bss-like: read and write
        stxdw [%r3+0], %r2
        mov %r0, 2
        exit
    """),
    Case("jmp32_bound_gives_map_index", None, """
        ldxw %r6, [%r1+16]        # rx_queue_index
        stw [%r10-4], 0
        mov %r2, %r10
        add %r2, -4
        lddw %r1, map_idx 0
        call 1
        mov %r7, %r0
        mov %r0, 2
        jgt32 %r6, 3, out
        lsh %r6, 2                # 0..12
        add %r7, %r6
        ldxw %r0, [%r7+0]
    out:
        exit
    """),
    Case("time_random_cpu_helpers", None, """
        call 5
        mov %r6, %r0
        call 7
        add %r6, %r0
        call 8
        add %r0, %r6
        exit
    """),
    Case("metadata_before_data", None, """
        ldxw %r2, [%r1+8]         # data_meta
        ldxw %r3, [%r1+0]         # data
        mov %r4, %r2
        add %r4, 4
        jgt %r4, %r3, out
        ldxw %r0, [%r2+0]
        exit
    out:
        mov %r0, 2
        exit
    """),
    Case("linked_copy_is_bounded_too", None, """
        ldxw %r6, [%r1+12]
        stw [%r10-4], 1
        mov %r2, %r10
        add %r2, -4
        lddw %r1, map_idx 0
        call 1
        mov %r3, %r6
        mov %r0, 2
        jgt %r3, 12, out          # bounds the copy, and r6 with it
        lddw %r1, map_idx_value 5
        add %r1, %r6
        ldxw %r0, [%r1+0]
    out:
        exit
    """),
    Case("helper_writes_a_stack_buffer", None, """
        mov %r2, 0
        mov %r3, %r10
        add %r3, -16
        mov %r4, 16
        call 189                  # bpf_xdp_load_bytes(ctx, 0, fp-16, 16)
        ldxdw %r0, [%r10-16]
        exit
    """),
    Case("dead_branch_is_not_explored", None, """
        mov %r4, 0
        jne %r4, 0, bad
        mov %r0, 2
        exit
    bad:
        ldxb %r0, [%r2+0]         # r2 is not even set, but no path gets here
        exit
    """),
    Case("trace_printk_format_on_stack", None, """
        stw [%r10-4], 0x000a6968  # "hi\\n"
        mov %r1, %r10
        add %r1, -4
        mov %r2, 4
        call 6
        mov %r0, 2
        exit
    """),
    Case("v4_sign_extension_and_swap", None, """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 4
        mov %r0, 1
        jgt %r4, %r3, out
        ldxsb %r5, [%r2+0]
        movsx1664 %r6, %r5
        bswap32 %r6
        ldxsh %r0, [%r2+2]
        sdiv %r0, 3
        add %r0, %r6
    out:
        exit
    """),
    Case("stack_read_at_a_variable_offset", None, """
        stdw [%r10-16], 1
        stdw [%r10-8], 2
        ldxw %r2, [%r1+12]
        and %r2, 7
        mov %r3, %r10
        add %r3, -16
        add %r3, %r2
        ldxb %r0, [%r3+0]
        exit
    """),
    Case("two_lookups_checked_separately", None, """
        stdw [%r10-8], 1
        mov %r2, %r10
        add %r2, -8
        lddw %r1, map_idx 1
        call 1
        mov %r6, %r0
        mov %r2, %r10
        add %r2, -8
        lddw %r1, map_idx 1
        call 1
        mov %r7, %r0
        mov %r0, 2
        jeq %r6, 0, out
        jeq %r7, 0, out
        ldxdw %r1, [%r6+0]
        ldxdw %r2, [%r7+0]
        add %r1, %r2
        stxdw [%r6+0], %r1
    out:
        exit
    """),
    Case("bounds_kept_through_a_4_byte_spill", None, """
        ldxw %r6, [%r1+12]
        and %r6, 12               # 0..12
        stxw [%r10-4], %r6        # a 4-byte spill: the kernel keeps only 8-byte-aligned ones
        stw [%r10-8], 0
        mov %r2, %r10
        add %r2, -8
        lddw %r1, map_idx 0
        call 1
        ldxw %r6, [%r10-4]
        add %r0, %r6
        ldxw %r0, [%r0+0]
        exit
    """, kernel=LOOSER, why=WHY_NARROW_SPILL),
    Case("tail_call_from_a_function", None, """
        call local jump
        mov %r0, 2
        exit
    jump:
        lddw %r2, map_idx 2
        mov %r3, 0
        call 12
        mov %r0, 0
        exit
    """, kernel=LOOSER, why=WHY_TAIL_CALL_BTF),
    Case("division_keeps_bounds", None, """
        ldxw %r6, [%r1+12]        # any u32
        div %r6, 0x10000000       # 0..15
        lddw %r1, map_idx_value 5
        add %r1, %r6
        ldxb %r0, [%r1+0]         # byte 15 at most, of 16
        exit
    """, kernel=LOOSER, why=WHY_DIVISION),
    Case("pointer_difference_is_a_number", None, """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        sub %r3, %r2              # the packet's length
        mov %r0, 2
        jgt %r3, 1500, big
        exit
    big:
        mov %r0, 1
        exit
    """),
    # -- refused -----------------------------------------------------------------------------------------
    Case("uninitialized_register", "r2 is read before it is written", """
        mov %r0, %r2
        exit
    """, index=0),
    Case("register_clobbered_by_a_call", "r1 is read before it is written", """
        call 5
        mov %r0, %r1
        exit
    """, index=1),
    Case("uninitialized_stack", "stack bytes fp-8..fp-1 are read before they are written", """
        ldxdw %r0, [%r10-8]
        exit
    """, kernel=STRICTER, why=WHY_UNINIT_STACK),
    Case("uninitialized_stack_at_a_variable_offset", "read before they are written", """
        ldxw %r2, [%r1+12]
        and %r2, 7
        mov %r3, %r10
        add %r3, -16
        add %r3, %r2
        ldxb %r0, [%r3+0]
        exit
    """, kernel=STRICTER, why=WHY_UNINIT_STACK),
    Case("packet_read_unchecked", "packet access not proven within data_end", """
        ldxw %r2, [%r1+0]
        ldxw %r0, [%r2+0]
        exit
    """, index=1),
    Case("packet_read_past_the_check", "packet access not proven within data_end", """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 14
        jgt %r4, %r3, drop
        ldxw %r0, [%r2+12]        # bytes 12..15, only 14 checked
        exit
    drop:
        mov %r0, 1
        exit
    """, index=5),
    Case("packet_read_on_the_failing_branch", "packet access not proven within data_end", """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 14
        jgt %r4, %r3, short
        mov %r0, 2
        exit
    short:
        ldxb %r0, [%r2+0]         # the packet is shorter than 14 here, maybe empty
        exit
    """),
    Case("packet_read_before_the_start", "before the start of the packet", """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 14
        jgt %r4, %r3, drop
        ldxb %r0, [%r2-1]
        exit
    drop:
        mov %r0, 1
        exit
    """),
    Case("packet_offset_may_be_negative", "variable offset may be negative", """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        ldxw %r5, [%r1+12]
        lsh %r5, 56
        arsh %r5, 56              # -128..127
        add %r2, %r5
        mov %r4, %r2
        add %r4, 1
        jgt %r4, %r3, drop
        ldxb %r0, [%r2+0]
        exit
    drop:
        mov %r0, 1
        exit
    """),
    Case("map_value_out_of_bounds", "map value access out of bounds", """
        stw [%r10-4], 0
        mov %r2, %r10
        add %r2, -4
        lddw %r1, map_idx 0
        call 1
        ldxw %r0, [%r0+13]        # bytes 13..16 of a 16-byte value
        exit
    """),
    Case("map_value_may_be_null", "may be null", """
        stdw [%r10-8], 7
        mov %r2, %r10
        add %r2, -8
        lddw %r1, map_idx 1
        call 1
        ldxdw %r0, [%r0+0]
        exit
    """, index=6),
    Case("map_value_used_on_the_null_branch", "is a scalar, not a pointer", """
        stdw [%r10-8], 7
        mov %r2, %r10
        add %r2, -8
        lddw %r1, map_idx 1
        call 1
        jne %r0, 0, found
        ldxdw %r0, [%r0+0]        # r0 is 0 here
        exit
    found:
        mov %r0, 2
        exit
    """),
    Case("map_value_unbounded_offset", "unbounded offset", """
        ldxw %r6, [%r1+12]
        stw [%r10-4], 0
        mov %r2, %r10
        add %r2, -4
        lddw %r1, map_idx 0
        call 1
        add %r0, %r6
        ldxb %r0, [%r0+0]
        exit
    """),
    Case("map_value_offset_may_be_negative", "variable offset may be negative", """
        ldxw %r6, [%r1+12]
        lsh %r6, 56
        arsh %r6, 60              # -8..7
        stw [%r10-4], 0
        mov %r2, %r10
        add %r2, -4
        lddw %r1, map_idx 0
        call 1
        add %r0, %r6
        ldxb %r0, [%r0+8]
        exit
    """),
    Case("map_value_past_a_bounded_offset", "map value access out of bounds", """
        ldxw %r6, [%r1+12]
        and %r6, 15
        stw [%r10-4], 0
        mov %r2, %r10
        add %r2, -4
        lddw %r1, map_idx 0
        call 1
        add %r0, %r6
        ldxw %r0, [%r0+0]         # up to bytes 15..18
        exit
    """),
    # A copy bounded through its link on one path and not linked on the other: the join must not prune the
    # second path against the first.
    Case("copy_bounded_only_on_one_path", "unbounded offset", """
        ldxw %r6, [%r1+12]
        ldxw %r8, [%r1+16]
        mov %r9, %r1
        stw [%r10-8], 0
        mov %r2, %r10
        add %r2, -8
        lddw %r1, map_idx 0
        call 1
        jgt %r8, 5, other
        mov %r7, %r6              # linked: the check of r6 below bounds r7 too
        ja join
    other:
        ldxw %r7, [%r9+12]        # the same range as r6, but not linked to it
    join:
        jgt %r6, 12, out
        add %r0, %r7
        ldxw %r0, [%r0+0]
        exit
    out:
        mov %r0, 2
        exit
    """),
    Case("stack_below_the_frame", "outside the 512-byte frame", """
        stdw [%r10-520], 0
        mov %r0, 2
        exit
    """),
    Case("stack_above_the_frame", "outside the 512-byte frame", """
        stdw [%r10+0], 0
        mov %r0, 2
        exit
    """),
    Case("misaligned_stack", "misaligned stack access", """
        stw [%r10-6], 0
        mov %r0, 2
        exit
    """),
    Case("write_to_r10", "r10 is the read-only frame pointer",
         raw="b70a000000000000" "b700000002000000" "9500000000000000", index=0),
    Case("context_arithmetic", "arithmetic on the context pointer", """
        add %r1, 8
        ldxw %r0, [%r1+0]
        exit
    """),
    Case("context_arithmetic_undone", "arithmetic on the context pointer", """
        add %r1, 8
        add %r1, -8
        ldxw %r0, [%r1+0]
        exit
    """, kernel=STRICTER, why=WHY_CTX_ARITHMETIC),
    Case("packet_end_arithmetic", "arithmetic on the packet end pointer", """
        ldxw %r3, [%r1+4]
        add %r3, 1
        mov %r0, 2
        exit
    """),
    Case("pointer_plus_pointer", "adding two pointers", """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        add %r3, %r2
        mov %r0, 2
        exit
    """),
    Case("scalar_minus_pointer", "subtracting a pointer from a scalar", """
        ldxw %r2, [%r1+0]
        mov %r3, 100
        sub %r3, %r2
        mov %r0, 2
        exit
    """),
    Case("pointer_masked", "and on a pointer is not allowed", """
        ldxw %r2, [%r1+0]
        and %r2, -8
        mov %r0, 2
        exit
    """),
    Case("pointer_32bit_arithmetic", "32-bit arithmetic on a pointer", """
        ldxw %r2, [%r1+0]
        add32 %r2, 4
        mov %r0, 2
        exit
    """),
    Case("arithmetic_on_a_maybe_null_value", "may be null", """
        stdw [%r10-8], 7
        mov %r2, %r10
        add %r2, -8
        lddw %r1, map_idx 1
        call 1
        add %r0, 4
        mov %r0, 2
        exit
    """),
    Case("pointer_stored_into_a_map", "storing a pointer into a map value", """
        mov %r6, %r1
        stw [%r10-4], 0
        mov %r2, %r10
        add %r2, -4
        lddw %r1, map_idx 0
        call 1
        stxdw [%r0+0], %r6
        mov %r0, 2
        exit
    """, kernel=STRICTER, why=WHY_POINTER_LEAK),
    Case("pointer_stored_into_the_packet", "storing a pointer into the packet", """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 8
        jgt %r4, %r3, out
        stxdw [%r2+0], %r2
    out:
        mov %r0, 2
        exit
    """, kernel=STRICTER, why=WHY_POINTER_LEAK),
    Case("helper_map_argument_not_a_map", "must be a map", """
        mov %r1, 0
        mov %r2, %r10
        add %r2, -8
        stdw [%r10-8], 0
        call 1
        mov %r0, 2
        exit
    """),
    Case("helper_key_in_an_unchecked_packet", "must point to the 8-byte key", """
        ldxw %r2, [%r1+0]
        lddw %r1, map_idx 1
        call 1
        mov %r0, 2
        exit
    """),
    Case("helper_key_never_written", "read before they are written", """
        mov %r2, %r10
        add %r2, -8
        lddw %r1, map_idx 1
        call 1
        mov %r0, 2
        exit
    """, kernel=STRICTER, why=WHY_UNINIT_STACK),
    Case("helper_argument_uninitialized", "r2 (argument 2 of map_lookup_elem) is read before it is written", """
        lddw %r1, map_idx 1
        call 1
        mov %r0, 2
        exit
    """),
    Case("tail_call_through_an_array", "which tail_call cannot use", """
        lddw %r2, map_idx 0
        mov %r3, 0
        call 12
        mov %r0, 2
        exit
    """),
    Case("redirect_map_through_a_hash", "which redirect_map cannot use", """
        lddw %r1, map_idx 1
        mov %r2, 0
        mov %r3, 0
        call 51
        exit
    """),
    Case("update_a_devmap_from_a_program", "which map_update_elem cannot use", """
        stw [%r10-4], 0
        stw [%r10-8], 1
        mov %r2, %r10
        add %r2, -4
        mov %r3, %r10
        add %r3, -8
        mov %r4, 0
        lddw %r1, map_idx 3
        call 2
        mov %r0, 2
        exit
    """),
    Case("helper_size_unbounded", "is not bounded", """
        ldxw %r4, [%r1+12]
        stdw [%r10-8], 0
        mov %r1, 0
        mov %r2, 0
        mov %r3, %r10
        add %r3, -8
        mov %r5, 0
        call 28
        mov %r0, 2
        exit
    """),
    Case("helper_context_argument_wrong", "must be the context pointer", """
        mov %r1, %r10
        add %r1, -8
        mov %r2, 4
        call 44
        mov %r0, 2
        exit
    """),
    Case("context_access_at_an_odd_offset", "context access of 4 bytes at offset 2", """
        ldxw %r0, [%r1+2]
        exit
    """),
    Case("context_access_too_narrow", "context access of 1 bytes at offset 12", """
        ldxb %r0, [%r1+12]
        exit
    """),
    Case("context_write", "read-only", """
        stw [%r1+12], 0
        mov %r0, 2
        exit
    """),
    Case("context_egress_ifindex", "egress_ifindex is only readable", """
        ldxw %r0, [%r1+20]
        exit
    """),
    Case("exit_without_r0", "r0 is not initialized at exit", """
        exit
    """),
    Case("exit_with_a_pointer", "exit with r0 not a scalar", """
        ldxw %r0, [%r1+0]
        exit
    """, kernel=STRICTER, why="root may return an address from XDP in the kernel (it is then read as an "
                              "action number); a pointer on the NIC is a region tag, never a verdict"),
    Case("unknown_helper", "call to unknown helper 9999", """
        call 9999
        mov %r0, 2
        exit
    """),
    Case("helper_not_for_xdp", "call to unknown helper 9", """
        call 9
        mov %r0, 2
        exit
    """),
    Case("call_chain_too_deep", "call depth over the limit of 8 frames", _nested_calls(8)),
    Case("recursion", "recursive call", """
        call local again
        exit
    again:
        mov %r0, 2
        jeq %r1, 0, done
        call local again
    done:
        exit
    """),
    Case("combined_stack_too_large", "the combined stack", """
        stdw [%r10-256], 0
        call local deep
        mov %r0, 2
        exit
    deep:
        stdw [%r10-384], 0
        mov %r0, 0
        exit
    """),
    # The kernel refuses this one earlier, as a tail call from a function without BTF (see below).
    Case("tail_call_below_a_deep_stack", "makes a tail call while its callers use", """
        stdw [%r10-304], 0
        mov %r6, %r1
        call local jump
        mov %r0, 2
        exit
    jump:
        lddw %r2, map_idx 2
        mov %r3, 0
        call 12
        mov %r0, 0
        exit
    """),
    Case("jump_out_of_the_program", "outside the program",
         raw="b700000002000000" "0500050000000000" "9500000000000000", index=1),
    Case("jump_into_an_lddw", "into the middle of the lddw",
         raw="0500010000000000" "1801000001000000" "0000000000000000" "b700000002000000" "9500000000000000",
         index=0),
    Case("unreachable_instruction", "instruction 2 is unreachable", """
        mov %r0, 2
        exit
        mov %r0, 1
        exit
    """, index=2),
    Case("falls_off_the_end", "fall off the end of the program", """
        mov %r0, 2
    """),
    Case("infinite_loop", "loop is not bounded", """
        mov %r0, 2
    again:
        ja again
    """),
    Case("loop_waiting_on_an_unchanging_value", "loop is not bounded", """
        mov %r0, 2
    again:
        ldxw %r2, [%r1+12]
        jne %r2, 0, again
        exit
    """),
    Case("loop_that_only_counts", "too complex", """
        mov %r0, 0
    again:
        add %r0, 1
        jne %r0, 0, again
        exit
    """, complexity=20_000),
    Case("legacy_packet_load", "legacy packet loads", """
        ldabsb 12
        exit
    """),
    Case("kernel_function_call", "calls of kernel functions", """
        call kfunc 1
        mov %r0, 2
        exit
    """),
    Case("call_through_a_register", "calls through a register", """
        mov %r2, 5
        call %r2
        mov %r0, 2
        exit
    """),
    Case("map_that_does_not_exist", "lddw refers to map 99", """
        lddw %r1, map_idx 99
        mov %r0, 2
        exit
    """),
    Case("write_to_a_read_only_map", "is read-only to programs", """
        lddw %r1, map_idx_value 4
        stdw [%r1+0], 1
        mov %r0, 2
        exit
    """),
    Case("packet_pointer_after_adjust_head", "changed the packet", """
        mov %r6, %r1
        ldxw %r7, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r7
        add %r4, 14
        jgt %r4, %r3, out
        mov %r1, %r6
        mov %r2, 4
        call 44
        ldxb %r0, [%r7+0]         # r7 was checked, but before the packet moved
        exit
    out:
        mov %r0, 1
        exit
    """),
    Case("atomic_on_the_packet", "atomic operations on the packet", """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 8
        jgt %r4, %r3, out
        mov %r5, 1
        lock add [%r2+0], %r5
    out:
        mov %r0, 2
        exit
    """),
    Case("misaligned_atomic_on_a_map_value", "misaligned", """
        stw [%r10-4], 0
        mov %r2, %r10
        add %r2, -4
        lddw %r1, map_idx 0
        call 1
        mov %r1, 1
        lock add [%r0+2], %r1
        mov %r0, 2
        exit
    """),
    Case("callee_stack_pointer_into_callers_stack", "cannot be stored in its caller's stack", """
        mov %r1, %r10
        add %r1, -8
        call local leak
        mov %r0, 2
        exit
    leak:
        mov %r2, %r10
        add %r2, -8
        stxdw [%r1+0], %r2
        mov %r0, 0
        exit
    """),
    Case("returns_its_own_stack", "returns a pointer to its own stack", """
        call local local_buffer
        mov %r0, 2
        exit
    local_buffer:
        stdw [%r10-8], 0
        mov %r0, %r10
        add %r0, -8
        exit
    """),
    Case("part_of_a_spilled_pointer", "reads part of the pointer spilled", """
        stxdw [%r10-8], %r1
        ldxw %r0, [%r10-8]
        exit
    """),
    Case("program_too_large", "over the limit of 1000000", build=_too_large),
]


def case(name: str) -> Case:
    for entry in CASES:
        if entry.name == name:
            return entry
    raise KeyError(name)


# -- Random programs, for differential tests against the kernel and the golden VM ----------------------------
#
# XDP programs made of random blocks: packet bounds checks (right and wrong ones), packet loads, scalar
# arithmetic, diamonds, pointers moved by masked or unmasked packet data, map lookups with and without null
# checks, stack spills and fills, small bounded loops, calls of a random function that gets the packet, and
# copies linked on one arm of a branch only, then bounded through the link.
# r6 holds data and r7 data_end throughout, r8 and r9 are scalars, fp-16..fp-1 are written before anything
# reads them. They stay clear of what we refuse on
# purpose and the kernel does not (STRICTER above), so the kernel must agree on every one.

def random_program(rng) -> str:
    """The assembly of one random program, from a random.Random."""
    lines = ["ldxw %r6, [%r1+0]", "ldxw %r7, [%r1+4]", "mov %r8, 0", "mov %r9, 0",
             "stdw [%r10-8], 0", "stdw [%r10-16], 0", "mov %r4, %r6", "add %r4, 1", "jgt %r4, %r7, out"]
    scalars = ("%r8", "%r9")
    for block in range(rng.randint(2, 10)):
        kind = rng.choice(("check", "check", "load", "load", "alu", "alu", "diamond", "pointer", "lookup",
                           "stack", "loop", "call", "linked"))
        reg, other = rng.sample(scalars, 2)
        if kind == "check":
            size = rng.randint(1, 48)
            lines += ["mov %r4, %r6", f"add %r4, {size}"]
            lines += rng.choice([
                ["jgt %r4, %r7, out"],                                              # proves size bytes
                [f"jge %r7, %r4, ok{block}", "mov %r0, 1", "exit", f"ok{block}:"],  # proves size bytes
                [f"jlt %r4, %r7, ok{block}", "mov %r0, 1", "exit", f"ok{block}:"],  # proves size + 1
                ["jle %r4, %r7, out"],                                              # proves nothing
                ["jsgt %r4, %r7, out"],                                             # signed: proves nothing
            ])
        elif kind == "load":
            width = rng.choice(("b", "h", "w", "dw"))
            lines.append(f"ldx{width} {reg}, [%r6+{rng.randint(0, 44)}]")
        elif kind == "alu":
            lines.append(_random_alu(rng, reg, other))
        elif kind == "diamond":
            condition = rng.choice(("jgt", "jeq", "jne", "jlt", "jset", "jsgt", "jgt32", "jle32"))
            lines.append(f"{condition} {reg}, {rng.randint(0, 300)}, side{block}")
            lines += [_random_alu(rng, reg, other) for _ in range(rng.randint(1, 2))]
            lines.append(f"side{block}:")
        elif kind == "pointer":
            mask, size = rng.choice((7, 15, 63, None)), rng.randint(1, 16)
            lines += ["mov %r4, " + reg]
            if mask is not None:
                lines.append(f"and %r4, {mask}")
            lines += ["mov %r5, %r6", "add %r5, %r4", "mov %r4, %r5", f"add %r4, {size}", "jgt %r4, %r7, out",
                      f"ldxb {other}, [%r5+{rng.randint(0, size)}]"]
        elif kind == "lookup":
            table = rng.choice((0, 1))  # the array (4-byte keys, 16-byte values) or the hash (8, 8)
            if rng.random() < 0.5:
                lines.append(f"stxdw [%r10-8], {reg}")
            lines += ["mov %r2, %r10", "add %r2, -8", f"lddw %r1, map_idx {table}", "call 1"]
            if rng.random() < 0.8:
                lines.append(f"jeq %r0, 0, miss{block}")
            offset, width = rng.randint(0, 12), rng.choice(("w", "dw"))
            lines.append(rng.choice((f"ldx{width} {reg}, [%r0+{offset}]", f"stx{width} [%r0+{offset}], {reg}")))
            lines.append(f"miss{block}:")
        elif kind == "stack":
            slot = rng.choice((-8, -16))
            lines.append(rng.choice((f"stxdw [%r10{slot}], {reg}", f"ldxdw {reg}, [%r10{slot}]",
                                     f"ldxw {reg}, [%r10{slot}]", f"stdw [%r10{slot}], {rng.randint(0, 99)}")))
        elif kind == "linked":  # a copy linked on one arm only, bounded through the link after the join
            lines += [f"ldxb {reg}, [%r6+0]", "ldxb %r4, [%r6+0]", f"jgt %r4, {rng.randint(0, 40)}, arm{block}",
                      f"mov {other}, {reg}", f"ja join{block}",
                      f"arm{block}:", rng.choice((f"ldxb {other}, [%r6+0]", f"mov {other}, {reg}",
                                                  f"mov {other}, {rng.randint(0, 20)}")),
                      f"join{block}:", f"jgt {reg}, {rng.randint(0, 20)}, skip{block}",
                      "lddw %r5, map_idx_value 5", f"add %r5, {other}", f"ldxb {other}, [%r5+0]",
                      f"skip{block}:"]
        elif kind == "loop":
            lines += ["mov %r4, 0", f"loop{block}:", f"add {reg}, %r4", "add %r4, 1",
                      f"jlt %r4, {rng.randint(1, 6)}, loop{block}"]
        else:  # a call: the function gets the packet, its end and a scalar, and returns a scalar
            lines += ["mov %r1, %r6", "mov %r2, %r7", f"mov %r3, {reg}", "call local function", f"mov {reg}, %r0"]
    lines += ["mov %r0, %r8", "and %r0, 3", "exit", "out:", "mov %r0, 1", "exit"]
    if "call local function" in lines:
        lines += ["function:"] + _random_function(rng)
    return "\n".join(lines) + "\n"


def _random_function(rng) -> list[str]:
    """A function of (packet, packet end, scalar): r6..r9 are its own, written before use."""
    lines = ["mov %r6, %r1", "mov %r7, %r2", "mov %r8, %r3", "mov %r9, 0", "mov %r4, %r6", "add %r4, 1",
             "jgt %r4, %r7, function_out"]
    for block in range(rng.randint(1, 4)):
        kind = rng.choice(("check", "load", "alu", "pointer", "diamond"))
        if kind == "check":
            lines += ["mov %r4, %r6", f"add %r4, {rng.randint(1, 32)}", "jgt %r4, %r7, function_out"]
        elif kind == "load":
            lines.append(f"ldxb %r9, [%r6+{rng.randint(0, 32)}]")
        elif kind == "alu":
            lines.append(_random_alu(rng, "%r8", "%r9"))
        elif kind == "diamond":
            lines += [f"jgt %r8, {rng.randint(0, 100)}, function_side{block}", _random_alu(rng, "%r8", "%r9"),
                      f"function_side{block}:"]
        else:
            size = rng.randint(1, 16)
            lines += ["mov %r4, %r8", f"and %r4, {rng.choice((7, 15, 31))}", "mov %r5, %r6", "add %r5, %r4",
                      "mov %r4, %r5", f"add %r4, {size}", "jgt %r4, %r7, function_out",
                      f"ldxb %r9, [%r5+{rng.randint(0, size)}]"]
    return lines + ["mov %r0, %r8", "add %r0, %r9", "exit", "function_out:", "mov %r0, 0", "exit"]


def _random_alu(rng, reg: str, other: str) -> str:
    # no div or mod: the kernel forgets a value's range after them, we do not (see division_keeps_bounds)
    operation = rng.choice(("add", "sub", "xor", "or", "and", "mul", "lsh", "rsh", "arsh", "mov"))
    width = rng.choice(("", "32"))
    if operation in ("lsh", "rsh", "arsh"):
        return f"{operation}{width} {reg}, {rng.randint(0, 31)}"
    source = other if rng.random() < 0.3 else str(rng.randint(0, 255))
    return f"{operation}{width} {reg}, {source}"
