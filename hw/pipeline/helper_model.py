"""The golden VM's helpers as the reference model of the helper unit, one call at a time.

Ref: sw/xdp.py (XdpSession: the helpers, the packet buffer and its limits), sw/maps.py (the maps), sw/vm.py
(the regions helpers read through, VmFault, TailCall, MAX_TAIL_CALLS); hw/pipeline/helper_unit.py (what it
answers, and where it differs on purpose).

`HelperModel` builds an XdpSession over the maps of a NicMapConfig (the same parameters the map units are
built with; devmaps with the units' `valid_ifindexes`) and calls its helpers directly with the arguments a
core would pass, translating what they do into what the helper port answers: a return value (OK), a VmFault
or a MapError (FAULT: the hardware refuses the same arguments), TailCall (OK with the target entry),
an id the session does not implement (UNKNOWN). The differences documented in helper_unit.py are made
explicit here: get_prandom_u32 draws from the hardware's xorshift32 (`XorShift32`), ktime_get_ns reads the
clock the caller gives, and the trace_printk return value is the golden VM's (the formatted length), which the
unit does not reproduce. Program array entries are helper_unit ProgramEntry values (entry pc, length): each
gets a program object in the session so that the golden tail call names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bpfnic.hw.core.interfaces import HelperStatus
from bpfnic.sw import isa, maps, xdp
from bpfnic.sw.elf_loader import BpfObject, MapDef, ProgramDef
from bpfnic.sw.vm import TailCall, VmFault

from .helper_unit import XorShift32
from .map_config import NicMapConfig
from .map_progarray import ProgramEntry

M64 = (1 << 64) - 1


@dataclass
class HelperOutcome:
    status: HelperStatus
    r0: int = 0
    tail_call: ProgramEntry | None = None


class HelperModel:
    """sw/xdp.py's helpers over sw/maps.py maps, in the helper unit's terms (see the module docstring)."""

    def __init__(self, config: NicMapConfig, *, core_index: int = 0, prandom_seed: int = 0x2545F491,
                 clock_ns: Callable[[], int] = lambda: 0):
        definitions = [MapDef(slot.name, slot.map_type, slot.key_size, slot.value_size, slot.max_entries,
                              slot.flags, initial_data=slot.initial_data, readonly=slot.frozen, index=index)
                       for index, slot in enumerate(config.slots)]
        program = ProgramDef("reference", "xdp", isa.Program([isa.exit_insn()]))
        obj = BpfObject("<helper model>", {"xdp": program}, {"reference": program}, definitions,
                        {definition.name: definition for definition in definitions})
        self.config = config
        self.session = xdp.XdpSession(obj, ncpus=config.ncpus, cpu=core_index, clock_ns=clock_ns)
        self.session.random = XorShift32(prandom_seed)
        for slot, bpf_map in zip(config.slots, self.session.maps):
            if slot.kind == "devmap":
                bpf_map.valid_ifindexes = slot.valid_ifindexes
        self.maps: list[maps.BpfMap] = self.session.maps
        self._entries: dict[str, ProgramEntry] = {}
        self.start(bytes(xdp.ETH_HLEN))

    # -- state the hardware keeps elsewhere ---------------------------------------------------------------
    @property
    def stack(self) -> bytearray:
        return self.session.vm.stack.buf

    @property
    def packet(self) -> xdp.PacketBuffer:
        return self.session._buffer

    @property
    def redirect(self) -> int | None:
        return self.session._redirect

    @property
    def trace(self) -> list[str]:
        return self.session._trace

    def start(self, frame: bytes) -> None:
        """A new program run on `frame` (the unit's `run_start`): fresh packet buffer, no redirect, no tail
        calls, no trace lines."""
        buffer = xdp.PacketBuffer(frame)
        self.session._buffer = buffer
        self.session.vm.add_region(buffer.region)
        self.session._redirect = None
        self.session._trace = []
        self.session.vm.tail_calls = 0
        self.session.vm._pc_hint = 0      # helpers' faults name an instruction; there is none here

    def set_program(self, map_index: int, index: int, entry: ProgramEntry) -> int:
        """Host update of a program array entry (as the driver writes ProgramEntry.word to the unit)."""
        section = f"entry_{entry.entry_pc}_{entry.length}"
        self._entries[section] = entry
        program = ProgramDef(section, section, isa.Program([isa.exit_insn()]))
        return self.maps[map_index].update(index.to_bytes(4, "little"), program)

    # -- one helper call ------------------------------------------------------------------------------------
    def call(self, helper_id: int, args: list[int]) -> HelperOutcome:
        helpers = self.session._helpers()
        if helper_id not in helpers:
            return HelperOutcome(HelperStatus.UNKNOWN)
        vm = self.session.vm
        try:
            r0 = helpers[helper_id](vm, *[arg & M64 for arg in args])
        except (VmFault, maps.MapError):
            return HelperOutcome(HelperStatus.FAULT)
        except TailCall as call:
            vm.tail_calls += 1
            return HelperOutcome(HelperStatus.OK, 0, self._entries[call.name])
        return HelperOutcome(HelperStatus.OK, r0 & M64)
