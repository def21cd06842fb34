"""Amaranth hardware: the eBPF core (`core`) and the NIC around it (`pipeline`)."""
