"""The golden VM beyond the conformance vectors: edge cases of the semantics, memory safety, call frames,
the instruction limit, the trace hook and the per-class counts."""

import pytest

from bpfnic.sw import isa, memory
from bpfnic.sw.asm import assemble
from bpfnic.sw.vm import ProgramExit, TailCall, Vm, VmFault

M64 = (1 << 64) - 1


def run(source: str, mem: bytes | None = None, **kwargs):
    return Vm(assemble(source), **kwargs).run(mem)


@pytest.mark.parametrize("source, expected", [
    # division by zero gives 0; modulo by zero keeps the dividend (32-bit: low half, zero-extended)
    ("lddw %r0, 0x1234567890\nmov %r1, 0\ndiv %r0, %r1\nexit", 0),
    ("lddw %r0, 0x1234567890\nmov %r1, 0\nmod %r0, %r1\nexit", 0x1234567890),
    ("lddw %r0, 0x1234567890\nmov %r1, 0\nmod32 %r0, %r1\nexit", 0x34567890),
    ("lddw %r0, 0x1234567890\nmov %r1, 0\nsdiv32 %r0, %r1\nexit", 0),
    ("lddw %r0, 0x1234567890\nmov %r1, 0\nsmod %r0, %r1\nexit", 0x1234567890),
    # signed division truncates; INT_MIN / -1 wraps; the remainder takes the dividend's sign
    ("mov %r0, -7\nsdiv %r0, 2\nexit", (-3) & M64),
    ("mov %r0, -7\nsmod %r0, 2\nexit", (-1) & M64),
    ("mov %r0, 7\nsmod %r0, -2\nexit", 1),
    ("lddw %r0, 0x8000000000000000\nsdiv %r0, -1\nexit", 0x8000000000000000),
    ("lddw %r0, 0x8000000000000000\nsmod %r0, -1\nexit", 0),
    ("mov32 %r0, 0x80000000\nsdiv32 %r0, -1\nexit", 0x80000000),
    # 64-bit immediates are sign-extended, 32-bit results zero-extended
    ("mov %r0, -1\nexit", M64),
    ("mov32 %r0, -1\nexit", 0xFFFFFFFF),
    ("mov %r0, -1\nadd32 %r0, 1\nexit", 0),
    # shift counts are masked to the width
    ("mov %r0, 1\nmov %r1, 65\nlsh %r0, %r1\nexit", 2),
    ("mov32 %r0, 1\nmov %r1, 33\nlsh32 %r0, %r1\nexit", 2),
    ("mov %r0, -16\nmov %r1, 66\narsh %r0, %r1\nexit", (-4) & M64),
    ("mov32 %r0, -16\narsh32 %r0, 2\nexit", 0xFFFFFFFC),
    # byte swaps and sign-extending moves
    ("lddw %r0, 0x1122334455667788\nbe16 %r0\nexit", 0x8877),
    ("lddw %r0, 0x1122334455667788\nle32 %r0\nexit", 0x55667788),
    ("lddw %r0, 0x1122334455667788\nswap32 %r0\nexit", 0x88776655),
    ("mov %r1, 0x80\nmovsx864 %r0, %r1\nexit", 0xFFFFFFFFFFFFFF80),
    ("mov %r1, 0x8000\nmovsx1632 %r0, %r1\nexit", 0xFFFF8000),
    ("neg %r0\nexit", 0),
])
def test_semantics(source, expected):
    assert run(source).r0 == expected


def test_sign_extending_loads_and_atomics_on_the_stack():
    result = run("""
        stdw [%r10-8], -2
        ldxsb %r0, [%r10-8]
        mov %r1, 5
        lock fetch add [%r10-8], %r1
        ldxdw %r2, [%r10-8]
        add %r0, %r2
        add %r0, %r1
        exit
    """)
    assert result.r0 == ((-2) + 3 + (-2)) & M64


def test_memory_input_and_region_faults():
    mem = bytes(range(16))
    assert run("ldxw %r0, [%r1+12]\nexit", mem).r0 == int.from_bytes(mem[12:16], "little")
    with pytest.raises(VmFault, match="outside region input"):
        run("ldxw %r0, [%r1+13]\nexit", mem)
    with pytest.raises(VmFault, match="null pointer"):
        run("mov %r1, 0\nldxb %r0, [%r1]\nexit")
    with pytest.raises(VmFault, match="no region"):
        run("lddw %r1, 0x7700000000\nstb [%r1], 1\nexit")
    with pytest.raises(VmFault, match="outside region stack"):
        run("stdw [%r10], 1\nexit")  # the byte at r10 of the main frame is past the stack


def test_fault_names_the_instruction():
    with pytest.raises(VmFault) as caught:
        run("mov %r0, 0\nmov %r1, 0\nldxdw %r0, [%r1+8]\nexit")
    assert caught.value.pc == 2
    assert "instruction 2" in str(caught.value)


def test_local_calls_save_callee_saved_registers_and_get_their_own_frame():
    result = run("""
        mov %r6, 6
        stdw [%r10-8], 42
        call local f
        ldxdw %r1, [%r10-8]
        add %r0, %r1
        add %r0, %r6
        exit
    f:
        mov %r6, 100
        stdw [%r10-8], 7
        ldxdw %r0, [%r10-8]
        exit
    """)
    assert result.r0 == 7 + 42 + 6


def test_call_depth_limit():
    with pytest.raises(VmFault, match="call depth"):
        run("f:\ncall local f\nexit")


def test_instruction_limit_stops_an_endless_loop():
    with pytest.raises(VmFault, match="instruction limit of 1000"):
        run("top:\nja top\nexit", instruction_limit=1000)


def test_falling_off_the_end_is_a_fault():
    program = isa.make_program([isa.alu(isa.BPF_MOV, 0, 1)])
    with pytest.raises(VmFault, match="fell off the end"):
        Vm(program).run()


def test_unknown_helper_is_a_fault():
    with pytest.raises(VmFault, match="unknown helper 99"):
        run("call 99\nexit")


def test_helper_registry_and_program_exit():
    def add_args(vm, r1, r2, r3, r4, r5):
        return r1 + r2 + r3 + r4 + r5

    def stop(vm, r1, *_):
        raise ProgramExit(r1 * 2)

    source = "mov %r1, 1\nmov %r2, 2\nmov %r3, 3\nmov %r4, 4\nmov %r5, 5\ncall 1\nmov %r1, %r0\ncall 2\nmov %r0, 0\nexit"
    assert run(source, helpers={1: add_args, 2: stop}).r0 == 30


def test_tail_call_replaces_the_program():
    target = assemble("mov %r0, %r1\nadd %r0, 1000\nexit")

    def tail(vm, r1, *_):
        raise TailCall(target, "target")

    result = run("mov %r1, 5\ncall 12\nmov %r0, 1\nexit", helpers={12: tail})
    assert result.r0 == 1005
    assert result.tail_calls == 1
    assert result.instructions == 2 + 3


def test_trace_hook_sees_every_retired_instruction():
    seen = []
    program = assemble("mov %r0, 1\nmov %r1, 3\nloop:\nadd %r0, %r0\nsub %r1, 1\njne %r1, 0, loop\nexit")
    result = Vm(program, trace=lambda pc, insn, regs: seen.append((pc, regs[0]))).run()
    assert [pc for pc, _ in seen] == [0, 1, 2, 3, 4, 2, 3, 4, 2, 3, 4, 5]
    assert seen[-1] == (5, 8)
    assert result.instructions == len(seen)


def test_counts_by_class():
    result = run("mov32 %r0, 0\nmov %r1, 2\nloop:\nstxw [%r10-4], %r1\nldxw %r2, [%r10-4]\nsub %r1, 1\n"
                 "jne %r1, 0, loop\nlddw %r3, 1\nexit")
    assert result.counts_by_class == {"ld": 1, "ldx": 2, "st": 0, "stx": 2, "alu": 1, "jmp": 3, "jmp32": 0,
                                      "alu64": 3}
    assert result.instructions == 12


def test_legacy_packet_loads_are_big_endian_and_exit_with_zero_out_of_bounds():
    mem = bytes.fromhex("0011223344556677")
    assert run("ldabsh 2\nexit", mem).r0 == 0x2233
    assert run("mov %r6, 4\nldindw %r6, 0\nexit", mem).r0 == 0x44556677
    assert run("mov %r0, 9\nldabsw 6\nmov %r0, 1\nexit", mem).r0 == 0


def test_frame_pointers_follow_the_pointer_map():
    assert run("mov %r0, %r10\nexit").r0 == memory.frame_pointer(0)
    assert memory.frame_pointer(0) - memory.frame_pointer(1) == isa.STACK_SIZE
