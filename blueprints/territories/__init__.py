"""Territories: see routes.py."""
