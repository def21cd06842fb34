"""Abstract domains of the static verifier (sw/verifier.py): scalars, pointers, and the register/stack state.

A scalar is tracked the way the kernel's verifier tracks it (kernel/bpf/tnum.c and the bounds logic of
kernel/bpf/verifier.c, reimplemented here): a *tnum* (known bits: `v` holds the bits known to be 1, `m` the
bits that are unknown) together with unsigned and signed 64-bit ranges. Every operation over-approximates the
RFC 9669 semantics of the instruction (§4: 32-bit results are zero-extended, shifts are masked to the width,
division by zero gives 0, modulo by zero keeps the dividend), then the three views are synced so that each one
is as tight as the others allow. An empty result (a contradiction) means the path is impossible.

A pointer is a region kind (context, packet, packet end, packet metadata, stack, map value, map value or null,
map) with a constant offset `off`, a variable offset `var` (a scalar), the proven packet range `range` and an
`id` shared by the copies of one pointer (so that a bounds check or null check of one copy applies to all).

A `State` is the call stack: one `Frame` per active function, each with registers r0..r10 and a 512-byte stack
whose bytes are never-written, written-but-unknown, or part of a spilled register (the value kept whole).
`within(old, cur)` decides whether every execution that `cur` describes is one that `old` already covered,
which is what lets the verifier prune a path (the kernel's `states_equal`).
"""

from __future__ import annotations

from typing import NamedTuple

from . import isa

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
S64_MIN, S64_MAX = -(1 << 63), (1 << 63) - 1
S32_MIN, S32_MAX = -(1 << 31), (1 << 31) - 1

#: The largest offset a pointer may be moved by (the kernel's BPF_MAX_VAR_OFF).
MAX_VAR_OFF = 1 << 29
#: The largest packet offset the verifier reasons about (the kernel's MAX_PACKET_OFF).
MAX_PACKET_OFF = 0xFFFF


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) & 1 else value


# -- Known bits (tnum): v = bits known to be 1, m = unknown bits; v & m == 0 ------------------------------

def _t_add(av: int, am: int, bv: int, bm: int, mask: int) -> tuple[int, int]:
    sv = av + bv
    chi = (am + bm + sv) ^ sv          # bits that a carry out of an unknown bit may flip
    mu = (chi | am | bm) & mask
    return sv & ~mu & mask, mu


def _t_sub(av: int, am: int, bv: int, bm: int, mask: int) -> tuple[int, int]:
    dv = av - bv
    chi = (dv + am) ^ (dv - bm)        # bits that a borrow from an unknown bit may flip
    mu = (chi | am | bm) & mask
    return dv & ~mu & mask, mu


def _t_mul(av: int, am: int, bv: int, bm: int, mask: int) -> tuple[int, int]:
    # Long multiplication: each bit of a adds b shifted, known or unknown.
    known = (av * bv) & mask
    acc_v, acc_m = 0, 0
    while av or am:
        if av & 1:
            acc_v, acc_m = _t_add(acc_v, acc_m, 0, bm, mask)
        elif am & 1:
            acc_v, acc_m = _t_add(acc_v, acc_m, 0, bv | bm, mask)
        av, am = av >> 1, am >> 1
        bv, bm = (bv << 1) & mask, (bm << 1) & mask
    return _t_add(known, 0, acc_v, acc_m, mask)


def _t_range(low: int, high: int, mask: int) -> tuple[int, int]:
    """The tnum of all values in [low, high] (unsigned): the common leading bits are known."""
    delta = (1 << (low ^ high).bit_length()) - 1
    return low & ~delta & mask, delta & mask


def _t_bswap(v: int, m: int, bits: int) -> tuple[int, int]:
    def swap(x: int) -> int:
        return int.from_bytes((x & ((1 << bits) - 1)).to_bytes(bits // 8, "little"), "big")
    return swap(v), swap(m)


# -- Scalars ------------------------------------------------------------------------------------------------

class Scalar(NamedTuple):
    """A 64-bit scalar: known bits (v, m), unsigned [umin, umax], signed [smin, smax].

    `id` > 0 links registers that hold the same value (a copy), so a comparison refines all of them;
    `id` < 0 marks a former packet pointer, invalidated by the helper call at instruction -id - 1 (it is an
    unknown scalar in every other respect, kept only so that an error can say what happened)."""

    v: int
    m: int
    umin: int
    umax: int
    smin: int
    smax: int
    id: int = 0

    @property
    def is_const(self) -> bool:
        return self.m == 0

    @property
    def value(self) -> int:
        """The unsigned value of a constant."""
        return self.v

    @property
    def signed_value(self) -> int:
        return _signed(self.v, 64)

    def with_id(self, new_id: int) -> "Scalar":
        return self._replace(id=new_id)

    def text(self) -> str:
        """`scalar(5)`, `scalar(0..255)`, `scalar(-8..7 signed)`, `scalar()` for anything, with the known bits
        when they say more than the range (`bits 0x2/0xc`: bit 1 set, bits 2-3 unknown, the rest clear)."""
        if self.m == 0:
            return f"scalar({_number(_signed(self.v, 64))})"
        parts = []
        if self.umin == 0 and self.umax == M64 and self.smin == S64_MIN and self.smax == S64_MAX:
            pass
        elif self.smin >= 0 or (self.umax - self.umin) <= (self.smax - self.smin):
            parts.append(f"{_number(self.umin)}..{_number(self.umax)}")
        else:
            parts.append(f"{_number(self.smin)}..{_number(self.smax)} signed")
        tnum_from_range = _t_range(self.umin, self.umax, M64)
        if (self.v, self.m) != tnum_from_range and self.m != M64:
            parts.append(f"bits {self.v:#x}/{self.m:#x}")
        if self.id < 0:
            parts.append(f"was a packet pointer, invalidated at instruction {-self.id - 1}")
        return f"scalar({', '.join(parts)})"


def _number(value: int) -> str:
    """Decimal while short, hexadecimal for masks and addresses."""
    return str(value) if -65536 < value < 65536 else (f"{value:#x}" if value >= 0 else f"-{-value:#x}")


def _sync(v: int, m: int, umin: int, umax: int, smin: int, smax: int, bits: int):
    """Tighten the tnum and both ranges against each other (the kernel's reg_bounds_sync).
    Returns the six fields, or None when they contradict each other (no value fits)."""
    mask = (1 << bits) - 1
    sign = 1 << (bits - 1)
    for _ in range(4):
        before = (v, m, umin, umax, smin, smax)
        umin = max(umin, v)
        umax = min(umax, v | m)
        smin = max(smin, _signed(v | (m & sign), bits))
        smax = min(smax, _signed(v | (m & (mask ^ sign)), bits))
        if umin > umax or smin > smax:
            return None
        if smin >= 0 or smax < 0:          # the signed range keeps to one side of zero: same order as unsigned
            low, high = max(umin, smin & mask), min(umax, smax & mask)
            if low > high:
                return None
            umin, umax, smin, smax = low, high, _signed(low, bits), _signed(high, bits)
        elif umax < sign or umin >= sign:  # the unsigned range keeps to one sign
            smin, smax = max(smin, _signed(umin, bits)), min(smax, _signed(umax, bits))
            if smin > smax:
                return None
        rv, rm = _t_range(umin, umax, mask)
        if (v ^ rv) & ~(m | rm) & mask:
            return None
        m &= rm
        v = (v | rv) & ~m & mask
        if (v, m, umin, umax, smin, smax) == before:
            break
    return v, m, umin, umax, smin, smax


def _unknown(bits: int) -> tuple:
    mask = (1 << bits) - 1
    return 0, mask, 0, mask, -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _const(value: int, bits: int) -> tuple:
    value &= (1 << bits) - 1
    return value, 0, value, value, _signed(value, bits), _signed(value, bits)


def const(value: int) -> Scalar:
    """The 64-bit constant `value` (taken modulo 2**64)."""
    return Scalar(*_const(value, 64))


UNKNOWN = Scalar(*_unknown(64))
ZERO = const(0)


def unsigned_range(low: int, high: int) -> Scalar:
    fields = _sync(*_unknown(64)[:2], low, high, S64_MIN, S64_MAX, 64)
    return Scalar(*fields)


def unknown_bits(bits: int) -> Scalar:
    """An unknown zero-extended value of `bits` bits (a load of bits/8 bytes)."""
    return unsigned_range(0, (1 << bits) - 1) if bits < 64 else UNKNOWN


def _from_fields(fields, bits: int) -> tuple:
    synced = _sync(*fields, bits)
    return synced if synced is not None else _unknown(bits)


def project32(s: Scalar) -> tuple:
    """The low 32 bits of a 64-bit scalar, as 32-bit fields."""
    v, m = s.v & M32, s.m & M32
    if (s.umin >> 32) == (s.umax >> 32):
        umin, umax = s.umin & M32, s.umax & M32
    else:
        umin, umax = 0, M32
    if S32_MIN <= s.smin and s.smax <= S32_MAX:
        smin, smax = s.smin, s.smax
    elif (s.smin >> 31) == (s.smax >> 31):  # bits 31..63 shared by all values: the low half keeps its order
        smin, smax = _signed(s.smin & M32, 32), _signed(s.smax & M32, 32)
    else:
        smin, smax = S32_MIN, S32_MAX
    return _from_fields((v, m, umin, umax, smin, smax), 32)


def zero_extend32(fields: tuple) -> Scalar:
    v, m, umin, umax, _, _ = fields
    return Scalar(*_from_fields((v, m, umin, umax, umin, umax), 64))


def merge_low32(s: Scalar, fields: tuple) -> Scalar | None:
    """`s` with its low 32 bits narrowed to `fields` (after a 32-bit comparison); None if impossible."""
    v32, m32, umin32, umax32, _, _ = fields
    if (s.m >> 32) == 0:  # the upper half is known: the 32-bit range is a 64-bit range
        high = s.v & ~M32 & M64
        merged = _sync(high | v32, m32, max(s.umin, high | umin32), min(s.umax, high | umax32), s.smin, s.smax, 64)
    else:
        merged = _sync((s.v & ~M32) | v32, (s.m & ~M32) | m32, s.umin, s.umax, s.smin, s.smax, 64)
    return None if merged is None else Scalar(*merged, s.id)


def truncate(s: Scalar, nbytes: int) -> Scalar:
    """The low `nbytes` bytes of s, zero-extended (what a narrow store keeps and a load gives back).
    A value that already fits is returned as it is, links included."""
    bits = nbytes * 8
    if nbytes >= 8 or s.umax < (1 << bits):
        return s
    if nbytes == 4:
        return zero_extend32(project32(s))
    mask = (1 << bits) - 1
    return Scalar(*_from_fields((s.v & mask, s.m & mask, 0, mask, 0, mask), 64))


def sign_extend(s: Scalar, from_bits: int, to_bits: int) -> Scalar:
    """Sign-extend the low `from_bits` of s into `to_bits` (zero-extended to 64 when to_bits is 32)."""
    low_mask = (1 << from_bits) - 1
    half = 1 << (from_bits - 1)
    low = truncate(s, from_bits // 8) if from_bits < 64 else s
    if low.umax < half:                       # never negative: the value is unchanged
        result_low, result_high = low.umin, low.umax
    elif low.umin >= half:                    # always negative
        result_low, result_high = low.umin - (1 << from_bits), low.umax - (1 << from_bits)
    else:
        result_low, result_high = -half, half - 1
    if low.is_const:
        value = _signed(low.v & low_mask, from_bits)
        return const(value) if to_bits == 64 else Scalar(*_const(value & M32, 64))
    mask = (1 << to_bits) - 1
    if result_low >= 0:
        fields = _from_fields((0, mask, result_low, result_high, result_low, result_high), to_bits)
    else:
        fields = _from_fields((0, mask, 0, mask, result_low, result_high), to_bits)
    return Scalar(*fields) if to_bits == 64 else zero_extend32(fields)


# -- Arithmetic ------------------------------------------------------------------------------------------------

def _shift_amount(b: tuple, bits: int) -> int | None:
    """A constant shift amount (masked to the width as the machine does), else None."""
    return b[0] & (bits - 1) if b[1] == 0 else None


def _alu(op: int, a: tuple, b: tuple, bits: int, off: int) -> tuple:
    """The result fields of `a op b` at `bits` width (unsynced; may be loose)."""
    mask = (1 << bits) - 1
    sign = 1 << (bits - 1)
    smin_all, smax_all = -sign, sign - 1
    av, am, aumin, aumax, asmin, asmax = a
    bv, bm, bumin, bumax, bsmin, bsmax = b
    unknown = _unknown(bits)

    def wrap_unsigned(low: int, high: int) -> tuple[int, int]:
        if 0 <= low and high <= mask:
            return low, high
        if low > mask or high < 0:  # the whole range wrapped by the same amount
            shift = (1 << bits) if high < 0 else -(1 << bits)
            return low + shift, high + shift
        return 0, mask

    def wrap_signed(low: int, high: int) -> tuple[int, int]:
        if smin_all <= low and high <= smax_all:
            return low, high
        if low > smax_all or high < smin_all:
            shift = (1 << bits) if high < smin_all else -(1 << bits)
            return low + shift, high + shift
        return smin_all, smax_all

    if op == isa.BPF_ADD:
        v, m = _t_add(av, am, bv, bm, mask)
        return (v, m, *wrap_unsigned(aumin + bumin, aumax + bumax), *wrap_signed(asmin + bsmin, asmax + bsmax))
    if op == isa.BPF_SUB:
        v, m = _t_sub(av, am, bv, bm, mask)
        return (v, m, *wrap_unsigned(aumin - bumax, aumax - bumin), *wrap_signed(asmin - bsmax, asmax - bsmin))
    if op == isa.BPF_MUL:
        v, m = _t_mul(av, am, bv, bm, mask)
        umin, umax = (aumin * bumin, aumax * bumax) if aumax * bumax <= mask else (0, mask)
        corners = (asmin * bsmin, asmin * bsmax, asmax * bsmin, asmax * bsmax)
        smin, smax = (min(corners), max(corners)) if smin_all <= min(corners) and max(corners) <= smax_all \
            else (smin_all, smax_all)
        return v, m, umin, umax, smin, smax
    if op == isa.BPF_AND:
        v = av & bv
        m = (av | am) & (bv | bm) & ~v
        return v, m, v, min(aumax, bumax), smin_all, smax_all
    if op == isa.BPF_OR:
        v = av | bv
        m = (am | bm) & ~v
        return v, m, max(aumin, bumin), v | m, smin_all, smax_all
    if op == isa.BPF_XOR:
        m = am | bm
        v = (av ^ bv) & ~m
        return v, m, v, v | m, smin_all, smax_all
    if op == isa.BPF_LSH:
        amount = _shift_amount(b, bits)
        if amount is not None:
            v, m = (av << amount) & mask, (am << amount) & mask
            umin, umax = (aumin << amount, aumax << amount) if aumax << amount <= mask else (0, mask)
            return v, m, umin, umax, smin_all, smax_all
        if bumax < bits and aumax << bumax <= mask:
            low, high = aumin << bumin, aumax << bumax
            return (*_t_range(low, high, mask), low, high, smin_all, smax_all)
        return unknown
    if op == isa.BPF_RSH:
        amount = _shift_amount(b, bits)
        if amount is not None:
            return av >> amount, am >> amount, aumin >> amount, aumax >> amount, smin_all, smax_all
        if bumax < bits:
            low, high = aumin >> bumax, aumax >> bumin
        else:
            low, high = 0, aumax  # a right shift never grows the value, whatever the masked amount
        return (*_t_range(low, high, mask), low, high, smin_all, smax_all)
    if op == isa.BPF_ARSH:
        amount = _shift_amount(b, bits)
        if amount is None:
            return unknown
        v = (_signed(av, bits) >> amount) & mask
        m = (_signed(am, bits) >> amount) & mask  # an unknown sign bit makes every shifted-in bit unknown
        return v, m, 0, mask, asmin >> amount, asmax >> amount
    if op == isa.BPF_DIV:
        if off:  # signed: only the simple non-negative case is worth tracking
            if b[1] == 0 and b[0] == 0:
                return _const(0, bits)
            if asmin >= 0 and bsmin > 0:
                low, high = asmin // bsmax, asmax // bsmin
                return (*_t_range(low, high, mask), low, high, low, high)
            return unknown
        if bm == 0:
            if bv == 0:
                return _const(0, bits)  # RFC 9669 §4.1: division by zero gives 0
            low, high = aumin // bv, aumax // bv
        elif bumin > 0:
            low, high = aumin // bumax, aumax // bumin
        else:
            low, high = 0, aumax
        return (*_t_range(low, high, mask), low, high, smin_all, smax_all)
    if op == isa.BPF_MOD:
        if off:
            if b[1] == 0 and b[0] == 0:
                return a  # modulo by zero keeps the dividend
            if asmin >= 0 and bsmin > 0:
                high = min(asmax, bsmax - 1)
                return (*_t_range(0, high, mask), 0, high, 0, high)
            return unknown
        if bm == 0:
            if bv == 0 or aumax < bv:
                return a
            high = bv - 1
        else:
            high = aumax if bumin == 0 else min(aumax, bumax - 1)
        return (*_t_range(0, high, mask), 0, high, smin_all, smax_all)
    if op == isa.BPF_NEG:
        v, m = _t_sub(0, 0, av, am, mask)
        smin, smax = (-asmax, -asmin) if asmin > smin_all else (smin_all, smax_all)
        return v, m, 0, mask, smin, smax
    raise ValueError(f"no abstract semantics for ALU operation {op:#x}")


def alu(op: int, a: Scalar, b: Scalar, is64: bool, off: int = 0) -> Scalar:
    """The scalar result of the ALU operation `op` (not MOV/END) on a and b, 64- or 32-bit."""
    if is64:
        fields = _alu(op, a[:6], b[:6], 64, off)
        return Scalar(*_from_fields(fields, 64))
    fields = _alu(op, project32(a), project32(b), 32, off)
    return zero_extend32(_from_fields(fields, 32))


def byte_swap(s: Scalar, width: int, swap: bool) -> Scalar:
    """END: keep the low `width` bits, byte-swapped when `swap` (to BE on this little-endian machine)."""
    mask = (1 << width) - 1
    v, m = s.v & mask, s.m & mask
    if swap:
        v, m = _t_bswap(v, m, width)
    elif width < 64 and s.umax <= mask:
        return s
    return Scalar(*_from_fields((v, m, 0, mask, S64_MIN, S64_MAX) if width == 64 else (v, m, 0, mask, 0, mask), 64))


# -- Comparisons ----------------------------------------------------------------------------------------------

#: The comparison that holds when the jump is not taken.
NEGATION = {
    isa.BPF_JEQ: isa.BPF_JNE, isa.BPF_JNE: isa.BPF_JEQ, isa.BPF_JGT: isa.BPF_JLE, isa.BPF_JLE: isa.BPF_JGT,
    isa.BPF_JGE: isa.BPF_JLT, isa.BPF_JLT: isa.BPF_JGE, isa.BPF_JSGT: isa.BPF_JSLE, isa.BPF_JSLE: isa.BPF_JSGT,
    isa.BPF_JSGE: isa.BPF_JSLT, isa.BPF_JSLT: isa.BPF_JSGE,
}
#: The same comparison with its operands swapped (a > b is b < a).
SWAPPED = {
    isa.BPF_JEQ: isa.BPF_JEQ, isa.BPF_JNE: isa.BPF_JNE, isa.BPF_JGT: isa.BPF_JLT, isa.BPF_JLT: isa.BPF_JGT,
    isa.BPF_JGE: isa.BPF_JLE, isa.BPF_JLE: isa.BPF_JGE, isa.BPF_JSGT: isa.BPF_JSLT, isa.BPF_JSLT: isa.BPF_JSGT,
    isa.BPF_JSGE: isa.BPF_JSLE, isa.BPF_JSLE: isa.BPF_JSGE, isa.BPF_JSET: isa.BPF_JSET,
}
JSET_FALSE = -1  # "a & b == 0": the not-taken side of JSET


def _refine(op: int, a: tuple, b: tuple, bits: int):
    """Narrow a and b to the values for which `a op b` holds. Returns (a, b), or None if it never holds."""
    av, am, aumin, aumax, asmin, asmax = a
    bv, bm, bumin, bumax, bsmin, bsmax = b
    if op == isa.BPF_JEQ:
        if (av ^ bv) & ~(am | bm):
            return None
        m = am & bm
        v = (av | bv) & ~m
        both = (v, m, max(aumin, bumin), min(aumax, bumax), max(asmin, bsmin), min(asmax, bsmax))
        both = _sync(*both, bits)
        return None if both is None else (both, both)
    if op == isa.BPF_JNE:
        if am == 0 and bm == 0:
            return None if av == bv else (a, b)
        if bm == 0:  # a constant on one side trims a range that ends on it
            a = _trim(a, bv, bits)
        elif am == 0:
            b = _trim(b, av, bits)
    elif op == isa.BPF_JGT:
        a = (av, am, max(aumin, bumin + 1), aumax, asmin, asmax)
        b = (bv, bm, bumin, min(bumax, aumax - 1), bsmin, bsmax)
    elif op == isa.BPF_JGE:
        a = (av, am, max(aumin, bumin), aumax, asmin, asmax)
        b = (bv, bm, bumin, min(bumax, aumax), bsmin, bsmax)
    elif op == isa.BPF_JLT:
        a = (av, am, aumin, min(aumax, bumax - 1), asmin, asmax)
        b = (bv, bm, max(bumin, aumin + 1), bumax, bsmin, bsmax)
    elif op == isa.BPF_JLE:
        a = (av, am, aumin, min(aumax, bumax), asmin, asmax)
        b = (bv, bm, max(bumin, aumin), bumax, bsmin, bsmax)
    elif op == isa.BPF_JSGT:
        a = (av, am, aumin, aumax, max(asmin, bsmin + 1), asmax)
        b = (bv, bm, bumin, bumax, bsmin, min(bsmax, asmax - 1))
    elif op == isa.BPF_JSGE:
        a = (av, am, aumin, aumax, max(asmin, bsmin), asmax)
        b = (bv, bm, bumin, bumax, bsmin, min(bsmax, asmax))
    elif op == isa.BPF_JSLT:
        a = (av, am, aumin, aumax, asmin, min(asmax, bsmax - 1))
        b = (bv, bm, bumin, bumax, max(bsmin, asmin + 1), bsmax)
    elif op == isa.BPF_JSLE:
        a = (av, am, aumin, aumax, asmin, min(asmax, bsmax))
        b = (bv, bm, bumin, bumax, max(bsmin, asmin), bsmax)
    elif op == isa.BPF_JSET:
        if not (av | am) & (bv | bm):
            return None
        if bm == 0 and bv and bv & (bv - 1) == 0:  # a single known bit must be set
            a = (av | bv, am & ~bv, max(aumin, 1), aumax, asmin, asmax)
        elif am == 0 and av and av & (av - 1) == 0:
            b = (bv | av, bm & ~av, max(bumin, 1), bumax, bsmin, bsmax)
        else:
            a = (av, am, max(aumin, 1), aumax, asmin, asmax)
    elif op == JSET_FALSE:
        if av & bv:
            return None
        if bm == 0:  # the bits of the constant are known to be clear in a
            a = (av & ~bv, am & ~bv, aumin, aumax, asmin, asmax)
        elif am == 0:
            b = (bv & ~av, bm & ~av, bumin, bumax, bsmin, bsmax)
    else:
        raise ValueError(f"no comparison {op:#x}")
    a, b = _sync(*a, bits), _sync(*b, bits)
    if a is None or b is None:
        return None
    return a, b


def _trim(fields: tuple, excluded: int, bits: int) -> tuple:
    v, m, umin, umax, smin, smax = fields
    if umin == excluded:
        umin += 1
    elif umax == excluded:
        umax -= 1
    signed_excluded = _signed(excluded, bits)
    if smin == signed_excluded:
        smin += 1
    elif smax == signed_excluded:
        smax -= 1
    return v, m, umin, umax, smin, smax


def compare(op: int, a: Scalar, b: Scalar, is64: bool) -> tuple[Scalar, Scalar] | None:
    """a and b narrowed to the values for which `a op b` holds (op may be JSET_FALSE); None if never."""
    if is64:
        result = _refine(op, a[:6], b[:6], 64)
        if result is None:
            return None
        return Scalar(*result[0], a.id), Scalar(*result[1], b.id)
    result = _refine(op, project32(a), project32(b), 32)
    if result is None:
        return None
    new_a, new_b = merge_low32(a, result[0]), merge_low32(b, result[1])
    if new_a is None or new_b is None:
        return None
    return new_a, new_b


def within_scalar(old: Scalar, cur: Scalar) -> bool:
    """Every value cur allows, old allows too."""
    return (old.umin <= cur.umin and cur.umax <= old.umax and old.smin <= cur.smin and cur.smax <= old.smax
            and (cur.m & ~old.m) == 0 and (cur.v & ~old.m) == old.v)


# -- Pointers ---------------------------------------------------------------------------------------------------

CTX, PKT, PKT_META, PKT_END, STACK, MAP_VALUE, MAP_VALUE_OR_NULL, MAP = range(8)
KIND_NAMES = {CTX: "ctx", PKT: "pkt", PKT_META: "pkt_meta", PKT_END: "pkt_end", STACK: "fp",
              MAP_VALUE: "map_value", MAP_VALUE_OR_NULL: "map_value_or_null", MAP: "map"}
#: What each kind is, in words, for messages.
KIND_WORDS = {CTX: "the context pointer", PKT: "a packet pointer", PKT_META: "a packet metadata pointer",
              PKT_END: "the packet end pointer", STACK: "a stack pointer", MAP_VALUE: "a map value pointer",
              MAP_VALUE_OR_NULL: "a map value pointer that may be null", MAP: "a map"}


class Pointer(NamedTuple):
    """A pointer: region kind, constant offset, variable offset, proven packet range, id, map, frame."""

    kind: int
    off: int = 0
    var: Scalar = ZERO
    range: int = 0     # PKT/PKT_META: bytes from `off` - for this id's variable offset - proven readable
    id: int = 0        # PKT/PKT_META: pointers with the same variable offset; MAP_VALUE_OR_NULL: one lookup
    map: int = -1      # MAP, MAP_VALUE, MAP_VALUE_OR_NULL: index into the program's maps
    frame: int = 0     # STACK: the call frame (0 = the main program)

    def text(self, map_names: list[str] | None = None, current_frame: int | None = None) -> str:
        kind = self.kind
        if kind == PKT_END:
            return "pkt_end"
        if kind == CTX and self.off == 0 and self.var.is_const and self.var.v == 0:
            return "ctx"
        if kind == MAP:
            return f"map({self._map_name(map_names)})"
        if kind == STACK and self.var.is_const and self.var.v == 0:
            where = f"fp{self.off:+d}" if self.off else "fp"
            return where if current_frame in (None, self.frame) else f"{where}(frame {self.frame})"
        parts = []
        if kind in (MAP_VALUE, MAP_VALUE_OR_NULL):
            parts.append(f"map={self._map_name(map_names)}")
        if kind in (PKT, PKT_META, MAP_VALUE_OR_NULL) and self.id:
            parts.append(f"id={self.id}")
        parts.append(f"off={self.off}")
        if kind in (PKT, PKT_META):
            parts.append(f"r={self.range}")
        if not (self.var.is_const and self.var.v == 0):
            parts.append(f"var={self.var.text()[7:-1]}")
        if kind == STACK and current_frame not in (None, self.frame):
            parts.append(f"frame={self.frame}")
        return f"{KIND_NAMES[kind]}({','.join(parts)})"

    def _map_name(self, map_names: list[str] | None) -> str:
        if map_names and 0 <= self.map < len(map_names) and map_names[self.map]:
            return map_names[self.map]
        return str(self.map)


UNINIT = None  # a register that was never written (or was clobbered by a call)


def value_text(value, map_names: list[str] | None = None, current_frame: int | None = None) -> str:
    if value is None:
        return "uninitialized"
    if isinstance(value, Scalar):
        return value.text()
    return value.text(map_names, current_frame)


# -- Register and stack state -------------------------------------------------------------------------------

STACK_BYTES = isa.STACK_SIZE
EMPTY_STACK = bytes(STACK_BYTES)
NEVER_WRITTEN, WRITTEN, SPILLED = 0, 1, 2


class Frame:
    """One call frame: registers, the stack bytes' kinds (index = 512 + offset from r10; immutable bytes,
    shared between copies until one writes), spilled values (index -> (size, value)), the call instruction that
    made the frame (-1 for the main program) and the first instruction of its function.

    `origin` (per register) and `spill_origin` (per spill) say which scalars of the last kept state a value
    was computed from, as bits (`register_bit`, `slot_bit`): when the value's exact range comes to matter, those
    become precise in that state (the kernel's precision tracking, by provenance instead of backtracking)."""

    __slots__ = ("regs", "stack", "spills", "callsite", "function", "origin", "spill_origin")

    def __init__(self, regs: list, stack: bytes, spills: dict, callsite: int, function: int,
                 origin: list[int] | None = None, spill_origin: dict[int, int] | None = None):
        self.regs = regs
        self.stack = stack
        self.spills = spills
        self.callsite = callsite
        self.function = function
        self.origin = origin if origin is not None else [0] * isa.NUM_REGISTERS
        self.spill_origin = spill_origin if spill_origin is not None else {}

    def copy(self) -> "Frame":
        return Frame(self.regs[:], self.stack, dict(self.spills), self.callsite, self.function,
                     self.origin[:], dict(self.spill_origin))

    def spills_overlapping(self, start: int, end: int) -> list[int]:
        """Indices of spills that share a byte with [start, end)."""
        spills = self.spills
        return [index for index in range(max(0, start - 7), end) if index in spills
                and index + spills[index][0] > start]

    def forget(self, start: int, end: int, only_written: bool = False) -> None:
        """Bytes [start, end) now hold unknown data: spills there are dissolved into written bytes.
        With only_written, bytes never written stay so (a store whose exact place is unknown)."""
        stack, spills = bytearray(self.stack), self.spills
        for index in self.spills_overlapping(start, end):
            size = spills.pop(index)[0]
            self.spill_origin.pop(index, None)
            stack[index:index + size] = bytes([WRITTEN]) * size
        if only_written:
            for index in range(start, end):
                if stack[index]:
                    stack[index] = WRITTEN
        else:
            stack[start:end] = bytes([WRITTEN]) * (end - start)
        self.stack = bytes(stack)

    def spill(self, start: int, size: int, value, origin: int = 0) -> None:
        self.forget(start, start + size)
        self.spills[start] = (size, value)
        self.stack = self.stack[:start] + bytes([SPILLED]) * size + self.stack[start + size:]
        if origin:
            self.spill_origin[start] = origin


def register_bit(frame: int, register: int) -> int:
    """The precision bit of a register of a kept state."""
    return frame * isa.NUM_REGISTERS + register


_SLOT_BASE = 128


def slot_bit(frame: int, index: int) -> int:
    """The precision bit of the spill starting at stack byte `index` of a kept state."""
    return _SLOT_BASE + frame * STACK_BYTES + index


def decode_bit(bit: int) -> tuple[bool, int, int]:
    """(is_register, frame, register or stack index) of a precision bit."""
    if bit < _SLOT_BASE:
        frame, register = divmod(bit, isa.NUM_REGISTERS)
        return True, frame, register
    frame, index = divmod(bit - _SLOT_BASE, STACK_BYTES)
    return False, frame, index


class State:
    """The abstract machine state of one path: the call stack of frames (frames[-1] is running)."""

    __slots__ = ("frames",)

    def __init__(self, frames: list[Frame]):
        self.frames = frames

    @property
    def frame(self) -> Frame:
        return self.frames[-1]

    @property
    def regs(self) -> list:
        return self.frames[-1].regs

    def copy(self) -> "State":
        return State([frame.copy() for frame in self.frames])

    def replace_all(self, change) -> None:
        """Apply change(value) -> new value or None (unchanged) to every register and spilled value."""
        for frame in self.frames:
            regs = frame.regs
            for number in range(isa.NUM_REGISTERS):
                value = regs[number]
                if value is not None:
                    new = change(value)
                    if new is not None:
                        regs[number] = new
            for index, (size, value) in list(frame.spills.items()):
                new = change(value)
                if new is not None:
                    frame.spills[index] = (size, new)


def within(old: State, cur: State, precise: int | None = None) -> bool:
    """Whether every concrete state that `cur` describes is one that `old` covered, so that a path reaching
    `cur` is safe once `old` was verified safe. Dead registers were cleared (to UNINIT) in both beforehand.

    `precise` holds the bits (register_bit, slot_bit) of old's scalars whose ranges mattered; any other scalar
    of old stands for every scalar (None: all matter). Ids are matched by a mapping from old ids to current
    ids, which must be a function."""
    if len(old.frames) != len(cur.frames):
        return False
    ids: dict[int, int] = {}
    for depth, (old_frame, cur_frame) in enumerate(zip(old.frames, cur.frames)):
        if old_frame.callsite != cur_frame.callsite:
            return False
        for register, (old_value, cur_value) in enumerate(zip(old_frame.regs, cur_frame.regs)):
            if old_value is cur_value:
                continue
            if precise is not None and isinstance(old_value, Scalar) and \
                    not precise >> register_bit(depth, register) & 1:
                if not isinstance(cur_value, Scalar):
                    return False
                continue
            if not _value_within(old_value, cur_value, ids):
                return False
        if not _stack_within(old_frame, cur_frame, ids, depth, precise):
            return False
    return True


def _same_id(old_id: int, cur_id: int, ids: dict) -> bool:
    mapped = ids.setdefault(old_id, cur_id)
    return mapped == cur_id


def _same_link(old_id: int, cur_id: int, ids: dict) -> bool:
    """Scalar links: registers old linked under one id must be linked in cur too. An unlinked current
    register stands for an id of its own, which no other register shares."""
    if old_id <= 0:
        return True
    if cur_id > 0:
        return ids.setdefault(old_id, cur_id) == cur_id
    own = object()
    return ids.setdefault(old_id, own) is own


def _value_within(old, cur, ids: dict[int, int]) -> bool:
    if old is None:
        return True  # never read on any path from old (it was dead, or the path never used it)
    if cur is None:
        return False
    if isinstance(old, Scalar):
        if not isinstance(cur, Scalar) or not within_scalar(old, cur):
            return False
        return _same_link(old.id, cur.id, ids)
    if not isinstance(cur, Pointer) or old.kind != cur.kind or old.off != cur.off or old.map != cur.map \
            or old.frame != cur.frame:
        return False
    if not within_scalar(old.var, cur.var):
        return False
    if old.kind in (PKT, PKT_META):
        return cur.range >= old.range and _same_id(old.id, cur.id, ids)
    if old.kind == MAP_VALUE_OR_NULL:
        return _same_id(old.id, cur.id, ids)
    return True


def _unknown_of_size(value, size: int) -> bool:
    """A spilled scalar that says nothing about its bytes (and links nothing)."""
    mask = (1 << (8 * size)) - 1
    return isinstance(value, Scalar) and value.id <= 0 and value.m == mask and value.umin == 0 \
        and value.umax == mask


def _stack_within(old: Frame, cur: Frame, ids: dict[int, int], depth: int, precise: int | None) -> bool:
    if old.stack == cur.stack and old.spills == cur.spills:
        return True
    old_stack, cur_stack, cur_spills = old.stack, cur.stack, cur.spills

    def holds_pointer(start: int, end: int) -> bool:
        return any(isinstance(cur_spills[i][1], Pointer) for i in cur.spills_overlapping(start, end))

    for index in range(STACK_BYTES):
        kind = old_stack[index]
        if kind == NEVER_WRITTEN:
            continue  # old never read it, whatever cur holds there
        if cur_stack[index] == NEVER_WRITTEN:
            return False
        # unknown bytes cover any bytes but a spilled pointer's, which reads back as a pointer
        if kind == WRITTEN and cur_stack[index] == SPILLED and holds_pointer(index, index + 1):
            return False
    for index, (size, old_value) in old.spills.items():
        cur_spill = cur_spills.get(index)
        imprecise = isinstance(old_value, Scalar) and precise is not None and \
            not precise >> slot_bit(depth, index) & 1
        if imprecise or _unknown_of_size(old_value, size):
            # any bytes that hold no pointer will do (they were checked above to be written)
            if holds_pointer(index, index + size):
                return False
        elif cur_spill is None or cur_spill[0] != size or not _value_within(old_value, cur_spill[1], ids):
            return False
    return True
