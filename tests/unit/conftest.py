"""Fixtures of the unit tests that talk to a database of their own."""

from __future__ import annotations

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
