"""Billing pages: cards, app access, checkout, the payments registry, tariffs, the sandbox bank."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Mount the billing pages, the manager's settings and the sandbox bank."""
    from blueprints.billing import manage  # noqa: F401 — adds the manager's routes to bp
    from blueprints.billing.bank import bp as bank
    from blueprints.billing.routes import bp

    app.register_blueprint(bp)
    app.register_blueprint(bank)
