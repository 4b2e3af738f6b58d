"""Thin HTTP: one package per area; each validates, calls one domain operation, renders."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Mount every area's blueprint."""
    from blueprints.auth.routes import bp as auth
    from blueprints.core.routes import bp as core
    from blueprints.passes.routes import bp as passes
    from blueprints.profile.routes import bp as profile

    for blueprint in (core, auth, profile, passes):
        app.register_blueprint(blueprint)
