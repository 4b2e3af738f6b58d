"""Thin HTTP: one package per area; each validates, calls one domain operation, renders."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Mount every area's blueprint."""
    from blueprints.admin.routes import bp as admin
    from blueprints.auth.routes import bp as auth
    from blueprints.billing import register as register_billing
    from blueprints.core.routes import bp as core
    from blueprints.gates.routes import bp as gates
    from blueprints.manage.routes import bp as manage
    from blueprints.passes.routes import bp as passes
    from blueprints.profile.routes import bp as profile
    from blueprints.territories.routes import bp as territories

    for blueprint in (core, auth, profile, territories, manage, admin, passes, gates):
        app.register_blueprint(blueprint)
    register_billing(app)
