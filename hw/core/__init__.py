"""The eBPF processor core (Amaranth)."""
