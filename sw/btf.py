"""BTF (BPF Type Format) decoder: the `.BTF` and `.BTF.ext` sections of a BPF object file.

Ref: the kernel's include/uapi/linux/btf.h (struct btf_header, struct btf_type and the per-kind trailing
records) and Documentation/bpf/btf.rst (§2 type and string encoding, §4.2 the .BTF.ext section, which holds
func_info and line_info records keyed by ELF section name). libbpf's documentation ("BTF-defined maps")
describes how a map definition in the `.maps` section is written in BTF: each parameter is a struct member
whose type is `int (*name)[N]`, a pointer to an array of N elements, and N is the value; `key`/`value` are
pointers to the key and value types; `values` is an empty array of pointers used for initial contents.

Only little-endian BTF is accepted (the objects are compiled with `-target bpfel`). Corrupt input raises
`BtfError`, whose message names the type id and kind being read.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

BTF_MAGIC = 0xEB9F
BTF_VERSION = 1

#: How many typedef/const/volatile/array links a resolution may follow before it is taken as a cycle.
MAX_RESOLVE_DEPTH = 32

#: How many types one `describe` spells out before it writes `...`.
MAX_DESCRIBE_PARTS = 64


class BtfError(ValueError):
    """Corrupt or unsupported BTF; the message says which type or record and why."""


class Kind(enum.IntEnum):
    """BTF_KIND_* from include/uapi/linux/btf.h."""

    UNKN = 0     # only type id 0, "void"
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


#: Kinds that only qualify or rename another type; resolution looks through them.
MODIFIER_KINDS = frozenset({Kind.TYPEDEF, Kind.CONST, Kind.VOLATILE, Kind.RESTRICT, Kind.TYPE_TAG})

# BTF_INT_ENCODING bits.
INT_SIGNED = 1
INT_CHAR = 2
INT_BOOL = 4

# Linkage of VAR (btf_var.linkage) and FUNC (vlen).
LINKAGE_NAMES = {0: "static", 1: "global", 2: "extern"}

_HEADER = struct.Struct("<HBBIIIII")
_TYPE = struct.Struct("<III")
_U32 = struct.Struct("<I")
_S32 = struct.Struct("<i")
_ARRAY = struct.Struct("<III")
_MEMBER = struct.Struct("<III")
_ENUM = struct.Struct("<Ii")
_ENUM64 = struct.Struct("<III")
_PARAM = struct.Struct("<II")
_SECINFO = struct.Struct("<III")


@dataclass(frozen=True)
class Member:
    """A struct or union member. `bitfield_size` is 0 for ordinary members."""

    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int = 0


@dataclass(frozen=True)
class EnumValue:
    name: str
    value: int


@dataclass(frozen=True)
class Param:
    """A FUNC_PROTO parameter; a last parameter with type 0 and no name means `...`."""

    name: str
    type_id: int


@dataclass(frozen=True)
class VarSecinfo:
    """One variable of a DATASEC. In objects from clang, offset and size are often 0: the ELF symbols
    carry the real offsets (libbpf fixes them up the same way)."""

    type_id: int
    offset: int
    size: int


@dataclass(frozen=True)
class ArrayInfo:
    elem_type: int
    index_type: int
    nelems: int


@dataclass(frozen=True)
class BtfType:
    """One decoded type. Fields that do not apply to the kind keep their defaults.

    `size` holds the byte size for INT, STRUCT, UNION, ENUM, ENUM64, FLOAT and DATASEC; `ref` the referenced
    type id for PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG, FUNC (its FUNC_PROTO), FUNC_PROTO (the
    return type), VAR and DECL_TAG."""

    type_id: int
    kind: Kind
    name: str = ""
    kind_flag: bool = False
    vlen: int = 0
    size: int | None = None
    ref: int | None = None
    int_encoding: int = 0
    int_offset: int = 0
    int_bits: int = 0
    array: ArrayInfo | None = None
    members: tuple[Member, ...] = ()
    enum_values: tuple[EnumValue, ...] = ()
    params: tuple[Param, ...] = ()
    linkage: int = 0
    secinfos: tuple[VarSecinfo, ...] = ()
    component_idx: int = -1

    def __repr__(self) -> str:
        return f"BtfType({self.label})"

    @property
    def label(self) -> str:
        """How error messages name this type: `[12] STRUCT 'foo'`."""
        return f"[{self.type_id}] {self.kind.name} '{self.name or '(anon)'}'"


VOID = BtfType(0, Kind.UNKN, "void")


class Btf:
    """The decoded type and string sections of one `.BTF` blob. Type ids index `types` (0 is void)."""

    def __init__(self, types: list[BtfType], strings: bytes):
        self.types = types
        self.strings = strings
        self._by_name: dict[str, list[BtfType]] = {}
        for btf_type in types[1:]:
            if btf_type.name:
                self._by_name.setdefault(btf_type.name, []).append(btf_type)

    # -- parsing -------------------------------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes) -> "Btf":
        """Decode a `.BTF` section. Raises BtfError for a bad header, truncated records, out-of-range
        string offsets or type references, and unknown kinds."""
        data = bytes(data)
        if len(data) < _HEADER.size:
            raise BtfError(f"header is truncated: {len(data)} bytes, at least {_HEADER.size} needed")
        magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = _HEADER.unpack_from(data)
        if magic == 0x9FEB:
            raise BtfError("big-endian BTF is not supported (compile with -target bpfel)")
        if magic != BTF_MAGIC:
            raise BtfError(f"bad magic 0x{magic:04x} (expected 0x{BTF_MAGIC:04x})")
        if version != BTF_VERSION:
            raise BtfError(f"unsupported version {version} (expected {BTF_VERSION})")
        if hdr_len < _HEADER.size or hdr_len > len(data):
            raise BtfError(f"header length {hdr_len} is outside {_HEADER.size}..{len(data)}")
        # Offsets are relative to the end of the header.
        body = len(data) - hdr_len
        for what, off, length in (("type", type_off, type_len), ("string", str_off, str_len)):
            if off + length > body:
                raise BtfError(f"{what} section (offset {off}, length {length}) runs past the end of the "
                               f"data ({body} bytes after the header)")
        if type_off % 4:
            raise BtfError(f"type section offset {type_off} is not 4-byte aligned")
        if type_len and str_len and type_off < str_off + str_len and str_off < type_off + type_len:
            raise BtfError("type and string sections overlap")
        strings = data[hdr_len + str_off: hdr_len + str_off + str_len]
        if str_len and strings[0] != 0:
            raise BtfError("string section does not start with an empty string")
        if str_len and strings[-1] != 0:
            raise BtfError("string section does not end with a NUL byte")
        type_data = data[hdr_len + type_off: hdr_len + type_off + type_len]
        types = _parse_types(type_data, strings)
        btf = cls(types, strings)
        btf._check_references()
        return btf

    def _check_references(self) -> None:
        last = len(self.types) - 1

        def check(owner: BtfType, type_id: int, what: str) -> None:
            if not 0 <= type_id <= last:
                raise BtfError(f"type {owner.label}: {what} refers to type {type_id}, beyond the last type {last}")

        for t in self.types[1:]:
            if t.ref is not None:
                check(t, t.ref, "its type")
            if t.array is not None:
                check(t, t.array.elem_type, "the element type")
                check(t, t.array.index_type, "the index type")
            for number, member in enumerate(t.members):
                check(t, member.type_id, f"member {number} '{member.name}'")
            for number, param in enumerate(t.params):
                check(t, param.type_id, f"parameter {number} '{param.name}'")
            for number, secinfo in enumerate(t.secinfos):
                check(t, secinfo.type_id, f"variable {number}")
                if self.types[secinfo.type_id].kind not in (Kind.VAR, Kind.FUNC):
                    raise BtfError(f"type {t.label}: variable {number} is {self.types[secinfo.type_id].label}, "
                                   "not a VAR or FUNC")
            if t.kind == Kind.FUNC and self.types[t.ref].kind != Kind.FUNC_PROTO:
                raise BtfError(f"type {t.label}: its type {self.types[t.ref].label} is not a FUNC_PROTO")

    # -- queries -------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.types)

    def type(self, type_id: int) -> BtfType:
        if not 0 <= type_id < len(self.types):
            raise BtfError(f"type id {type_id} does not exist (0..{len(self.types) - 1})")
        return self.types[type_id]

    def string(self, offset: int) -> str:
        return _string_at(self.strings, offset, "string")

    def find(self, name: str, kind: Kind | None = None) -> BtfType | None:
        """The first type with this name (and kind, if given), or None."""
        for btf_type in self._by_name.get(name, ()):
            if kind is None or btf_type.kind == kind:
                return btf_type
        return None

    def datasec(self, name: str) -> BtfType | None:
        return self.find(name, Kind.DATASEC)

    def resolve(self, type_id: int) -> BtfType:
        """The type behind typedefs, const, volatile, restrict and type tags."""
        btf_type = self.type(type_id)
        for _ in range(MAX_RESOLVE_DEPTH):
            if btf_type.kind not in MODIFIER_KINDS:
                return btf_type
            btf_type = self.type(btf_type.ref)
        raise BtfError(f"type [{type_id}]: more than {MAX_RESOLVE_DEPTH} typedef/modifier links (a cycle?)")

    def size_of(self, type_id: int) -> int:
        """The byte size of a type, through modifiers and arrays (pointers are 8 bytes on BPF)."""
        return self._size_of(type_id, 0)

    def _size_of(self, type_id: int, depth: int) -> int:
        if depth > MAX_RESOLVE_DEPTH:
            raise BtfError(f"type [{type_id}]: nested more than {MAX_RESOLVE_DEPTH} levels deep (a cycle?)")
        btf_type = self.resolve(type_id)
        if btf_type.kind in (Kind.INT, Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.FLOAT,
                             Kind.DATASEC):
            return btf_type.size
        if btf_type.kind == Kind.PTR:
            return 8
        if btf_type.kind == Kind.ARRAY:
            return btf_type.array.nelems * self._size_of(btf_type.array.elem_type, depth + 1)
        if btf_type.kind == Kind.VAR:
            return self._size_of(btf_type.ref, depth + 1)
        raise BtfError(f"type {btf_type.label} has no size")

    def describe(self, type_id: int) -> str:
        """A C-like spelling of a type, for messages and listings: `__u32`, `struct flow_key`, `__u8[6]`.
        Deep or self-referencing types are cut short with `...`."""
        budget = [MAX_DESCRIBE_PARTS]  # function prototypes fan out: bound the whole walk, not only its depth
        return self._describe(type_id, 0, budget)

    def _describe(self, type_id: int, depth: int, budget: list[int]) -> str:
        budget[0] -= 1
        if depth > MAX_RESOLVE_DEPTH or budget[0] < 0:
            return "..."
        btf_type = self.type(type_id)
        kind, name = btf_type.kind, btf_type.name

        def inner(ref: int) -> str:
            return self._describe(ref, depth + 1, budget)

        if kind == Kind.UNKN:
            return "void"
        if kind in (Kind.INT, Kind.FLOAT, Kind.TYPEDEF):
            return name
        if kind in (Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64):
            keyword = {Kind.STRUCT: "struct", Kind.UNION: "union"}.get(kind, "enum")
            return f"{keyword} {name or '(anon)'}"
        if kind == Kind.FWD:
            return f"{'union' if btf_type.kind_flag else 'struct'} {name}"
        if kind == Kind.PTR:
            return inner(btf_type.ref) + " *"
        if kind in (Kind.CONST, Kind.VOLATILE, Kind.RESTRICT):
            return f"{kind.name.lower()} {inner(btf_type.ref)}"
        if kind == Kind.TYPE_TAG:
            return f"{inner(btf_type.ref)} __tag({name})"
        if kind == Kind.ARRAY:
            return f"{inner(btf_type.array.elem_type)}[{btf_type.array.nelems}]"
        if kind == Kind.FUNC_PROTO:
            params = ", ".join(inner(p.type_id) if p.type_id else "..." for p in btf_type.params)
            return f"{inner(btf_type.ref)} (*)({params or 'void'})"
        return f"{kind.name.lower()} {name}"


def _string_at(strings: bytes, offset: int, what: str) -> str:
    if not strings and offset == 0:
        return ""
    if not 0 <= offset < len(strings):
        raise BtfError(f"{what} offset {offset} is outside the string section ({len(strings)} bytes)")
    end = strings.find(b"\0", offset)
    # The parser checked that the section ends with NUL, so `end` is never -1 here.
    return strings[offset:end].decode("utf-8", errors="replace")


def _parse_types(data: bytes, strings: bytes) -> list[BtfType]:
    types: list[BtfType] = [VOID]
    pos = 0
    while pos < len(data):
        type_id = len(types)
        if pos + _TYPE.size > len(data):
            raise BtfError(f"type [{type_id}] at byte {pos} of the type section is truncated")
        name_off, info, size_or_type = _TYPE.unpack_from(data, pos)
        pos += _TYPE.size
        kind_number = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kind_flag = bool(info >> 31)
        try:
            kind = Kind(kind_number)
        except ValueError:
            raise BtfError(f"type [{type_id}] at byte {pos - _TYPE.size}: unknown kind {kind_number}") from None
        if kind == Kind.UNKN:
            raise BtfError(f"type [{type_id}]: kind 0 (UNKN) is reserved for void")
        name = _string_at(strings, name_off, f"type [{type_id}] {kind.name}: name")
        where = f"type [{type_id}] {kind.name} '{name or '(anon)'}'"

        def take(record: struct.Struct, count: int) -> list[tuple]:
            nonlocal pos
            need = record.size * count
            if pos + need > len(data):
                raise BtfError(f"{where}: its {count} trailing record(s) run past the end of the type section")
            items = [record.unpack_from(data, pos + i * record.size) for i in range(count)]
            pos += need
            return items

        def name_of(offset: int, what: str) -> str:
            return _string_at(strings, offset, f"{where}: {what} name")

        common = dict(type_id=type_id, kind=kind, name=name, kind_flag=kind_flag, vlen=vlen)
        if kind == Kind.INT:
            (word,) = take(_U32, 1)[0]
            bits = word & 0xFF
            offset = (word >> 16) & 0xFF
            encoding = (word >> 24) & 0x0F
            if size_or_type not in (1, 2, 4, 8, 16):
                raise BtfError(f"{where}: size {size_or_type} is not 1, 2, 4, 8 or 16")
            if bits == 0 or bits + offset > size_or_type * 8:
                raise BtfError(f"{where}: {bits} bits at bit offset {offset} do not fit in {size_or_type} bytes")
            types.append(BtfType(**common, size=size_or_type, int_encoding=encoding, int_offset=offset,
                                 int_bits=bits))
        elif kind in (Kind.PTR, Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG):
            types.append(BtfType(**common, ref=size_or_type))
        elif kind == Kind.ARRAY:
            elem, index, nelems = take(_ARRAY, 1)[0]
            types.append(BtfType(**common, array=ArrayInfo(elem, index, nelems)))
        elif kind in (Kind.STRUCT, Kind.UNION):
            members = []
            for number, (m_name, m_type, m_offset) in enumerate(take(_MEMBER, vlen)):
                if kind_flag:  # the offset word packs a bitfield size (top 8 bits) and a bit offset
                    members.append(Member(name_of(m_name, f"member {number}"), m_type, m_offset & 0xFFFFFF,
                                          m_offset >> 24))
                else:
                    members.append(Member(name_of(m_name, f"member {number}"), m_type, m_offset))
            types.append(BtfType(**common, size=size_or_type, members=tuple(members)))
        elif kind == Kind.ENUM:
            values = tuple(EnumValue(name_of(v_name, f"enumerator {number}"),
                                     value if kind_flag else value & 0xFFFFFFFF)
                           for number, (v_name, value) in enumerate(take(_ENUM, vlen)))
            types.append(BtfType(**common, size=size_or_type, enum_values=values))
        elif kind == Kind.ENUM64:
            values = []
            for number, (v_name, low, high) in enumerate(take(_ENUM64, vlen)):
                value = low | (high << 32)
                if kind_flag and value >> 63:
                    value -= 1 << 64
                values.append(EnumValue(name_of(v_name, f"enumerator {number}"), value))
            types.append(BtfType(**common, size=size_or_type, enum_values=tuple(values)))
        elif kind == Kind.FWD:
            types.append(BtfType(**common))
        elif kind == Kind.FUNC:
            if vlen not in LINKAGE_NAMES:
                raise BtfError(f"{where}: linkage {vlen} is not static (0), global (1) or extern (2)")
            types.append(BtfType(**common, ref=size_or_type, linkage=vlen))
        elif kind == Kind.FUNC_PROTO:
            params = tuple(Param(name_of(p_name, f"parameter {number}"), p_type)
                           for number, (p_name, p_type) in enumerate(take(_PARAM, vlen)))
            types.append(BtfType(**common, ref=size_or_type, params=params))
        elif kind == Kind.VAR:
            (linkage,) = take(_U32, 1)[0]
            types.append(BtfType(**common, ref=size_or_type, linkage=linkage))
        elif kind == Kind.DATASEC:
            secinfos = tuple(VarSecinfo(*item) for item in take(_SECINFO, vlen))
            types.append(BtfType(**common, size=size_or_type, secinfos=secinfos))
        elif kind == Kind.FLOAT:
            if size_or_type not in (2, 4, 8, 12, 16):
                raise BtfError(f"{where}: size {size_or_type} is not 2, 4, 8, 12 or 16")
            types.append(BtfType(**common, size=size_or_type))
        elif kind == Kind.DECL_TAG:
            (component_idx,) = take(_S32, 1)[0]
            types.append(BtfType(**common, ref=size_or_type, component_idx=component_idx))
    return types


# -- .BTF.ext: func_info and line_info ------------------------------------------------------------------

_EXT_HEADER = struct.Struct("<HBBIIIII")


@dataclass(frozen=True)
class FuncInfo:
    insn_off: int      # byte offset of the function within its ELF section
    type_id: int       # its FUNC type


@dataclass(frozen=True)
class LineInfo:
    insn_off: int      # byte offset of the instruction within its ELF section
    file: str
    line: int
    column: int
    text: str          # the source line itself, as clang recorded it


@dataclass
class BtfExt:
    """Records of `.BTF.ext`, grouped by the ELF section they describe."""

    func_info: dict[str, list[FuncInfo]] = field(default_factory=dict)
    line_info: dict[str, list[LineInfo]] = field(default_factory=dict)
    core_relo_bytes: int = 0   # size of the CO-RE relocation subsection (records not decoded: unsupported)


def parse_btf_ext(data: bytes, btf: Btf) -> BtfExt:
    """Decode `.BTF.ext` (func_info and line_info; CO-RE relocation records are not used here).
    Strings are those of the `.BTF` section `btf`."""
    data = bytes(data)
    if len(data) < 8:
        raise BtfError(f".BTF.ext header is truncated: {len(data)} bytes")
    magic, version, _flags, hdr_len = struct.unpack_from("<HBBI", data)
    if magic != BTF_MAGIC:
        raise BtfError(f".BTF.ext: bad magic 0x{magic:04x} (expected 0x{BTF_MAGIC:04x})")
    if version != BTF_VERSION:
        raise BtfError(f".BTF.ext: unsupported version {version}")
    if hdr_len < _EXT_HEADER.size or hdr_len > len(data):
        raise BtfError(f".BTF.ext: header length {hdr_len} is outside {_EXT_HEADER.size}..{len(data)}")
    _, _, _, _, func_off, func_len, line_off, line_len = _EXT_HEADER.unpack_from(data)
    body = data[hdr_len:]
    result = BtfExt()
    if hdr_len >= _EXT_HEADER.size + 8:  # the header goes on with core_relo_off, core_relo_len
        _, result.core_relo_bytes = struct.unpack_from("<II", data, _EXT_HEADER.size)
    for what, off, length, min_record in (("func_info", func_off, func_len, 8), ("line_info", line_off, line_len, 16)):
        if not length:
            continue
        if off + length > len(body):
            raise BtfError(f".BTF.ext: {what} (offset {off}, length {length}) runs past the end ({len(body)} bytes)")
        for section, offset, record in _ext_records(body[off:off + length], what, min_record, btf):
            if what == "func_info":
                insn_off, type_id = struct.unpack_from("<II", record)
                result.func_info.setdefault(section, []).append(FuncInfo(insn_off, type_id))
            else:
                insn_off, file_off, text_off, line_col = struct.unpack_from("<IIII", record)
                result.line_info.setdefault(section, []).append(LineInfo(
                    insn_off, _string_at(btf.strings, file_off, f".BTF.ext {what}: file name"), line_col >> 10,
                    line_col & 0x3FF, _string_at(btf.strings, text_off, f".BTF.ext {what}: line text")))
    return result


def _ext_records(data: bytes, what: str, min_record: int, btf: Btf):
    """Yield (section name, byte offset, record bytes) of one .BTF.ext subsection: a record size, then per
    section a name offset, a count and that many records."""
    if len(data) < 4:
        raise BtfError(f".BTF.ext {what}: truncated record size")
    (record_size,) = _U32.unpack_from(data)
    if record_size < min_record or record_size % 4:
        raise BtfError(f".BTF.ext {what}: record size {record_size} (at least {min_record}, a multiple of 4)")
    pos = 4
    while pos < len(data):
        if pos + 8 > len(data):
            raise BtfError(f".BTF.ext {what}: truncated section header at byte {pos}")
        name_off, count = struct.unpack_from("<II", data, pos)
        section = _string_at(btf.strings, name_off, f".BTF.ext {what}: section name")
        pos += 8
        if pos + count * record_size > len(data):
            raise BtfError(f".BTF.ext {what}: section '{section}' has {count} records that run past the end")
        for _ in range(count):
            yield section, pos, data[pos:pos + record_size]
            pos += record_size


# -- libbpf-style map definitions -----------------------------------------------------------------------

#: The members a BTF map definition may have (libbpf's documented set).
MAP_FIELDS = ("type", "max_entries", "map_flags", "numa_node", "key_size", "key", "value_size", "value",
              "values", "pinning", "map_extra")


@dataclass
class BtfMapSpec:
    """The parameters of one map definition struct, as written in BTF. Absent numbers are None."""

    map_type: int | None = None
    max_entries: int | None = None
    map_flags: int | None = None
    numa_node: int | None = None
    key_size: int | None = None
    value_size: int | None = None
    key_type_id: int | None = None
    value_type_id: int | None = None
    pinning: int | None = None
    map_extra: int | None = None
    #: for `__array(values, T)`: the byte offset of the member inside the definition and the resolved T
    #: (a FUNC_PROTO for program arrays, a STRUCT map definition for maps of maps).
    values_offset: int | None = None
    values_target: BtfType | None = None
    #: the inner map's definition, when `values` points at a map definition struct.
    inner: "BtfMapSpec | None" = None


def map_spec(btf: Btf, def_type_id: int, map_name: str, inner: bool = False) -> BtfMapSpec:
    """Read a map definition struct (the type of a VAR in the `.maps` DATASEC)."""
    what = f"map '{map_name}'" + (" (inner map)" if inner else "")
    struct_type = btf.resolve(def_type_id)
    if struct_type.kind != Kind.STRUCT:
        raise BtfError(f"{what}: definition is {struct_type.label}, not a struct")
    spec = BtfMapSpec()
    for member in struct_type.members:
        name = member.name
        if name not in MAP_FIELDS:
            raise BtfError(f"{what}: unknown field '{name}' (known: {', '.join(MAP_FIELDS)})")
        if name in ("key", "value"):
            pointer = btf.resolve(member.type_id)
            if pointer.kind != Kind.PTR:
                raise BtfError(f"{what}: field '{name}' must be a pointer to the {name} type (__type), "
                               f"is {pointer.label}")
            size = btf.size_of(pointer.ref)
            setattr(spec, f"{name}_type_id", pointer.ref)
            declared = getattr(spec, f"{name}_size")
            if declared is not None and declared != size:
                raise BtfError(f"{what}: {name}_size {declared} disagrees with the {name} type "
                               f"'{btf.describe(pointer.ref)}' of {size} bytes")
            setattr(spec, f"{name}_size", size)
        elif name == "values":
            if inner:
                raise BtfError(f"{what}: an inner map cannot have initial values")
            array = btf.resolve(member.type_id)
            if array.kind != Kind.ARRAY or array.array.nelems != 0:
                raise BtfError(f"{what}: field 'values' must be an empty array of pointers (__array), "
                               f"is {array.label}")
            pointer = btf.resolve(array.array.elem_type)
            if pointer.kind != Kind.PTR:
                raise BtfError(f"{what}: elements of 'values' must be pointers, are {pointer.label}")
            if member.bit_offset % 8:
                raise BtfError(f"{what}: field 'values' is not byte-aligned")
            target = btf.resolve(pointer.ref)
            spec.values_offset = member.bit_offset // 8
            spec.values_target = target
            if target.kind == Kind.STRUCT:
                spec.inner = map_spec(btf, target.type_id, map_name, inner=True)
            elif target.kind != Kind.FUNC_PROTO:
                raise BtfError(f"{what}: 'values' must point at a function (program array) or a map "
                               f"definition struct (map of maps), points at {target.label}")
        else:
            number = _map_number(btf, member, what)
            if name in ("key_size", "value_size"):
                derived = getattr(spec, name)
                if derived is not None and derived != number:
                    raise BtfError(f"{what}: {name} {number} disagrees with the size {derived} of its type")
            setattr(spec, "map_type" if name == "type" else name, number)
    return spec


def _map_number(btf: Btf, member: Member, what: str) -> int:
    """A number written as `int (*name)[N]`: a pointer to an array of N elements."""
    pointer = btf.resolve(member.type_id)
    if pointer.kind != Kind.PTR:
        raise BtfError(f"{what}: field '{member.name}' must be written as int (*{member.name})[N] (__uint), "
                       f"is {pointer.label}")
    array = btf.resolve(pointer.ref)
    if array.kind != Kind.ARRAY:
        raise BtfError(f"{what}: field '{member.name}' must point at an array, points at {array.label}")
    return array.array.nelems
