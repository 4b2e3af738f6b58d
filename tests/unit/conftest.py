"""Fixtures of the unit tests that talk to a database of their own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from domain.db import open_database
from tests import database as test_database


@pytest.fixture(params=["sqlite", "postgresql"])
def scratch(request, tmp_path):
    """Factory: a new connection to one empty database, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'scratch.db'}"
    else:
        url = test_database.cluster().create_database()
    opened = []

    def connect():
        opened.append(open_database(url, pooled=False))
        return opened[-1]

    yield connect
    for database in opened:
        database.close()


@contextmanager
def garden(database: Any) -> Iterator[tuple[list, Any, Any]]:
    """A database of every table with a kindergarten and one parent in it, the models bound
    to it: what a migration test fills the old way before it drops a step's columns.
    Yields (models, territory, parent)."""
    from domain.accounts import Account
    from domain.schema import app_models
    from domain.territories import Territory

    models = app_models()
    with database.bind_ctx(models):
        database.create_tables(models)
        territory = Territory.create(code="123456", name="Сад", kind="kindergarten")
        yield models, territory, Account.create(phone="+79990001122")
