"""All vectors of the public eBPF conformance suite on the golden VM, and the plugin protocol end to end.

The vectors are read from $BPF_CONFORMANCE_DIR (default: ../shared/conformance/bpf_conformance beside the
project); a run where that folder is missing fails rather than passing silently with no vectors."""

import subprocess
import sys

import pytest

from bpfnic.sw import isa
from bpfnic.sw.asm import assemble
from bpfnic.sw.conformance import conformance_dir, load_vectors
from bpfnic.sw.conformance_plugin import CONFORMANCE_HELPERS
from bpfnic.sw.vm import Vm, VmFault

VECTORS = load_vectors() if conformance_dir().is_dir() else []


def test_the_suite_is_there():
    assert conformance_dir().is_dir(), f"conformance vectors not found in {conformance_dir()} (set BPF_CONFORMANCE_DIR)"
    assert len(VECTORS) >= 313


def _program(vector):
    return assemble(vector.asm, source=vector.name) if vector.asm is not None else None


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_vector_on_the_vm(vector):
    program = _program(vector)
    if vector.raw is not None:
        assert program is None or program.encode() == vector.raw
    vm = Vm(program if program is not None else isa.decode_program(vector.raw),
            helpers=CONFORMANCE_HELPERS)
    if vector.error is not None:
        with pytest.raises(VmFault):
            vm.run(vector.mem)
        return
    result = vm.run(vector.mem)
    assert result.r0 == vector.result, f"{vector.name}: r0 = 0x{result.r0:x}, expected 0x{vector.result:x}"


PLUGIN_SAMPLE = [v for v in VECTORS if v.name in ("mem-len", "lock_cmpxchg", "call_local", "ldxh", "callx",
                                                   "call_unwind_fail", "div64-by-zero-reg")]


@pytest.mark.parametrize("vector", PLUGIN_SAMPLE, ids=[v.name for v in PLUGIN_SAMPLE])
def test_plugin_protocol(vector):
    """The suite's runner starts `PLUGIN [MEM-HEX]` and writes the program as hex on standard input."""
    code = _program(vector).encode()
    argv = [sys.executable, "-m", "bpfnic.sw.cli", "conformance-plugin"]
    if vector.mem:
        argv.append(" ".join(f"{b:02x}" for b in vector.mem))
    done = subprocess.run(argv, input=" ".join(f"{b:02x}" for b in code), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip(), 16) == vector.result


@pytest.mark.parametrize("vector", PLUGIN_SAMPLE[:3], ids=[v.name for v in PLUGIN_SAMPLE[:3]])
def test_plugin_protocol_on_the_rtl_core(vector):
    code = _program(vector).encode()
    argv = [sys.executable, "-m", "bpfnic.sw.cli", "conformance-plugin", "--backend", "rtl"]
    if vector.mem:
        argv.insert(4, " ".join(f"{b:02x}" for b in vector.mem))
    done = subprocess.run(argv, input=" ".join(f"{b:02x}" for b in code), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip(), 16) == vector.result


def test_plugin_reports_errors_on_stderr():
    bad = "07 0a 00 00 01 00 00 00 95 00 00 00 00 00 00 00"  # add r10, 1: a write to the frame pointer
    done = subprocess.run([sys.executable, "-m", "bpfnic.sw.cli", "conformance-plugin"], input=bad,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "instruction 0" in done.stderr and "r10" in done.stderr
    assert done.stdout == ""
