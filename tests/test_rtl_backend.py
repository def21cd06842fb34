"""`bpfnic run --backend rtl` (sw/driver.NicSession: the RTL NIC in a simulator, through the driver) against the golden VM
(`--backend vm`) on shipped examples: the same verdicts, the same frames out, the same map contents.

The RTL's frames enter through port 0's RX MAC, which pads frames under 60 bytes (IEEE 802.3 clause 3.2.8), so
the VM is given the pcap padded the same way. For XDP_DROP and XDP_ABORTED the NIC lets nothing out: the RTL
reports empty data, and only the verdict is compared.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bpfnic.hw.pipeline import mac_model
from bpfnic.sw import cli, runner

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
OBSERVABLE = ("XDP_TX", "XDP_REDIRECT", "XDP_PASS")


def run_json(capsys, *argv: str) -> dict:
    capsys.readouterr()
    assert cli.main(["run", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name, simulator", [("xdp_macswap", "amaranth"),
                                             pytest.param("xdp_firewall", "amaranth", marks=pytest.mark.slow),
                                             ("xdp_firewall", "verilator")])
def test_rtl_matches_vm(tmp_path, capsys, name, simulator):
    from bpfnic.sw.compile import CompileError, compile_c, example_mcpu
    source = EXAMPLES / f"{name}.c"
    try:
        obj_path = compile_c(source, tmp_path / f"{name}.o", mcpu=example_mcpu(source))
    except CompileError as error:
        pytest.fail(f"{source.name} does not compile: {error}")
    pcap = EXAMPLES / "pcap" / f"{name}.pcap"
    padded = tmp_path / "padded.pcap"
    frames = runner.read_pcap(pcap)
    runner.write_pcap(padded, mac_model.pad_frames(frames))
    map_init = EXAMPLES / f"{name}.maps.json"
    extra = ["--map-init", str(map_init)] if map_init.exists() else []

    rtl = run_json(capsys, str(obj_path), "--pcap", str(pcap), "--backend", "rtl", "--simulator", simulator, *extra)
    vm = run_json(capsys, str(obj_path), "--pcap", str(padded), "--backend", "vm", *extra)

    assert len(rtl["packets"]) == len(vm["packets"]) == len(frames)
    for got, expected in zip(rtl["packets"], vm["packets"]):
        where = f"{name} packet {expected['index']}"
        assert got["verdict"] == expected["verdict"], where
        if expected["verdict"] in OBSERVABLE:
            assert got["data"] == expected["data"], where
            assert got["redirect"] == expected["redirect"], where
        else:
            assert got["data"] == "", f"{where}: a dropped frame has no observable data"
    assert rtl["maps"] == vm["maps"]
    verdicts = {packet["verdict"] for packet in rtl["packets"]}
    assert verdicts >= ({"XDP_TX"} if name == "xdp_macswap" else {"XDP_DROP", "XDP_PASS"})


def test_rtl_names_unknown_map(tmp_path):
    """An unknown map name in map-init is named before the NIC is built."""
    from bpfnic.sw.compile import compile_c, example_mcpu
    from bpfnic.sw.driver import DriverError
    from bpfnic.sw.elf_loader import load_object
    source = EXAMPLES / "xdp_firewall.c"
    obj = load_object(compile_c(source, tmp_path / "fw.o", mcpu=example_mcpu(source)))
    session = runner.open_session("rtl", obj, None, simulator="amaranth")
    with pytest.raises(DriverError, match="no map named 'nope'"):
        session.apply_map_init({"maps": {"nope": {}}})
    session.close()


def test_rtl_names_bad_map_init(tmp_path, capsys):
    """A map-init value that is not hex is named, with its map and key, by the command line (no traceback)."""
    from bpfnic.sw.compile import compile_c, example_mcpu
    source = EXAMPLES / "xdp_firewall.c"
    obj_path = compile_c(source, tmp_path / "fw.o", mcpu=example_mcpu(source))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"maps": {"blocked": {"c000024200160600": "zz"}}}))
    status = cli.main(["run", str(obj_path), "--pcap", str(EXAMPLES / "pcap" / "xdp_firewall.pcap"),
                       "--backend", "rtl", "--simulator", "amaranth", "--map-init", str(bad)])
    assert status != 0
    assert "map blocked: key c000024200160600: 'zz' is not hex bytes" in capsys.readouterr().err
