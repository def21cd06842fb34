"""The pointer map shared by the golden VM and the hardware: how a 64-bit eBPF pointer names a region.

A pointer is `tag << 32 | offset`. The tag (bits 32..39; all higher bits zero) names a region, the low
32 bits are the byte offset inside it. Every load, store and atomic is checked against its region's size
and permissions before it touches a byte; a bad access is a fault, never a wild access. The RTL core
decodes the same tags (docs/architecture.md, "Pointer map").

Tags:
  0x00            NULL: never a region, so a null pointer always faults.
  0x01 CONTEXT    the program's context (struct xdp_md); its pointer fields are read through a hook.
  0x02 PACKET     the packet buffer of the frame: headroom, data, tailroom.
  0x03 STACK      all call frames; frame k (0 = main) has r10 = base + (MAX_CALL_FRAMES - k) * 512.
  0x04 INPUT      memory handed to a bare program (the conformance suite's `mem`).
  0x05 MAP_HANDLE a map itself (LDDW map_fd / map_idx): offset = map index; not addressable.
  0x80 + n        the value memory of map n.
"""

from __future__ import annotations

from typing import Callable

from . import isa

REGION_SHIFT = 32
OFFSET_MASK = (1 << REGION_SHIFT) - 1
TAG_CONTEXT = 0x01
TAG_PACKET = 0x02
TAG_STACK = 0x03
TAG_INPUT = 0x04
TAG_MAP_HANDLE = 0x05
TAG_MAP_VALUE_BASE = 0x80
MAX_MAPS = 0x80

STACK_REGION_SIZE = isa.STACK_SIZE * isa.MAX_CALL_FRAMES


def make_pointer(tag: int, offset: int) -> int:
    return (tag << REGION_SHIFT) | (offset & OFFSET_MASK)


def map_handle(index: int) -> int:
    return make_pointer(TAG_MAP_HANDLE, index)


def map_value_pointer(index: int, offset: int) -> int:
    return make_pointer(TAG_MAP_VALUE_BASE + index, offset)


def frame_pointer(depth: int) -> int:
    """r10 of the call frame at `depth` (0 = the main program)."""
    return make_pointer(TAG_STACK, (isa.MAX_CALL_FRAMES - depth) * isa.STACK_SIZE)


def region_of(pointer: int) -> int:
    return pointer >> REGION_SHIFT


class Region:
    """A bounds-checked byte region. `load_hook(offset, size, pc)` (if set) supplies loads, for regions whose
    fields are not plain bytes (the XDP context's pointers); it raises VmFault(pc, reason) to refuse one."""

    __slots__ = ("name", "tag", "buf", "size", "writable", "load_hook")

    def __init__(self, name: str, tag: int, buf: bytearray, writable: bool = True,
                 load_hook: Callable[[int, int, int], int] | None = None, size: int | None = None):
        self.name = name
        self.tag = tag
        self.buf = buf
        self.size = len(buf) if size is None else size
        self.writable = writable
        self.load_hook = load_hook

    def __repr__(self) -> str:
        return f"Region({self.name}, tag=0x{self.tag:02x}, size={self.size})"
