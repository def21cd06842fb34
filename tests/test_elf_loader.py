"""Tests of the ELF loader (sw/elf_loader.py) and the BTF decoder (sw/btf.py).

The objects are compiled here from small C programs with the clang inside `ziglang` (the sources declare
everything they use, so no header is needed). Expected values come from outside the loader: the ELF symbol
and relocation tables as pyelftools reads them, the bytes of the variables' initialisers, `bpftool btf dump`
when installed, and the kernel, which runs the linked programs (skipped where bpf() is refused).
A seeded fuzz campaign mutates valid objects and requires every outcome to be a load or a LoadError.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from bpfnic.sw import btf, isa
from bpfnic.sw.elf_loader import (BPF_F_RDONLY_PROG, LoadError, MapDef, internal_map_name, load_bytes,
                                  load_object)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

CLANG = [sys.executable, "-m", "ziglang", "cc", "-target", "bpfel-freestanding", "-mcpu=v3", "-O2",
         "-fno-unwind-tables", "-fno-asynchronous-unwind-tables", "-Wno-unused-function"]

PRELUDE = r"""
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define __array(name, val) typeof(val) *name[]
#define __noinline __attribute__((noinline))
struct xdp_md { __u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex; };
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_tail_call)(void *ctx, void *map, __u32 index) = (void *)12;
/* The first packet byte, or 0 for an empty packet: a value the compiler cannot fold. */
static inline __u32 first_byte(struct xdp_md *ctx)
{
    __u8 *data = (__u8 *)(long)ctx->data, *end = (__u8 *)(long)ctx->data_end;
    return data + 1 > end ? 0 : data[0];
}
"""

MAPS_SOURCE = PRELUDE + r"""
struct flow_key { __u32 saddr, daddr; __u16 sport, dport; __u8 proto; };
struct flow_stats { __u64 packets, bytes; };
struct { __uint(type, 1); __uint(max_entries, 1024); __type(key, struct flow_key);
         __type(value, struct flow_stats); __uint(map_flags, 1); } flows SEC(".maps");
struct { __uint(type, 6); __uint(max_entries, 8); __uint(key_size, 4); __uint(value_size, 8); } percpu SEC(".maps");
struct { __uint(type, 9); __uint(max_entries, 64); __type(key, __u64); __type(value, __u32); } lru SEC(".maps");
struct { __uint(type, 27); __uint(max_entries, 4096); } events SEC(".maps");
struct inner_def { __uint(type, 2); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); }
    inner_a SEC(".maps");
struct { __uint(type, 12); __uint(max_entries, 2); __type(key, __u32); __array(values, struct inner_def); }
    outer SEC(".maps") = { .values = { [1] = &inner_a } };
int stage0(struct xdp_md *ctx);
int stage2(struct xdp_md *ctx);
struct { __uint(type, 3); __uint(max_entries, 4); __type(key, __u32); __array(values, int (void *)); }
    jumps SEC(".maps") = { .values = { [0] = (void *)&stage0, [2] = (void *)&stage2 } };

SEC("xdp") int use_maps(struct xdp_md *ctx)
{
    __u32 index = first_byte(ctx);
    struct flow_key key = { .saddr = index };
    __u64 wide = index;
    struct flow_stats *stats = bpf_map_lookup_elem(&flows, &key);
    __u64 *count = bpf_map_lookup_elem(&percpu, &index);
    __u32 *recent = bpf_map_lookup_elem(&lru, &wide);
    void *inner = bpf_map_lookup_elem(&outer, &index);
    __u64 *direct = bpf_map_lookup_elem(&inner_a, &index);
    if (stats && count && recent && inner && direct)
        stats->packets += *count + *recent + *direct;
    bpf_tail_call(ctx, &jumps, index);
    return 2;
}
SEC("xdp/stage0") int stage0(struct xdp_md *ctx) { return 1; }
SEC("xdp/stage2") int stage2(struct xdp_md *ctx) { return 2; }
char _license[] SEC("license") = "Dual BSD/GPL";
"""

LEGACY_SOURCE = PRELUDE + r"""
struct bpf_map_def { unsigned int type, key_size, value_size, max_entries, map_flags; };
struct bpf_map_def SEC("maps") counters = { .type = 2, .key_size = 4, .value_size = 8, .max_entries = 16 };
struct bpf_map_def SEC("maps") table = { .type = 1, .key_size = 8, .value_size = 4, .max_entries = 128,
                                         .map_flags = 1 };
SEC("xdp") int legacy(struct xdp_md *ctx)
{
    __u32 key = first_byte(ctx);
    __u64 wide = key;
    __u64 *count = bpf_map_lookup_elem(&counters, &key);
    __u32 *entry = bpf_map_lookup_elem(&table, &wide);
    if (count && entry)
        *count += *entry;
    return 2;
}
char _license[] SEC("license") = "GPL";
__u32 _version SEC("version") = 0x00050a00;
"""

# Every variable starts with bytes that name it, so a map_idx_value offset can be checked by looking at
# what lies there in the map's initial value.
GLOBALS_SOURCE = PRELUDE + r"""
const volatile __u32 threshold = 0x11223344;
static const __u8 table[8] = { 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7 };
__u64 seen = 0x5555666677778888ULL;
static __u32 hits[4] = { 0x01010101, 0x02020202, 0x03030303, 0x04040404 };
__u64 total;
static __u32 runs;
__u32 custom SEC(".data.custom") = 0xabcd;

static __noinline __u32 leaf(__u32 x) { return x * 3 + 1; }
static __noinline __u32 only_a(__u32 x) { return x ^ 0x5a; }
static __noinline __u32 shared(__u32 x) { return leaf(x) + leaf(x + 1); }

SEC("xdp") int globals(struct xdp_md *ctx)
{
    __u32 b = first_byte(ctx);
    total += b;
    runs += 1;
    hits[b & 3] += 1;
    return table[b & 7] + (hits[b & 3] & 0xff) + (__u32)(seen & 0xff) + (threshold > b ? 1000 : 2000)
           + custom + (__u32)total + runs;
}
SEC("xdp/a") int prog_a(struct xdp_md *ctx) { __u32 b = first_byte(ctx); return shared(b) + only_a(b); }
SEC("xdp/b") int prog_b(struct xdp_md *ctx) { return shared(first_byte(ctx)) & 0xff; }
char _license[] SEC("license") = "GPL";
"""

SECTIONS_SOURCE = PRELUDE + r"""
SEC("xdp") int first(struct xdp_md *ctx) { return 1; }
SEC("xdp") int second(struct xdp_md *ctx) { return 2; }
SEC("xdp/other") int third(struct xdp_md *ctx) { return 3; }
SEC("tc") int classifier(struct xdp_md *ctx) { return 0; }
"""

CALLBACK_SOURCE = PRELUDE + r"""
static long (*bpf_loop)(__u32 nr, void *fn, void *ctx, __u64 flags) = (void *)181;
static int add_index(__u32 index, void *sum) { *(__u32 *)sum += index; return 0; }
static __noinline __u32 finish(__u32 x) { return x + 1; }
SEC("xdp") int looper(struct xdp_md *ctx)
{
    __u32 sum = 0;
    bpf_loop(first_byte(ctx), add_index, &sum, 0);
    return finish(sum);
}
char _license[] SEC("license") = "GPL";
"""

# One of every BTF kind: INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC,
# FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64.
KINDS_SOURCE = PRELUDE + r"""
typedef unsigned int u32;
struct opaque;
union num { int i; float f; double d; };
enum color { RED = 1, GREEN = -2 };
enum big { HUGE = 0x123456789aLL, NEG = -5LL };
struct flags { unsigned a : 3; unsigned b : 5; int c; };
struct pkt {
    u32 len; unsigned char mac[6]; struct flags fl; union num n; enum color col; enum big bg;
    struct opaque *op; int __attribute__((btf_type_tag("user"))) *up; char *restrict rp; volatile const u32 vc;
} __attribute__((btf_decl_tag("tagged")));
struct pkt global_pkt SEC(".data.pkt");
SEC("xdp") int kinds(struct pkt *p) { return p->len + p->fl.b + p->n.i + global_pkt.col; }
"""


def compile_source(directory: Path, name: str, source: str, debug: bool = True) -> Path:
    c_file = directory / f"{name}.c"
    c_file.write_text(source)
    output = directory / f"{name}.o"
    command = CLANG + (["-g"] if debug else []) + ["-c", str(c_file), "-o", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"clang failed on {name}.c:\n{result.stderr}"
    return output


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    directory = tmp_path_factory.mktemp("objects")
    built: dict[tuple[str, bool], Path] = {}

    def get(name: str, source: str, debug: bool = True) -> Path:
        if (name, debug) not in built:
            built[(name, debug)] = compile_source(directory, name + ("" if debug else "_nodebug"), source, debug)
        return built[(name, debug)]

    return get


@pytest.fixture(scope="module")
def maps_object(build):
    return build("maps", MAPS_SOURCE)


@pytest.fixture(scope="module")
def globals_object(build):
    return build("glob", GLOBALS_SOURCE)


# -- helpers that read the object independently of the loader -------------------------------------------------

def elf_relocations(path: Path, section: str) -> list[tuple[int, str, int, str]]:
    """(instruction slot, symbol name, symbol value, symbol's section name) for each relocation of a section."""
    with open(path, "rb") as stream:
        elf = ELFFile(stream)
        rel = elf.get_section_by_name(".rel" + section)
        symtab = elf.get_section_by_name(".symtab")
        result = []
        for reloc in rel.iter_relocations():
            symbol = symtab.get_symbol(reloc["r_info_sym"])
            result.append((reloc["r_offset"] // 8, symbol.name, symbol["st_value"],
                           elf.get_section(symbol["st_shndx"]).name))
        return result


def elf_functions(path: Path, section: str) -> dict[str, bytes]:
    """The code of each FUNC symbol of a section."""
    with open(path, "rb") as stream:
        elf = ELFFile(stream)
        index = next(i for i, s in enumerate(elf.iter_sections()) if s.name == section)
        code = elf.get_section(index).data()
        return {s.name: code[s["st_value"]:s["st_value"] + s["st_size"]]
                for s in elf.get_section_by_name(".symtab").iter_symbols()
                if s["st_info"]["type"] == "STT_FUNC" and s["st_shndx"] == index}


def lddw_at(program: isa.Program, index: int) -> tuple[int, int, int]:
    """(src, imm, next imm) of the LDDW at an index."""
    insn = program[index]
    assert insn.is_lddw, f"instruction {index} is not lddw: {insn}"
    return insn.src, insn.imm64 & 0xFFFFFFFF, insn.imm64 >> 32


def local_calls(program: isa.Program) -> list[tuple[int, int]]:
    """(call index, target index) of every bpf-to-bpf call."""
    return [(i, i + 1 + insn.imm) for i, insn in program.instructions()
            if insn.opcode == isa.OP_CALL and insn.src == isa.BPF_PSEUDO_CALL_LOCAL]


# -- maps ------------------------------------------------------------------------------------------------------

def test_btf_maps_of_several_types(maps_object):
    obj = load_object(maps_object)
    by_name = obj.map_by_name
    assert set(by_name) == {"flows", "percpu", "lru", "events", "inner_a", "outer", "jumps"}
    assert [m.index for m in obj.maps] == list(range(len(obj.maps)))

    flows = by_name["flows"]
    assert (flows.map_type, flows.key_size, flows.value_size, flows.max_entries, flows.flags) == (1, 16, 16, 1024, 1)
    assert (flows.btf_key_type, flows.btf_value_type) == ("struct flow_key", "struct flow_stats")
    assert (flows.initial_data, flows.readonly, flows.section) == (None, False, ".maps")
    percpu = by_name["percpu"]
    assert (percpu.map_type, percpu.key_size, percpu.value_size, percpu.max_entries) == (6, 4, 8, 8)
    assert percpu.btf_key_type is None
    lru = by_name["lru"]
    assert (lru.map_type, lru.key_size, lru.value_size, lru.max_entries) == (9, 8, 4, 64)
    assert (lru.btf_key_type, lru.btf_value_type) == ("__u64", "__u32")
    events = by_name["events"]
    assert (events.map_type, events.key_size, events.value_size, events.max_entries) == (27, 0, 0, 4096)

    outer = by_name["outer"]
    assert (outer.map_type, outer.key_size, outer.value_size, outer.max_entries) == (12, 4, 4, 2)
    assert isinstance(outer.inner, MapDef)
    assert (outer.inner.map_type, outer.inner.key_size, outer.inner.value_size, outer.inner.max_entries) == (2, 4, 8, 1)
    assert outer.initial_values == {1: "inner_a"}
    jumps = by_name["jumps"]
    assert (jumps.map_type, jumps.key_size, jumps.value_size, jumps.max_entries) == (3, 4, 4, 4)
    assert jumps.initial_values == {0: "stage0", 2: "stage2"}
    assert obj.license == "Dual BSD/GPL"


def test_map_references_become_map_idx(maps_object):
    obj = load_object(maps_object)
    prog = obj.program("use_maps")
    relocations = elf_relocations(maps_object, "xdp")
    assert len(relocations) == 6
    for slot, symbol, _value, section in relocations:
        assert section == ".maps"
        map_index = obj.map_by_name[symbol].index
        assert lddw_at(prog.insns, slot) == (isa.BPF_PSEUDO_MAP_IDX, map_index, 0)
        assert (slot, map_index, 0) in prog.map_relocs
    assert len(prog.map_relocs) == len(relocations)


def test_legacy_maps_section_and_version(build):
    path = build("legacy", LEGACY_SOURCE)
    obj = load_object(path)
    assert [(m.name, m.map_type, m.key_size, m.value_size, m.max_entries, m.flags, m.section) for m in obj.maps] == [
        ("counters", 2, 4, 8, 16, 0, "maps"), ("table", 1, 8, 4, 128, 1, "maps")]
    prog = obj.program()
    for slot, symbol, _value, _section in elf_relocations(path, "xdp"):
        assert lddw_at(prog.insns, slot) == (isa.BPF_PSEUDO_MAP_IDX, obj.map_by_name[symbol].index, 0)
    assert obj.license == "GPL"
    assert obj.kernel_version == 0x00050A00


# -- global data ------------------------------------------------------------------------------------------------

INITIALISERS = {
    "threshold": struct.pack("<I", 0x11223344),
    "table": bytes(range(0xA0, 0xA8)),
    "seen": struct.pack("<Q", 0x5555666677778888),
    "hits": struct.pack("<4I", 0x01010101, 0x02020202, 0x03030303, 0x04040404),
    "custom": struct.pack("<I", 0xABCD),
}


def test_global_data_maps(globals_object):
    obj = load_object(globals_object)
    sections = {m.section: m for m in obj.maps if m.initial_data is not None}
    # clang may move the constant table to a mergeable `.rodata.cst8`: it is global data all the same.
    assert {".rodata", ".data", ".bss", ".data.custom"} <= set(sections)
    assert all(name.startswith(".rodata") for name in set(sections) - {".data", ".bss", ".data.custom"})
    rodata, data, bss, custom = (sections[name] for name in (".rodata", ".data", ".bss", ".data.custom"))
    assert rodata.name == "glob.rodata" and data.name == "glob.data" and bss.name == "glob.bss"
    assert custom.name == ".data.custom"
    for map_def in sections.values():
        assert (map_def.map_type, map_def.key_size, map_def.max_entries) == (2, 4, 1)
        assert map_def.value_size == len(map_def.initial_data)
        read_only = map_def.section.startswith(".rodata")
        assert map_def.readonly == read_only and bool(map_def.flags & BPF_F_RDONLY_PROG) == read_only
    assert bss.value_size >= 12 and bss.initial_data == bytes(bss.value_size)  # total (8) and runs (4)
    assert INITIALISERS["threshold"] in rodata.initial_data
    assert any(INITIALISERS["table"] in m.initial_data for m in sections.values() if m.readonly)
    assert INITIALISERS["seen"] in data.initial_data and INITIALISERS["hits"] in data.initial_data
    assert custom.initial_data == INITIALISERS["custom"]
    assert obj.map(".rodata") is rodata and obj.map("glob.bss") is bss


def test_global_data_references_are_map_idx_value_with_offsets(globals_object):
    obj = load_object(globals_object)
    prog = obj.program("globals")
    relocations = elf_relocations(globals_object, "xdp")
    seen_variables = set()
    bss_offsets = set()
    for slot, symbol, value, section in relocations:
        src, map_index, offset = lddw_at(prog.insns, slot)
        map_def = obj.maps[map_index]
        assert src == isa.BPF_PSEUDO_MAP_IDX_VALUE and map_def.section == section
        assert (slot, map_index, offset) in prog.map_relocs
        # A named variable: the offset is its symbol's; a static one is addressed through the section
        # symbol, and the bytes at the offset must then be one of the initialisers.
        if symbol:  # pyelftools leaves section symbols unnamed
            assert offset == value
        if section == ".bss":
            bss_offsets.add(offset)
            continue
        at_offset = map_def.initial_data[offset:]
        matches = [name for name, content in INITIALISERS.items() if at_offset.startswith(content)]
        assert len(matches) == 1, f"offset {offset} of {section} holds {at_offset[:8].hex()}"
        seen_variables.add(matches[0])
    assert seen_variables == set(INITIALISERS)
    assert len(bss_offsets) == 2  # total and runs


def test_internal_map_names_follow_libbpf():
    assert internal_map_name("prog", ".rodata") == "prog.rodata"
    assert internal_map_name("a_very_long_object", ".bss") == "a_very_l.bss"
    assert internal_map_name("a_very_long_object", ".rodata") == "a_very_l.rodata"
    assert internal_map_name("x", ".rodata.str1.1") == ".rodata.str1.1"
    assert internal_map_name("obj", ".data.custom") == ".data.custom"
    assert internal_map_name("my-prog", ".data") == "my_prog.data"


# -- bpf-to-bpf calls --------------------------------------------------------------------------------------------

def check_calls_resolve(program: isa.Program, subprograms: list[tuple[str, int]], text: dict[str, bytes]) -> None:
    """Every local call lands on the start of an appended subprogram whose code is that function's."""
    starts = {start: name for name, start in subprograms}
    for index, target in local_calls(program):
        assert target in starts, f"call at {index} goes to {target}, not to a subprogram start {starts}"
    for name, start in subprograms:
        # Compare opcodes and registers slot by slot; call immediates are rewritten by design.
        copied = b"".join(program[i].encode() for i in range(start, start + len(text[name]) // 8)
                          if program[i] is not isa.LDDW_TAIL)
        assert len(copied) == len(text[name])
        for slot in range(0, len(copied), 8):
            assert copied[slot:slot + 2] == text[name][slot:slot + 2], f"{name} differs at slot {slot // 8}"


def test_calls_append_subprograms_per_program(globals_object):
    obj = load_object(globals_object)
    text = elf_functions(globals_object, ".text")
    prog_a, prog_b = obj.program("prog_a"), obj.program("prog_b")
    assert {name for name, _ in prog_a.subprograms} == {"shared", "leaf", "only_a"}
    assert {name for name, _ in prog_b.subprograms} == {"shared", "leaf"}
    for prog in (prog_a, prog_b):
        main_length = len(elf_functions(globals_object, prog.section)[prog.name]) // 8
        # Subprograms follow the program, each copied once, back to back.
        starts = sorted(start for _, start in prog.subprograms)
        assert starts[0] == main_length
        assert starts[-1] + len(text[dict((s, n) for n, s in prog.subprograms)[starts[-1]]]) // 8 == len(prog.insns)
        check_calls_resolve(prog.insns, prog.subprograms, text)
    # The shared subprogram calls leaf twice; each copy's calls point into its own program.
    shared_a = dict(prog_a.subprograms)["shared"]
    leaf_a = dict(prog_a.subprograms)["leaf"]
    calls_from_shared = [t for i, t in local_calls(prog_a.insns) if shared_a <= i < shared_a + 8]
    assert calls_from_shared and all(target == leaf_a for target in calls_from_shared)


def test_callback_address_becomes_pseudo_func(build):
    obj = load_object(build("callback", CALLBACK_SOURCE))
    prog = obj.program()
    subprograms = dict(prog.subprograms)
    assert set(subprograms) == {"add_index", "finish"}
    funcs = [(i, insn) for i, insn in prog.insns.instructions() if insn.is_lddw and insn.src == isa.BPF_PSEUDO_FUNC]
    assert len(funcs) == 1
    index, insn = funcs[0]
    assert index + 1 + isa.s32(insn.imm64) == subprograms["add_index"]
    assert insn.imm64 >> 32 == 0


def test_source_lines_from_btf_ext(globals_object):
    prog = load_object(globals_object).program("prog_a")
    assert "prog_a" in prog.source_lines[0].text
    leaf = dict(prog.subprograms)["leaf"]
    assert "leaf" in prog.source_lines[leaf].text
    assert prog.source_lines[0].file.endswith("glob.c")


# -- programs and sections ---------------------------------------------------------------------------------------

def test_several_programs_and_lookup(build):
    obj = load_object(build("sections", SECTIONS_SOURCE))
    assert set(obj.programs) == {"xdp:first", "xdp:second", "xdp/other", "tc"}
    assert set(obj.programs_by_name) == {"first", "second", "third", "classifier"}
    assert obj.program("second").name == "second"
    assert obj.program("xdp:first").name == "first"
    assert obj.program("xdp/other").name == "third"
    assert obj.program("tc").name == "classifier"
    default = obj.program()
    assert default.is_xdp and default is next(p for p in obj.programs.values() if p.is_xdp)
    with pytest.raises(LoadError, match=r"several programs \(first, second\)"):
        obj.program("xdp")
    with pytest.raises(LoadError, match=r"no program 'nope' \(programs: .*xdp/other \(third\)"):
        obj.program("nope")
    assert obj.license is None
    for prog in obj.programs.values():
        assert prog.insns[-1] == isa.exit_insn()


def test_no_xdp_program_is_an_error(build):
    source = PRELUDE + 'SEC("tc") int one(void *c) { return 0; }\nSEC("tc") int two(void *c) { return 1; }\n'
    obj = load_object(build("tc_only", source))
    with pytest.raises(LoadError, match="no XDP program"):
        obj.program()


def test_examples_load(tmp_path):
    compile_module = pytest.importorskip("bpfnic.sw.compile", reason="sw/compile.py is not there yet")
    sources = sorted(EXAMPLES.glob("*.c"))
    if not sources:
        pytest.skip("no examples/*.c yet")
    for source in sources:
        output = compile_module.compile_c(source, tmp_path / (source.stem + ".o"),
                                          mcpu=compile_module.declared_mcpu(source) or "v3")
        obj = load_object(output)
        prog = obj.program()
        assert prog.is_xdp, source.name
        for program in obj.programs.values():
            for index, map_index, offset in program.map_relocs:
                assert 0 <= map_index < len(obj.maps), f"{source.name}: {program.name} insn {index}"
                assert program.insns[index].is_lddw
                if offset:
                    assert offset <= obj.maps[map_index].value_size


# -- errors ------------------------------------------------------------------------------------------------------

def test_load_error_is_one_line_with_place():
    error = LoadError("prog.o", "xdp", 12, "relocation against unknown symbol 'foo'")
    assert str(error) == "prog.o: section xdp, instruction 12: relocation against unknown symbol 'foo'"
    assert (error.file, error.section, error.insn_index) == ("prog.o", "xdp", 12)
    assert str(LoadError("prog.o", None, None, "not an ELF file")) == "prog.o: not an ELF file"


def patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    changed = bytearray(data)
    struct.pack_into(fmt, changed, offset, value)
    return bytes(changed)


def section_header(data: bytes, name: str) -> tuple[int, int, int]:
    """(header offset, data offset, size) of a named section."""
    elf = ELFFile(io.BytesIO(data))
    for index, section in enumerate(elf.iter_sections()):
        if section.name == name:
            return elf["e_shoff"] + index * elf["e_shentsize"], section["sh_offset"], section["sh_size"]
    raise AssertionError(f"no section {name}")


@pytest.mark.parametrize("mutate, message", [
    (lambda d: b"hello, world", "not an ELF file"),
    (lambda d: d[:40], "truncated ELF header"),
    (lambda d: patch(d, 4, "B", 1), "not a 64-bit ELF file"),
    (lambda d: patch(d, 5, "B", 2), "not a little-endian ELF file"),
    (lambda d: patch(d, 18, "<H", 62), "machine is 62, not BPF"),
    (lambda d: patch(d, 16, "<H", 2), "not a relocatable object"),
    (lambda d: d[:len(d) - 100], "section header table .* runs past the end"),
    (lambda d: patch(d, section_header(d, "xdp")[0] + 24, "<Q", 1 << 40),
     r"section \[\d+\]: section data .* runs past"),
    (lambda d: patch(d, section_header(d, "xdp")[1], "B", 0xFF), "section xdp, instruction 0: unknown opcode 0xff"),
    (lambda d: patch(d, section_header(d, ".BTF")[1], "<H", 0x1234), "section .BTF: corrupt BTF: bad magic"),
])
def test_malformed_objects(globals_object, mutate, message):
    data = globals_object.read_bytes()
    with pytest.raises(LoadError, match=message) as caught:
        load_bytes(mutate(data), "glob.o")
    assert str(caught.value).startswith("glob.o: ") and "\n" not in str(caught.value)


def test_error_in_subprogram_names_caller(globals_object):
    data = globals_object.read_bytes()
    _header, text_offset, _size = section_header(data, ".text")
    functions = elf_functions(globals_object, ".text")
    with open(globals_object, "rb") as stream:
        leaf = next(s for s in ELFFile(stream).get_section_by_name(".symtab").iter_symbols() if s.name == "leaf")
        leaf_start = leaf["st_value"]
    assert "leaf" in functions
    broken = patch(data, text_offset + leaf_start, "B", 0xFF)
    with pytest.raises(LoadError) as caught:
        load_bytes(broken, "glob.o")
    error = caught.value
    assert error.section == ".text" and error.insn_index == leaf_start // 8
    assert "in 'leaf', called from program" in error.reason


def test_missing_file():
    with pytest.raises(LoadError, match="cannot read the file"):
        load_object("/nonexistent/prog.o")


def test_extern_variable_is_unknown_symbol(build):
    source = PRELUDE + 'extern __u32 missing_var;\nSEC("xdp") int uses_extern(void *c) { return missing_var; }\n'
    path = build("extern", source)
    with open(path, "rb") as stream:
        elf = ELFFile(stream)
        slot = next(elf.get_section_by_name(".relxdp").iter_relocations())["r_offset"] // 8
    with pytest.raises(LoadError) as caught:
        load_object(path)
    assert caught.value.section == "xdp" and caught.value.insn_index == slot
    assert str(caught.value).startswith(f"{path}: section xdp, instruction {slot}: relocation against unknown "
                                        "symbol 'missing_var'")


def test_btf_maps_need_debug_info(build):
    with pytest.raises(LoadError, match=r"section \.maps: .*compile with -g"):
        load_object(build("maps", MAPS_SOURCE, debug=False))


@pytest.mark.parametrize("definition, message", [
    ("__uint(type, 2); __uint(bogus, 3);", "unknown field 'bogus'"),
    ("__uint(type, 2); __uint(key_size, 8); __type(key, __u32);", "disagrees"),
    ("__uint(max_entries, 3);", "has no type"),
    ("__uint(type, 1); __array(values, int (void *));", "only map types 3 can hold"),
    ("__uint(type, 2); __u32 key;", "field 'key' must be a pointer to the key type"),
])
def test_bad_btf_map_definitions(build, definition, message):
    source = PRELUDE + f'struct {{ {definition} }} bad SEC(".maps");\n' \
        'SEC("xdp") int p(void *c) { return bpf_map_lookup_elem(&bad, c) != 0; }\n'
    name = f"badmap{zlib.crc32(definition.encode()):08x}"
    with pytest.raises(LoadError, match=message) as caught:
        load_object(build(name, source))
    assert caught.value.section == ".maps" and "map 'bad'" in caught.value.reason


def test_pointer_in_global_data_is_refused(build):
    source = PRELUDE + 'const char *greeting = "hi";\nSEC("xdp") int p(void *c) { return greeting[0]; }\n'
    with pytest.raises(LoadError, match=r"section \.data: R_BPF_64_ABS64 .*global data cannot hold addresses"):
        load_object(build("pointer", source))


# -- BTF ---------------------------------------------------------------------------------------------------------

def btf_of(path: Path) -> btf.Btf:
    with open(path, "rb") as stream:
        return btf.Btf.parse(ELFFile(stream).get_section_by_name(".BTF").data())


def test_btf_decodes_every_kind(build):
    types = btf_of(build("kinds", KINDS_SOURCE))
    assert {t.kind for t in types.types[1:]} == set(btf.Kind) - {btf.Kind.UNKN}
    pkt = types.find("pkt", btf.Kind.STRUCT)
    assert types.size_of(pkt.type_id) == 80
    members = {m.name: m for m in pkt.members}
    assert [m.name for m in pkt.members] == ["len", "mac", "fl", "n", "col", "bg", "op", "up", "rp", "vc"]
    offsets = [members[name].bit_offset for name in ("len", "mac", "fl", "n", "col", "bg", "op")]
    assert offsets == [0, 32, 96, 192, 256, 320, 384]
    assert types.describe(members["len"].type_id) == "u32"
    assert types.resolve(members["len"].type_id).name == "unsigned int"
    assert types.describe(members["mac"].type_id) == "unsigned char[6]"
    assert types.size_of(members["mac"].type_id) == 6
    assert types.describe(members["vc"].type_id) == "const volatile u32"
    assert types.resolve(members["vc"].type_id).kind == btf.Kind.INT
    assert types.describe(members["rp"].type_id) == "restrict char *"
    assert types.describe(members["op"].type_id) == "struct opaque *"
    assert types.describe(members["up"].type_id) == "int __tag(user) *"
    flags = types.find("flags", btf.Kind.STRUCT)
    assert [(m.name, m.bit_offset, m.bitfield_size) for m in flags.members] == [("a", 0, 3), ("b", 3, 5), ("c", 32, 0)]
    assert [(v.name, v.value) for v in types.find("color").enum_values] == [("RED", 1), ("GREEN", -2)]
    big = types.find("big")
    assert big.kind == btf.Kind.ENUM64 and big.size == 8
    assert [(v.name, v.value) for v in big.enum_values] == [("HUGE", 0x123456789A), ("NEG", -5)]
    assert types.find("float").size == 4 and types.find("double").size == 8
    num = types.find("num", btf.Kind.UNION)
    assert types.size_of(num.type_id) == 8 and all(m.bit_offset == 0 for m in num.members)
    tag = types.find("tagged", btf.Kind.DECL_TAG)
    assert tag.ref == pkt.type_id and tag.component_idx == -1
    func = types.find("kinds", btf.Kind.FUNC)
    assert func.linkage == 1 and types.type(func.ref).kind == btf.Kind.FUNC_PROTO
    assert types.describe(types.type(func.ref).params[0].type_id) == "struct pkt *"
    datasec = types.datasec(".data.pkt")
    assert types.type(datasec.secinfos[0].type_id).name == "global_pkt"
    integer = types.find("int", btf.Kind.INT)
    assert (integer.size, integer.int_bits, integer.int_encoding) == (4, 32, btf.INT_SIGNED)


BPFTOOL = shutil.which("bpftool") or next((p for p in ("/usr/sbin/bpftool", "/sbin/bpftool") if Path(p).exists()),
                                          None)


@pytest.mark.skipif(BPFTOOL is None, reason="bpftool is not installed (it is the independent BTF reader)")
@pytest.mark.parametrize("name", ["kinds", "maps", "glob"])
def test_btf_agrees_with_bpftool(build, name):
    source = {"kinds": KINDS_SOURCE, "maps": MAPS_SOURCE, "glob": GLOBALS_SOURCE}[name]
    path = build(name, source)
    dump = subprocess.run([BPFTOOL, "btf", "dump", "file", str(path), "-j"], capture_output=True, text=True,
                          timeout=60)
    if dump.returncode != 0:
        pytest.skip(f"bpftool cannot dump BTF here: {dump.stderr.strip()[:200]}")
    reference = json.loads(dump.stdout)["types"]
    types = btf_of(path)
    assert len(types.types) == len(reference) + 1
    for expected in reference:
        got = types.type(expected["id"])
        assert got.kind.name == expected["kind"], expected
        assert (got.name or "(anon)") == expected["name"], expected
        if "size" in expected:
            assert got.size == expected["size"], expected
        if "type_id" in expected and got.ref is not None:
            assert got.ref == expected["type_id"], expected
        if "ret_type_id" in expected:
            assert got.ref == expected["ret_type_id"], expected
        if "nr_elems" in expected:
            assert (got.array.elem_type, got.array.index_type, got.array.nelems) == (
                expected["type_id"], expected["index_type_id"], expected["nr_elems"])
        if "nr_bits" in expected:
            assert (got.int_bits, got.int_offset) == (expected["nr_bits"], expected["bits_offset"])
        for member, reference_member in zip(got.members, expected.get("members", ()), strict=True):
            assert (member.name or "(anon)", member.type_id, member.bit_offset, member.bitfield_size) == (
                reference_member["name"], reference_member["type_id"], reference_member["bits_offset"],
                reference_member.get("bitfield_size", 0))
        for value, reference_value in zip(got.enum_values, expected.get("values", ()), strict=True):
            assert (value.name, value.value) == (reference_value["name"], reference_value["val"])
        for param, reference_param in zip(got.params, expected.get("params", ()), strict=True):
            assert (param.name or "(anon)", param.type_id) == (reference_param["name"], reference_param["type_id"])
        for secinfo, reference_var in zip(got.secinfos, expected.get("vars", ()), strict=True):
            assert (secinfo.type_id, secinfo.offset, secinfo.size) == (
                reference_var["type_id"], reference_var["offset"], reference_var["size"])


class BtfBuilder:
    """A hand-made BTF blob, for the decoder's error paths."""

    def __init__(self):
        self.strings = bytearray(b"\0")
        self.types = bytearray()

    def name(self, text: str) -> int:
        offset = len(self.strings)
        self.strings += text.encode() + b"\0"
        return offset

    def add(self, kind: int, name: str = "", vlen: int = 0, size_or_type: int = 0, tail: bytes = b"",
            kind_flag: bool = False) -> None:
        info = (kind << 24) | vlen | (1 << 31 if kind_flag else 0)
        self.types += struct.pack("<III", self.name(name) if name else 0, info, size_or_type) + tail

    def blob(self, magic: int = btf.BTF_MAGIC) -> bytes:
        header = struct.pack("<HBBIIIII", magic, 1, 0, 24, 0, len(self.types), len(self.types), len(self.strings))
        return header + bytes(self.types) + bytes(self.strings)


def test_btf_hand_built_blob():
    b = BtfBuilder()
    b.add(btf.Kind.INT, "int", size_or_type=4, tail=struct.pack("<I", (btf.INT_SIGNED << 24) | 32))      # [1]
    b.add(btf.Kind.TYPEDEF, "myint", size_or_type=1)                                                    # [2]
    b.add(btf.Kind.ARRAY, tail=struct.pack("<III", 2, 1, 5))                                            # [3]
    b.add(btf.Kind.STRUCT, "s", vlen=2, size_or_type=24,
          tail=struct.pack("<III", b.name("x"), 1, 0) + struct.pack("<III", b.name("arr"), 3, 32))       # [4]
    b.add(btf.Kind.ENUM64, "e", vlen=1, size_or_type=8, kind_flag=True,
          tail=struct.pack("<III", b.name("MINUS_ONE"), 0xFFFFFFFF, 0xFFFFFFFF))                         # [5]
    types = btf.Btf.parse(b.blob())
    assert types.size_of(4) == 24 and types.size_of(3) == 20 and types.describe(3) == "myint[5]"
    assert types.type(5).enum_values[0].value == -1
    assert types.find("s").members[1].name == "arr"


@pytest.mark.parametrize("build_blob, message", [
    (lambda b: b.blob()[:10], "header is truncated"),
    (lambda b: b.blob(magic=0x9FEB), "big-endian"),
    (lambda b: b.blob(magic=0x1234), "bad magic"),
    (lambda b: (b.add(25), b.blob())[1], "unknown kind 25"),
    (lambda b: (b.add(btf.Kind.PTR, size_or_type=7), b.blob())[1], r"refers to type 7, beyond the last type 1"),
    (lambda b: (b.add(btf.Kind.STRUCT, "s", vlen=3, size_or_type=4, tail=bytes(12)), b.blob())[1],
     "run past the end of the type section"),
    (lambda b: (b.types.extend(struct.pack("<III", 999, 2 << 24, 0)), b.blob())[1], "outside the string section"),
    (lambda b: b.blob()[:-1], "runs past the end of the data"),
])
def test_btf_corrupt_blobs(build_blob, message):
    with pytest.raises(btf.BtfError, match=message):
        btf.Btf.parse(build_blob(BtfBuilder()))


def test_btf_cycles_are_errors_not_hangs():
    b = BtfBuilder()
    b.add(btf.Kind.TYPEDEF, "a", size_or_type=2)   # [1] -> [2]
    b.add(btf.Kind.TYPEDEF, "b", size_or_type=1)   # [2] -> [1]
    b.add(btf.Kind.ARRAY, tail=struct.pack("<III", 3, 0, 2))  # [3]: an array of itself
    types = btf.Btf.parse(b.blob())
    with pytest.raises(btf.BtfError, match="cycle"):
        types.resolve(1)
    with pytest.raises(btf.BtfError, match="cycle"):
        types.size_of(3)
    assert "..." in types.describe(3)


def test_btf_describe_of_a_fanning_prototype_is_bounded():
    # [1] is a prototype whose return and three parameters all point back at it: spelling it out in full
    # would take 4^32 steps.
    b = BtfBuilder()
    b.add(btf.Kind.FUNC_PROTO, vlen=3, size_or_type=2, tail=struct.pack("<6I", 0, 2, 0, 2, 0, 2))
    b.add(btf.Kind.PTR, size_or_type=1)
    types = btf.Btf.parse(b.blob())
    started = time.monotonic()
    text = types.describe(2)
    assert time.monotonic() - started < 1.0
    assert text.endswith(" *") and "..." in text and len(text) < 4000


# -- fuzzing -----------------------------------------------------------------------------------------------------

class CaseTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise CaseTimeout()


SECONDS_PER_CASE = 2.0


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One random corruption of an object, and a description of it for the failure message."""
    changed = bytearray(data)
    elf = ELFFile(io.BytesIO(data))
    sections = [(s.name, s["sh_offset"], s["sh_size"], elf["e_shoff"] + i * 64)
                for i, s in enumerate(elf.iter_sections()) if s["sh_type"] != "SHT_NULL"]
    strategy = rng.choice(["flip", "truncate", "header", "section header", "btf", "relocation", "symbol", "code"])
    if strategy == "flip":
        for _ in range(rng.randint(1, 8)):
            changed[rng.randrange(len(changed))] ^= 1 << rng.randrange(8)
    elif strategy == "truncate":
        changed = changed[:rng.randrange(len(changed))]
    elif strategy == "header":
        changed[rng.randrange(64)] = rng.randrange(256)
    elif strategy == "section header":
        _name, _offset, _size, header = rng.choice(sections)
        # sh_name, sh_type, sh_flags, sh_offset, sh_size, sh_link, sh_info, sh_entsize
        field = rng.choice([(0, "<I"), (4, "<I"), (8, "<Q"), (24, "<Q"), (32, "<Q"), (40, "<I"), (44, "<I"),
                            (56, "<Q")])
        value = rng.choice([0, 1, 7, 0xFFFFFFFF, rng.randrange(1 << 16), rng.randrange(len(data) + 64)])
        struct.pack_into(field[1], changed, header + field[0], value)
    else:
        wanted = {"btf": (".BTF", ".BTF.ext"), "relocation": (".rel",), "symbol": (".symtab",),
                  "code": ("xdp", ".text")}[strategy]
        candidates = [s for s in sections if s[0].startswith(wanted) and s[2] >= 4]
        _name, offset, size, _header = rng.choice(candidates)
        for _ in range(rng.randint(1, 4)):
            position = offset + rng.randrange(size - 3)
            value = rng.choice([0, 1, 0xFF, 0xFFFFFFFF, 0x7FFFFFFF, rng.randrange(1 << 32), rng.randrange(256)])
            struct.pack_into("<I", changed, position, value)
    return strategy, bytes(changed)


def run_fuzz_campaign(objects: list[Path], cases: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    outcomes = {"loaded": 0, "LoadError": 0}
    bases = [(path.name, path.read_bytes()) for path in objects]
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        for case in range(cases):
            name, base = bases[case % len(bases)]
            strategy, data = mutate(base, rng)
            started = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, SECONDS_PER_CASE * 2)
            try:
                obj = load_bytes(data, name)
                outcomes["loaded"] += 1
                for program in obj.programs.values():
                    assert isinstance(program.insns, isa.Program) and len(program.insns) > 0
            except LoadError as error:
                outcomes["LoadError"] += 1
                assert str(error).startswith(name + ": ") and error.reason
            except CaseTimeout:
                pytest.fail(f"case {case} (seed {seed}, {strategy} on {name}) did not finish in "
                            f"{SECONDS_PER_CASE * 2} s")
            except Exception as error:  # the point of the test: nothing else may escape
                pytest.fail(f"case {case} (seed {seed}, {strategy} on {name}) raised {type(error).__name__}: {error}")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            elapsed = time.monotonic() - started
            assert elapsed < SECONDS_PER_CASE, f"case {case} ({strategy} on {name}) took {elapsed:.2f} s"
    finally:
        signal.signal(signal.SIGALRM, previous)
    return outcomes


def test_fuzz_mutated_objects_load_or_raise_load_error(maps_object, globals_object):
    outcomes = run_fuzz_campaign([maps_object, globals_object], cases=400, seed=20240611)
    # Both outcomes must occur, or the mutations are not exercising anything.
    assert outcomes["loaded"] > 20 and outcomes["LoadError"] > 100, outcomes


@pytest.mark.slow
def test_fuzz_long_campaign(maps_object, globals_object, build):
    objects = [maps_object, globals_object, build("legacy", LEGACY_SOURCE), build("callback", CALLBACK_SOURCE)]
    for seed in range(8):
        run_fuzz_campaign(objects, cases=2500, seed=seed)


# -- the kernel as the oracle for linking ------------------------------------------------------------------------

def kernel_or_skip():
    kernel_bpf = pytest.importorskip("bpfnic.sw.kernel_bpf", reason="sw/kernel_bpf.py is not there yet")
    reason = kernel_bpf.bpf_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    return kernel_bpf


def run_in_kernel(kernel_bpf, obj, program_names: list[str], packets: list[bytes]) -> dict[str, list[int]]:
    """Create the object's maps (with their initial values), load the programs with the maps as fd_array,
    and return each program's return values for the packets, run in order."""
    maps = []
    try:
        for map_def in obj.maps:
            kernel_map = kernel_bpf.KernelMap.create(map_def.map_type, map_def.key_size, map_def.value_size,
                                                     map_def.max_entries, map_def.flags, map_def.name)
            maps.append(kernel_map)
            if map_def.initial_data is not None:
                kernel_map.update(bytes(4), map_def.initial_data)
        results = {}
        for name in program_names:
            program = obj.program(name)
            with kernel_bpf.KernelProgram.load(kernel_bpf.BPF_PROG_TYPE_XDP, program.insns.encode(),
                                               license=obj.license or "GPL", name=name,
                                               fd_array=[m.fd for m in maps]) as loaded:
                results[name] = [loaded.test_run(packet).retval for packet in packets]
        return results
    finally:
        for kernel_map in maps:
            kernel_map.close()


@pytest.mark.kernel
def test_kernel_runs_linked_calls_and_globals(globals_object):
    kernel_bpf = kernel_or_skip()
    obj = load_object(globals_object)

    def leaf(x):
        return x * 3 + 1

    packets = [bytes([b]) + bytes(63) for b in (5, 200, 7)]
    results = run_in_kernel(kernel_bpf, obj, ["prog_a", "prog_b", "globals"], packets)
    assert results["prog_a"] == [leaf(b) + leaf(b + 1) + (b ^ 0x5A) for b in (5, 200, 7)]
    assert results["prog_b"] == [(leaf(b) + leaf(b + 1)) & 0xFF for b in (5, 200, 7)]
    # The globals program keeps state in .data and .bss between runs.
    hits = [0x01010101, 0x02020202, 0x03030303, 0x04040404]
    total = runs = 0
    expected = []
    for b in (5, 200, 7):
        total += b
        runs += 1
        hits[b & 3] += 1
        expected.append(0xA0 + (b & 7) + (hits[b & 3] & 0xFF) + 0x88 + (1000 if 0x11223344 > b else 2000)
                        + 0xABCD + total + runs)
    assert results["globals"] == expected


def test_core_relocations_are_refused(tmp_path):
    """An object with CO-RE relocations is refused by name, not loaded with unrelocated field offsets."""
    from bpfnic.sw.compile import compile_c
    from bpfnic.sw.elf_loader import LoadError, load_object
    source = tmp_path / "core.c"
    source.write_text("""#include <bpfnic.h>
struct task { int pid; int tgid; } __attribute__((preserve_access_index));
SEC("xdp") int prog(struct xdp_md *ctx) {
    struct task *t = (struct task *)(long)ctx->data;
    return __builtin_preserve_access_index(&t->tgid) ? XDP_PASS : XDP_DROP;
}
char LICENSE[] SEC("license") = "GPL";
""")
    obj = compile_c(source, tmp_path / "core.o")
    with pytest.raises(LoadError, match="CO-RE relocations"):
        load_object(obj)
