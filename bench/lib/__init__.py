"""Helpers the benches share (not benches themselves: `make bench` runs bench/*.py only)."""
