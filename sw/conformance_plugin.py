"""`bpfnic conformance-plugin`: the plugin protocol of the public bpf_conformance suite.

The suite's runner starts `PLUGIN [MEM-HEX] [options]` for each test, writes the program's bytes as hex text
on standard input, and reads r0 in hex from standard output; an error goes to standard error with a non-zero
exit. The suite's helper 5 returns its first argument and, when that is 0, ends the program with r0 = 0.
"""

from __future__ import annotations

import sys

from . import isa
from .vm import Helper, ProgramExit, Vm, VmFault

CONFORMANCE_UNWIND_HELPER = 5


def _unwind_helper(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    if r1 == 0:
        raise ProgramExit(0)
    return r1


#: The helpers the conformance suite expects of a VM under test.
CONFORMANCE_HELPERS: dict[int, Helper] = {CONFORMANCE_UNWIND_HELPER: _unwind_helper}


def parse_hex_bytes(text: str, what: str) -> bytes:
    try:
        return bytes(int(token, 16) for token in text.split())
    except ValueError:
        raise ValueError(f"{what}: not hex bytes separated by white space: {text[:60]!r}") from None


def run_plugin(memory_hex: str, backend: str = "vm", debug: bool = False, stdin=None, stdout=None,
               stderr=None) -> int:
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        code = parse_hex_bytes(stdin.read(), "program on standard input")
        memory = parse_hex_bytes(memory_hex, "memory argument") if memory_hex else b""
        program = isa.decode_program(code)
        trace = None
        if debug:
            def trace(pc, insn, regs):
                print(f"{pc:4d} {isa.OPCODES[insn.opcode].mnemonic:10s} "
                      + " ".join(f"r{i}={v:x}" for i, v in enumerate(regs)), file=stderr)
        if backend == "rtl":
            r0 = _run_rtl(program, memory)
        else:
            r0 = Vm(program, helpers=CONFORMANCE_HELPERS, trace=trace).run(memory).r0
    except (ValueError, VmFault, RtlFailure) as error:  # IsaError is a ValueError; the protocol wants stderr
        print(str(error), file=stderr)
        return 1
    print(f"{r0:x}", file=stdout)
    return 0


class RtlFailure(Exception):
    """The RTL core trapped, or differed from the golden VM."""


def _run_rtl(program: isa.Program, memory: bytes) -> int:
    """The program on the RTL core under amaranth.sim, in lockstep with the golden VM."""
    from ..sim.lockstep import LockstepMismatch, TrapCause, run_bare_program
    try:
        result = run_bare_program(program, memory or None, helpers=CONFORMANCE_HELPERS)
    except LockstepMismatch as mismatch:
        raise RtlFailure(f"the RTL core differs from the golden VM: {mismatch}") from None
    if result.cause != TrapCause.NONE:
        raise RtlFailure(f"the RTL core trapped at instruction {result.pc}: {result.cause.name}")
    return result.r0
