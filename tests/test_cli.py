"""The `bpfnic` command line as a user meets it: every subcommand has --help, the flows work, and bad input
gives one line that names the input and the reason, with a non-zero status and never a traceback."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def bpfnic(*args, stdin: str | None = None, cwd=None, timeout: float = 120):
    return subprocess.run([sys.executable, "-m", "bpfnic.sw.cli", *map(str, args)], input=stdin,
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


def assert_one_line_error(done, *fragments):
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines and lines[0].startswith("bpfnic"), done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, (fragment, done.stderr)


@pytest.mark.parametrize("command", ["asm", "disasm", "run", "compile", "verify", "synth", "conformance-plugin", "demo"])
def test_every_subcommand_has_help(command):
    done = bpfnic(command, "--help")
    assert done.returncode == 0 and "usage" in done.stdout.lower(), done.stderr


def test_asm_disasm_run_flow(tmp_path):
    source = tmp_path / "sum.s"
    source.write_text("mov %r0, 0\nloop:\nadd %r0, %r2\nsub %r2, 1\njne %r2, 0, loop\nexit\n")
    assert bpfnic("asm", source, "-o", tmp_path / "sum.bin").returncode == 0
    listing = bpfnic("disasm", tmp_path / "sum.bin")
    assert listing.returncode == 0 and "add %r0, %r2" in listing.stdout
    run = bpfnic("run", tmp_path / "sum.bin", "--mem", "00 00 00 00")
    assert run.returncode == 0, run.stderr
    assert "r0 = 0xa (10)" in run.stdout and "instructions executed: 14" in run.stdout


def test_syntax_error_names_the_line(tmp_path):
    source = tmp_path / "bad.s"
    source.write_text("mov %r0, 1\nmvo %r0, 2\nexit\n")
    assert_one_line_error(bpfnic("asm", source), "bad.s:2", "mvo")


def test_invalid_encoding_names_the_instruction(tmp_path):
    raw = tmp_path / "bad.bin"
    raw.write_bytes(bytes.fromhex("b70a000001000000" "9500000000000000"))
    assert_one_line_error(bpfnic("run", raw), "instruction 0", "r10")


def test_fault_is_one_line(tmp_path):
    source = tmp_path / "oob.s"
    source.write_text("ldxdw %r0, [%r1+8]\nexit\n")
    assert_one_line_error(bpfnic("run", source, "--mem", "00 01"), "instruction 0", "outside region input")


def test_missing_file():
    assert_one_line_error(bpfnic("run", "/nonexistent/prog.o"), "/nonexistent/prog.o")


@pytest.fixture(scope="module")
def firewall(tmp_path_factory):
    out = tmp_path_factory.mktemp("fw") / "xdp_firewall.o"
    done = bpfnic("compile", EXAMPLES / "xdp_firewall.c", "-o", out)
    assert done.returncode == 0, done.stderr
    return out


def test_compile_and_run_an_example_as_json(firewall, tmp_path):
    out_pcap = tmp_path / "out.pcap"
    done = bpfnic("run", firewall, "--pcap", EXAMPLES / "pcap" / "xdp_firewall.pcap", "--map-init",
                  EXAMPLES / "xdp_firewall.maps.json", "--json", "--out", out_pcap)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    verdicts = [p["verdict"] for p in report["packets"]]
    assert "XDP_DROP" in verdicts and "XDP_PASS" in verdicts
    counters = report["maps"]["verdict_counters"]
    assert int.from_bytes(bytes.fromhex(counters["01000000"]), "little") == verdicts.count("XDP_DROP")
    assert out_pcap.stat().st_size > 24  # a pcap header and the passed frames


def test_run_errors_on_objects(firewall, tmp_path):
    assert_one_line_error(bpfnic("run", firewall), "--pcap")
    assert_one_line_error(bpfnic("run", firewall, "--pcap", EXAMPLES / "pcap" / "xdp_firewall.pcap",
                                 "--section", "nope"), "no program 'nope'", "xdp")
    not_pcap = tmp_path / "x.pcap"
    not_pcap.write_text("hello")
    assert_one_line_error(bpfnic("run", firewall, "--pcap", not_pcap), "x.pcap", "pcap")
    bad_init = tmp_path / "init.json"
    bad_init.write_text('{"maps": {"blocked": {"00": "01"}}}')
    assert_one_line_error(bpfnic("run", firewall, "--pcap", EXAMPLES / "pcap" / "xdp_firewall.pcap",
                                 "--map-init", bad_init), "blocked", "key")
    not_elf = tmp_path / "prog.bin"
    not_elf.write_bytes(bytes.fromhex("b700000002000000" "9500000000000000"))
    assert_one_line_error(bpfnic("run", not_elf, "--pcap", EXAMPLES / "pcap" / "xdp_firewall.pcap"),
                          "needs an XDP object", "prog.bin")


def test_unknown_map_type_and_unimplemented_helper(tmp_path):
    ringbuf = tmp_path / "ringbuf.c"
    ringbuf.write_text("""#include <bpfnic.h>
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } events SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) { return XDP_PASS; }
char LICENSE[] SEC("license") = "GPL";
""")
    assert bpfnic("compile", ringbuf, "-o", tmp_path / "ringbuf.o").returncode == 0
    pcap = EXAMPLES / "pcap" / "xdp_pass.pcap"
    assert_one_line_error(bpfnic("run", tmp_path / "ringbuf.o", "--pcap", pcap), "events", "ringbuf")
    helper = tmp_path / "helper.c"
    helper.write_text("""#include <bpfnic.h>
static long (*bpf_unknown_helper)(void) = (void *)999;
SEC("xdp") int prog(struct xdp_md *ctx) { return bpf_unknown_helper() ? XDP_PASS : XDP_DROP; }
char LICENSE[] SEC("license") = "GPL";
""")
    assert bpfnic("compile", helper, "-o", tmp_path / "helper.o").returncode == 0
    assert_one_line_error(bpfnic("run", tmp_path / "helper.o", "--pcap", pcap), "instruction 0",
                          "unknown helper 999")  # the verifier refuses it
    assert_one_line_error(bpfnic("run", tmp_path / "helper.o", "--pcap", pcap, "--no-verify"), "helper 999",
                          "not implemented")  # and without it, the machine refuses to open the object


def test_compile_error_is_clean(tmp_path):
    broken = tmp_path / "broken.c"
    broken.write_text("int x = ;\n")
    done = bpfnic("compile", broken)
    assert done.returncode != 0 and "broken.c" in done.stderr and "Traceback" not in done.stderr


def test_run_verifies_first_and_no_verify_leaves_it_to_the_machine(tmp_path):
    unsafe = tmp_path / "unsafe.c"
    unsafe.write_text("""#include <bpfnic.h>
SEC("xdp") int prog(struct xdp_md *ctx) { return *(volatile unsigned char *)((long)ctx->data + 3000); }
char LICENSE[] SEC("license") = "GPL";
""")
    obj = tmp_path / "unsafe.o"
    assert bpfnic("compile", unsafe, "-o", obj).returncode == 0
    pcap = EXAMPLES / "pcap" / "xdp_pass.pcap"
    refused = bpfnic("run", obj, "--pcap", pcap)
    assert_one_line_error(refused, "unsafe.o", "instruction", "packet")
    verify = bpfnic("verify", obj)
    assert verify.returncode == 1 and "packet access" in verify.stdout
    done = bpfnic("run", obj, "--pcap", pcap, "--no-verify", "--json")
    assert done.returncode == 0, done.stderr
    verdicts = {p["verdict"] for p in json.loads(done.stdout)["packets"]}
    assert verdicts == {"XDP_ABORTED"}  # the VM's bounds check stops every access outside the packet


def test_verify_accepts_an_example(firewall):
    done = bpfnic("verify", firewall)
    assert done.returncode == 0 and "accepted" in done.stdout, done.stdout + done.stderr


def test_demo_names_an_unknown_example():
    done = bpfnic("demo", "--example", "xdp_nope")
    assert_one_line_error(done, "xdp_nope", "examples:")


def test_demo_offloads_and_agrees_with_the_vm():
    """The README's main job: compile, verify, offload into the RTL NIC under Verilator, compare with the VM."""
    from bpfnic.sim.verilator import SimulatorUnavailable, verilator_environment
    try:
        verilator_environment()
    except SimulatorUnavailable as error:
        pytest.skip(f"Verilator cannot run here: {error}")
    done = bpfnic("demo", timeout=900)      # a fresh machine builds the simulator first (cached afterwards)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "identical: every verdict" in done.stdout
    assert "XDP_DROP      XDP_DROP" in done.stdout and "cycles per packet" in done.stdout
