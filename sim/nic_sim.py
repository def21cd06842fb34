"""The whole NIC (hw/pipeline/nic.py) under amaranth.sim, driven from the host side, and `RtlTransport`: the
driver's transport (sw/transport.py) onto it.

`NicSimulation` keeps one simulation alive: frames enter through a port's RX MAC as GMII bursts (IEEE 802.3
clause 35, encoded by hw/pipeline/mac_model.py), what the TX ports put on GMII is recorded, and host commands
(loading, counters, maps, the host queue, the trace queue) run through the CSR register bus with the async
`CsrDriver` of hw/pipeline/csr.py. The simulation advances only while a host command runs, so an idle session
costs nothing.

Clocks: the NIC at 100 MHz (the core's target on the ECP5), each port's receive clock and the transmit clock at
125 MHz (GMII), with different phases.
"""

from __future__ import annotations

from collections import deque
from typing import Awaitable, Callable

from amaranth.sim import Simulator

from bpfnic.hw.pipeline import mac_model
from bpfnic.hw.pipeline.csr import STATUS_DISPATCHER_IDLE, CsrDriver, Reg, SimulatedBus
from bpfnic.hw.pipeline.nic import Nic, NicConfig, NicConfigError, load_object
from bpfnic.sw import xdp
from bpfnic.sw.driver import VERDICT_NAMES
from bpfnic.sw.transport import Transport, TransportError

VERDICT_COUNTERS = [f"verdict.{name}" for name in VERDICT_NAMES]
VERDICT_ACTIONS = dict(zip(VERDICT_COUNTERS, (xdp.XDP_ABORTED, xdp.XDP_DROP, xdp.XDP_PASS, xdp.XDP_TX,
                                              xdp.XDP_REDIRECT)))
PHY_PERIOD = 8e-9
NIC_CLOCK_HZ = 100e6
FCS_BYTES = 4


class NicSimulationError(Exception):
    """The simulated NIC did not do what the host waited for (it hung, or a command failed), named."""


class NicSimulation:
    """One simulated NIC with an object loaded through the CSR. Host-side methods run CSR commands and advance
    the simulation until they finish; `send` queues GMII bursts that flow while any command runs."""

    def __init__(self, obj=None, *, section: str | None = None, map_init: dict | None = None,
                 config: NicConfig | None = None, config_parameters: dict | None = None):
        """With `obj`, the object is loaded through the CSR before this returns; without, the NIC (built with
        `config`) starts empty and the host loads it."""
        if obj is None and config is None:
            raise NicConfigError("NicSimulation: give the object to build the NIC for, or its NicConfig")
        self.obj = obj
        self.config = config or NicConfig.for_object(obj, **(config_parameters or {}))
        self.dut = Nic(self.config)
        self.cycle = 0                                   # NIC clock cycles since the start
        self.tx_samples: dict[int, list] = {port: [] for port in range(self.config.ports)}
        self.frames_queued = 0                           # frames sent into the RX MACs or injected
        self.most_slots_in_use = 0
        self._rx_samples = {port: deque() for port in range(self.config.ports)}
        self._commands: deque = deque()
        self._closed = False

        sim = Simulator(self.dut)
        sim.add_clock(1 / NIC_CLOCK_HZ)
        for port in range(self.config.ports):
            sim.add_clock(PHY_PERIOD, domain=f"gmii_rx{port}", phase=PHY_PERIOD * (0.13 + 0.29 * port))
            sim.add_testbench(self._sender(port), background=True)
            sim.add_testbench(self._monitor(port), background=True)
        sim.add_clock(PHY_PERIOD, domain="gmii_tx", phase=PHY_PERIOD * 0.71)
        sim.add_testbench(self._count_cycles, background=True)
        sim.add_testbench(self._host)
        self._sim = sim
        self.loaded = None if obj is None else self.call(
            lambda driver, bus: load_object(driver, self.config, obj, section, map_init=map_init))

    # -- testbenches ---------------------------------------------------------------------------------------------
    def _sender(self, port: int):
        domain = f"gmii_rx{port}"
        rx = self.dut.gmii(port).rx
        queue = self._rx_samples[port]

        async def bench(ctx):
            while True:
                data, dv, er = queue.popleft() if queue else (0, 0, 0)
                ctx.set(rx.data, data)
                ctx.set(rx.dv, dv)
                ctx.set(rx.er, er)
                await ctx.tick(domain)
        return bench

    def _monitor(self, port: int):
        tx = self.dut.gmii(port).tx
        samples = self.tx_samples[port]

        async def bench(ctx):
            while True:
                _, _, enable, data, error = await ctx.tick("gmii_tx").sample(tx.en, tx.data, tx.er)
                if enable or (samples and samples[-1][1]):
                    samples.append((data, enable, error))
        return bench

    async def _count_cycles(self, ctx):
        while True:
            await ctx.tick()
            self.cycle += 1

    async def _host(self, ctx):
        bus = SimulatedBus(ctx, self.dut.csr)
        driver = CsrDriver(bus.read, bus.write, self.dut.counter_names)
        self._ctx = ctx
        while not self._closed:
            if not self._commands:
                await ctx.tick()
                continue
            function, box = self._commands.popleft()
            try:
                box.append((True, await function(driver, bus)))
            except Exception as error:      # handed to the caller of `call`, outside the simulator
                box.append((False, error))

    # -- the host side -------------------------------------------------------------------------------------------
    def call(self, function: Callable[[CsrDriver, SimulatedBus], Awaitable]):
        """Run `function(driver, bus)` (async) in the host testbench; its result, or its exception raised."""
        if self._closed:
            raise NicSimulationError("the NIC simulation is closed")
        box: list = []
        self._commands.append((function, box))
        while not box:
            self._sim.advance()
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def send(self, port: int, bursts: list[mac_model.WireFrame]) -> None:
        """Queue GMII bursts into port `port`'s RX MAC; they go out while commands run."""
        samples = mac_model.gmii_samples(bursts)
        self.frames_queued += len(mac_model.decode_gmii(samples))
        self._rx_samples[port].extend(samples)

    def inject(self, frame: bytes, port: int) -> None:
        """A frame into the NIC through the CSR, as if it arrived on `port`."""
        self.call(lambda driver, bus: driver.inject_frame(frame, port))
        self.frames_queued += 1

    def wait_processed(self, cycle_limit: int = 20_000, *, injected: int = 0) -> None:
        """Wait until every queued frame left its RX MAC and reached a verdict (or a MAC's drop) and the
        dispatcher is idle. Raises NicSimulationError when that takes `cycle_limit` cycles after the last
        frame was sent. `injected`: how many of the queued frames came in through the CSR."""
        config = self.config
        rx_counters = [f"port{p}.rx_{n}" for p in range(config.ports) for n in mac_model.RX_COUNTER_OF_STATUS.values()]

        async def wait(driver, bus):
            finished_sending = None
            while True:
                if not any(self._rx_samples.values()):
                    finished_sending = finished_sending or self.cycle
                    seen = injected
                    for name in rx_counters:
                        seen += await driver.counter(name)
                    stored = verdicts = 0
                    buffered = True      # every good frame is in the buffer or counted as dropped by it
                    for port in range(config.ports):
                        port_stored = await driver.counter(f"port{port}.buffer_stored")
                        stored += port_stored
                        accounted = port_stored
                        for name in ("dropped_buffer_full", "dropped_too_long"):
                            accounted += await driver.counter(f"port{port}.{name}")
                        buffered &= accounted >= await driver.counter(f"port{port}.rx_frames_ok")
                    for name in VERDICT_COUNTERS:
                        verdicts += await driver.counter(name)
                    status = await bus.read(Reg.STATUS)
                    if (seen >= self.frames_queued and buffered and verdicts == stored
                            and status & STATUS_DISPATCHER_IDLE):
                        return
                    if self.cycle - finished_sending >= cycle_limit:
                        raise NicSimulationError(
                            f"the NIC did not finish {cycle_limit} cycles after the last frame: status 0x{status:x}, "
                            f"buffer 0x{await bus.read(Reg.BUFFER):x}, counters {await driver.counters()}")
                else:
                    # while traffic flows: how many slots hold frames at most (a growing backlog means the NIC
                    # is slower than the line)
                    in_use = config.slots - (await bus.read(Reg.BUFFER) >> 16)
                    self.most_slots_in_use = max(self.most_slots_in_use, in_use)
                await self._ctx.tick()
        self.call(wait)

    def run_cycles(self, cycles: int) -> None:
        async def run(driver, bus):
            for _ in range(cycles):
                await self._ctx.tick()
        self.call(run)

    def wait_tx_idle(self, port: int, mark: int, cycle_limit: int = 20_000) -> None:
        """Wait until port `port` has put a whole frame on GMII after sample `mark` (its enable fell)."""
        samples = self.tx_samples[port]

        async def wait(driver, bus):
            start = self.cycle
            while not (len(samples) > mark and not samples[-1][1]):
                if self.cycle - start >= cycle_limit:
                    raise NicSimulationError(f"port {port} did not finish sending a frame in {cycle_limit} cycles")
                await self._ctx.tick()
        self.call(wait)

    def wait_tx_outcome(self, port: int, counters: dict[str, int], cycle_limit: int = 20_000) -> str:
        """After a frame went to port `port`'s TX MAC: which of its counters (tx_frames_ok, tx_oversize,
        tx_malformed) moved past `counters`, waiting for one to."""
        names = [f"port{port}.{name}" for name in ("tx_frames_ok", "tx_oversize", "tx_malformed")]

        async def wait(driver, bus):
            start = self.cycle
            while True:
                for name in names:
                    if await driver.counter(name) != counters[name]:
                        return name.split(".", 1)[1]
                if self.cycle - start >= cycle_limit:
                    raise NicSimulationError(f"port {port}'s TX MAC counted no outcome in {cycle_limit} cycles")
                for _ in range(16):
                    await self._ctx.tick()
        return self.call(wait)

    def transmitted(self, port: int, start: int = 0) -> list[mac_model.DecodedFrame]:
        """The frames port `port` put on GMII (octets after the SFD, FCS included), from sample `start`."""
        return mac_model.decode_gmii(self.tx_samples[port][start:] + [(0, 0, 0)])

    def counters(self) -> dict[str, int]:
        return self.call(lambda driver, bus: driver.counters())

    def host_frames(self) -> list[tuple[bytes, int]]:
        """Every frame waiting in the host queue, with its info byte (the ingress port), read out."""
        async def read(driver, bus):
            frames = []
            while (got := await driver.receive_frame()) is not None:
                frames.append(got)
            return frames
        return self.call(read)

    def trace_words(self) -> list[int]:
        """The words of every trace_printk record waiting in the trace queue, read out."""
        async def read(driver, bus):
            words = []
            while (record := await driver.read_trace_record()) is not None:
                words += record
            return words
        return self.call(read)

    def status(self) -> int:
        return self.call(lambda driver, bus: bus.read(Reg.STATUS))

    def map_lookup(self, index: int, key: bytes, value_bytes: int | None = None) -> bytes | None:
        """The value at `key` of map `index` (its first `value_bytes`, default the map's value size), or None."""
        size = value_bytes or self.config.maps.slots[index].value_size
        rc, value = self.call(lambda driver, bus: driver.map_lookup(index, key, size))
        return value

    def close(self) -> None:
        """End the simulation (the host testbench returns)."""
        if self._closed:
            return
        self._closed = True
        while self._sim.advance():
            pass


class RtlTransport(Transport):
    """The RTL NIC under amaranth.sim as a driver transport (sw/transport.py): every register access is one host
    command of a `NicSimulation` built empty with `config`."""

    name = "rtl"

    def __init__(self, config: NicConfig):
        self._nic = NicSimulation(config=config)
        self._taken = {port: 0 for port in range(config.ports)}     # TX samples already handed out

    @property
    def config(self) -> NicConfig:
        return self._nic.config

    @property
    def simulation(self) -> NicSimulation:
        return self._nic

    def _checked(self):
        if self._nic._closed:
            raise TransportError("the amaranth.sim NIC is closed")
        return self._nic

    def read(self, address: int) -> int:
        return self._checked().call(lambda driver, bus: bus.read(address))

    def write(self, address: int, value: int) -> None:
        self._checked().call(lambda driver, bus: bus.write(address, value))

    def read_many(self, addresses) -> list[int]:
        async def read_all(driver, bus):
            return [await bus.read(address) for address in addresses]
        return self._checked().call(read_all)

    def execute(self, operation, *arguments, counter_names=()):
        # the whole register sequence in one host command of the simulation
        return self._checked().call(lambda driver, bus: operation(driver, *arguments))

    def send(self, port: int, bursts) -> None:
        if not 0 <= port < self.config.ports:
            raise TransportError(f"port {port}: the NIC has ports 0..{self.config.ports - 1}")
        self._checked().send(port, list(bursts))

    def take_transmitted(self, port: int) -> list:
        samples = self._checked().tx_samples[port]
        # up to the end of the last whole frame: the sample after a frame's last octet has enable low
        end = len(samples)
        while end > self._taken[port] and samples[end - 1][1]:
            end -= 1
        frames = mac_model.decode_gmii(samples[self._taken[port]:end])
        self._taken[port] = end
        return frames

    def wire_busy(self) -> bool:
        return any(self._checked()._rx_samples.values())

    def run(self, cycles: int) -> None:
        self._checked().run_cycles(cycles)

    @property
    def cycle(self) -> int:
        return self._nic.cycle

    def close(self) -> None:
        self._nic.close()
