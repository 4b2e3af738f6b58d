"""Manage: see routes.py."""
