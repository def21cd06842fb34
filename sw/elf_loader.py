"""ELF loader for BPF object files from clang (`-target bpfel -O2 -g`), read the way libbpf reads them.

Ref: the System V gABI (ELF-64 header, section headers, symbol table, SHT_REL entries); the kernel's
include/uapi/linux/bpf.h (enum bpf_map_type, BPF_F_RDONLY_PROG, BPF_PSEUDO_* sources of LDDW and CALL);
Documentation/bpf/llvm_reloc.rst (the BPF relocation types and where their addends live: R_BPF_64_64 in the
LDDW immediate, R_BPF_64_32 in the call immediate counted in instructions); libbpf's documented conventions
("libbpf overview", "BTF-defined maps", program sections, internal maps for global data).

What it produces:
- one `ProgramDef` per function of every executable section except `.text`. Functions called from it
  (bpf-to-bpf calls, and callbacks loaded with LDDW) are copied after it, transitively, and the call
  immediates fixed, as libbpf does: every program is self-contained.
- the maps, in index order: legacy `maps` section definitions, BTF-defined `.maps`, then global data
  (`.rodata*`, `.data*`, `.bss*`), each a single-entry array whose value is the section's bytes.
- map references rewritten to `lddw rX, map_idx N` (src BPF_PSEUDO_MAP_IDX) and global data references to
  `lddw rX, map_idx_value N+off` (src BPF_PSEUDO_MAP_IDX_VALUE); the driver later turns the indices into
  map fds or hardware map numbers.

Every problem with the input, including a corrupt or truncated file, is a `LoadError` naming the file,
section, instruction and the reason.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass, field

from elftools.common.exceptions import ELFError
from elftools.construct.core import ConstructError
from elftools.elf.elffile import ELFFile

from . import btf as btf_mod
from . import isa

# -- ELF constants (System V gABI) ---------------------------------------------------------------------------
EM_BPF = 247
ET_REL = 1
SHT_NULL = 0
SHT_PROGBITS = 1
SHT_SYMTAB = 2
SHT_STRTAB = 3
SHT_RELA = 4
SHT_NOBITS = 8
SHT_REL = 9
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
SHN_LORESERVE = 0xFF00
_ELF64_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
_ELF64_SECTION_HEADER = struct.Struct("<IIQQQQIIQQ")
SYMBOL_ENTRY_SIZE = 24
REL_ENTRY_SIZE = 16

# -- BPF relocation types (Documentation/bpf/llvm_reloc.rst) -------------------------------------------------
R_BPF_NONE = 0
R_BPF_64_64 = 1          # LDDW of a map, global variable or function address
R_BPF_64_ABS64 = 2       # 64-bit data word (prog array initial values in .maps; debug info)
R_BPF_64_ABS32 = 3       # 32-bit data word (debug info, .BTF)
R_BPF_64_NODYLD32 = 4    # 32-bit data word that needs no dynamic linking (.BTF, .BTF.ext)
R_BPF_64_32 = 10         # call immediate
RELOC_NAMES = {R_BPF_NONE: "R_BPF_NONE", R_BPF_64_64: "R_BPF_64_64", R_BPF_64_ABS64: "R_BPF_64_ABS64",
               R_BPF_64_ABS32: "R_BPF_64_ABS32", R_BPF_64_NODYLD32: "R_BPF_64_NODYLD32",
               R_BPF_64_32: "R_BPF_64_32"}

# -- Map types and flags the loader itself needs (include/uapi/linux/bpf.h) --------------------------------------
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PROG_ARRAY = 3
BPF_MAP_TYPE_ARRAY_OF_MAPS = 12
BPF_MAP_TYPE_HASH_OF_MAPS = 13
BPF_F_RDONLY_PROG = 1 << 7

#: Legacy `struct bpf_map_def`: type, key_size, value_size, max_entries, map_flags.
_LEGACY_MAP_DEF = struct.Struct("<IIIII")

#: Global data larger than this cannot become an array map value (the kernel's kmalloc limit is 4 MiB).
MAX_GLOBAL_DATA = 4 << 20

#: The kernel's BPF_OBJ_NAME_LEN minus the terminating NUL.
MAX_MAP_NAME = 15

_GLOBAL_DATA_PREFIXES = (".rodata", ".data", ".bss")


class LoadError(Exception):
    """A BPF object that cannot be loaded: which file, section and instruction, and why.

    str() is one line: `prog.o: section xdp, instruction 12: relocation against unknown symbol 'foo'`."""

    def __init__(self, file: str, section: str | None, insn_index: int | None, reason: str):
        self.file = file
        self.section = section
        self.insn_index = insn_index
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.section is not None:
            where.append(f"section {self.section}")
        if self.insn_index is not None:
            where.append(f"instruction {self.insn_index}")
        location = f"{self.file}: " + (", ".join(where) + ": " if where else "")
        return location + self.reason


@dataclass
class MapDef:
    """One map of the object. `index` is what `lddw rX, map_idx N` refers to.

    `initial_data` is the value of a global-data map (`.bss`: zeros); None for other maps. `initial_values`
    maps a slot of a program array to a program's function name, or a slot of a map of maps to a map name.
    `btf_key_type`/`btf_value_type` spell the key and value types when BTF gives them (`__u32`)."""

    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    initial_data: bytes | None = None
    readonly: bool = False
    inner: "MapDef | None" = None
    initial_values: dict[int, str] = field(default_factory=dict)
    btf_key_type: str | None = None
    btf_value_type: str | None = None
    section: str = ""
    index: int = -1
    numa_node: int = 0
    pinning: int = 0
    map_extra: int = 0


@dataclass
class ProgramDef:
    """One program, ready for the verifier and the driver.

    `insns` holds the program followed by copies of the subprograms it calls; `subprograms` lists their
    (function name, start index). `map_relocs` lists (instruction index, map index, offset) for every LDDW
    that refers to a map (offset 0) or into a global-data map's value. `source_lines` maps instruction
    indices to the C source line they came from, when the object carries `.BTF.ext` line info."""

    name: str
    section: str
    insns: isa.Program
    map_relocs: list[tuple[int, int, int]] = field(default_factory=list)
    subprograms: list[tuple[str, int]] = field(default_factory=list)
    source_lines: dict[int, btf_mod.LineInfo] = field(default_factory=dict)

    @property
    def is_xdp(self) -> bool:
        return is_xdp_section(self.section)


def is_xdp_section(section: str) -> bool:
    """libbpf's XDP section names: `xdp`, `xdp/...`, `xdp.frags`, `xdp.frags/...`."""
    return section in ("xdp", "xdp.frags") or section.startswith(("xdp/", "xdp.frags/"))


@dataclass
class BpfObject:
    """A loaded object. `programs` is keyed by section name; when a section holds several programs each is
    keyed `section:function` instead. `programs_by_name` is keyed by function name."""

    path: str
    programs: dict[str, ProgramDef]
    programs_by_name: dict[str, ProgramDef]
    maps: list[MapDef]
    map_by_name: dict[str, MapDef]
    license: str | None = None
    kernel_version: int | None = None
    btf: btf_mod.Btf | None = None

    def program(self, section_or_name: str | None = None) -> ProgramDef:
        """The named program (by section, `section:function` or function name); with no name the only
        program, or else the first XDP program."""
        available = ", ".join(f"{key} ({prog.name})" for key, prog in self.programs.items()) or "none"
        if section_or_name is None:
            if len(self.programs) == 1:
                return next(iter(self.programs.values()))
            for prog in self.programs.values():
                if prog.is_xdp:
                    return prog
            raise LoadError(self.path, None, None, f"no XDP program in the object (programs: {available})")
        if section_or_name in self.programs:
            return self.programs[section_or_name]
        if section_or_name in self.programs_by_name:
            return self.programs_by_name[section_or_name]
        in_section = [prog.name for prog in self.programs.values() if prog.section == section_or_name]
        if in_section:
            raise LoadError(self.path, section_or_name, None,
                            f"the section holds several programs ({', '.join(in_section)}); name one")
        raise LoadError(self.path, None, None, f"no program '{section_or_name}' (programs: {available})")

    def map(self, name: str) -> MapDef:
        """A map by its name, or a global-data map by its section name (`.rodata`)."""
        if name in self.map_by_name:
            return self.map_by_name[name]
        for map_def in self.maps:
            if map_def.initial_data is not None and map_def.section == name:
                return map_def
        names = ", ".join(m.name for m in self.maps) or "none"
        raise LoadError(self.path, None, None, f"no map '{name}' (maps: {names})")


def load_object(path: str | os.PathLike) -> BpfObject:
    """Read and link a BPF object file. Raises LoadError for anything wrong with it."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as stream:
            data = stream.read()
    except OSError as error:
        raise LoadError(name, None, None, f"cannot read the file: {error.strerror or error}") from None
    return load_bytes(data, name)


#: Errors that corrupt input can raise inside pyelftools or while decoding; they become LoadErrors.
_CORRUPT_INPUT_ERRORS = (ELFError, ConstructError, struct.error, ValueError, IndexError, KeyError,
                         OverflowError, EOFError, RecursionError)


def load_bytes(data: bytes, name: str = "<memory>") -> BpfObject:
    """Like `load_object`, for an object already in memory; `name` is used in messages and map names."""
    loader = _Loader(bytes(data), name)
    try:
        return loader.load()
    except LoadError:
        raise
    except _CORRUPT_INPUT_ERRORS as error:
        text = str(error) or type(error).__name__
        raise loader.error(f"malformed object ({type(error).__name__}: {text})") from error


# -- internals ---------------------------------------------------------------------------------------------------

@dataclass
class _Section:
    index: int
    name: str
    sh_type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    entsize: int
    data: bytes = b""

    @property
    def is_exec(self) -> bool:
        return self.sh_type == SHT_PROGBITS and bool(self.flags & SHF_EXECINSTR)


@dataclass
class _Symbol:
    index: int
    name: str
    value: int
    size: int
    sym_type: str      # STT_FUNC, STT_OBJECT, STT_SECTION, STT_NOTYPE, ...
    bind: str          # STB_LOCAL, STB_GLOBAL, STB_WEAK
    shndx: int | str   # a section index, or SHN_UNDEF / SHN_ABS / SHN_COMMON

    def describe(self) -> str:
        return f"'{self.name}'" if self.name else f"#{self.index} (no name)"


@dataclass
class _Reloc:
    offset: int
    reloc_type: int
    symbol: _Symbol


@dataclass
class _Function:
    section: _Section
    name: str
    start: int       # first instruction slot within the section
    end: int         # one past the last slot

    @property
    def key(self) -> tuple[int, int]:
        return self.section.index, self.start


@dataclass
class _LddwTarget:
    """What a relocated LDDW loads: a map, a place in a global-data map, or a function's address."""

    map_index: int | None = None
    offset: int | None = None          # None: the map itself; a number: an address inside its value
    function: _Function | None = None


_HERE = object()  # "where the loader is working": the default place of an error


class _Loader:
    def __init__(self, data: bytes, name: str):
        self.data = data
        self.name = name
        self.where_section: str | None = None
        self.where_insn: int | None = None
        self.sections: list[_Section] = []
        self.symbols: list[_Symbol] = []
        self.relocs: dict[int, list[_Reloc]] = {}          # target section index -> relocations
        self.btf: btf_mod.Btf | None = None
        self.btf_ext: btf_mod.BtfExt | None = None
        self.maps: list[MapDef] = []
        self.map_at: dict[tuple[int, int], int] = {}       # (section index, offset) -> map index
        self.data_map: dict[int, int] = {}                 # global-data section index -> map index
        self.functions: dict[int, dict[int, _Function]] = {}  # exec section index -> start slot -> function
        self.slot_relocs: dict[int, dict[int, _Reloc]] = {}  # exec section index -> slot -> relocation
        # BTF map index -> (start, end) of its `values` array within .maps, for initial values.
        self.values_region: dict[int, tuple[int, int]] = {}

    # -- errors ------------------------------------------------------------------------------------------------

    def error(self, reason: str, section: str | None | object = _HERE, insn: int | None | object = _HERE) -> LoadError:
        """A LoadError at the given place; by default at the section and instruction being worked on."""
        return LoadError(self.name, self.where_section if section is _HERE else section,
                         self.where_insn if insn is _HERE else insn, reason)

    def at(self, section: str | None, insn: int | None = None) -> None:
        self.where_section, self.where_insn = section, insn

    # -- the steps ---------------------------------------------------------------------------------------------

    def load(self) -> BpfObject:
        self._check_elf_header()
        elf = ELFFile(io.BytesIO(self.data))
        self._read_sections(elf)
        self._read_symbols(elf)
        self._read_relocations(elf)
        self._read_btf()
        license_text = self._read_license()
        kernel_version = self._read_version()
        self._read_legacy_maps()
        self._read_btf_maps()
        self._read_global_data()
        self._read_initial_values()
        self._find_functions()
        programs: list[ProgramDef] = []
        for section in self.sections:
            if section.is_exec and section.name != ".text":
                for function in self.functions[section.index].values():
                    programs.append(self._link(function))
        self.at(None)
        if not programs:
            raise self.error("no programs: no executable section other than .text holds instructions")
        per_section: dict[str, int] = {}
        for prog in programs:
            per_section[prog.section] = per_section.get(prog.section, 0) + 1
        by_key = {(prog.section if per_section[prog.section] == 1 else f"{prog.section}:{prog.name}"): prog
                  for prog in programs}
        by_name: dict[str, ProgramDef] = {}
        for prog in programs:
            by_name.setdefault(prog.name, prog)
        return BpfObject(self.name, by_key, by_name, self.maps, {m.name: m for m in self.maps}, license_text,
                         kernel_version, self.btf)

    def _check_elf_header(self) -> None:
        """Check what pyelftools would trust: identity, machine, and that the section header table and
        every section lie inside the file."""
        data = self.data
        if len(data) < _ELF64_HEADER.size:
            if data[:4] != b"\x7fELF":
                raise self.error("not an ELF file")
            raise self.error(f"truncated ELF header ({len(data)} bytes, {_ELF64_HEADER.size} needed)")
        (ident, e_type, e_machine, _version, _entry, _phoff, e_shoff, _flags, _ehsize, _phentsize, _phnum,
         e_shentsize, e_shnum, e_shstrndx) = _ELF64_HEADER.unpack_from(data)
        if ident[:4] != b"\x7fELF":
            raise self.error("not an ELF file")
        if ident[4] != 2:
            raise self.error("not a 64-bit ELF file (BPF objects are ELFCLASS64)")
        if ident[5] != 1:
            raise self.error("not a little-endian ELF file (compile with -target bpfel)")
        if e_machine != EM_BPF:
            raise self.error(f"machine is {e_machine}, not BPF ({EM_BPF}): compile with -target bpfel")
        if e_type != ET_REL:
            raise self.error(f"ELF type is {e_type}, not a relocatable object (ET_REL, {ET_REL})")
        if e_shnum == 0 or e_shoff == 0:
            raise self.error("the object has no section header table")
        if e_shentsize != _ELF64_SECTION_HEADER.size:
            raise self.error(f"section header size is {e_shentsize}, not {_ELF64_SECTION_HEADER.size}")
        if e_shoff + e_shnum * e_shentsize > len(data):
            raise self.error(f"the section header table ({e_shnum} entries at offset {e_shoff}) runs past "
                             f"the end of the file ({len(data)} bytes)")
        if e_shstrndx >= e_shnum:
            raise self.error(f"section name table index {e_shstrndx} is not a section (0..{e_shnum - 1})")
        for index in range(e_shnum):
            (_name, sh_type, _flags, _addr, sh_offset, sh_size, sh_link, sh_info, _align,
             sh_entsize) = _ELF64_SECTION_HEADER.unpack_from(data, e_shoff + index * e_shentsize)
            where = f"[{index}]"
            if sh_type not in (SHT_NULL, SHT_NOBITS) and sh_offset + sh_size > len(data):
                raise self.error(f"section data (offset {sh_offset}, size {sh_size}) runs past the end of the "
                                 f"file ({len(data)} bytes)", where)
            if sh_type in (SHT_SYMTAB, SHT_REL, SHT_RELA) and sh_link >= e_shnum:
                raise self.error(f"linked section {sh_link} does not exist", where)
            if sh_type == SHT_SYMTAB and sh_entsize != SYMBOL_ENTRY_SIZE:
                raise self.error(f"symbol entry size is {sh_entsize}, not {SYMBOL_ENTRY_SIZE}", where)
            if sh_type == SHT_REL and sh_entsize != REL_ENTRY_SIZE:
                raise self.error(f"relocation entry size is {sh_entsize}, not {REL_ENTRY_SIZE}", where)
            if sh_type in (SHT_REL, SHT_RELA) and sh_info >= e_shnum:
                raise self.error(f"relocated section {sh_info} does not exist", where)
        (_n, shstr_type, *_rest) = _ELF64_SECTION_HEADER.unpack_from(data, e_shoff + e_shstrndx * e_shentsize)
        if shstr_type != SHT_STRTAB:
            raise self.error(f"section name table [{e_shstrndx}] is not a string table")

    def _read_sections(self, elf: ELFFile) -> None:
        for index in range(elf.num_sections()):
            self.at(f"[{index}]")
            section = elf.get_section(index)
            header = section.header
            sh_type = _section_type_number(header["sh_type"])
            entry = _Section(index, section.name, sh_type, header["sh_flags"], header["sh_offset"],
                             header["sh_size"], header["sh_link"], header["sh_info"], header["sh_entsize"])
            if sh_type not in (SHT_NULL, SHT_NOBITS):
                entry.data = self.data[entry.offset:entry.offset + entry.size]
            self.sections.append(entry)

    def _section(self, index: int | str, what: str) -> _Section:
        if not isinstance(index, int) or not 0 <= index < len(self.sections):
            raise self.error(f"{what} refers to section {index}, which does not exist")
        return self.sections[index]

    def _read_symbols(self, elf: ELFFile) -> None:
        tables = [s for s in self.sections if s.sh_type == SHT_SYMTAB]
        if len(tables) > 1:
            raise self.error(f"{len(tables)} symbol tables; a BPF object has one")
        if not tables:
            return  # nothing can be relocated or named; a section without symbols is one program
        table = tables[0]
        self.at(table.name)
        symtab = elf.get_section(table.index)
        for index, symbol in enumerate(symtab.iter_symbols()):
            info = symbol["st_info"]
            shndx = symbol["st_shndx"]
            if isinstance(shndx, int) and shndx >= SHN_LORESERVE:
                shndx = f"reserved section index 0x{shndx:x}"
            self.symbols.append(_Symbol(index, symbol.name, symbol["st_value"], symbol["st_size"],
                                        info["type"] if isinstance(info["type"], str) else f"type {info['type']}",
                                        info["bind"] if isinstance(info["bind"], str) else f"bind {info['bind']}",
                                        shndx))

    def _read_relocations(self, elf: ELFFile) -> None:
        for section in self.sections:
            if section.sh_type not in (SHT_REL, SHT_RELA):
                continue
            target = self.sections[section.info]
            # Relocations of debug info, .BTF and .BTF.ext are for linkers and debuggers; like libbpf, the
            # loader takes offsets from the symbols instead and leaves them alone.
            if not (target.is_exec or target.name in (".maps", "maps") or _is_global_data(target)):
                continue
            self.at(section.name)
            if section.sh_type == SHT_RELA:
                if target.is_exec or target.name in (".maps", "maps"):
                    raise self.error(f"RELA relocations for section {target.name} (BPF objects use REL)")
                continue
            if not self.symbols or self.sections[section.link].sh_type != SHT_SYMTAB:
                raise self.error("relocations without the symbol table")
            relocs = self.relocs.setdefault(target.index, [])
            for reloc in elf.get_section(section.index).iter_relocations():
                symbol_index = reloc["r_info_sym"]
                if symbol_index >= len(self.symbols):
                    raise self.error(f"relocation at offset {reloc['r_offset']} refers to symbol {symbol_index}, "
                                     f"beyond the {len(self.symbols)} symbols")
                relocs.append(_Reloc(reloc["r_offset"], reloc["r_info_type"], self.symbols[symbol_index]))

    def _read_btf(self) -> None:
        sections = {s.name: s for s in self.sections}
        if ".BTF" in sections:
            self.at(".BTF")
            try:
                self.btf = btf_mod.Btf.parse(sections[".BTF"].data)
            except btf_mod.BtfError as error:
                raise self.error(f"corrupt BTF: {error}") from None
        if ".BTF.ext" in sections and self.btf is not None:
            self.at(".BTF.ext")
            try:
                self.btf_ext = btf_mod.parse_btf_ext(sections[".BTF.ext"].data, self.btf)
            except btf_mod.BtfError as error:
                raise self.error(f"corrupt BTF line/function info: {error}") from None
            if self.btf_ext.core_relo_bytes:
                # Loading it unchanged would run field offsets compiled for another kernel's structs.
                raise self.error("the object carries CO-RE relocations (__builtin_preserve_access_index, "
                                 "BPF_CORE_READ), which bpfnic does not apply")

    def _read_license(self) -> str | None:
        for section in self.sections:
            if section.name == "license":
                self.at("license")
                if section.sh_type != SHT_PROGBITS:
                    raise self.error("the license section holds no data")
                return section.data.split(b"\0", 1)[0].decode("utf-8", errors="replace")
        return None

    def _read_version(self) -> int | None:
        for section in self.sections:
            if section.name == "version":
                self.at("version")
                if len(section.data) != 4:
                    raise self.error(f"the version section is {len(section.data)} bytes, not 4")
                return struct.unpack("<I", section.data)[0]
        return None

    # -- maps ----------------------------------------------------------------------------------------------------

    def _add_map(self, map_def: MapDef, section: _Section | None = None, offset: int | None = None) -> int:
        map_def.index = len(self.maps)
        if any(m.name == map_def.name for m in self.maps):
            raise self.error(f"two maps are named '{map_def.name}'")
        self.maps.append(map_def)
        if section is not None:
            self.map_at[(section.index, offset)] = map_def.index
        return map_def.index

    def _symbols_in(self, section: _Section) -> list[_Symbol]:
        """The named data symbols of a section (no section or file symbols), by offset."""
        found = [s for s in self.symbols if s.shndx == section.index and s.sym_type in ("STT_OBJECT", "STT_NOTYPE")
                 and s.name]
        return sorted(found, key=lambda s: s.value)

    def _read_legacy_maps(self) -> None:
        for section in self.sections:
            if section.name != "maps":
                continue
            self.at("maps")
            if section.sh_type != SHT_PROGBITS:
                raise self.error("the legacy maps section holds no data")
            symbols = self._symbols_in(section)
            if not symbols:
                if section.size:
                    raise self.error("the legacy maps section has no map symbols")
                continue
            default_size = section.size // len(symbols)
            for symbol in symbols:
                size = symbol.size or default_size
                if size < _LEGACY_MAP_DEF.size:
                    raise self.error(f"map {symbol.describe()} definition is {size} bytes, less than the "
                                     f"{_LEGACY_MAP_DEF.size} of struct bpf_map_def")
                if symbol.value + size > section.size:
                    raise self.error(f"map {symbol.describe()} at offset {symbol.value} ({size} bytes) runs past "
                                     f"the end of the section ({section.size} bytes)")
                raw = section.data[symbol.value:symbol.value + size]
                map_type, key_size, value_size, max_entries, flags = _LEGACY_MAP_DEF.unpack_from(raw)
                if any(raw[_LEGACY_MAP_DEF.size:]):
                    raise self.error(f"map {symbol.describe()} sets fields after map_flags (inner map or "
                                     "pinning extensions of struct bpf_map_def are not supported)")
                self._add_map(MapDef(symbol.name, map_type, key_size, value_size, max_entries, flags,
                                     section="maps"), section, symbol.value)

    def _read_btf_maps(self) -> None:
        section = next((s for s in self.sections if s.name == ".maps"), None)
        if section is None:
            return
        self.at(".maps")
        if self.btf is None:
            raise self.error("the .maps section needs BTF to describe its maps: compile with -g")
        datasec = self.btf.datasec(".maps")
        if datasec is None:
            if self._symbols_in(section):
                raise self.error("BTF has no DATASEC for .maps: compile with -g")
            return
        symbols = {s.name: s for s in self._symbols_in(section)}
        for number, secinfo in enumerate(datasec.secinfos):
            var = self.btf.type(secinfo.type_id)
            if var.kind != btf_mod.Kind.VAR:
                raise self.error(f"entry {number} of the .maps DATASEC is {var.label}, not a VAR")
            symbol = symbols.get(var.name)
            if symbol is None:
                raise self.error(f"map '{var.name}' is in BTF but has no symbol in .maps")
            try:
                spec = btf_mod.map_spec(self.btf, var.ref, var.name)
                size = self.btf.size_of(var.ref)
            except btf_mod.BtfError as error:
                raise self.error(str(error)) from None
            if symbol.value + size > section.size:
                raise self.error(f"map '{var.name}' at offset {symbol.value} ({size} bytes) runs past the end of "
                                 f"the section ({section.size} bytes)")
            index = self._add_map(self._map_from_spec(var.name, spec), section, symbol.value)
            if spec.values_offset is not None:
                self.values_region[index] = (symbol.value + spec.values_offset, symbol.value + max(size, symbol.size))

    def _map_from_spec(self, name: str, spec: btf_mod.BtfMapSpec) -> MapDef:
        if spec.map_type is None:
            raise self.error(f"map '{name}' has no type")
        value_size = spec.value_size or 0
        inner = None
        if spec.values_target is not None:
            is_prog_array = spec.values_target.kind == btf_mod.Kind.FUNC_PROTO
            wanted = (BPF_MAP_TYPE_PROG_ARRAY,) if is_prog_array else (BPF_MAP_TYPE_ARRAY_OF_MAPS,
                                                                       BPF_MAP_TYPE_HASH_OF_MAPS)
            if spec.map_type not in wanted:
                kind = "programs" if is_prog_array else "maps"
                raise self.error(f"map '{name}' of type {spec.map_type} lists initial {kind} in 'values', which "
                                 f"only map types {' or '.join(map(str, wanted))} can hold")
            if spec.value_size not in (None, 4):
                raise self.error(f"map '{name}' holds program or map references: value_size must be 4")
            value_size = 4
            if spec.inner is not None:
                inner = self._map_from_spec(f"{name}.inner", spec.inner)
        describe = self.btf.describe
        return MapDef(name, spec.map_type, spec.key_size or 0, value_size, spec.max_entries or 0,
                      spec.map_flags or 0, inner=inner,
                      btf_key_type=describe(spec.key_type_id) if spec.key_type_id is not None else None,
                      btf_value_type=describe(spec.value_type_id) if spec.value_type_id is not None else None,
                      section=".maps", numa_node=spec.numa_node or 0, pinning=spec.pinning or 0,
                      map_extra=spec.map_extra or 0)

    def _read_global_data(self) -> None:
        object_name = os.path.basename(self.name).split(".", 1)[0]
        for section in self.sections:
            if not _is_global_data(section):
                continue
            self.at(section.name)
            if section.size == 0:
                continue
            if section.size > MAX_GLOBAL_DATA:
                raise self.error(f"{section.size} bytes of global data, more than the {MAX_GLOBAL_DATA} bytes "
                                 "an array map value can hold")
            readonly = section.name.startswith(".rodata")
            value = bytes(section.size) if section.sh_type == SHT_NOBITS else section.data
            for reloc in self.relocs.get(section.index, ()):
                if reloc.reloc_type != R_BPF_NONE:
                    raise self.error(f"{RELOC_NAMES.get(reloc.reloc_type, reloc.reloc_type)} at offset "
                                     f"{reloc.offset} against {reloc.symbol.describe()}: global data cannot hold "
                                     "addresses (there are none before the program runs)")
            map_def = MapDef(internal_map_name(object_name, section.name), BPF_MAP_TYPE_ARRAY, 4, section.size, 1,
                             BPF_F_RDONLY_PROG if readonly else 0, initial_data=value, readonly=readonly,
                             section=section.name)
            if self.btf is not None and self.btf.datasec(section.name) is not None:
                map_def.btf_value_type = f"datasec {section.name}"
            self.data_map[section.index] = self._add_map(map_def)

    def _read_initial_values(self) -> None:
        """Program array and map-of-maps slots given in `.maps` (`.values = { [1] = &prog }`): R_BPF_64_ABS64
        relocations inside the definition's `values` array."""
        for section in self.sections:
            if section.name == "maps" and self.relocs.get(section.index):
                self.at("maps")
                raise self.error("relocations in the legacy maps section (it holds only numbers)")
            if section.name != ".maps":
                continue
            self.at(".maps")
            for reloc in self.relocs.get(section.index, ()):
                if reloc.reloc_type == R_BPF_NONE:
                    continue
                owner_index = next((index for index, (start, end) in self.values_region.items()
                                    if start <= reloc.offset < end), None)
                if owner_index is None:
                    raise self.error(f"relocation at offset {reloc.offset} against {reloc.symbol.describe()} is not "
                                     "inside the 'values' of a map definition")
                owner = self.maps[owner_index]
                values_offset = self.values_region[owner_index][0]
                if reloc.reloc_type != R_BPF_64_ABS64:
                    raise self.error(f"map '{owner.name}': initial values need R_BPF_64_ABS64 relocations, found "
                                     f"{RELOC_NAMES.get(reloc.reloc_type, reloc.reloc_type)}")
                slot, misalign = divmod(reloc.offset - values_offset, 8)
                if misalign:
                    raise self.error(f"map '{owner.name}': initial value at offset {reloc.offset} is not a slot")
                if slot >= owner.max_entries:
                    raise self.error(f"map '{owner.name}': initial value for slot {slot}, beyond max_entries "
                                     f"{owner.max_entries}")
                symbol = reloc.symbol
                target = self._section(symbol.shndx, f"initial value of map '{owner.name}' ({symbol.describe()})")
                if owner.map_type == BPF_MAP_TYPE_PROG_ARRAY:
                    if not target.is_exec or symbol.sym_type != "STT_FUNC" or target.name == ".text":
                        raise self.error(f"map '{owner.name}' slot {slot}: {symbol.describe()} is not a program")
                    owner.initial_values[slot] = symbol.name
                else:
                    index = self.map_at.get((target.index, symbol.value))
                    if index is None or self.maps[index].section != ".maps":
                        raise self.error(f"map '{owner.name}' slot {slot}: {symbol.describe()} is not a map in .maps")
                    owner.initial_values[slot] = self.maps[index].name

    # -- programs ------------------------------------------------------------------------------------------------

    def _find_functions(self) -> None:
        function_symbols: dict[int, list[_Symbol]] = {}
        for symbol in self.symbols:
            if symbol.sym_type == "STT_FUNC" and isinstance(symbol.shndx, int):
                function_symbols.setdefault(symbol.shndx, []).append(symbol)
        for section in self.sections:
            if not section.is_exec:
                continue
            self.at(section.name)
            if section.size % isa.INSN_SIZE:
                raise self.error(f"code size {section.size} is not a multiple of {isa.INSN_SIZE} bytes")
            slots = section.size // isa.INSN_SIZE
            starts: dict[int, _Symbol] = {}
            for symbol in function_symbols.get(section.index, ()):
                if symbol.value % isa.INSN_SIZE or symbol.value >= section.size:
                    raise self.error(f"function {symbol.describe()} starts at byte {symbol.value}, not at an "
                                     "instruction of the section")
                # Aliases share a start: prefer a global name.
                if symbol.value // isa.INSN_SIZE not in starts or symbol.bind == "STB_GLOBAL":
                    starts[symbol.value // isa.INSN_SIZE] = symbol
            if not starts:
                self.functions[section.index] = {0: _Function(section, section.name, 0, slots)} if slots else {}
                continue
            ordered = sorted(starts)
            functions = {}
            for position, start in enumerate(ordered):
                symbol = starts[start]
                end = ordered[position + 1] if position + 1 < len(ordered) else slots
                if symbol.size:
                    if symbol.size % isa.INSN_SIZE or start + symbol.size // isa.INSN_SIZE > end:
                        raise self.error(f"function {symbol.describe()} of {symbol.size} bytes at byte "
                                         f"{symbol.value} overlaps the next function or the section end")
                    end = start + symbol.size // isa.INSN_SIZE
                functions[start] = _Function(section, symbol.name, start, end)
            self.functions[section.index] = functions

    def _function_at(self, section: _Section, slot: int, what: str) -> _Function:
        function = self.functions.get(section.index, {}).get(slot)
        if function is not None:
            return function
        raise self.error(f"{what} goes to instruction {slot} of section {section.name}, which is not the start "
                         "of a function")

    def _section_relocs(self, section: _Section) -> dict[int, _Reloc]:
        """The relocations of an executable section by instruction slot, checked for place and kind."""
        if section.index in self.slot_relocs:
            return self.slot_relocs[section.index]
        by_slot: dict[int, _Reloc] = {}
        words = section.data
        for reloc in self.relocs.get(section.index, ()):
            if reloc.reloc_type == R_BPF_NONE:
                continue
            slot, misalign = divmod(reloc.offset, isa.INSN_SIZE)
            self.at(section.name, slot)
            if misalign or reloc.offset >= section.size:
                raise self.error(f"relocation at byte {reloc.offset} is not at an instruction", insn=None)
            if slot in by_slot:
                raise self.error("two relocations on one instruction")
            opcode, regs = words[slot * 8], words[slot * 8 + 1]
            name = RELOC_NAMES.get(reloc.reloc_type, f"type {reloc.reloc_type}")
            if reloc.reloc_type == R_BPF_64_64:
                if opcode != isa.OP_LDDW:
                    raise self.error(f"{name} relocation on an instruction that is not lddw (opcode 0x{opcode:02x})")
            elif reloc.reloc_type == R_BPF_64_32:
                if opcode != isa.OP_CALL:
                    raise self.error(f"{name} relocation on an instruction that is not a call (opcode 0x{opcode:02x})")
                if regs >> 4 != isa.BPF_PSEUDO_CALL_LOCAL:
                    raise self.error(f"call of {reloc.symbol.describe()} with src_reg {regs >> 4}: only bpf-to-bpf "
                                     "calls (src_reg 1) can be relocated; kfuncs and extern functions are not "
                                     "supported")
            else:
                raise self.error(f"unsupported relocation {name} against {reloc.symbol.describe()} in code")
            by_slot[slot] = reloc
        self.slot_relocs[section.index] = by_slot
        return by_slot

    def _symbol_section(self, reloc: _Reloc) -> _Section:
        symbol = reloc.symbol
        if symbol.shndx == "SHN_UNDEF":
            raise self.error(f"relocation against unknown symbol {symbol.describe()}: it is not defined in this "
                             "object (extern variables, kconfig and kfuncs are not supported)")
        return self._section(symbol.shndx, f"relocation against {symbol.describe()}")

    def _lddw_target(self, reloc: _Reloc, imm64: int) -> _LddwTarget:
        symbol = reloc.symbol
        target = self._symbol_section(reloc)
        addend = imm64 - (1 << 64) if imm64 >> 63 else imm64
        place = symbol.value + addend
        if target.name in (".maps", "maps"):
            index = self.map_at.get((target.index, place))
            if index is None:
                raise self.error(f"relocation against {symbol.describe()} (offset {place} in {target.name}) does not "
                                 "name a map definition")
            return _LddwTarget(map_index=index)
        if target.index in self.data_map:
            index = self.data_map[target.index]
            if not 0 <= place <= self.maps[index].value_size:
                raise self.error(f"relocation against {symbol.describe()} points at offset {place}, outside the "
                                 f"{self.maps[index].value_size} bytes of {target.name}")
            return _LddwTarget(map_index=index, offset=place)
        if target.is_exec:
            if place % isa.INSN_SIZE:
                raise self.error(f"address of {symbol.describe()}+{addend} is not at an instruction")
            return _LddwTarget(function=self._function_at(target, place // isa.INSN_SIZE,
                                                          f"address of {symbol.describe()}"))
        raise self.error(f"relocation against {symbol.describe()} in section {target.name}, which is neither a map, "
                         "global data nor code")

    def _link(self, main: _Function) -> ProgramDef:
        """Copy a program and, transitively, every function it calls; fix calls, function addresses and
        map references."""
        code: list[bytearray] = []
        origin: list[tuple[_Function, int]] = []        # final slot -> (function, section slot)
        placed: dict[tuple[int, int], int] = {}
        order: list[_Function] = []
        map_relocs: list[tuple[int, int, int]] = []

        def place(function: _Function) -> int:
            placed[function.key] = len(code)
            order.append(function)
            raw = function.section.data
            for slot in range(function.start, function.end):
                code.append(bytearray(raw[slot * 8:slot * 8 + 8]))
                origin.append((function, slot))
            return placed[function.key]

        def final_index_of(function: _Function) -> int:
            return placed[function.key] if function.key in placed else place(function)

        place(main)
        position = 0
        while position < len(order):
            function = order[position]
            position += 1
            section = function.section
            relocs = self._section_relocs(section)
            base = placed[function.key]
            slot = function.start
            while slot < function.end:
                here = base + slot - function.start
                self.at(section.name, slot)
                word = code[here]
                insn = isa.decode_word(bytes(word), slot)
                reloc = relocs.get(slot)
                if insn.opcode == isa.OP_LDDW:
                    if slot + 1 >= function.end:
                        raise self.error(f"lddw at the end of function '{function.name}' has no second half")
                    tail = code[here + 1]
                    if slot + 1 in relocs:
                        raise self.error("relocation on the second half of an lddw", insn=slot + 1)
                    imm64 = int.from_bytes(word[4:8], "little") | int.from_bytes(tail[4:8], "little") << 32
                    if reloc is not None:
                        target = self._lddw_target(reloc, imm64)
                        if target.function is not None:
                            callee = final_index_of(target.function)
                            _set_lddw(word, tail, isa.BPF_PSEUDO_FUNC, callee - (here + 1), 0)
                        elif target.offset is None:
                            _set_lddw(word, tail, isa.BPF_PSEUDO_MAP_IDX, target.map_index, 0)
                            map_relocs.append((here, target.map_index, 0))
                        else:
                            _set_lddw(word, tail, isa.BPF_PSEUDO_MAP_IDX_VALUE, target.map_index, target.offset)
                            map_relocs.append((here, target.map_index, target.offset))
                    elif insn.src != isa.BPF_PSEUDO_IMM64:
                        # A map fd, map index or address means nothing in an object file without a relocation.
                        name = isa.LDDW_PSEUDO_NAMES.get(insn.src, "unknown")
                        raise self.error(f"lddw with src_reg {insn.src} ({name}) but no relocation saying what it "
                                         "refers to")
                    slot += 2
                    continue
                if insn.opcode == isa.OP_CALL and insn.src == isa.BPF_PSEUDO_CALL_LOCAL:
                    if reloc is not None:
                        symbol = reloc.symbol
                        target_section = self._symbol_section(reloc)
                        if not target_section.is_exec:
                            raise self.error(f"call of {symbol.describe()}, which is not code (section "
                                             f"{target_section.name})")
                        if symbol.value % isa.INSN_SIZE:
                            raise self.error(f"call of {symbol.describe()} at byte {symbol.value}, not an instruction")
                        target_slot = symbol.value // isa.INSN_SIZE + insn.imm + 1
                    else:
                        target_section, target_slot = section, slot + insn.imm + 1
                    callee = self._function_at(target_section, target_slot, "call")
                    word[4:8] = isa.s32(final_index_of(callee) - (here + 1)).to_bytes(4, "little", signed=True)
                elif insn.opcode in isa.OPCODES:
                    jump = isa.jump_target(insn, slot)
                    if jump is not None and not function.start <= jump < function.end:
                        raise self.error(f"jump to instruction {jump} leaves function '{function.name}' "
                                         f"(instructions {function.start}..{function.end - 1})")
                slot += 1

        self.at(main.section.name, None)
        try:
            program = isa.decode_program(b"".join(code))
        except isa.IsaError as error:
            raise self._isa_error(error, origin, main) from None
        lines: dict[int, btf_mod.LineInfo] = {}
        if self.btf_ext is not None:
            for function in order:
                # A line record covers its instruction and those after it, up to the next record.
                records = {line.insn_off // isa.INSN_SIZE: line
                           for line in self.btf_ext.line_info.get(function.section.name, ())
                           if not line.insn_off % isa.INSN_SIZE}
                current = None
                base = placed[function.key]
                for slot in range(function.start, function.end):
                    current = records.get(slot, current)
                    if current is not None and program[base + slot - function.start] is not isa.LDDW_TAIL:
                        lines[base + slot - function.start] = current
        subprograms = [(function.name, placed[function.key]) for function in order[1:]]
        return ProgramDef(main.name, main.section.name, program, map_relocs, subprograms, lines)

    def _isa_error(self, error: isa.IsaError, origin: list[tuple[_Function, int]], main: _Function) -> LoadError:
        if error.index is None or not 0 <= error.index < len(origin):
            return self.error(f"program '{main.name}': {error.reason}", main.section.name, None)
        function, slot = origin[error.index]
        context = "" if function is main else f" (in '{function.name}', called from program '{main.name}')"
        return self.error(error.reason + context, function.section.name, slot)


def _set_lddw(word: bytearray, tail: bytearray, src: int, imm: int, next_imm: int) -> None:
    word[1] = (word[1] & 0x0F) | (src << 4)
    word[4:8] = isa.s32(imm).to_bytes(4, "little", signed=True)
    tail[4:8] = isa.s32(next_imm).to_bytes(4, "little", signed=True)


def _section_type_number(sh_type: int | str) -> int:
    names = {"SHT_NULL": SHT_NULL, "SHT_PROGBITS": SHT_PROGBITS, "SHT_SYMTAB": SHT_SYMTAB,
             "SHT_STRTAB": SHT_STRTAB, "SHT_RELA": SHT_RELA, "SHT_NOBITS": SHT_NOBITS, "SHT_REL": SHT_REL}
    if isinstance(sh_type, int):
        return sh_type
    return names.get(sh_type, -1)


def _is_global_data(section: _Section) -> bool:
    if section.sh_type not in (SHT_PROGBITS, SHT_NOBITS) or not section.flags & SHF_ALLOC or section.is_exec:
        return False
    return any(section.name == prefix or section.name.startswith(prefix + ".") for prefix in _GLOBAL_DATA_PREFIXES)


def internal_map_name(object_name: str, section_name: str) -> str:
    """libbpf's name for a global-data map: the object's name (up to its first dot) shortened so that the
    section name fits in 15 characters, then the section name (`prog.rodata`); a section name with a second
    dot (`.rodata.str1.1`) stands alone. Characters the kernel refuses in names become `_`."""
    suffix = section_name[:MAX_MAP_NAME]
    if "." in section_name[1:]:
        prefix = ""
    else:
        # libbpf reserves room for at least 7 characters of section name.
        prefix = object_name[:MAX_MAP_NAME - max(7, len(suffix))]
    return "".join(c if c.isascii() and (c.isalnum() or c in "_.") else "_" for c in prefix + suffix)
