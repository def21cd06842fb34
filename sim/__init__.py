"""Simulation backends and co-simulation glue."""
