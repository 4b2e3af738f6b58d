"""Admin: see routes.py."""
