"""bpfnic: an open SmartNIC that runs eBPF/XDP programs in hardware.

The package maps onto the design's folders: `bpfnic.sw` (ISA, assembler, golden VM,
loader, verifier, driver), `bpfnic.hw` (Amaranth RTL), `bpfnic.sim` (simulation glue).
"""

__version__ = "0.1.0"
