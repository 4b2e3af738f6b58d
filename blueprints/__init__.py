"""Thin HTTP: one package per area; each validates, calls one domain operation, renders."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Mount every area's blueprint."""
    from blueprints.auth.routes import bp as auth
    from blueprints.core.routes import bp as core
    from blueprints.profile.routes import bp as profile

    app.register_blueprint(core)
    app.register_blueprint(auth)
    app.register_blueprint(profile)
