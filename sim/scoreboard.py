"""The scoreboard of the NIC system tests: every frame sent to a device (through the driver, any transport) is also
fed to the software model of the NIC (hw/pipeline/nic_model.NicModel: MAC verdicts, the golden VM, the
dispatcher's verdicts), and at the end the two are compared frame by frame and counter by counter.

What is compared, and why so:
- the frames each port put on its wire, in order, against the model's frames for that port (padded, FCS checked).
  When frames from several sources (each port's wire, the register bus's injection) leave one port, the NIC may
  interleave them in any order the timing gives; the order within each source is kept (the receive arbiter takes
  whole frames, the dispatcher applies verdicts in arrival order), so the observed sequence must be an
  interleaving of the model's per-source sequences;
- the host queue: frames and their info byte (the ingress port), by the same rule;
- every counter the model keeps, as the change since the scoreboard started (counters wrap at 32 bits); the
  trap counters as one sum (the VM names a fault, the core a trap cause); `instructions` when nothing faulted;
  `cycles` never (the model has no time);
- the contents of every map of the object, read through the register bus, against the model's;
- the trace_printk lines, in order.

Host map updates: between bursts they happen at a known point of the frame sequence. During a burst the NIC
applies one at some frame boundary the timing picks: the scoreboard reads how many frames had reached their
verdict before the update was sent (a) and after it returned (b); the frames that saw the old value are the first
k for some k in a..b+1 (b+1: a frame inside the core while the update ran may have read the map before it). The
check looks for the k (one per update) for which the model gives exactly what the NIC gave; none is a failure,
reported for the first candidate.

Ref: hw/pipeline/nic_model.py (the model), sw/driver.py (the device), hw/pipeline/mac_model.py (the wire).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Sequence

from bpfnic.hw.pipeline import mac_model
from bpfnic.hw.pipeline.gmii import INTER_FRAME_GAP_BYTES
from bpfnic.hw.pipeline.nic_model import NicModel
from bpfnic.sw.driver import VERDICT_NAMES

COUNTER_MODULUS = 1 << 32
MAX_CUT_COMBINATIONS = 4096


class ScoreboardMismatch(AssertionError):
    """The device and the model disagree; the message names the first difference."""


@dataclass
class _Frames:
    port: int
    bursts: list            # mac_model.WireFrame on the wire
    injected: bytes | None = None      # or one frame through the register bus


@dataclass
class _MapUpdate:
    name: str
    operation: str          # "update" or "delete"
    key: bytes
    value: bytes | None
    flags: int
    window: tuple[int, int]     # frames decided before it was sent, and after it returned


@dataclass
class Report:
    """What was compared: frames fed to the model, frames out per port and to the host, counters, maps."""
    frames: int = 0
    outputs: dict = field(default_factory=dict)
    host: int = 0
    counters: int = 0
    maps: dict = field(default_factory=dict)
    cuts: tuple = ()


def is_interleaving(observed: Sequence, sequences: Sequence[Sequence]) -> bool:
    """Whether `observed` is a merge of `sequences` keeping the order within each (a search over positions)."""
    if len(observed) != sum(len(sequence) for sequence in sequences):
        return False
    frontier = {tuple(0 for _ in sequences)}
    for item in observed:
        following = set()
        for positions in frontier:
            for which, sequence in enumerate(sequences):
                at = positions[which]
                if at < len(sequence) and sequence[at] == item:
                    following.add(positions[:which] + (at + 1,) + positions[which + 1:])
        if not following:
            return False
        frontier = following
    return True


class Scoreboard:
    """Sends frames and map updates to `device` (sw/driver.Device with `obj` loaded) and records them for the
    model; `check()` waits for the device to settle and compares. `section` and `map_init` as given to the
    device's `load`."""

    def __init__(self, device, obj, section: str | None = None, map_init: dict | None = None):
        if device.attached is None:
            raise ValueError("Scoreboard: load the object onto the device first")
        self.device = device
        self.obj = obj
        self.section = section
        self.map_init = map_init
        self._events: list = []
        self._start_counters = device.counters()
        # what the device let out so far: frames by port, the host queue, trace lines
        self._seen_ports: dict[int, list[bytes]] = {}
        self._host_frames: list = []
        self._trace: list[str] = []

    # -- stimulus -------------------------------------------------------------------------------------------
    def send(self, port: int, bursts: Sequence[mac_model.WireFrame]) -> None:
        bursts = list(bursts)
        self.device.send_bursts(port, bursts)
        self._events.append(_Frames(port, bursts))


    def send_frames(self, port: int, frames: Sequence[bytes], gap: int = INTER_FRAME_GAP_BYTES) -> None:
        """Good frames (without FCS) onto port `port`'s wire, `gap` idle cycles after each."""
        self.send(port, [mac_model.WireFrame(mac_model.wire_octets(frame), gap=gap) for frame in frames])

    def inject(self, frame: bytes, port: int) -> None:
        """A frame through the register bus, as if it arrived on `port`."""
        self.device.inject(frame, port)
        self._events.append(_Frames(port, [], injected=bytes(frame)))

    def read_queues(self) -> int:
        """Read the host queue and the trace_printk queue now, as a host does while traffic flows (frames to the
        host hold buffer slots until read; a full trace queue drops records). Returns the frames read."""
        self._trace += self.device.trace()
        return self.read_host()

    def read_host(self) -> int:
        """Read the host queue now (as a host does while traffic flows); the frames are kept for the check.
        Returns how many were read."""
        frames = self.device.host_frames()
        self._host_frames += frames
        return len(frames)

    def decided(self) -> int:
        """Frames the program has run on since the scoreboard started (the verdict counters' change)."""
        counters = self.device.counters()
        return sum((counters[f"verdict.{name}"] - self._start_counters[f"verdict.{name}"]) % COUNTER_MODULUS
                   for name in VERDICT_NAMES)

    def update_map(self, name: str, key: bytes, value: bytes | None, flags: int = 0, *,
                   during_traffic: bool = False) -> None:
        """A host map update (or, with `value` None, a delete) through the driver. Without `during_traffic` the
        device is first let settle, so the update sits exactly between the frames before and after it; with it,
        the update runs while frames flow and lands at a frame boundary found by `check`."""
        if not during_traffic:
            self.device.wait_idle()
        before = self.decided()
        device_map = self.device.maps[name]
        if value is None:
            device_map.delete(key)
        else:
            device_map.update(key, value, flags)
        after = self.decided()
        window = (before, before) if not during_traffic else (before, after + 1)
        self._events.append(_MapUpdate(name, "delete" if value is None else "update", bytes(key),
                                       None if value is None else bytes(value), flags, window))

    # -- the model ----------------------------------------------------------------------------------------------
    def _feeds(self):
        """(port, octets after the SFD, PHY error) of every frame on a wire, (port, frame, None) of every frame
        injected through the register bus, in the order the model takes them."""
        for event in self._events:
            if not isinstance(event, _Frames):
                continue
            if event.injected is not None:
                yield event.port, event.injected, None
                continue
            for decoded in mac_model.decode_gmii(mac_model.gmii_samples(event.bursts)):
                yield event.port, decoded.octets, decoded.error

    def model(self, cuts: Sequence[int] | None = None, feeds: list | None = None) -> NicModel:
        """The model fed every frame (`feeds`, default `_feeds()`), each map update applied after `cuts[i]` program
        runs (default: the first candidate of each update's window)."""
        updates = [event for event in self._events if isinstance(event, _MapUpdate)]
        cuts = list(cuts) if cuts is not None else [update.window[0] for update in updates]
        model = NicModel(self.obj, self.device.config, self.section, map_init=self.map_init)
        pending = sorted(zip(cuts, range(len(updates))))

        def apply_due(runs: int) -> None:
            while pending and pending[0][0] <= runs:
                _, which = pending.pop(0)
                update = updates[which]
                bpf_map = model.session.map_by_name[update.name]
                if update.operation == "delete":
                    bpf_map.delete(update.key)
                else:
                    bpf_map.update(update.key, update.value, update.flags)   # a per-CPU map: every CPU's copy
        # where each frame out came from: its port's wire, or the register bus; the NIC keeps the order of each
        # source, not the order between sources (the receive arbiter takes whole frames from them in turn)
        model.host_sources = []
        model.sent_sources = [[] for _ in range(self.device.config.ports)]
        for port, octets, error in (self._feeds() if feeds is None else feeds):
            apply_due(len(model.results))
            host_before, sent_before = len(model.host), [len(sent) for sent in model.sent]
            if error is None:          # injected through the register bus
                model.inject(port, octets)
                source = "injected"
            else:
                model.receive(port, octets, phy_error=error)
                source = port
            model.host_sources += [source] * (len(model.host) - host_before)
            for out, before in enumerate(sent_before):
                model.sent_sources[out] += [source] * (len(model.sent[out]) - before)
        apply_due(1 << 62)
        return model

    def _candidates(self):
        windows = [range(event.window[0], event.window[1] + 1) for event in self._events
                   if isinstance(event, _MapUpdate)]
        count = 1
        for window in windows:
            count *= len(window)
        if count > MAX_CUT_COMBINATIONS:
            raise ValueError(f"Scoreboard: {count} ways to place the map updates made during traffic; make fewer, "
                             f"or let the device settle between them")
        return itertools.product(*windows)

    # -- the comparison -----------------------------------------------------------------------------------------
    def observe(self, wait: bool = True) -> dict:
        """What the device has done since the scoreboard started: frames out of each port, host-queue frames and
        trace lines (everything taken so far, kept for later checks), counters (the change since the start) and
        the object's maps now. With `wait`, the device is first let settle."""
        device = self.device
        counters = device.wait_idle() if wait else device.counters()
        for port in range(device.config.ports):
            self._seen_ports.setdefault(port, []).extend(device.received(port))
        self._host_frames += device.host_frames()
        self._trace += device.trace()
        return {
            "ports": {port: list(frames) for port, frames in self._seen_ports.items()},
            "host": list(self._host_frames),
            "counters": {name: (value - self._start_counters[name]) % COUNTER_MODULUS
                         for name, value in counters.items()},
            "maps": device.dump_maps([definition.name for definition in self.obj.maps]),
            "trace": list(self._trace),
        }

    def difference(self, observed: dict, model: NicModel) -> str | None:
        """The first difference between what the device did and what `model` says, or None."""
        config = self.device.config
        expected_counters = model.finish_counters()
        counters = observed["counters"]
        differing = [f"{name}: device {counters[name]}, model {value}" for name, value in expected_counters.items()
                     if not (name in ("instructions", "cycles") or name.startswith("trap.") or name == "trace_dropped")
                     and counters[name] != value]
        if differing:
            return "counters differ: " + "; ".join(differing)
        traps = sum(value for name, value in counters.items() if name.startswith("trap."))
        if traps != model.faults:
            return f"trap counters: device {traps} traps, the model {model.faults} faults"
        if not model.faults and counters["instructions"] != expected_counters["instructions"]:
            return f"counter instructions: device {counters['instructions']}, model {expected_counters['instructions']}"
        for port in range(config.ports):
            got = observed["ports"][port]
            expected = [mac_model.pad(frame.data) for frame in model.sent[port]]
            if not is_interleaving(got, _by_source(expected, model.sent_sources[port])):
                return _first_frame_difference(f"port {port}", got, expected)
        got_host = [tuple(item) for item in observed["host"]]
        expected_host = [(frame.data, frame.info) for frame in model.host]
        if not is_interleaving(got_host, _by_source(expected_host, model.host_sources)):
            return _first_frame_difference("host queue", got_host, expected_host)
        expected_maps = model.dump_maps()
        for name, contents in observed["maps"].items():
            if contents != expected_maps[name]:
                differing = sorted(set(contents.items()) ^ set(expected_maps[name].items()), key=str)[:4] \
                    if all(isinstance(v, str) for v in contents.values()) else "(per-CPU values)"
                return f"map {name}: device and model differ (first differing entries: {differing})"
        expected_trace = [line for result in model.results for line in result.trace_output]
        if observed["trace"] != expected_trace:
            got = observed["trace"]
            index = next((i for i, (a, b) in enumerate(zip(got, expected_trace)) if a != b),
                         min(len(got), len(expected_trace)))
            return (f"trace_printk lines: {len(got)} from the device, {len(expected_trace)} from the model; line "
                    f"{index} differs: device {got[index:index + 1]}, model {expected_trace[index:index + 1]} "
                    f"(trace_dropped: {observed['counters'].get('trace_dropped')})")
        return None

    def check(self) -> Report:
        """Let the device settle, then compare it with the model; raises ScoreboardMismatch naming the first
        difference. Returns what was compared."""
        observed = self.observe()
        feeds = list(self._feeds())        # the wire decoded once, for every candidate placement of the updates
        first_difference = None
        for cuts in self._candidates():
            model = self.model(cuts, feeds)
            difference = self.difference(observed, model)
            if difference is None:
                return Report(frames=len(feeds),
                              outputs={port: len(frames) for port, frames in observed["ports"].items()},
                              host=len(observed["host"]), counters=len(observed["counters"]),
                              maps={name: len(contents) for name, contents in observed["maps"].items()},
                              cuts=tuple(cuts))
            first_difference = first_difference or (cuts, difference)
        cuts, difference = first_difference
        where = f" (map updates after {list(cuts)} program runs)" if cuts else ""
        raise ScoreboardMismatch(f"{self.device.transport.name}: {difference}{where}")


def _by_source(items: list, sources: list) -> list[list]:
    """`items` split into one sequence per source, each in its order."""
    sequences: dict = {}
    for item, source in zip(items, sources):
        sequences.setdefault(source, []).append(item)
    return list(sequences.values())


def _first_frame_difference(where: str, got: list, expected: list) -> str:
    for index, (a, b) in enumerate(zip(got, expected)):
        if a != b:
            return (f"{where}: frame {index} differs: device {_show(a)}, model {_show(b)} "
                    f"({len(got)} frames from the device, {len(expected)} from the model)")
    return f"{where}: {len(got)} frames from the device, {len(expected)} from the model"


def _show(item) -> str:
    data = item[0] if isinstance(item, tuple) else item
    text = data.hex()
    return (text[:48] + "..." if len(text) > 48 else text) + (f" info {item[1]}" if isinstance(item, tuple) else "")
