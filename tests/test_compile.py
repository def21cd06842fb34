"""Tests of `bpfnic.sw.compile`, the project's C headers, and the C examples with their packets.

Every example is compiled with the clang in `ziglang` at its declared `-mcpu`, and the ELF is
checked with pyelftools for what a loader needs: the program sections, `.maps` with the maps
the source defines, `.BTF`, `license`, global-data sections, relocations, and the instructions
the example exists to show (a real backward jump, atomics, v4-only instructions, helper calls).
Compiler failures must surface as CompileError naming the file, never as a traceback.

Ref: ELF for BPF (relocation types R_BPF_64_64 = 1, R_BPF_64_32 = 10) and the instruction
encoding of RFC 9669 (sections 3 to 5.3); kernel Documentation/bpf/btf.rst (the .BTF header).
"""

from __future__ import annotations

import importlib.util
import json
import re
import struct
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from bpfnic.sw import compile as bpf_compile
from bpfnic.sw.compile import (
    CompileError,
    CompileWarning,
    compile_c,
    declared_mcpu,
    include_dir,
    main_compile,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

R_BPF_64_64 = 1   # 64-bit immediate load of a map or global-data address
R_BPF_64_32 = 10  # call to a bpf-to-bpf subprogram

BPF_JMP, BPF_JMP32, BPF_STX, BPF_LDX = 0x05, 0x06, 0x03, 0x01
BPF_CALL, BPF_EXIT = 0x80, 0x90
BPF_ATOMIC_MODE, BPF_MEMSX_MODE = 0xC0, 0x80
BPF_DW, BPF_W = 0x18, 0x00
BPF_FETCH = 0x01
ATOMIC_ADD, ATOMIC_OR, ATOMIC_AND, ATOMIC_XOR = 0x00, 0x40, 0x50, 0xA0
ATOMIC_XCHG, ATOMIC_CMPXCHG = 0xE0 | BPF_FETCH, 0xF0 | BPF_FETCH
SDIV64_REG = 0x3F  # BPF_ALU64 | BPF_X | BPF_DIV, with offset 1 for signed (v4)
BSWAP64_CLASS = 0xD7  # BPF_ALU64 | BPF_END: byte swap regardless of host order (v4)


@dataclass
class Expected:
    """What the object of one example must contain."""

    programs: dict[str, str]                 # ELF section -> program (function) name
    maps: set[str] = field(default_factory=set)
    data_sections: set[str] = field(default_factory=set)
    helpers: set[int] = field(default_factory=set)  # helper ids called from the programs
    subprograms: set[str] = field(default_factory=set)


EXPECTED = {
    "xdp_drop": Expected({"xdp": "xdp_drop"}),
    "xdp_pass": Expected({"xdp": "xdp_pass"}),
    "xdp_macswap": Expected({"xdp": "xdp_macswap"}),
    "xdp_firewall": Expected({"xdp": "xdp_firewall"}, {"blocked", "verdict_counters"}, helpers={1}),
    "xdp_router": Expected({"xdp": "xdp_router"}, {"routes", "egress_ports"}, helpers={1, 51}),
    "xdp_encap": Expected({"xdp": "xdp_encap"}, {"tunnel"}, helpers={1, 28, 44}),
    "xdp_calls": Expected(
        {"xdp": "xdp_calls"}, data_sections={".rodata", ".bss"},
        subprograms={"count", "drop", "ipv4_checksum_ok", "udp_destination_port"},
    ),
    "xdp_vlan": Expected({"xdp": "xdp_vlan"}, {"vlan_packets"}, helpers={1, 44}),
    "xdp_tailcall": Expected(
        {"xdp": "xdp_stage1", "xdp/stage2": "xdp_stage2"}, {"jmp_table", "stage_packets"}, helpers={1, 12},
    ),
    "xdp1_percpu": Expected({"xdp": "xdp1_percpu"}, {"rxcnt"}, helpers={1}),
    "xdp_atomic": Expected({"xdp": "xdp_atomic"}, {"stats", "bytes_by_ethertype"}, helpers={1, 2}),
    "xdp_libbpf_style": Expected(
        {"xdp": "xdp_prog"}, {"ethertype_packets"}, data_sections={".rodata"}, helpers={1, 2, 6},
    ),
}


def _load_packets_module():
    spec = importlib.util.spec_from_file_location("bpfnic_example_packets", EXAMPLES / "packets.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


packets = _load_packets_module()


@dataclass
class Instruction:
    index: int
    opcode: int
    src_reg: int
    offset: int
    imm: int


def _instructions(code: bytes) -> list[Instruction]:
    """Decode 8-octet BPF instructions (RFC 9669 section 3); a 64-bit immediate load's second
    slot is returned as an instruction of opcode 0, which no check below looks for."""
    decoded = []
    for index in range(len(code) // 8):
        opcode, registers, offset, imm = struct.unpack_from("<BBhi", code, index * 8)
        decoded.append(Instruction(index, opcode, registers >> 4, offset, imm))
    return decoded


class CompiledExample:
    def __init__(self, name: str, path: Path):
        self.name = name
        self.path = path
        self._file = path.open("rb")
        self.elf = ELFFile(self._file)
        self.section_names = {section.name for section in self.elf.iter_sections()}
        self.symbols = list(self.elf.get_section_by_name(".symtab").iter_symbols())

    def section_index(self, name: str) -> int:
        for index, section in enumerate(self.elf.iter_sections()):
            if section.name == name:
                return index
        raise KeyError(name)

    def symbols_in(self, section: str) -> dict[str, object]:
        index = self.section_index(section)
        return {symbol.name: symbol for symbol in self.symbols
                if symbol["st_shndx"] == index and symbol.name}

    def code(self, section: str) -> list[Instruction]:
        return _instructions(self.elf.get_section_by_name(section).data())

    def all_program_code(self) -> list[Instruction]:
        code = []
        for section in list(EXPECTED[self.name].programs) + [".text"]:
            if section in self.section_names:
                code += self.code(section)
        return code

    def relocations(self, section: str) -> list[tuple[int, str]]:
        relocation_section = self.elf.get_section_by_name(f".rel{section}")
        if relocation_section is None:
            return []
        return [(rel["r_info_type"], self.symbols[rel["r_info_sym"]].name)
                for rel in relocation_section.iter_relocations()]

    def btf_strings(self) -> set[str]:
        """The names in the .BTF string section (header layout from Documentation/bpf/btf.rst)."""
        data = self.elf.get_section_by_name(".BTF").data()
        magic, version, _flags, header_len = struct.unpack_from("<HBBI", data, 0)
        assert magic == 0xEB9F and version == 1, f"{self.name}: not a BTF section"
        _type_off, _type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        strings = data[header_len + str_off: header_len + str_off + str_len]
        return {text.decode() for text in strings.split(b"\0") if text}

    def close(self):
        self._file.close()


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, CompiledExample]:
    folder = tmp_path_factory.mktemp("examples")
    objects = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)  # the examples must build warning-free
        for name in EXPECTED:
            source = EXAMPLES / f"{name}.c"
            mcpu = declared_mcpu(source) or "v3"
            objects[name] = CompiledExample(name, compile_c(source, folder / f"{name}.o", mcpu))
    yield objects
    for example in objects.values():
        example.close()


# ---- the examples ----------------------------------------------------------------------------


def test_every_example_source_is_listed():
    assert {path.stem for path in EXAMPLES.glob("*.c")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_object_layout(compiled, name):
    example = compiled[name]
    expected = EXPECTED[name]
    elf = example.elf
    assert elf["e_machine"] == "EM_BPF" and elf["e_type"] == "ET_REL" and elf.little_endian

    for section, function in expected.programs.items():
        assert section in example.section_names, f"{name}: no program section {section!r}"
        functions = {symbol_name for symbol_name, symbol in example.symbols_in(section).items()
                     if symbol["st_info"]["type"] == "STT_FUNC"}
        assert functions == {function}, f"{name}: section {section!r} holds {functions}"

    assert ".BTF" in example.section_names and ".BTF.ext" in example.section_names
    license_text = elf.get_section_by_name("license").data()
    assert license_text.endswith(b"\0") and b"GPL" in license_text

    if expected.maps:
        assert ".maps" in example.section_names
        assert set(example.symbols_in(".maps")) == expected.maps
        assert expected.maps <= example.btf_strings(), f"{name}: map names missing from .BTF"
    else:
        assert ".maps" not in example.section_names

    for section in expected.data_sections:
        assert section in example.section_names, f"{name}: no {section}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_calls_the_helpers_it_is_about(compiled, name):
    example = compiled[name]
    helper_calls = {insn.imm for insn in example.all_program_code()
                    if insn.opcode == BPF_JMP | BPF_CALL and insn.src_reg == 0}
    assert helper_calls == EXPECTED[name].helpers


def test_calls_example_has_subprograms_and_global_data(compiled):
    example = compiled["xdp_calls"]
    subprograms = {symbol_name for symbol_name, symbol in example.symbols_in(".text").items()
                   if symbol["st_info"]["type"] == "STT_FUNC"}
    assert subprograms == EXPECTED["xdp_calls"].subprograms

    # Both program and subprograms reach .rodata and .bss through 64-bit loads, and calls
    # into .text are relocated: the loader must resolve all of these.
    relocations = example.relocations("xdp") + example.relocations(".text")
    data_symbols = {symbol for kind, symbol in relocations if kind == R_BPF_64_64}
    assert {"blocked_udp_port", "min_ttl", "packets_seen", "packets_dropped", "drops_by_reason"} <= data_symbols
    assert any(kind == R_BPF_64_32 for kind, _ in relocations)
    pseudo_calls = [insn for insn in example.all_program_code()
                    if insn.opcode == BPF_JMP | BPF_CALL and insn.src_reg == 1]
    assert len(pseudo_calls) >= 3

    rodata = example.elf.get_section_by_name(".rodata").data()
    rodata_symbols = example.symbols_in(".rodata")
    port = rodata_symbols["blocked_udp_port"]
    assert struct.unpack_from("<H", rodata, port["st_value"])[0] == 9
    assert rodata[rodata_symbols["min_ttl"]["st_value"]] == 2
    assert example.elf.get_section_by_name(".bss")["sh_type"] == "SHT_NOBITS"


def test_vlan_example_keeps_a_real_loop(compiled):
    backward_jumps = [insn for insn in compiled["xdp_vlan"].code("xdp")
                      if insn.opcode & 0x07 in (BPF_JMP, BPF_JMP32)
                      and insn.opcode & 0xF0 not in (BPF_CALL, BPF_EXIT) and insn.offset < 0]
    assert backward_jumps, "the VLAN loop was unrolled: the object has no backward jump"


def test_atomic_example_uses_every_atomic_operation_and_v4_instructions(compiled):
    code = compiled["xdp_atomic"].code("xdp")
    atomics = {(insn.opcode & 0x18, insn.imm) for insn in code
               if insn.opcode & 0x07 == BPF_STX and insn.opcode & 0xE0 == BPF_ATOMIC_MODE}
    for operation in (ATOMIC_ADD | BPF_FETCH, ATOMIC_OR | BPF_FETCH, ATOMIC_AND | BPF_FETCH,
                      ATOMIC_XOR | BPF_FETCH, ATOMIC_XCHG, ATOMIC_CMPXCHG):
        assert (BPF_DW, operation) in atomics, f"no 64-bit atomic {operation:#x}"
    for operation in (ATOMIC_ADD | BPF_FETCH, ATOMIC_XCHG, ATOMIC_CMPXCHG):
        assert (BPF_W, operation) in atomics, f"no 32-bit atomic {operation:#x}"
    assert any(insn.opcode == SDIV64_REG and insn.offset == 1 for insn in code), "no signed division"
    assert any(insn.opcode & 0x07 == BPF_LDX and insn.opcode & 0xE0 == BPF_MEMSX_MODE for insn in code), \
        "no sign-extending load"
    assert any(insn.opcode == BSWAP64_CLASS for insn in code), "no unconditional byte swap"


def test_atomic_example_needs_v4(tmp_path):
    source = EXAMPLES / "xdp_atomic.c"
    assert declared_mcpu(source) == "v4"
    with pytest.raises(CompileError, match=r"(?s)xdp_atomic\.c.*-mcpu=v3.*signed division"):
        compile_c(source, tmp_path / "x.o", "v3")
    assert not (tmp_path / "x.o").exists()


# ---- packets and map-init files ----------------------------------------------------------------


def test_every_example_has_packets():
    assert set(packets.PACKETS) == set(EXPECTED)
    for name, make_packets in packets.PACKETS.items():
        examples = make_packets()
        assert len(examples) >= 3, name
        descriptions = [example.description for example in examples]
        assert len(set(descriptions)) == len(descriptions), f"{name}: repeated descriptions"
        for example in examples:
            # BPF_PROG_TEST_RUN refuses XDP input shorter than an Ethernet header.
            assert 14 <= len(example.data) <= 1514, f"{name}: {example.description}"


def test_committed_pcaps_and_map_files_are_current(tmp_path):
    written = packets.write_pcaps(tmp_path) + packets.write_map_inits(tmp_path)
    for path in written:
        committed = EXAMPLES / path.relative_to(tmp_path)
        assert committed.exists(), f"{committed} is missing: run python examples/packets.py"
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} is stale: run python examples/packets.py")


def test_pcap_frames_read_back(tmp_path):
    from scapy.utils import rdpcap

    packets.write_pcaps(tmp_path)
    for name, make_packets in packets.PACKETS.items():
        frames = rdpcap(str(tmp_path / "pcap" / f"{name}.pcap"))
        assert [bytes(frame) for frame in frames] == [example.data for example in make_packets()]


def test_map_init_files_name_real_maps_with_hex_bytes(compiled):
    for name in packets.MAP_INITS:
        document = json.loads((EXAMPLES / f"{name}.maps.json").read_text())
        assert set(document) == {"maps"}
        example = compiled[name]
        maps_in_object = set(example.symbols_in(".maps"))
        for map_name, entries in document["maps"].items():
            assert map_name in maps_in_object, f"{name}: the object has no map {map_name!r}"
            for key, value in entries.items():
                assert re.fullmatch(r"(?:[0-9a-f]{2})+", key), f"{name}.{map_name}: key {key!r}"
                if map_name == "jmp_table":
                    assert value in example.section_names, f"{name}: no program section {value!r}"
                else:
                    assert re.fullmatch(r"(?:[0-9a-f]{2})+", value), f"{name}.{map_name}: value {value!r}"


def test_firewall_and_router_map_bytes():
    firewall = json.loads((EXAMPLES / "xdp_firewall.maps.json").read_text())["maps"]["blocked"]
    # 192.0.2.66, UDP port 53: address and port in network order, protocol 17, zero pad.
    assert firewall["c000024200351100"] == "00" * 8
    routes = json.loads((EXAMPLES / "xdp_router.maps.json").read_text())["maps"]["routes"]
    # 10.1.2.0/24: prefix length 24 little-endian, then the address in network order.
    assert routes["180000000a010200"] == "020000000a02" + "02000000e001" + "01000000"


# ---- the headers --------------------------------------------------------------------------------

HEADER_PROBE = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <linux/icmp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpfnic.h>
#include <bpfnic/net.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

_Static_assert(sizeof(struct ethhdr) == 14, "ethhdr");
_Static_assert(sizeof(struct iphdr) == 20, "iphdr");
_Static_assert(offsetof(struct iphdr, check) == 10, "iphdr.check");
_Static_assert(offsetof(struct iphdr, daddr) == 16, "iphdr.daddr");
_Static_assert(sizeof(struct ipv6hdr) == 40, "ipv6hdr");
_Static_assert(offsetof(struct ipv6hdr, nexthdr) == 6, "ipv6hdr.nexthdr");
_Static_assert(sizeof(struct udphdr) == 8, "udphdr");
_Static_assert(sizeof(struct tcphdr) == 20, "tcphdr");
_Static_assert(offsetof(struct tcphdr, window) == 14, "tcphdr.window");
_Static_assert(sizeof(struct icmphdr) == 8, "icmphdr");
_Static_assert(sizeof(struct vlan_hdr) == 4, "vlan_hdr");
_Static_assert(sizeof(struct xdp_md) == 24, "xdp_md");
_Static_assert(bpf_htons(0x0800) == 0x0008, "bpf_htons folds to a constant");
_Static_assert(bpf_ntohl(0x01020304) == 0x04030201, "bpf_ntohl");

/* Bit-field order: the first octet of an IPv4 header is version 4, IHL 5. */
static const unsigned char first_octet[2] = {0x45, 0x00};

SEC("xdp")
int probe(struct xdp_md *ctx)
{
	const struct iphdr *ip = (const void *)first_octet;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > (void *)(long)ctx->data_end)
		return XDP_ABORTED;
	switch (eth->h_proto) {
	case bpf_htons(ETH_P_IP):
		return ip->version == 4 && ip->ihl == 5 ? XDP_PASS : XDP_ABORTED;
	default:
		return XDP_DROP;
	}
}

char _license[] SEC("license") = "GPL";
"""


def test_headers_build_together_without_warnings(tmp_path):
    source = tmp_path / "probe.c"
    source.write_text(HEADER_PROBE)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        compile_c(source, tmp_path / "probe.o")
    with (tmp_path / "probe.o").open("rb") as stream:
        assert ELFFile(stream).get_section_by_name("xdp") is not None


def _parse_c_enum(text: str, enum_name: str, prefix: str) -> dict[str, int]:
    body = re.search(rf"enum {enum_name}\s*\{{(.*?)\}};", text, re.S)
    assert body, f"no enum {enum_name}"
    return {name: int(value) for name, value in re.findall(rf"({prefix}\w+)\s*=\s*(\d+)", body.group(1))}


SYSTEM_UAPI_BPF = Path("/usr/include/linux/bpf.h")


@pytest.mark.skipif(not SYSTEM_UAPI_BPF.exists(),
                    reason="no kernel UAPI header at /usr/include/linux/bpf.h (Debian: linux-libc-dev)")
def test_helper_ids_and_map_types_match_the_kernel_uapi():
    ours = (include_dir() / "bpfnic" / "uapi.h").read_text()
    kernel = SYSTEM_UAPI_BPF.read_text()

    # The helper mapper macro lists helpers in id order: FN(name) in older headers
    # (__BPF_FUNC_MAPPER), FN(name, id, ...) with the id written out in newer ones.
    start = re.search(r"#define _{2,3}BPF_FUNC_MAPPER\(FN", kernel)
    assert start, "no helper mapper macro in the kernel header"
    mapper = re.match(r"(?:.*\\\n)*.*", kernel[start.start():]).group(0)  # up to the last continued line
    kernel_ids = {}
    for position, match in enumerate(re.finditer(r"FN\((\w+)(?:,\s*(\d+))?", mapper)):
        name, explicit = match.groups()
        kernel_ids.setdefault(name, int(explicit) if explicit else position)
    for name, value in _parse_c_enum(ours, "bpf_func_id", "BPF_FUNC_").items():
        helper = name.removeprefix("BPF_FUNC_")
        if helper in kernel_ids:  # an older header may lack the newest helpers
            assert kernel_ids[helper] == value, f"{name}: kernel says {kernel_ids[helper]}"
    assert kernel_ids["xdp_adjust_tail"] == 65 and kernel_ids["redirect_map"] == 51

    kernel_map_types = re.search(r"enum bpf_map_type\s*\{(.*?)\};", kernel, re.S).group(1)
    kernel_order = re.findall(r"^\s*(BPF_MAP_TYPE_\w+)", kernel_map_types, re.M)
    for name, value in _parse_c_enum(ours, "bpf_map_type", "BPF_MAP_TYPE_").items():
        assert kernel_order.index(name) == value, name


# ---- errors --------------------------------------------------------------------------------------


def test_missing_source_is_a_compile_error(tmp_path):
    with pytest.raises(CompileError, match=r"nope\.c: cannot compile: no such file"):
        compile_c(tmp_path / "nope.c", tmp_path / "nope.o")


def test_directory_as_source_is_a_compile_error(tmp_path):
    with pytest.raises(CompileError, match="is a directory"):
        compile_c(tmp_path, tmp_path / "x.o")


@pytest.mark.parametrize("mcpu", ["v0", "v5", "V3", "3", "probe", ""])
def test_bad_mcpu_is_a_compile_error(tmp_path, mcpu):
    source = EXAMPLES / "xdp_pass.c"
    with pytest.raises(CompileError, match=r"xdp_pass\.c: mcpu .* is not a BPF instruction set version"):
        compile_c(source, tmp_path / "x.o", mcpu)


def test_clang_diagnostics_name_file_and_line(tmp_path):
    source = tmp_path / "broken.c"
    source.write_text('#include <bpfnic.h>\nSEC("xdp") int f(struct xdp_md *ctx)\n{\n\treturn undefined_name;\n}\n')
    with pytest.raises(CompileError) as error:
        compile_c(source, tmp_path / "broken.o")
    message = str(error.value)
    assert message.startswith(f"{source}: compilation failed (-mcpu=v3):")
    assert "broken.c:4:" in message and "undefined_name" in message
    assert "Traceback" not in message
    assert not (tmp_path / "broken.o").exists()


def test_long_diagnostics_are_trimmed(tmp_path):
    source = tmp_path / "many.c"
    source.write_text("".join(f"int f{i}(void) {{ return missing{i}; }}\n" for i in range(30)))
    with pytest.raises(CompileError, match=r"more lines of diagnostics") as error:
        compile_c(source, tmp_path / "many.o")
    assert len(str(error.value).splitlines()) <= bpf_compile._MAX_DIAGNOSTIC_LINES + 2


def test_unknown_header_is_reported(tmp_path):
    source = tmp_path / "needs.c"
    source.write_text("#include <linux/not_a_real_header.h>\n")
    with pytest.raises(CompileError, match=r"not_a_real_header\.h.*not found|file not found"):
        compile_c(source, tmp_path / "needs.o")


def test_warnings_are_reported_as_compile_warnings(tmp_path):
    source = tmp_path / "warns.c"
    source.write_text('#warning "bpfnic probe warning"\nint x;\n')
    with pytest.warns(CompileWarning, match="bpfnic probe warning"):
        compile_c(source, tmp_path / "warns.o")


def test_include_dirs_and_defines(tmp_path):
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "verdict.h").write_text("#define VERDICT XDP_TX\n")
    source = tmp_path / "uses.c"
    source.write_text(
        '#include <bpfnic.h>\n#include "verdict.h"\n#ifndef ENABLED\n#error ENABLED not defined\n#endif\n'
        'SEC("xdp") int f(struct xdp_md *ctx) { return VERDICT + ENABLED; }\n'
        'char _license[] SEC("license") = "GPL";\n'
    )
    out = compile_c(source, tmp_path / "out" / "uses.o", "v2", [tmp_path / "inc"], ["ENABLED=0"])
    with out.open("rb") as stream:
        code = _instructions(ELFFile(stream).get_section_by_name("xdp").data())
    assert any(insn.imm == 3 for insn in code)  # XDP_TX reached the code: both flags took effect
    with pytest.raises(CompileError, match="is not NAME or NAME=VALUE"):
        compile_c(source, tmp_path / "bad.o", defines=["=1"])


def test_missing_ziglang_is_a_compile_error(tmp_path):
    # `python -S` starts without site-packages, so ziglang cannot be found: run the real module
    # there, loaded by path (it needs only the standard library).
    program = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('compile_module', {str(REPO / 'sw' / 'compile.py')!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "try:\n"
        f"    module.compile_c({str(EXAMPLES / 'xdp_pass.c')!r}, {str(tmp_path / 'x.o')!r})\n"
        "except module.CompileError as error:\n"
        "    print(error)\n"
        "    sys.exit(3)\n"
    )
    result = subprocess.run([sys.executable, "-S", "-c", program], capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    assert "xdp_pass.c: cannot compile: the `ziglang` package" in result.stdout


def test_declared_mcpu(tmp_path):
    assert declared_mcpu(EXAMPLES / "xdp_drop.c") is None
    source = tmp_path / "bad_directive.c"
    source.write_text("// bpfnic: mcpu=v9\nint x;\n")
    with pytest.raises(CompileError, match=r"bad_directive\.c:1: `bpfnic: mcpu=v9`"):
        declared_mcpu(source)
    with pytest.raises(CompileError, match="cannot read the source"):
        declared_mcpu(tmp_path / "absent.c")


# ---- the command line ----------------------------------------------------------------------------


def test_main_compile_uses_the_declared_mcpu(tmp_path, capsys):
    output = tmp_path / "atomic.o"
    assert main_compile([str(EXAMPLES / "xdp_atomic.c"), "-o", str(output)]) == 0
    assert "(-mcpu=v4)" in capsys.readouterr().out
    assert output.exists()


def test_main_compile_reports_errors_without_traceback(tmp_path, capsys):
    assert main_compile([str(tmp_path / "missing.c"), "-o", str(tmp_path / "m.o")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("bpfnic compile: ") and "missing.c" in error and "Traceback" not in error

    assert main_compile([str(EXAMPLES / "xdp_atomic.c"), "-o", str(tmp_path / "a.o"), "--mcpu", "v3"]) == 1
    assert "signed division" in capsys.readouterr().err

    with pytest.raises(SystemExit) as exit_info:
        main_compile([str(EXAMPLES / "xdp_pass.c"), "--mcpu", "v7"])
    assert exit_info.value.code == 2
