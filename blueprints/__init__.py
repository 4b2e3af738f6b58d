"""Thin HTTP: one package per area; each validates, calls one domain operation, renders."""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import IntegerConverter, Map

# The largest id the databases hold (a signed 64-bit integer).
ID_MAX = 2**63 - 1


class DatabaseId(IntegerConverter):
    """`<int:…>` of every route: a number the databases can hold as an id (SQLite refused a
    longer one with OverflowError, a 500; now such an address is no page, 404)."""

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = ID_MAX, signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def register_blueprints(app: Flask) -> None:
    """Mount every area's blueprint."""
    app.url_map.converters["int"] = DatabaseId
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
