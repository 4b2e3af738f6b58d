"""Thin HTTP: one package per area; each validates, calls one domain operation, renders."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Mount every area's blueprint."""
    from blueprints.auth.routes import bp as auth
    from blueprints.core.routes import bp as core

    app.register_blueprint(core)
    app.register_blueprint(auth)
    from blueprints.admin.routes import bp as admin
    from blueprints.manage.routes import bp as manage
    from blueprints.territories.routes import bp as territories_bp

    app.register_blueprint(territories_bp)
    app.register_blueprint(manage)
    app.register_blueprint(admin)
