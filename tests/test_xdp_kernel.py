"""The XDP examples on the golden VM (sw/xdp.py) and in the Linux kernel (sw/kernel_backend.py), compared.

The kernel is the oracle for the VM (STYLE.md, "What we take" 6): every `examples/*.c`, compiled with the
`-mcpu` its `// bpfnic: mcpu=vN` line asks for (default v3), runs its packets from `examples/packets.py`
(after its map-init, if it has one) through `XdpSession` and through `KernelSession` (BPF_PROG_LOAD and
BPF_PROG_TEST_RUN of include/uapi/linux/bpf.h), one packet after the other so map state carries over.
Compared: the verdict and output bytes of every packet, and every map before and after the packets.

What cannot be compared, and what is compared instead:
- the redirect target: the kernel's test run returns XDP_REDIRECT without saying where to; the verdicts
  are compared, and the kernel's result must say "unknown" (None) rather than guess;
- bpf_trace_printk output: the kernel writes it to its trace buffer, which the backend does not read;
- per-CPU values: the VM has one CPU, the kernel all its possible CPUs; the kernel runs the program on
  CPU 0, so the VM's value is compared with CPU 0's and every other CPU's value must be zero;
- bpf_ktime_get_ns / bpf_get_prandom_u32 (another clock, another generator): for a program calling them,
  only verdicts, packet lengths and map keys are compared. No example calls them today.

The rest of the file checks the kernel backend itself with small hand-written programs: its errors
(a program the verifier refuses, a map the kernel refuses, bad map-init entries and packets), metadata
stripping, CPU pinning and closing.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from bpfnic.sw import asm, elf_loader
from bpfnic.sw import kernel_bpf as kb
from bpfnic.sw.compile import compile_c, example_mcpu
from bpfnic.sw.elf_loader import BpfObject, MapDef, ProgramDef
from bpfnic.sw.kernel_backend import KernelBackendError, KernelSession, kernel_object_name, verifier_reason
from bpfnic.sw.xdp import XDP_DROP, XDP_PASS, XDP_REDIRECT, XdpSession

requires_bpf = [
    pytest.mark.kernel,
    pytest.mark.skipif(kb.bpf_unavailable_reason() is not None, reason=kb.bpf_unavailable_reason() or ""),
]

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_SOURCES = sorted(EXAMPLES_DIR.glob("*.c"))

# Helpers whose results differ between the VM and the kernel by nature (enum bpf_func_id).
CLOCK_AND_RANDOM_HELPERS = {5: "bpf_ktime_get_ns", 7: "bpf_get_prandom_u32", 125: "bpf_ktime_get_boot_ns"}


@functools.cache
def example_packets():
    """examples/packets.py, which is a script beside the examples rather than a package module."""
    spec = importlib.util.spec_from_file_location("bpfnic_example_packets", EXAMPLES_DIR / "packets.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def example_map_init(name: str) -> dict | None:
    """The example's map-init: its committed `NAME.maps.json` if there is one, else the same JSON text
    that examples/packets.py would write."""
    committed = EXAMPLES_DIR / f"{name}.maps.json"
    if committed.is_file():
        return json.loads(committed.read_text())
    packets = example_packets()
    return json.loads(packets.map_init_json(name)) if name in packets.MAP_INITS else None


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("kernel_examples")


def clock_or_random_helpers(obj: BpfObject) -> list[str]:
    used = set()
    for program_def in obj.programs.values():
        for _, insn in program_def.insns.instructions():
            if insn.opcode == 0x85 and insn.src == 0 and insn.imm in CLOCK_AND_RANDOM_HELPERS:
                used.add(CLOCK_AND_RANDOM_HELPERS[insn.imm])
    return sorted(used)


def map_differences(vm_maps: dict, kernel_maps: dict, ncpus: int, keys_only: bool) -> list[str]:
    """What differs between the two dumps, one line each (per-CPU rule: see the module docstring)."""
    problems = []
    if set(vm_maps) != set(kernel_maps):
        return [f"map names differ: VM {sorted(vm_maps)}, kernel {sorted(kernel_maps)}"]
    for name, vm_contents in vm_maps.items():
        kernel_contents = kernel_maps[name]
        for key in sorted(set(vm_contents) - set(kernel_contents)):
            problems.append(f"map {name}: key {key} only on the VM ({vm_contents[key]})")
        for key in sorted(set(kernel_contents) - set(vm_contents)):
            problems.append(f"map {name}: key {key} only in the kernel ({kernel_contents[key]})")
        if keys_only:
            continue
        for key in sorted(set(vm_contents) & set(kernel_contents)):
            vm_value, kernel_value = vm_contents[key], kernel_contents[key]
            if isinstance(vm_value, list):
                if not isinstance(kernel_value, list) or len(kernel_value) != ncpus:
                    problems.append(f"map {name}: key {key}: kernel value {kernel_value} is not {ncpus} "
                                    f"per-CPU values")
                    continue
                if vm_value[0] != kernel_value[0]:
                    problems.append(f"map {name}: key {key}: CPU 0: VM {vm_value[0]}, kernel {kernel_value[0]}")
                for cpu, value in enumerate(kernel_value[1:], start=1):
                    if value.strip("0"):
                        problems.append(f"map {name}: key {key}: kernel CPU {cpu} holds {value}, but the "
                                        f"program ran on CPU 0 only")
            elif vm_value != kernel_value:
                problems.append(f"map {name}: key {key}: VM {vm_value}, kernel {kernel_value}")
    return problems


def packet_difference(description: str, index: int, vm_result, kernel_result, lengths_only: bool) -> str | None:
    where = f"packet {index} ({description})"
    if vm_result.action != kernel_result.action:
        fault = f" [VM fault: {vm_result.fault}]" if vm_result.fault else ""
        return f"{where}: VM {vm_result.verdict} ({vm_result.action}), kernel {kernel_result.verdict} " \
               f"({kernel_result.action}){fault}"
    if len(vm_result.data) != len(kernel_result.data):
        return f"{where}: VM output {len(vm_result.data)} bytes, kernel {len(kernel_result.data)} bytes"
    if not lengths_only and vm_result.data != kernel_result.data:
        first = next(i for i, (a, b) in enumerate(zip(vm_result.data, kernel_result.data)) if a != b)
        return f"{where}: output differs first at byte {first}: VM {vm_result.data[first:first + 8].hex()}, " \
               f"kernel {kernel_result.data[first:first + 8].hex()}"
    return None


@pytest.mark.parametrize("source", EXAMPLE_SOURCES, ids=lambda path: path.stem)
@pytest.mark.kernel
@pytest.mark.skipif(kb.bpf_unavailable_reason() is not None, reason=kb.bpf_unavailable_reason() or "")
def test_example_on_vm_and_kernel(source: Path, build_dir: Path):
    name = source.stem
    packets = example_packets()
    if name not in packets.PACKETS:
        pytest.fail(f"{source.name} has no test packets: add {name}_packets() to PACKETS in examples/packets.py")
    obj = elf_loader.load_object(compile_c(source, build_dir / f"{name}.o", example_mcpu(source)))
    nondeterministic = clock_or_random_helpers(obj)  # see the module docstring
    init = example_map_init(name)
    vm = XdpSession(obj)
    with KernelSession(obj) as kernel:
        if init is not None:
            vm.apply_map_init(init)
            kernel.apply_map_init(init)
        problems = [f"before the packets: {line}" for line in
                    map_differences(vm.dump_maps(), kernel.dump_maps(), kernel.ncpus, bool(nondeterministic))]
        for index, example_packet in enumerate(packets.PACKETS[name]()):
            vm_result = vm.run_packet(example_packet.data, index)
            kernel_result = kernel.run_packet(example_packet.data, index)
            difference = packet_difference(example_packet.description, index, vm_result, kernel_result,
                                           bool(nondeterministic))
            if difference:
                problems.append(difference)
            # The kernel cannot tell the redirect target; it must not pretend to.
            assert kernel_result.redirect is None
            if vm_result.action == XDP_REDIRECT:
                assert vm_result.redirect is not None, f"packet {index}: the VM redirected without a target"
        problems += [f"after the packets: {line}" for line in
                     map_differences(vm.dump_maps(), kernel.dump_maps(), kernel.ncpus, bool(nondeterministic))]
    assert not problems, f"{source.name} (-mcpu={example_mcpu(source)}), VM against kernel:\n" + "\n".join(problems)


# -- the backend itself, with hand-written programs -----------------------------------------------------

def handmade(programs: dict[str, str], maps: list[MapDef] = (), license: str | None = "GPL",
             path: str = "handmade.o") -> BpfObject:
    """An object as the ELF loader would give it: programs (section -> assembly) and maps."""
    defs = {}
    for section, text in programs.items():
        function = section.replace("/", "_").replace(".", "_") + "_prog"
        defs[section] = ProgramDef(function, section, asm.assemble(text, f"{path}:{section}"))
    maps = list(maps)
    for index, definition in enumerate(maps):
        definition.index = index
    return BpfObject(path, defs, {p.name: p for p in defs.values()}, maps, {m.name: m for m in maps}, license)


FRAME = bytes.fromhex("020000000002020000000001") + b"\x88\xb5" + bytes(range(46))  # 60 octets

PASS_PROGRAM = "mov %r0, 2\nexit"


def test_kernel_object_name():
    assert kernel_object_name("ethertype_packets") == "ethertype_packe"
    assert kernel_object_name("my-map!") == "my_map_"
    assert kernel_object_name(".rodata.str1.1") == ".rodata.str1.1"


def test_verifier_reason_picks_the_complaint():
    log = ("func#0 @0\n"
           "0: R1=ctx() R10=fp0\n"
           "0: (61) r2 = *(u32 *)(r1 +0)         ; R1=ctx() R2_w=pkt(r=0)\n"
           "1: (71) r0 = *(u8 *)(r2 +0)\n"
           "invalid access to packet, off=0 size=1, R2(id=0,off=0,r=0)\n"
           "R2 offset is outside of the packet\n"
           "processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n")
    assert verifier_reason(log) == ("instruction 1 (r0 = *(u8 *)(r2 +0)): invalid access to packet, off=0 "
                                    "size=1, R2(id=0,off=0,r=0); R2 offset is outside of the packet")
    assert verifier_reason("") == ""


class TestKernelBackend:
    pytestmark = requires_bpf

    def test_verifier_refusal_is_one_line_naming_object_section_and_reason(self):
        unchecked_read = "ldxw %r2, [%r1+0]\nldxb %r0, [%r2+0]\nexit"  # no data_end check
        with pytest.raises(KernelBackendError) as caught:
            KernelSession(handmade({"xdp": unchecked_read}, path="unchecked.o"))
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith("unchecked.o: section xdp: the kernel refused program xdp_prog: instruction 1")
        assert "packet" in message

    def test_license_reaches_the_kernel(self):
        printk = "mov %r1, %r10\nadd %r1, -8\nstdw [%r10-8], 0\nmov %r2, 8\ncall 6\nmov %r0, 2\nexit"
        KernelSession(handmade({"xdp": printk}, license="Dual BSD/GPL")).close()
        with pytest.raises(KernelBackendError, match="GPL"):
            KernelSession(handmade({"xdp": printk}, license="Proprietary"))

    def test_refused_map_names_the_map(self):
        unknown_type = MapDef("weird_map", 9999, 4, 4, 1)
        with pytest.raises(KernelBackendError, match=r"^handmade.o: map weird_map: the kernel refused to "
                                                     r"create it \(type 9999, .*EINVAL"):
            KernelSession(handmade({"xdp": PASS_PROGRAM}, [unknown_type]))
        zero_key_hash = MapDef("zero_key", kb.BPF_MAP_TYPE_HASH, 0, 8, 4)
        with pytest.raises(KernelBackendError, match=r"map zero_key: .*\(hash, key 0 B"):
            KernelSession(handmade({"xdp": PASS_PROGRAM}, [zero_key_hash]))

    def test_long_map_names_are_shortened_for_the_kernel_only(self):
        counters = MapDef("a_rather_long_counter_map_name", kb.BPF_MAP_TYPE_ARRAY, 4, 8, 2)
        with KernelSession(handmade({"xdp": PASS_PROGRAM}, [counters])) as kernel:
            kernel.apply_map_init({"maps": {"a_rather_long_counter_map_name": {"01000000": "2a00000000000000"}}})
            assert kernel.dump_maps() == {"a_rather_long_counter_map_name": {
                "00000000": "0000000000000000", "01000000": "2a00000000000000"}}

    def test_rodata_is_frozen_and_read_only_to_programs(self):
        rodata = MapDef("handmade.rodata", kb.BPF_MAP_TYPE_ARRAY, 4, 4, 1, initial_data=b"\x07\x00\x00\x00",
                        readonly=True, section=".rodata")
        store_into_rodata = "lddw %r1, map_idx_value 0+0\nstw [%r1], 1\nmov %r0, 2\nexit"
        with pytest.raises(KernelBackendError, match="section xdp: the kernel refused program xdp_prog: "
                                                     "instruction 2"):
            KernelSession(handmade({"xdp": store_into_rodata}, [rodata]))
        # A program returning the .rodata word: the verifier knows it (frozen), the run returns it.
        load_rodata = "lddw %r1, map_idx_value 0+0\nldxw %r0, [%r1]\nexit"
        with KernelSession(handmade({"xdp": load_rodata}, [rodata])) as kernel:
            assert kernel.run_packet(FRAME).action == 7
            with pytest.raises(KernelBackendError, match=r"map-init: map handmade.rodata: key 00000000: the "
                                                         r"kernel refused the update: EPERM .*read-only"):
                kernel.apply_map_init({"maps": {"handmade.rodata": {"00000000": "01000000"}}})
            assert kernel.dump_maps() == {"handmade.rodata": {"00000000": "07000000"}}

    def test_map_init_errors_name_map_key_and_reason(self):
        maps = [MapDef("ports", kb.BPF_MAP_TYPE_DEVMAP, 4, 4, 4),
                MapDef("counts", kb.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 4),
                MapDef("table", kb.BPF_MAP_TYPE_ARRAY, 4, 8, 4)]
        with KernelSession(handmade({"xdp": PASS_PROGRAM}, maps)) as kernel:
            cases = [
                ({"nosuch": {}}, r"map-init: no map named 'nosuch' \(maps: ports, counts, table\)"),
                ({"ports": {"00000000": "f0ffff7f"}},
                 r"map-init: map ports: key 00000000: the kernel refused the update: EINVAL .*ifindex 2147483632 "
                 r"names no network interface here.*loopback is 1"),
                ({"table": {"0000": "00" * 8}}, r"map table: key 0000: the key is 2 bytes, the map's key_size is 4"),
                ({"table": {"09000000": "00" * 8}}, r"key 09000000: the kernel refused the update: E2BIG .*index 9 is "
                                                   r"not below max_entries 4"),
                ({"table": {"00000000": "0102"}}, r"the value is 2 bytes, the map's value_size is 8"),
                ({"table": {"00000000": "zz"}}, r"'zz' is not hex"),
                ({"counts": {"00000000": ["00" * 8] * (kernel.ncpus + 1)}},
                 rf"{kernel.ncpus + 1} per-CPU values, but the kernel has {kernel.ncpus} possible CPUs"),
            ]
            for init, message in cases:
                with pytest.raises(KernelBackendError, match=message):
                    kernel.apply_map_init({"maps": init})
            kernel.apply_map_init({"maps": {"ports": {"02000000": "01000000"},
                                            "counts": {"01000000": ["0500000000000000"]}}})
            dump = kernel.dump_maps()
            assert dump["ports"] == {"02000000": "01000000"}
            assert dump["counts"]["01000000"] == ["0500000000000000"] + ["0000000000000000"] * (kernel.ncpus - 1)

    def test_prog_array_shows_sections_and_refuses_unknown_ones(self):
        jump = MapDef("jumps", kb.BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 2, initial_values={0: "xdp/second"})
        tail_call = "lddw %r2, map_idx 0\nmov %r3, 1\ncall 12\nmov %r0, 1\nexit"
        obj = handmade({"xdp": tail_call, "xdp/second": PASS_PROGRAM}, [jump])
        with KernelSession(obj) as kernel:
            assert kernel.dump_maps() == {"jumps": {"00000000": "xdp/second"}}
            assert kernel.run_packet(FRAME).action == XDP_DROP  # slot 1 is empty: the tail call falls through
            kernel.apply_map_init({"maps": {"jumps": {"01000000": "xdp/second"}}})
            assert kernel.run_packet(FRAME).action == XDP_PASS
            assert kernel.dump_maps() == {"jumps": {"00000000": "xdp/second", "01000000": "xdp/second"}}
            with pytest.raises(KernelBackendError, match=r"map-init: map jumps: key 01000000: .*no program "
                                                         r"'xdp/nosuch'"):
                kernel.apply_map_init({"maps": {"jumps": {"01000000": "xdp/nosuch"}}})

    def test_map_of_maps_holds_maps_by_name(self):
        # The golden VM has no maps of maps; the kernel backend fills them from initial values and map-init.
        template = MapDef("template", kb.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
        inner = MapDef("inner", kb.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
        outer = MapDef("outer", kb.BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 2, inner=template, initial_values={0: "inner"})
        return_inner_value = """
            lddw %r1, map_idx 1
            stw [%r10-4], 0
            mov %r2, %r10
            add %r2, -4
            call 1
            jeq %r0, 0, none
            mov %r1, %r0
            mov %r2, %r10
            add %r2, -4
            call 1
            jeq %r0, 0, none
            ldxw %r0, [%r0]
            exit
        none:
            mov %r0, 0
            exit
        """
        with KernelSession(handmade({"xdp": return_inner_value}, [inner, outer])) as kernel:
            kernel.apply_map_init({"maps": {"inner": {"00000000": "03000000"}, "outer": {"01000000": "inner"}}})
            assert kernel.run_packet(FRAME).action == 3
            assert kernel.dump_maps() == {"inner": {"00000000": "03000000"},
                                          "outer": {"00000000": "inner", "01000000": "inner"}}
            with pytest.raises(KernelBackendError, match=r"map-init: map outer: key 01000000: no map named 'nosuch'"):
                kernel.apply_map_init({"maps": {"outer": {"01000000": "nosuch"}}})

    def test_metadata_is_stripped_from_the_output(self):
        # Reserve 4 bytes of metadata, write them, pass: data_out starts with them, the result must not.
        with_metadata = """
            mov %r6, %r1
            mov %r2, -4
            call 54
            jne %r0, 0, fail
            ldxw %r2, [%r6+0]
            ldxw %r3, [%r6+8]
            mov %r4, %r3
            add %r4, 4
            jgt %r4, %r2, fail
            stw [%r3], 0x11223344
            mov %r0, 2
            exit
        fail:
            mov %r0, 0
            exit
        """
        obj = handmade({"xdp": with_metadata})
        with KernelSession(obj) as kernel:
            result = kernel.run_packet(FRAME)
            raw = kernel.program.test_run(FRAME, ctx=kb.XdpMd.for_packet(len(FRAME), 0, 1).pack())
        assert raw.data_out == bytes.fromhex("44332211") + FRAME  # the kernel's own output has the metadata
        assert (result.action, result.data) == (XDP_PASS, FRAME)
        vm_result = XdpSession(obj).run_packet(FRAME)
        assert (vm_result.action, vm_result.data) == (result.action, result.data)

    def test_runs_on_the_chosen_cpu_and_restores_affinity(self):
        smp_processor_id = "call 8\nexit"
        before = os.sched_getaffinity(0)
        with KernelSession(handmade({"xdp": smp_processor_id})) as kernel:
            assert kernel.run_packet(FRAME).action == 0
        assert os.sched_getaffinity(0) == before
        if kb.possible_cpus() > 1 and 1 in before:
            with KernelSession(handmade({"xdp": smp_processor_id}), cpu=1) as kernel:
                assert kernel.run_packet(FRAME).action == 1
            assert os.sched_getaffinity(0) == before
        with pytest.raises(KernelBackendError, match="cpu 4096 is not one of the kernel's"):
            KernelSession(handmade({"xdp": smp_processor_id}), cpu=4096)

    def test_bad_packets_are_named(self):
        with KernelSession(handmade({"xdp": PASS_PROGRAM})) as kernel:
            with pytest.raises(KernelBackendError, match=r"packet 3: frame of 13 bytes is shorter than an Ethernet"):
                kernel.run_packet(FRAME[:13], 3)
            with pytest.raises(KernelBackendError, match=r"packet 0: frame of 3521 bytes is larger than"):
                kernel.run_packet(bytes(3521))
            with pytest.raises(KernelBackendError, match=r"ENODEV.*ingress_ifindex 2147483632 names no network"):
                kernel.run_packet(FRAME, ingress_ifindex=0x7FFFFFF0)
            with pytest.raises(KernelBackendError, match=r"EINVAL.*rx_queue_index 4096"):
                kernel.run_packet(FRAME, rx_queue_index=4096)
            with pytest.raises(KernelBackendError, match=r"packet 0: ingress_ifindex must be a u32"):
                kernel.run_packet(FRAME, ingress_ifindex=-1)
            assert kernel.run_packet(bytes(3520)).data == bytes(3520)

    def test_closed_session_refuses_work(self):
        kernel = KernelSession(handmade({"xdp": PASS_PROGRAM}, [MapDef("m", kb.BPF_MAP_TYPE_ARRAY, 4, 4, 1)]))
        fds = [kernel.program.fd, kernel.maps[0].fd]
        kernel.close()
        for fd in fds:
            with pytest.raises(OSError):
                os.fstat(fd)  # released (no other test opens files meanwhile)
        for call in (lambda: kernel.run_packet(FRAME), kernel.dump_maps, lambda: kernel.apply_map_init({})):
            with pytest.raises(KernelBackendError, match="handmade.o: the kernel session is closed"):
                call()
