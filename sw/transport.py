"""How the driver (sw/driver.py) reaches a NIC: its register bus and its Ethernet wires.

A transport is the only part of the host software that differs between a software NIC, the RTL under
amaranth.sim, the RTL under cocotb with Verilator, and (later) a board: the driver above it is the same.
It offers
  - the CSR register bus of hw/pipeline/csr.py: 32-bit reads and writes at byte addresses;
  - the wires of the NIC's ports: GMII bursts (hw/pipeline/mac_model.WireFrame: preamble, SFD, frame and FCS
    octets, and the gap after) sent into a port's RX side, and the frames a port's TX side put on its wire;
  - time: `run(cycles)` lets the NIC run for that many NIC clock cycles (a software NIC has no time: it
    does all its work when a frame arrives or a register is written, and its clock stays at 0);
  - `config`: the build parameters of the NIC behind it (hw/pipeline/nic.NicConfig): ports, map slots and
    their sizes. This is the NIC's capability description, which the driver relocates objects onto.

Frames sent while another burst is still on a port's wire queue behind it, in order; a transport never drops a
burst it was given. Every method is synchronous: when it returns, its effect has happened on the device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence


class TransportError(RuntimeError):
    """The transport cannot reach its device (a simulator that stopped, a closed session), named."""


class Transport(ABC):
    #: a short name for messages and reports ("vm", "rtl", "verilator")
    name: str = "transport"

    @property
    @abstractmethod
    def config(self):
        """hw/pipeline/nic.NicConfig of the device."""

    @abstractmethod
    def read(self, address: int) -> int:
        """The 32-bit register at byte address `address`."""

    @abstractmethod
    def write(self, address: int, value: int) -> None:
        """Write a 32-bit register."""

    def read_many(self, addresses: Sequence[int]) -> list[int]:
        """Several registers in order (one round trip where the transport can batch them)."""
        return [self.read(address) for address in addresses]

    @abstractmethod
    def send(self, port: int, bursts: Sequence) -> None:
        """Queue GMII bursts (mac_model.WireFrame) onto port `port`'s receive wire."""

    @abstractmethod
    def take_transmitted(self, port: int) -> list:
        """The frames port `port` put on its transmit wire since the last call (mac_model.DecodedFrame:
        octets after the SFD, FCS included), taken."""

    @abstractmethod
    def wire_busy(self) -> bool:
        """Whether bursts are still waiting or going out on any receive wire."""

    @abstractmethod
    def run(self, cycles: int) -> None:
        """Let the device run for `cycles` NIC clock cycles."""

    @property
    @abstractmethod
    def cycle(self) -> int:
        """NIC clock cycles since the device started."""

    def execute(self, operation, *arguments, counter_names: Sequence[str] = ()):
        """Run `operation(csr, *arguments)`, an async function over hw/pipeline/csr.CsrDriver (a register sequence:
        a map walk, draining a queue), against the device and return its result. Here it runs register by
        register through `read`/`write`; a transport far from its device runs the whole sequence next to it in one
        round trip (VerilatorTransport: inside the simulator), so `operation` must then be a module-level function
        and its arguments and result picklable."""
        return complete(operation(csr_driver(self, counter_names), *arguments))

    def close(self) -> None:
        """End the session with the device (a simulator stops); further calls raise TransportError."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def complete(coroutine):
    """Run a coroutine whose awaits never suspend (hw/pipeline/csr.CsrDriver over `csr_driver`) to its end.

    The register-level driver code is async because it also runs inside simulators' testbenches; over a
    synchronous transport every await returns at once, so one `send` finishes it."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise TransportError("a driver operation waited on something the transport cannot give synchronously")


def csr_driver(transport: Transport, counter_names: Sequence[str] = ()):
    """hw/pipeline/csr.CsrDriver over a synchronous transport (run its operations with `complete`)."""
    from bpfnic.hw.pipeline.csr import CsrDriver

    async def read(address: int) -> int:
        return transport.read(address)

    async def write(address: int, value: int) -> None:
        transport.write(address, value)
    return CsrDriver(read, write, counter_names)
