"""The software model of the whole NIC: frames in on the ports, verdicts, frames out of the ports and to the host,
and the counters, with the same names as the RTL NIC's (nic.counter_names).

Ref: hw/pipeline/mac_model.py (the RX MAC's verdict on a frame, the TX MAC's padding and FCS: IEEE 802.3
clauses 3.2 and 4.4.2), sw/xdp.py (XdpSession, the golden VM running the program on each frame with maps that
live across frames), hw/pipeline/dispatcher.py (`apply_verdict`: the fate of a frame), hw/pipeline/helper_unit.py
(the hardware's get_prandom_u32, XorShift32).

This is the reference the RTL NIC is checked against (tests/test_nic.py under amaranth.sim, and later the
cocotb runs). It has no notion of time, so what depends on timing is out of it: frames lost because a buffer
was full (the tests check there are none), and the order of frames of different ports on one output (it keeps
the order of arrival per port; the test compares per ingress port). Where the golden VM faults, the hardware
traps with a cause the VM does not name: the model counts `faults`, which the test compares with the sum of
the NIC's trap counters. ktime_get_ns is the host clock in the VM and a cycle counter in the NIC.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bpfnic.sw import xdp

from .dispatcher import DispatcherCounters, apply_verdict
from .gmii import FCS_BYTES, RxStatus
from .helper_unit import XorShift32
from .mac_model import RX_COUNTER_OF_STATUS, rx_verdict, with_fcs
from .nic import NicConfig, counter_names
from .packet_buffer import HEADROOM

DEFAULT_PRANDOM_SEED = 0x2545F491   # helper_unit.HelperUnit's default


@dataclass
class ModelFrame:
    """A frame the model sent: where from, and its bytes (before the TX MAC's padding and FCS)."""
    ingress_port: int
    data: bytes
    info: int = 0


@dataclass
class NicModel:
    """See the module docstring. `receive` one frame at a time; read `sent`, `host`, `counters`, `results`."""
    obj: object
    config: NicConfig = field(default_factory=NicConfig)
    section: str | None = None
    map_init: dict | None = None
    prandom_seed: int = DEFAULT_PRANDOM_SEED

    def __post_init__(self):
        self.session = xdp.XdpSession(self.obj, self.section, ncpus=1, cpu=0, clock_ns=lambda: 0)
        self.session.random = XorShift32(self.prandom_seed)
        valid = tuple(range(1, self.config.ports + 1))
        for bpf_map in self.session.maps:
            if hasattr(bpf_map, "valid_ifindexes"):
                bpf_map.valid_ifindexes = valid      # the NIC's devmaps take its own ifindexes only
        if self.map_init:
            self.session.apply_map_init(self.map_init)
        self.counters = {name: 0 for name in counter_names(self.config)}
        self.verdicts = DispatcherCounters(self.config.ports)
        self.sent: list[list[ModelFrame]] = [[] for _ in range(self.config.ports)]
        self.host: list[ModelFrame] = []
        self.results: list[xdp.PacketResult] = []
        self.faults = 0

    @property
    def max_buffer_frame(self) -> int:
        return self.config.slot_size - HEADROOM - self.config.tailroom

    def receive(self, port: int, octets: bytes, *, phy_error: bool = False) -> xdp.PacketResult | None:
        """A frame on port `port`'s GMII: its octets after the SFD, FCS included. The program's result, or None
        when the MAC or the buffer dropped the frame."""
        if not 0 <= port < self.config.ports:
            raise ValueError(f"NicModel: port {port} is not one of the NIC's 0..{self.config.ports - 1}")
        status = rx_verdict(octets, phy_error=phy_error, max_frame_bytes=self.config.max_frame_bytes)
        self.counters[f"port{port}.rx_{RX_COUNTER_OF_STATUS[status]}"] += 1
        if status != RxStatus.OK:
            return None
        return self._buffered(port, octets[:-FCS_BYTES])

    def inject(self, port: int, frame: bytes) -> xdp.PacketResult | None:
        """A frame (without FCS) injected through the register bus as if from port `port`: it joins the receive
        path after the MAC, so no MAC counter counts it and it is not padded."""
        if not 0 <= port < self.config.ports:
            raise ValueError(f"NicModel: port {port} is not one of the NIC's 0..{self.config.ports - 1}")
        return self._buffered(port, bytes(frame))

    def _buffered(self, port: int, frame: bytes) -> xdp.PacketResult | None:
        if len(frame) > self.max_buffer_frame:
            self.counters[f"port{port}.dropped_too_long"] += 1
            return None
        self.counters[f"port{port}.buffer_stored"] += 1
        result = self.session.run_packet(frame, len(self.results), ingress_ifindex=port + 1, rx_queue_index=0)
        self.results.append(result)
        trapped = result.fault is not None
        self.faults += trapped
        fate = apply_verdict(self.verdicts, r0=result.action, trap=1 if trapped else 0, redirect=result.redirect,
                             ingress_port=port)
        self.counters["instructions"] += result.instructions or 0
        if fate.output is None:
            return result
        if fate.output == self.config.ports:
            self.host.append(ModelFrame(port, result.data, fate.info))
            self.counters["host.passed"] += 1
            return result
        self.counters[f"port{fate.output}.sent"] += 1
        if len(result.data) + FCS_BYTES > self.config.max_frame_bytes:
            self.counters[f"port{fate.output}.tx_oversize"] += 1
        else:
            self.counters[f"port{fate.output}.tx_frames_ok"] += 1
            self.sent[fate.output].append(ModelFrame(port, result.data, fate.info))
        return result

    def finish_counters(self) -> dict[str, int]:
        """The counters, with the verdict counts filled in (trap counters are summed in `faults`)."""
        counters = dict(self.counters)
        for name, count in zip(("aborted", "drop", "pass", "tx", "redirect"), self.verdicts.verdicts):
            counters[f"verdict.{name}"] = count
        counters["invalid_action"] = self.verdicts.invalid_action
        counters["redirect_failed"] = self.verdicts.redirect_failed
        return counters

    def wire_frames(self, port: int) -> list[bytes]:
        """What port `port` puts on GMII after its SFDs: every sent frame padded, with its FCS."""
        return [with_fcs(frame.data) for frame in self.sent[port]]

    def dump_maps(self) -> dict:
        return self.session.dump_maps()
