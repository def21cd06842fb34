"""MACs, packet buffers, map memories, helper units and the NIC top level (Amaranth)."""
