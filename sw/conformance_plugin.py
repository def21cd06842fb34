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
        vm = Vm(program, helpers=CONFORMANCE_HELPERS, trace=trace)
        result = vm.run(memory)
    except (ValueError, VmFault) as error:  # IsaError is a ValueError; the protocol wants it on stderr
        print(str(error), file=stderr)
        return 1
    print(f"{result.r0:x}", file=stdout)
    return 0
