"""Thin HTTP: one package per area; each validates, calls one domain operation, renders."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Mount every area's blueprint."""
    from blueprints.auth.routes import bp as auth
    from blueprints.billing import register as register_billing
    from blueprints.core.routes import bp as core

    app.register_blueprint(core)
    app.register_blueprint(auth)
    register_billing(app)
