"""Compiling XDP programs written in C into BPF ELF objects, with the clang bundled in `ziglang`.

`compile_c` runs `python -m ziglang cc -target bpfel-freestanding -mcpu=vN -O2 -g ...`, adding
the project's own include folder (`sw/include`: <bpfnic.h>, <bpfnic/net.h> and thin
<linux/*.h>, <bpf/*.h> stand-ins) so programs build without kernel or libbpf headers. `-g` is
kept because BTF-defined maps carry their parameters only in `.BTF` (the `.maps` section itself
is zeros). A source may name its instruction set in a line `// bpfnic: mcpu=v4`; `declared_mcpu`
reads it.

Ref: clang's BPF target (`-mcpu=v1..v4`, see the kernel's Documentation/bpf/standardization/
instruction-set.rst, RFC 9669, for what each version adds); kernel Documentation/bpf/btf.rst.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "CompileError",
    "CompileWarning",
    "MCPU_VERSIONS",
    "DEFAULT_MCPU",
    "compile_c",
    "declared_mcpu",
    "example_mcpu",
    "include_dir",
    "main_compile",
]

MCPU_VERSIONS = ("v1", "v2", "v3", "v4")
DEFAULT_MCPU = "v3"

# clang's output is cut to this many lines: the first errors are the ones that matter.
_MAX_DIAGNOSTIC_LINES = 40
# A cold zig cache and a large program together stay far below this.
_COMPILE_TIMEOUT_SECONDS = 300

_MCPU_DIRECTIVE = re.compile(r"^\s*//\s*bpfnic:\s*mcpu\s*=\s*(\S+)\s*$")
# Only the head of a file is searched, where the directive is documented to be.
_DIRECTIVE_SEARCH_LINES = 40


class CompileError(Exception):
    """A C source could not be compiled; the message names the file and gives clang's diagnostics."""


class CompileWarning(UserWarning):
    """A C source compiled, but clang printed warnings (the message holds them, trimmed)."""


def include_dir() -> Path:
    """The project's include folder, holding <bpfnic.h> and the libbpf/UAPI stand-in headers."""
    return Path(__file__).resolve().parent / "include"


def declared_mcpu(source: Path) -> str | None:
    """The `-mcpu` a source asks for in a `// bpfnic: mcpu=vN` line near its top, or None.

    Raises CompileError for an unreadable source or a directive naming an unknown version.
    """
    source = Path(source)
    try:
        with source.open(encoding="utf-8", errors="replace") as text:
            for line_number, line in enumerate(text, start=1):
                if line_number > _DIRECTIVE_SEARCH_LINES:
                    break
                match = _MCPU_DIRECTIVE.match(line)
                if match:
                    mcpu = match.group(1)
                    if mcpu not in MCPU_VERSIONS:
                        raise CompileError(
                            f"{source}:{line_number}: `bpfnic: mcpu={mcpu}` names no BPF instruction "
                            f"set version; use one of {', '.join(MCPU_VERSIONS)}"
                        )
                    return mcpu
    except OSError as error:
        raise CompileError(f"{source}: cannot read the source: {error.strerror or error}") from None
    return None


def example_mcpu(source: Path) -> str:
    """The `-mcpu` to build `source` with: its `// bpfnic: mcpu=vN` line, else DEFAULT_MCPU."""
    return declared_mcpu(source) or DEFAULT_MCPU


def _trim_diagnostics(text: str) -> str:
    lines = text.strip().splitlines()
    if len(lines) > _MAX_DIAGNOSTIC_LINES:
        hidden = len(lines) - _MAX_DIAGNOSTIC_LINES
        lines = lines[:_MAX_DIAGNOSTIC_LINES] + [f"... ({hidden} more lines of diagnostics)"]
    return "\n".join(lines)


def _as_operand(path: Path) -> str:
    """A path clang cannot mistake for an option (a file may be named `-O0.c`)."""
    text = str(path)
    return f"./{text}" if text.startswith("-") else text


def _compiler_command(mcpu: str) -> list[str]:
    return [
        sys.executable, "-m", "ziglang", "cc",
        "-target", "bpfel-freestanding",
        f"-mcpu={mcpu}",
        "-O2",
        "-g",
        # BPF has no unwinder: without these, clang emits .eh_frame the loader would have to skip.
        "-fno-unwind-tables",
        "-fno-asynchronous-unwind-tables",
    ]


def compile_c(
    source: Path,
    output: Path,
    mcpu: str = DEFAULT_MCPU,
    include_dirs: Iterable[Path | str] = (),
    defines: Iterable[str] = (),
) -> Path:
    """Compile one C file to a BPF ELF object at `output` and return `output`.

    `include_dirs` are searched before the project's own include folder; each of `defines` is
    `NAME` or `NAME=VALUE`, passed as `-D`. Raises CompileError when the source is missing,
    `mcpu` is not v1..v4, ziglang is not installed, or clang rejects the program.
    """
    source = Path(source)
    output = Path(output)
    if mcpu not in MCPU_VERSIONS:
        raise CompileError(
            f"{source}: mcpu {mcpu!r} is not a BPF instruction set version; use one of "
            f"{', '.join(MCPU_VERSIONS)}"
        )
    if not source.is_file():
        reason = "is a directory, not a C file" if source.is_dir() else "no such file"
        raise CompileError(f"{source}: cannot compile: {reason}")
    if importlib.util.find_spec("ziglang") is None:
        raise CompileError(
            f"{source}: cannot compile: the `ziglang` package (which bundles clang) is not installed "
            f"for {sys.executable}; install it with `{sys.executable} -m pip install ziglang`"
        )

    command = _compiler_command(mcpu)
    for folder in include_dirs:
        command += ["-I", str(folder)]
    command += ["-I", str(include_dir())]
    for define in defines:
        if not define or define.startswith("=") or any(ch.isspace() for ch in define.split("=", 1)[0]):
            raise CompileError(f"{source}: define {define!r} is not NAME or NAME=VALUE")
        command.append(f"-D{define}")
    command += ["-c", _as_operand(source), "-o", _as_operand(output)]

    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CompileError(
            f"{source}: cannot create the output folder {output.parent}: {error.strerror or error}"
        ) from None
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, errors="replace",
            timeout=_COMPILE_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        raise CompileError(
            f"{source}: clang did not finish within {_COMPILE_TIMEOUT_SECONDS} s"
        ) from None
    except OSError as error:
        raise CompileError(f"{source}: cannot run clang: {error.strerror or error}") from None

    if result.returncode != 0:
        diagnostics = _trim_diagnostics(result.stderr or result.stdout) or (
            f"clang exited with status {result.returncode} and printed nothing"
        )
        raise CompileError(f"{source}: compilation failed (-mcpu={mcpu}):\n{diagnostics}")
    if not output.is_file():
        raise CompileError(f"{source}: clang reported success but wrote no object at {output}")
    if result.stderr.strip():
        warnings.warn(CompileWarning(f"{source}: {_trim_diagnostics(result.stderr)}"), stacklevel=2)
    return output


def main_compile(argv: Sequence[str] | None = None) -> int:
    """`bpfnic compile prog.c -o prog.o [--mcpu v1..v4] [-I DIR] [-D NAME[=VALUE]]`.

    Without --mcpu, the source's `// bpfnic: mcpu=vN` line decides, else v3. Without -o, the
    object goes beside the source with the suffix `.o`. Returns the process exit status.
    """
    parser = argparse.ArgumentParser(
        prog="bpfnic compile",
        description="Compile an XDP program written in C to a BPF ELF object (clang from ziglang).",
    )
    parser.add_argument("source", type=Path, help="the C file")
    parser.add_argument("-o", "--output", type=Path, help="the object to write (default: SOURCE with .o)")
    parser.add_argument(
        "--mcpu", choices=MCPU_VERSIONS,
        help="BPF instruction set version (default: the source's `// bpfnic: mcpu=` line, else v3)",
    )
    parser.add_argument("-I", dest="include_dirs", action="append", default=[], type=Path,
                        metavar="DIR", help="also search DIR for headers (before bpfnic's own)")
    parser.add_argument("-D", dest="defines", action="append", default=[],
                        metavar="NAME[=VALUE]", help="define a preprocessor macro")
    arguments = parser.parse_args(argv)

    output = arguments.output or arguments.source.with_suffix(".o")
    try:
        mcpu = arguments.mcpu or declared_mcpu(arguments.source) or DEFAULT_MCPU
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CompileWarning)
            compile_c(arguments.source, output, mcpu, arguments.include_dirs, arguments.defines)
    except CompileError as error:
        print(f"bpfnic compile: {error}", file=sys.stderr)
        return 1
    for warning in caught:
        print(f"bpfnic compile: warning: {warning.message}", file=sys.stderr)
    print(f"{output} (-mcpu={mcpu})")
    return 0


if __name__ == "__main__":
    sys.exit(main_compile())
