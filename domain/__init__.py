"""Propusk's model and its rules: one module per area, no Flask request state."""
