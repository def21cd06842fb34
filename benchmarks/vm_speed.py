"""Benchmark: executed instructions per second of the golden VM on loop-heavy programs.

Run: .venv/bin/python benchmarks/vm_speed.py  (prints one line per program and the total)."""

from __future__ import annotations

import time

from bpfnic.sw.asm import assemble
from bpfnic.sw.vm import Vm

PROGRAMS = {
    "alu loop (add/xor/shift)": """
        mov %r0, 0
        lddw %r1, 2000000
    loop:
        add %r0, %r1
        xor %r0, 0x5a5a
        lsh %r0, 1
        rsh %r0, 1
        sub %r1, 1
        jne %r1, 0, loop
        exit
    """,
    "stack load/store loop": """
        mov %r0, 0
        lddw %r1, 500000
        stdw [%r10-8], 0
    loop:
        ldxdw %r2, [%r10-8]
        add %r2, %r1
        stxdw [%r10-8], %r2
        stxw [%r10-16], %r1
        ldxw %r3, [%r10-16]
        add %r0, %r3
        sub %r1, 1
        jne %r1, 0, loop
        exit
    """,
    "mul/div/mod loop": """
        mov %r0, 1
        lddw %r1, 500000
    loop:
        mul %r0, 7
        mod %r0, 1000003
        mov %r2, %r0
        div %r2, 3
        add %r0, %r2
        sub %r1, 1
        jne %r1, 0, loop
        exit
    """,
    "byte loop with calls (checksum)": """
        mov %r6, 20000
        mov %r0, 0
    outer:
        mov %r1, %r6
        call local sum
        sub %r6, 1
        jne %r6, 0, outer
        exit
    sum:
        mov %r2, 0
        stdw [%r10-8], 0x01020304
    inner:
        ldxb %r3, [%r10-8]
        add %r0, %r3
        add %r2, 1
        jlt %r2, 20, inner
        exit
    """,
}


def main() -> None:
    total_instructions = 0
    total_seconds = 0.0
    for name, source in PROGRAMS.items():
        vm = Vm(assemble(source, source=name), instruction_limit=100_000_000)
        vm.run()  # translate once, warm up
        start = time.perf_counter()
        result = vm.run()
        seconds = time.perf_counter() - start
        total_instructions += result.instructions
        total_seconds += seconds
        print(f"{name:34s} {result.instructions:>10,d} instructions  {seconds:7.3f} s  "
              f"{result.instructions / seconds / 1e6:6.2f} M instructions/s")
    print(f"{'all':34s} {total_instructions:>10,d} instructions  {total_seconds:7.3f} s  "
          f"{total_instructions / total_seconds / 1e6:6.2f} M instructions/s")


if __name__ == "__main__":
    main()
