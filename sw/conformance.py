"""Reader of the public eBPF conformance suite's test vectors (Alan-Jowett/bpf_conformance `.data` files).

A file is a series of sections, each opened by a line `-- NAME`; lines before the first section are comments:
  asm     assembly in the dialect of `asm.assemble`
  raw     64-bit instruction words in hex, one a line (the opcode in the low byte), instead of or beside asm
  mem     hex bytes of the memory given to the program (r1 = its address, r2 = its length)
  result  the expected 64-bit r0 at exit
  error   the expected failure text
Other sections (`c`, `no register offset`, ...) are ignored.

The vectors are not part of the project: they are read from `$BPF_CONFORMANCE_DIR`, by default
`<project root>/../shared/conformance/bpf_conformance`.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Vector", "VectorError", "conformance_dir", "parse_vector", "load_vector", "load_vectors"]

ENVIRONMENT_VARIABLE = "BPF_CONFORMANCE_DIR"
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


class VectorError(ValueError):
    """A malformed vector file, naming the file, the line and the reason."""


@dataclass(frozen=True)
class Vector:
    name: str                 # file name without .data
    asm: str | None           # the asm section's text, comments included
    raw: bytes | None         # the raw section as program bytes (8 a word, little-endian)
    mem: bytes                # b"" when the vector gives no memory
    result: int | None
    error: str | None


def conformance_dir() -> Path:
    """Where the vectors are: $BPF_CONFORMANCE_DIR, or the shared checkout next to the project."""
    configured = os.environ.get(ENVIRONMENT_VARIABLE)
    if configured:
        return Path(configured)
    return _PROJECT_ROOT.parent / "shared" / "conformance" / "bpf_conformance"


def parse_vector(text: str, name: str = "<vector>") -> Vector:
    """Parse the text of one `.data` file. Raises VectorError naming `name` and the line."""
    sections: dict[str, list[tuple[int, str]]] = {}
    current: list[tuple[int, str]] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("--"):
            section = line[2:].strip()
            if section in sections:
                raise VectorError(f"{name}:{number}: section '{section}' appears twice")
            current = sections[section] = []
        elif current is not None:
            current.append((number, line))

    def words(section: str) -> list[tuple[int, str]]:
        return [(number, word) for number, line in sections.get(section, [])
                for word in line.split("#", 1)[0].split()]

    def hex_number(number: int, word: str, what: str, limit: int) -> int:
        try:
            value = int(word, 16)
        except ValueError:
            raise VectorError(f"{name}:{number}: {what} '{word}' is not hexadecimal") from None
        if not 0 <= value < limit:
            raise VectorError(f"{name}:{number}: {what} '{word}' does not fit in {limit.bit_length() - 1} bits")
        return value

    raw = None
    if "raw" in sections:
        raw = b"".join(struct.pack("<Q", hex_number(n, w, "instruction word", 1 << 64)) for n, w in words("raw"))
    mem = bytes(hex_number(n, w, "memory byte", 1 << 8) for n, w in words("mem"))
    result = None
    result_words = words("result")
    if len(result_words) > 1:
        raise VectorError(f"{name}:{result_words[1][0]}: the result section holds one number")
    if result_words:
        result = hex_number(*result_words[0], "result", 1 << 64)
    asm = "\n".join(line for _, line in sections["asm"]) + "\n" if "asm" in sections else None
    error = "\n".join(line for _, line in sections["error"]).strip() if "error" in sections else None
    if asm is None and raw is None:
        raise VectorError(f"{name}: no asm or raw section")
    return Vector(name, asm, raw, mem, result, error)


def load_vector(path: str | os.PathLike) -> Vector:
    path = Path(path)
    return parse_vector(path.read_text(encoding="utf-8"), path.stem)


def load_vectors(directory: str | os.PathLike | None = None) -> list[Vector]:
    """Every `.data` vector of the directory (default `conformance_dir()`), sorted by name."""
    directory = Path(directory) if directory is not None else conformance_dir()
    if not directory.is_dir():
        raise FileNotFoundError(f"conformance vectors not found at {directory} (set {ENVIRONMENT_VARIABLE})")
    return [load_vector(path) for path in sorted(directory.glob("*.data"))]
