"""Shared pytest options and fixtures: long campaigns (fuzzing, full sweeps) run only with --run-slow; `compiled`
gives the shipped examples compiled and loaded."""

from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the long campaigns marked 'slow' (fuzzing, full random sweeps)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="long campaign: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Compiled and loaded example objects (examples/NAME.c), by name (compiled once a module)."""
    cache = {}

    def get(name: str):
        if name not in cache:
            from bpfnic.sw.compile import CompileError, compile_c, example_mcpu
            from bpfnic.sw.elf_loader import load_object as load_elf
            source = EXAMPLES / f"{name}.c"
            try:
                path = compile_c(source, tmp_path_factory.mktemp(name) / f"{name}.o", mcpu=example_mcpu(source))
            except CompileError as error:   # the compiler is a dependency: a failure is a bug, never a skip
                pytest.fail(f"{source.name} does not compile: {error}")
            cache[name] = load_elf(path)
        return cache[name]
    return get
