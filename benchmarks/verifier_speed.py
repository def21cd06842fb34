"""Benchmark: how long the static verifier (sw/verifier.py) takes on the largest example and on a synthetic
program of about 4,000 instructions with many branches.

The synthetic program is shaped like a packet parser and rule matcher: one bounds check of the first 64 bytes,
then blocks that each read a packet byte, branch on it into two arms that update a running hash and join
again, give an early verdict on the hash, match a rule on the byte and count the matches, and every few blocks
look the hash up in a hash map and count in the value found. Every branch joins again, so without state
pruning the number of paths would double with each block; the statistics printed show the pruning at work.
Linux 6.18's verifier takes the default program (310 blocks, 4,012 instruction slots) in 8,671 processed
instructions. (Had the arms set flags that later branches test, every combination of flags would be a state
of its own: exponential for the kernel's verifier too, which then refuses the program.)

Run: .venv/bin/python benchmarks/verifier_speed.py [--blocks N]   (prints seconds and statistics)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bpfnic.sw import isa
from bpfnic.sw.asm import assemble
from bpfnic.sw.verifier import MapInfo, map_infos, verify

HASH = 1
#: The maps of the synthetic program: counters by a 64-bit key.
SYNTHETIC_MAPS = [MapInfo(HASH, 8, 8, 1024, name="hits")]


def synthetic_source(blocks: int = 310) -> str:
    """Assembly of the synthetic program (about 13 instructions a block)."""
    lines = [
        "    ldxw %r2, [%r1+0]",
        "    ldxw %r3, [%r1+4]",
        "    mov %r4, %r2",
        "    add %r4, 64",
        "    jgt %r4, %r3, drop        # fewer than 64 bytes",
        "    mov %r6, %r2              # the packet, kept across helper calls",
        "    ldxw %r7, [%r6+0]         # running hash, seeded from the packet",
        "    mov %r8, 0                # rules matched",
    ]
    for block in range(blocks):
        offset = (block * 7) % 64
        lines += [
            f"    ldxb %r5, [%r6+{offset}]",
            f"    jgt %r5, {(block * 37) % 251}, high{block}",
            "    add %r7, %r5",
            f"    xor %r7, {block * 2654435761 % (1 << 31)}",
            f"    ja join{block}",
            f"high{block}:",
            "    mul %r7, 31",
            "    xor %r7, %r5",
            f"join{block}:",
            "    mov %r9, %r7",
            "    and %r9, 0xff",
            f"    jeq %r9, {block % 256}, drop       # a verdict on the hash",
            f"    jne %r5, {(block * 11) % 256}, next{block}  # a rule on the byte",
            "    add %r8, 1",
            f"next{block}:",
        ]
        if block % 10 == 9:
            lines += [
                "    stxdw [%r10-8], %r7",
                "    mov %r2, %r10",
                "    add %r2, -8",
                "    lddw %r1, map_idx 0",
                "    call 1",
                f"    jeq %r0, 0, miss{block}",
                "    mov %r1, 1",
                "    lock add [%r0+0], %r1",
                f"miss{block}:",
            ]
    lines += [
        "    mov %r0, %r8",
        "    and %r0, 3",
        "    exit",
        "drop:",
        "    mov %r0, 1",
        "    exit",
    ]
    return "\n".join(lines) + "\n"


def synthetic_program(blocks: int = 310) -> isa.Program:
    return assemble(synthetic_source(blocks), source="synthetic")


def largest_example(workdir: Path) -> tuple[str, isa.Program, list[MapInfo]]:
    """Compile every examples/*.c and return the program with the most instructions."""
    from bpfnic.sw.compile import compile_c, declared_mcpu, DEFAULT_MCPU
    from bpfnic.sw.elf_loader import load_object
    examples = Path(__file__).resolve().parent.parent / "examples"
    best: tuple[str, isa.Program, list[MapInfo]] | None = None
    for source in sorted(examples.glob("*.c")):
        obj_path = compile_c(source, workdir / (source.stem + ".o"), declared_mcpu(source) or DEFAULT_MCPU)
        obj = load_object(obj_path)
        for key, prog in obj.programs.items():
            if best is None or len(prog.insns) > len(best[1]):
                best = (f"{source.name} {key}", prog.insns, map_infos(obj.maps))
    if best is None:
        raise SystemExit(f"no examples found in {examples}")
    return best


def report(label: str, program: isa.Program, maps: list[MapInfo]) -> float:
    started = time.perf_counter()
    result = verify(program, maps, name=label)
    seconds = time.perf_counter() - started
    print(f"{label}: {seconds:.3f} s, {result.instructions} instructions, {result.processed} processed, "
          f"{result.states_explored} states kept (peak {result.peak_states}), {result.pruned} paths pruned")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=310,
                        help="blocks of the synthetic program (default 310: about 4,000 instructions)")
    parser.add_argument("--no-examples", action="store_true", help="skip compiling the examples")
    args = parser.parse_args(argv)
    total = 0.0
    if not args.no_examples:
        with tempfile.TemporaryDirectory() as workdir:
            label, program, maps = largest_example(Path(workdir))
        total += report(f"largest example ({label})", program, maps)
    program = synthetic_program(args.blocks)
    total += report(f"synthetic, {args.blocks} blocks", program, SYNTHETIC_MAPS)
    print(f"total: {total:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
