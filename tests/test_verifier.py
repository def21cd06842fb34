"""Tests of the static verifier (sw/verifier.py, sw/verifier_state.py) and the offload check (sw/capabilities.py).

- Each program of tests/verifier_programs.py gets the verdict and the reason it is written down with.
- Every program of every example (examples/*.c, compiled here) is accepted.
- The abstract domain is sound: for random abstract values and concrete values inside them, the golden VM's
  result of each ALU operation lies inside the abstract result, and each comparison's outcome is kept by the
  narrowing of its side.
- Random programs the verifier accepts never fault on the golden VM (which checks every access).
- Pruning keeps branchy code linear without hiding an unsafe path; errors, logs and statistics are as
  documented; the offload check reports every reason at once.
"""

from __future__ import annotations

import importlib.util
import random
import struct
from pathlib import Path

import pytest

from bpfnic.sw import isa
from bpfnic.sw import verifier_state as vs
from bpfnic.sw.asm import assemble
from bpfnic.sw.capabilities import (DEFAULT_CAPABILITIES, CapabilitiesError, HardwareCapabilities, OffloadProblem,
                                    check_offload, map_memory)
from bpfnic.sw.compile import compile_c, declared_mcpu
from bpfnic.sw.elf_loader import BpfObject, MapDef, ProgramDef, load_object
from bpfnic.sw.verifier import (DEFAULT, UNPRIVILEGED, MapInfo, VerifierError, VerifierLimits, main_verify,
                                map_infos, program_from_bytes, verify)
from bpfnic.sw.vm import Vm
from bpfnic.sw.xdp import XdpSession

from verifier_programs import CASES, STANDARD_MAPS, AGREE, random_program

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def check(source: str, maps=STANDARD_MAPS, **options):
    return verify(assemble(source), maps, **options)


def refusal(source: str, maps=STANDARD_MAPS, **options) -> VerifierError:
    with pytest.raises(VerifierError) as caught:
        check(source, maps, **options)
    return caught.value


# -- the written-down programs -------------------------------------------------------------------------------

def test_there_are_enough_cases_of_both_kinds():
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    assert len(CASES) >= 60
    assert sum(case.accepted for case in CASES) >= 20
    assert sum(not case.accepted for case in CASES) >= 40
    for case in CASES:
        assert (case.kernel == AGREE) == (not case.why), case.name


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_case(case):
    limits = VerifierLimits(complexity=case.complexity) if case.complexity else DEFAULT
    program = case.program()
    if case.accepted:
        result = verify(program, STANDARD_MAPS, name=case.name, limits=limits)
        assert result.instructions == len(program)
        return
    with pytest.raises(VerifierError) as caught:
        verify(program, STANDARD_MAPS, name=case.name, limits=limits)
    error = caught.value
    assert case.reason in error.reason
    if case.index is not None:
        assert error.insn_index == case.index
    assert "\n" not in str(error)
    assert str(error).startswith(f"prog {case.name}: ")


@pytest.mark.slow
def test_a_loop_that_never_ends_hits_the_kernels_limit():
    error = refusal("""
        mov %r0, 0
    again:
        add %r0, 1
        jne %r0, 0, again
        exit
    """)
    assert "over 1000000 instructions processed" in error.reason


# -- the examples -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> dict[str, BpfObject]:
    folder = tmp_path_factory.mktemp("verifier_examples")
    objects = {}
    for source in sorted(EXAMPLES.glob("*.c")):
        objects[source.stem] = load_object(compile_c(source, folder / f"{source.stem}.o",
                                                     declared_mcpu(source) or "v3"))
    assert objects, f"no examples in {EXAMPLES}"
    return objects


def test_every_example_is_accepted(examples):
    checked = 0
    for name, obj in examples.items():
        for key, program in obj.programs.items():
            result = verify(program.insns, map_infos(obj.maps), name=f"{name} {key}")  # raises if refused
            assert result.instructions == len(program.insns)
            checked += 1
    assert checked >= len(examples)


def test_every_example_fits_the_planned_build(examples):
    for name, obj in examples.items():
        assert check_offload(obj) == [], name


# -- messages, logs, statistics --------------------------------------------------------------------------------

def test_a_refusal_is_one_line_with_the_registers_involved():
    error = refusal("""
        ldxw %r2, [%r1+0]
        ldxw %r0, [%r2+0]
        exit
    """, name="xdp")
    assert str(error) == ("prog xdp: instruction 1 (ldxw %r0, [%r2]): packet access not proven within data_end "
                          "(bytes 0..3 from the pointer's base, 0 proven): r2 = pkt(off=0,r=0)")
    assert (error.program, error.insn_index, error.insn_text) == ("xdp", 1, "ldxw %r0, [%r2]")
    assert error.registers == {"r2": "pkt(off=0,r=0)"}
    assert error.log == []


def test_registers_show_ranges_and_maps():
    error = refusal("""
        ldxw %r6, [%r1+12]
        and %r6, 15
        stw [%r10-8], 0
        mov %r2, %r10
        add %r2, -8
        lddw %r1, map_idx 0
        call 1
        add %r0, %r6
        ldxw %r0, [%r0+0]
        exit
    """)
    assert error.registers == {"r0": "map_value(map=values,off=0,var=0..15)"}
    assert "bytes 0..18 of the 16-byte value of map values" in error.reason


def test_the_log_follows_the_path_to_the_refusal():
    error = refusal("""
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 4
        jgt %r4, %r3, out
        ldxw %r0, [%r2+2]
        exit
    out:
        mov %r0, 1
        exit
    """, log=True)
    assert error.log[0] == "0: ldxw %r2, [%r1]    ; r2 = pkt(off=0,r=0)"
    assert error.log[4] == "4: jgt %r4, %r3, +2    ; both branches: falls through, 7 later"
    assert error.log[-1] == "5: ldxw %r0, [%r2+2]    ; refused"
    assert error.insn_index == 5


def test_the_log_of_an_accepted_program_shows_pruning_and_both_paths():
    result = check("""
        ldxw %r6, [%r1+12]
        ldxw %r8, [%r1+16]
        mov %r0, 2
        jgt %r6, 10, big
        mov %r7, 1
        add %r7, %r8
        mul %r7, 3
        xor %r7, 5
        rsh %r7, 1
        add %r7, %r8
        and %r7, 7
        ja join
    big:
        mov %r7, 2
    join:
        jeq %r7, 3, out
        exit
    out:
        exit
    """, log=True)
    text = "\n".join(result.log)
    assert "from 3 to 12: the other branch" in text
    assert "pruned" in text
    assert result.pruned >= 1
    assert check("mov %r0, 2\nexit").log == []


def test_statistics():
    result = check("""
        stdw [%r10-24], 1
        mov %r1, %r10
        add %r1, -8
        call local inner
        mov %r0, 2
        exit
    inner:
        stdw [%r1+0], 7
        stdw [%r10-40], 3
        mov %r0, 0
        exit
    """)
    assert result.instructions == 10
    assert result.max_stack_depth == 24 + 40
    assert result.max_call_depth == 2
    assert result.functions == 2
    assert result.seconds >= 0


def test_helpers_used_are_listed_with_their_instructions():
    result = check("call 5\nmov %r6, %r0\ncall 7\ncall 5\nmov %r0, 2\nexit")
    assert result.helpers == {5: [0, 3], 7: [2]}


# -- pruning and precision ---------------------------------------------------------------------------------------

def _diamonds(count: int, tail: str = "") -> str:
    """`count` joins in a row, each arm changing a running value that no later decision depends on."""
    lines = ["ldxw %r2, [%r1+0]", "ldxw %r3, [%r1+4]", "mov %r4, %r2", "add %r4, 8", "jgt %r4, %r3, out",
             "ldxw %r7, [%r2+0]"]
    for block in range(count):
        lines += [f"ldxb %r5, [%r2+{block % 8}]", f"jgt %r5, {block * 5 % 200}, arm{block}", "add %r7, %r5",
                  f"ja join{block}", f"arm{block}:", "mul %r7, 3", f"join{block}:"]
    lines += [tail, "mov %r0, %r7", "and %r0, 3", "exit", "out:", "mov %r0, 1", "exit"]
    return "\n".join(lines)


def test_joins_are_pruned_so_branches_do_not_multiply():
    result = check(_diamonds(60))
    assert result.processed < 60 * 12   # 2**60 paths without pruning
    assert result.pruned >= 59


def test_a_value_a_decision_rests_on_is_never_pruned_away():
    # The arms leave r8 = 4 or 20; the access that follows is safe only for 4. A pruning that ignored r8 at
    # the join would verify one arm and wave the other through.
    for first, second in ((4, 20), (20, 4)):
        source = f"""
            ldxw %r6, [%r1+12]
            stw [%r10-8], 0
            mov %r2, %r10
            add %r2, -8
            lddw %r1, map_idx 0
            call 1
            jgt %r6, 10, high
            mov %r8, {first}
            ja join
        high:
            mov %r8, {second}
        join:
            mov %r7, %r6
            jeq %r7, 0, skip
        skip:
            add %r0, %r8
            ldxw %r0, [%r0+8]
            exit
        """
        assert "map value access out of bounds" in refusal(source).reason


def test_a_spilled_value_a_decision_rests_on_is_never_pruned_away():
    error = refusal("""
        ldxw %r6, [%r1+12]
        jgt %r6, 10, high
        stdw [%r10-8], 4
        ja join
    high:
        stdw [%r10-8], 40
    join:
        jeq %r6, 5, skip
    skip:
        stw [%r10-16], 0
        mov %r2, %r10
        add %r2, -16
        lddw %r1, map_idx 0
        call 1
        ldxdw %r8, [%r10-8]
        add %r0, %r8
        ldxw %r0, [%r0+0]
        exit
    """)
    assert "map value access out of bounds" in error.reason


def test_the_synthetic_benchmark_program_verifies_linearly():
    spec = importlib.util.spec_from_file_location("verifier_speed", ROOT / "benchmarks" / "verifier_speed.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    program = benchmark.synthetic_program()
    assert len(program) >= 4000
    result = verify(program, benchmark.SYNTHETIC_MAPS)
    assert result.processed < 3 * len(program)


# -- limits -----------------------------------------------------------------------------------------------------

def test_unprivileged_size_limit():
    program = isa.Program([isa.Insn(isa.BPF_ALU64 | isa.BPF_MOV | isa.BPF_K, 0, 0, 0, 2)] * 4096
                          + [isa.exit_insn()])
    assert verify(program).instructions == 4097
    with pytest.raises(VerifierError, match="4097 instructions, over the limit of 4096"):
        verify(program, limits=UNPRIVILEGED)


def test_call_depth_limit_can_be_lowered():
    source = "call local f\nexit\nf:\ncall local g\nexit\ng:\nmov %r0, 2\nexit"
    assert check(source).max_call_depth == 3
    assert "over the limit of 2 frames" in refusal(source, limits=VerifierLimits(max_call_frames=2)).reason


def test_pending_branches_are_bounded():
    # every iteration leaves one more branch waiting (the kernel's BPF_COMPLEXITY_LIMIT_JMP_SEQ)
    error = refusal("""
        mov %r0, 0
    again:
        ldxw %r6, [%r1+12]
        add %r0, 1
        jeq %r6, 0, done
        ja again
    done:
        exit
    """, limits=VerifierLimits(pending_branches=100))
    assert "over 100 branches wait" in error.reason


# -- inputs -------------------------------------------------------------------------------------------------------

def test_program_from_bytes_keeps_what_the_decoder_would_refuse():
    program = program_from_bytes(bytes.fromhex("b70a000000000000" "9500000000000000"))
    with pytest.raises(VerifierError, match="r10 is the read-only frame pointer") as caught:
        verify(program)
    assert caught.value.insn_index == 0
    with pytest.raises(ValueError, match="not a multiple of 8"):
        program_from_bytes(b"\x95\x00\x00")


def test_unknown_program_type():
    with pytest.raises(ValueError, match="prog_type 'socket'"):
        verify(assemble("mov %r0, 0\nexit"), prog_type="socket")


def test_devmap_programs_may_read_egress_ifindex():
    source = "ldxw %r0, [%r1+20]\nexit"
    assert check(source, prog_type="xdp_devmap").instructions == 2
    assert "egress_ifindex" in refusal(source).reason


def test_map_infos_from_loader_map_definitions():
    definition = MapDef("rodata", 2, 4, 8, 1, readonly=True)
    assert map_infos([definition]) == [MapInfo(2, 4, 8, 1, 0, True, "rodata")]


def test_empty_program():
    with pytest.raises(VerifierError, match="the program is empty"):
        verify(isa.Program())


# -- the abstract domain against the golden VM ----------------------------------------------------------------

M64 = (1 << 64) - 1


def _contains(value: vs.Scalar, number: int) -> bool:
    signed = number - (1 << 64) if number >> 63 else number
    return (value.umin <= number <= value.umax and value.smin <= signed <= value.smax
            and number & ~value.m == value.v)


def _random_scalar(rng: random.Random) -> vs.Scalar:
    shape = rng.randrange(6)
    if shape == 0:
        return vs.const(rng.choice((0, 1, 7, 255, M64, 1 << 63, rng.getrandbits(64))))
    if shape == 1:
        low = rng.randrange(300)
        return vs.unsigned_range(low, low + rng.randrange(300))
    if shape == 2:  # a small signed range around zero
        low = -rng.randrange(200)
        return vs.alu(isa.BPF_ADD, vs.unsigned_range(0, rng.randrange(1, 400)), vs.const(low), True)
    if shape == 3:  # known bits
        mask = rng.getrandbits(64) & rng.getrandbits(64)
        return vs.alu(isa.BPF_OR, vs.alu(isa.BPF_AND, vs.UNKNOWN, vs.const(mask), True),
                      vs.const(rng.getrandbits(64) & ~mask), True)
    if shape == 4:
        return vs.unknown_bits(rng.choice((8, 16, 32)))
    return vs.UNKNOWN


def _member(rng: random.Random, value: vs.Scalar) -> int:
    for _ in range(200):
        pick = rng.randrange(3)
        if pick == 0:
            number = value.v | (rng.getrandbits(64) & value.m)
        elif pick == 1:
            number = rng.randint(value.umin, value.umax)
        else:
            number = rng.choice((value.umin, value.umax, value.smin & M64, value.smax & M64))
        if _contains(value, number):
            return number
    raise AssertionError(f"no member found in {value}")


def _run(program: isa.Program, x: int, y: int) -> int:
    return Vm(program).run(struct.pack("<QQ", x, y)).r0


def _alu_program(op: int, is64: bool, off: int) -> isa.Program:
    cls = isa.BPF_ALU64 if is64 else isa.BPF_ALU
    return isa.make_program([
        isa.Insn(isa.BPF_LDX | isa.BPF_MEM | isa.BPF_DW, 0, 1, 0),
        isa.Insn(isa.BPF_LDX | isa.BPF_MEM | isa.BPF_DW, 2, 1, 8),
        isa.Insn(cls | isa.BPF_X | op, 0, 2, off) if op != isa.BPF_NEG else isa.Insn(cls | op, 0),
        isa.exit_insn()])


_ALU_CASES = [(op, is64, 0) for op in (isa.BPF_ADD, isa.BPF_SUB, isa.BPF_MUL, isa.BPF_DIV, isa.BPF_OR, isa.BPF_AND,
                                        isa.BPF_LSH, isa.BPF_RSH, isa.BPF_NEG, isa.BPF_MOD, isa.BPF_XOR,
                                        isa.BPF_ARSH) for is64 in (True, False)]
_ALU_CASES += [(isa.BPF_DIV, True, 1), (isa.BPF_MOD, True, 1), (isa.BPF_DIV, False, 1), (isa.BPF_MOD, False, 1)]


@pytest.mark.parametrize("op,is64,off", _ALU_CASES,
                         ids=lambda v: isa.ALU_OP_NAMES.get(v, str(v)) if isinstance(v, int) else str(v))
def test_alu_results_contain_the_machines_result(op, is64, off):
    rng = random.Random(op * 4 + is64 * 2 + off)
    program = _alu_program(op, is64, off)
    for _ in range(150):
        a, b = _random_scalar(rng), _random_scalar(rng)
        if op in (isa.BPF_LSH, isa.BPF_RSH, isa.BPF_ARSH) and rng.random() < 0.7:
            b = vs.const(rng.randrange(64 if is64 else 32))
        x, y = _member(rng, a), _member(rng, b)
        abstract = vs.alu(op, a, b, is64, off)
        concrete = _run(program, x, y)
        assert _contains(abstract, concrete), (a, b, hex(x), hex(y), abstract, hex(concrete))


_JUMPS = [op for op in isa.JMP_COND_NAMES]


@pytest.mark.parametrize("op", _JUMPS, ids=lambda op: isa.JMP_COND_NAMES[op])
@pytest.mark.parametrize("is64", (True, False), ids=("jmp", "jmp32"))
def test_comparisons_keep_every_pair_on_its_side(op, is64):
    rng = random.Random(op + is64)
    cls = isa.BPF_JMP if is64 else isa.BPF_JMP32
    program = isa.make_program([
        isa.Insn(isa.BPF_LDX | isa.BPF_MEM | isa.BPF_DW, 0, 1, 0),
        isa.Insn(isa.BPF_LDX | isa.BPF_MEM | isa.BPF_DW, 2, 1, 8),
        isa.Insn(cls | isa.BPF_X | op, 0, 2, 2),
        isa.Insn(isa.BPF_ALU64 | isa.BPF_MOV | isa.BPF_K, 0, 0, 0, 0), isa.exit_insn(),
        isa.Insn(isa.BPF_ALU64 | isa.BPF_MOV | isa.BPF_K, 0, 0, 0, 1), isa.exit_insn()])
    for _ in range(200):
        a, b = _random_scalar(rng), _random_scalar(rng)
        if rng.random() < 0.3:
            b = vs.const(_member(rng, a) + rng.choice((-1, 0, 1)))
        x, y = _member(rng, a), _member(rng, b)
        taken = _run(program, x, y) == 1
        side = vs.compare(op if taken else vs.NEGATION.get(op, vs.JSET_FALSE), a, b, is64)
        assert side is not None, (a, b, hex(x), hex(y), taken)
        assert _contains(side[0], x) and _contains(side[1], y), (a, b, hex(x), hex(y), taken, side)


def test_byte_swaps_and_sign_extension_contain_the_machines_result():
    rng = random.Random(5)
    for _ in range(300):
        a = _random_scalar(rng)
        x = _member(rng, a)
        width = rng.choice((16, 32, 64))
        swapped = int.from_bytes((x & ((1 << width) - 1)).to_bytes(width // 8, "little"), "big")
        assert _contains(vs.byte_swap(a, width, True), swapped)
        assert _contains(vs.byte_swap(a, width, False), x & ((1 << width) - 1))
        bits = rng.choice((8, 16, 32))
        low = x & ((1 << bits) - 1)
        extended = (low - (1 << bits) if low >> (bits - 1) else low) & M64
        assert _contains(vs.sign_extend(a, bits, 64), extended)
        assert _contains(vs.truncate(a, bits // 8), low)


# -- random programs on the golden VM -------------------------------------------------------------------------

def test_random_programs_that_are_accepted_never_fault_on_the_vm():
    rng = random.Random(2024)
    maps = [MapDef(info.name, info.map_type, info.key_size, info.value_size, info.max_entries, info.flags,
                   readonly=info.readonly, index=index) for index, info in enumerate(STANDARD_MAPS)]
    accepted = 0
    for _ in range(250):
        program = assemble(random_program(rng))
        try:
            verify(program, STANDARD_MAPS)
        except VerifierError:
            continue
        accepted += 1
        definition = ProgramDef("random", "xdp", program)
        session = XdpSession(BpfObject("random", {"xdp": definition}, {"random": definition}, maps,
                                       {m.name: m for m in maps}))
        for _ in range(4):
            frame = bytes(rng.randrange(256) for _ in range(rng.randint(14, 60)))
            result = session.run_packet(frame)
            assert result.fault is None, (result.fault, str(program))
    assert accepted >= 25


# -- the offload check -----------------------------------------------------------------------------------------

def test_capabilities_survive_json():
    assert HardwareCapabilities.from_json(DEFAULT_CAPABILITIES.to_json()) == DEFAULT_CAPABILITIES
    custom = HardwareCapabilities.from_dict({"name": "small", "map_types": ["array", 1], "helpers":
                                             ["bpf_map_lookup_elem", 7], "max_entries": {"array": 16}, "ports": 4})
    assert custom.map_types == frozenset({1, 2}) and custom.helpers == frozenset({1, 7})
    assert custom.max_entries == {2: 16} and custom.ports == 4
    assert custom.stack_size == DEFAULT_CAPABILITIES.stack_size


@pytest.mark.parametrize("text,words", [
    ("[1, 2]", "is a JSON object"),
    ('{"flux": 1}', "unknown field flux"),
    ('{"ports": -1}', "field ports must be a non-negative integer"),
    ('{"map_types": ["hash", "tree"]}', "unknown map type 'tree'"),
    ('{"helpers": ["teleport"]}', "unknown helper 'teleport'"),
    ('{"max_entries": ["array"]}', "field max_entries must map"),
    ("{", "not JSON"),
])
def test_bad_capability_descriptions_say_what_is_wrong(text, words):
    with pytest.raises(CapabilitiesError, match=words) as caught:
        HardwareCapabilities.from_json(text, source="build.json")
    assert str(caught.value).startswith("build.json: ")


def test_the_offload_check_reports_every_reason_at_once():
    program = assemble("""
        stdw [%r10-64], 0
        call local f
        call 7                # get_prandom_u32: not in this build
        mov %r0, 2
        exit
    f:
        stdw [%r10-128], 0
        call local g
        exit
    g:
        call 5                # ktime_get_ns: not in this build either
        exit
    """)
    maps = [MapInfo(1, 128, 8, 10, name="wide_keys"), MapInfo(2, 4, 1024, 10, name="wide_values"),
            MapInfo(2, 4, 8, 100_000, name="long"), MapInfo(27, 0, 0, 4096, name="ring")]
    caps = HardwareCapabilities(instruction_memory_slots=8, max_maps=3, helpers=frozenset({1}),
                                stack_size=128, call_depth=2, total_map_memory=4096)
    problems = check_offload((program, maps), caps)
    kinds = sorted(problem.kind for problem in problems)
    assert kinds == ["call_depth", "helper", "helper", "instructions", "key_size", "map_memory", "map_type",
                     "maps", "max_entries", "stack", "value_size"]
    lines = [str(problem) for problem in problems]
    assert "instruction 2: helper 7 (get_prandom_u32) is not implemented by this build" in lines
    assert "instruction 8: helper 5 (ktime_get_ns) is not implemented by this build" in lines
    assert "its deepest call chain uses 192 bytes of stack; the build has 128" in lines
    assert any(line.startswith("map ring: the build has no ringbuf maps") for line in lines)
    assert "map long: 100000 entries; the build's array maps hold at most 8192" in lines


def test_the_offload_check_reports_a_verifier_refusal_with_the_rest():
    program = assemble("ldxw %r2, [%r1+0]\nldxw %r0, [%r2+0]\ncall 7\nexit")
    problems = check_offload((program, []), HardwareCapabilities(helpers=frozenset()))
    assert [problem.kind for problem in problems] == ["helper", "verifier"]
    assert problems[1] == OffloadProblem("verifier", "the verifier refuses it: packet access not proven within "
                                         "data_end (bytes 0..3 from the pointer's base, 0 proven)", "", 1)


def test_map_memory_accounts_keys_values_and_cpus():
    assert map_memory(MapInfo(1, 6, 10, 100)) == (8 + 16) * 100
    assert map_memory(MapInfo(2, 4, 12, 10)) == 16 * 10
    assert map_memory(MapInfo(6, 4, 8, 10), cores=4) == 8 * 10 * 4
    assert map_memory(MapInfo(3, 4, 4, 8)) == 32


def test_check_offload_wants_an_object_or_a_pair():
    with pytest.raises(TypeError, match="loaded object or a \\(program, maps\\) pair"):
        check_offload("prog.o")


# -- the command-line entry point ----------------------------------------------------------------------------

def test_main_verify_prints_statistics(tmp_path):
    source = tmp_path / "ok.s"
    source.write_text("mov %r0, 2\nexit\n")
    lines: list[str] = []
    assert main_verify(str(source), out=lines.append) == 0
    assert lines[-1].startswith("prog ok.s: accepted: 2 instructions, 2 processed, ")
    assert "max stack 0 bytes" in lines[-1]


def test_main_verify_prints_the_refusal_and_registers(tmp_path):
    source = tmp_path / "bad.s"
    source.write_text("ldxw %r2, [%r1+0]\nldxw %r0, [%r2+0]\nexit\n")
    lines: list[str] = []
    assert main_verify(str(source), out=lines.append, log=True) == 1
    assert lines[-2] == ("prog bad.s: instruction 1 (ldxw %r0, [%r2]): packet access not proven within data_end "
                         "(bytes 0..3 from the pointer's base, 0 proven): r2 = pkt(off=0,r=0)")
    assert lines[-1] == "    r2 = pkt(off=0,r=0)"
    assert lines[0] == "0: ldxw %r2, [%r1]    ; r2 = pkt(off=0,r=0)"


def test_main_verify_on_an_object_and_a_section(tmp_path):
    path = tmp_path / "tailcall.o"
    compile_c(EXAMPLES / "xdp_tailcall.c", path, "v3")
    lines: list[str] = []
    assert main_verify(str(path), section="xdp/stage2", out=lines.append) == 0
    assert len(lines) == 1 and lines[0].startswith("prog xdp/stage2: accepted: ")
    lines.clear()
    assert main_verify(str(path), out=lines.append) == 0  # every program of the object
    assert [line.split(": accepted")[0] for line in lines] == ["prog xdp (xdp_stage1)", "prog xdp/stage2 (xdp_stage2)"]


def test_main_verify_refuses_a_section_of_a_plain_file(tmp_path):
    source = tmp_path / "ok.s"
    source.write_text("mov %r0, 2\nexit\n")
    lines: list[str] = []
    assert main_verify(str(source), section="xdp", out=lines.append) == 2
    assert lines == [f"{source}: --section names a program of an ELF object; this file is a single program"]
