"""The indexes the hot queries rely on (bench/queries.py): present on a fresh database and
added to an older one by its upgrade step."""

from __future__ import annotations

import pytest

from domain.db import db
from domain.schema import SchemaVersion, upgrade
from tests import database as test_database

LIST_ORDER = ("territory_id", "created_at", "id")


def _index_columns(table: str) -> set[tuple[str, ...]]:
    return {tuple(i.columns) for i in db.get_indexes(table)}


@pytest.fixture
def own_app(tmp_path):
    """An app on a database of its own: these tests drop and rebuild indexes."""
    from app import create_app

    app = create_app({"TESTING": True, "SECRET_KEY": "x",
                      "INSTANCE_PATH": str(tmp_path / "instance"),
                      "DATABASE_URL": test_database.fresh_url(tmp_path)})
    with app.app_context():
        upgrade()
    yield app
    db.close()


def test_fresh_database_has_the_hot_query_indexes(own_app):
    app = own_app
    with app.app_context():
        passes = _index_columns("vehicle_pass")
        assert {("territory_id", "plate"), ("territory_id", "account_id"), LIST_ORDER} <= passes
        events = _index_columns("gate_event")
        assert {("territory_id", "id"), ("territory_id", "at")} <= events


def test_upgrade_adds_the_list_index_to_an_older_database(own_app):
    app = own_app
    with app.app_context():
        for index in db.get_indexes("vehicle_pass"):
            if tuple(index.columns) == LIST_ORDER:
                db.execute_sql(f'DROP INDEX "{index.name}"')
        for index in db.get_indexes("gate_event"):
            if tuple(index.columns) == ("territory_id", "at"):
                db.execute_sql(f'DROP INDEX "{index.name}"')
        SchemaVersion.delete().where(SchemaVersion.version.in_([2, 3])).execute()
        assert LIST_ORDER not in _index_columns("vehicle_pass")
        assert upgrade() == [2, 3]
        assert LIST_ORDER in _index_columns("vehicle_pass")
        assert ("territory_id", "at") in _index_columns("gate_event")
        assert upgrade() == []  # stamped: never again
