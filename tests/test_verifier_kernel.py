"""The Linux kernel's verifier as the judge of ours: every program of tests/verifier_programs.py, random programs
and the synthetic benchmark program are loaded into the kernel (BPF_PROG_LOAD as root, through
sw/kernel_bpf.py) and its accept/reject must match ours.

Where we knowingly differ (the kernel here loads as root, so pointer leaks and uninitialised stack reads are
allowed to it), the case is marked in verifier_programs.py and listed here with the reason:

We refuse, the kernel accepts (STRICTER):
- uninitialized_stack, uninitialized_stack_at_a_variable_offset, helper_key_never_written: root may read stack
  bytes never written; the NIC's stack still holds the previous packet's data, so we refuse as the kernel does
  for unprivileged loaders.
- pointer_stored_into_a_map, pointer_stored_into_the_packet: root may store pointers anywhere; on the NIC a
  pointer is a region tag and an offset that mean nothing outside the program.
- context_arithmetic_undone: the kernel allows moving the context pointer if it is back at offset 0 when used;
  we refuse any arithmetic on it (no compiler emits it).
- exit_with_a_pointer: root may return an address from XDP (read as an action number); a pointer on the NIC
  is never a verdict.

We accept, the kernel refuses (LOOSER):
- bounds_kept_through_a_4_byte_spill: the kernel remembers a spilled value's bounds only for 8-byte-aligned
  spills; we keep them for every aligned spill and so prove more, safely.
- tail_call_from_a_function: the kernel allows a tail call from a function only with BTF function
  information; we need no BTF and check the kernel's stack rule for such calls ourselves.
- division_keeps_bounds: the kernel forgets everything about a value divided or taken modulo; we keep its
  range (a quotient is at most the dividend), so an offset computed by division can be proven in bounds.

The random programs stay clear of these differences (and of division), so there the kernel must agree on
every one. Every test skips, saying why, where bpf() is refused.
"""

from __future__ import annotations

import importlib.util
import random
import re
from pathlib import Path

import pytest

from bpfnic.sw import kernel_bpf as kb
from bpfnic.sw.asm import assemble
from bpfnic.sw.verifier import DEFAULT, VerifierError, VerifierLimits, verify

from verifier_programs import AGREE, CASES, STANDARD_MAPS, random_program

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(kb.bpf_unavailable_reason() is not None, reason=kb.bpf_unavailable_reason() or ""),
]

# lddw map_idx N reads fd_array[N]: unused slots hold -1, so an index past the maps is a bad fd, not garbage.
FD_ARRAY_SLOTS = 128


@pytest.fixture(scope="module")
def fd_array():
    maps = [kb.KernelMap.create(info.map_type, info.key_size, info.value_size, info.max_entries, info.flags,
                                name=info.name) for info in STANDARD_MAPS]
    yield [m.fd for m in maps] + [-1] * (FD_ARRAY_SLOTS - len(maps))
    for m in maps:
        m.close()


def kernel_verdict(program, fd_array: list[int], name: str = "") -> tuple[bool, str]:
    """(accepted, the last words of the kernel's log when refused)."""
    try:
        with kb.KernelProgram.load(kb.BPF_PROG_TYPE_XDP, program.encode(), fd_array=fd_array,
                                   name=re.sub(r"[^A-Za-z0-9_.]", "_", name)[:15]):
            return True, ""
    except kb.BpfError as error:
        lines = [line for line in error.log.splitlines() if line.strip() and not line.startswith("processed ")]
        return False, lines[-1] if lines else str(error)


def ours(program, case=None) -> tuple[bool, str]:
    limits = VerifierLimits(complexity=case.complexity) if case is not None and case.complexity else DEFAULT
    try:
        verify(program, STANDARD_MAPS, limits=limits)
        return True, ""
    except VerifierError as error:
        return False, str(error)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_the_kernel_agrees_except_where_listed(case, fd_array):
    program = case.program()
    accepted, log = kernel_verdict(program, fd_array, case.name)
    assert accepted == case.kernel_accepts, f"kernel: {log or 'accepted'}; ours: {ours(program, case)[1]}"


def test_the_listed_differences_are_the_marked_ones():
    listed = set(re.findall(r"^- ([a-z0-9_, ]+):", __doc__, re.MULTILINE))
    names = {name.strip() for line in listed for name in line.split(",")}
    assert names == {case.name for case in CASES if case.kernel != AGREE}


def test_random_programs_get_the_kernels_verdict(fd_array):
    rng = random.Random(7)
    verdicts = {True: 0, False: 0}
    for number in range(150):
        source = random_program(rng)
        program = assemble(source)
        kernel_accepted, log = kernel_verdict(program, fd_array)
        our_verdict, error = ours(program)
        assert our_verdict == kernel_accepted, f"program {number}:\n{source}\nkernel: {log}\nours: {error}"
        verdicts[our_verdict] += 1
    assert verdicts[True] >= 15 and verdicts[False] >= 15


def test_the_synthetic_benchmark_program_is_accepted_by_both(fd_array):
    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("verifier_speed", root / "benchmarks" / "verifier_speed.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    program = benchmark.synthetic_program()
    info = benchmark.SYNTHETIC_MAPS[0]
    with kb.KernelMap.create(info.map_type, info.key_size, info.value_size, info.max_entries, name="hits") as hits:
        with kb.KernelProgram.load(kb.BPF_PROG_TYPE_XDP, program.encode(), fd_array=[hits.fd]):
            pass
    verify(program, benchmark.SYNTHETIC_MAPS)
