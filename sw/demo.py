"""`bpfnic demo`: the README's main job. For now: assemble shipped example programs, show their
disassembly, and run them on the golden VM with the instruction counts it measures."""

from __future__ import annotations

import time
from pathlib import Path

from .asm import assemble
from .disasm import disassemble
from .vm import Vm

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# An IPv4 header (20 bytes) with a correct checksum (0xb861), so the checksum program returns 0.
IPV4_HEADER = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
IPV4_HEADER = IPV4_HEADER[:10] + bytes.fromhex("b861") + IPV4_HEADER[12:]


def run_demo(out=print) -> int:
    runs = [
        ("asm/ipv4_checksum.s", IPV4_HEADER, "Internet checksum of an IPv4 header (0 = valid)"),
        ("asm/fib.s", bytes(50), "fib(50), n = length of the input memory"),
    ]
    for name, memory, what in runs:
        path = EXAMPLES / name
        program = assemble(path.read_text(), source=str(path))
        out(f"== {name}: {what}")
        out(disassemble(program).rstrip())
        vm = Vm(program, name=name)
        start = time.perf_counter()
        result = vm.run(memory)
        elapsed = time.perf_counter() - start
        classes = ", ".join(f"{k} {v}" for k, v in result.counts_by_class.items() if v)
        out(f"-> r0 = {result.r0} (0x{result.r0:x}); {result.instructions} instructions ({classes}) "
            f"in {elapsed * 1e6:.0f} us on the golden VM")
        out("")
    out("Next steps (not built yet): compiling XDP programs in C, the verifier, the RTL core and the NIC.")
    return 0
