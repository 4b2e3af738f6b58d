"""domain/db.PostgresqlPool: no round trip for a connection just given back, still one for
an older idle connection, and a connection the server dropped never stays in the pool."""

from __future__ import annotations

import time

import pytest
from peewee import DatabaseError, InterfaceError, OperationalError
from playhouse.pool import PooledPostgresqlDatabase

from domain.db import PostgresqlPool, open_database
from tests import database

pytestmark = pytest.mark.skipif(not database.postgresql(), reason="PostgreSQL pass only")


@pytest.fixture
def pool(database_url):
    pool = open_database(database_url)
    assert isinstance(pool, PostgresqlPool)
    yield pool
    pool.close_all()


@pytest.fixture
def checks(monkeypatch):
    """Counts Peewee's own check of an idle connection (a SELECT 1 on the server)."""
    asked = []
    peewee_check = PooledPostgresqlDatabase._is_closed

    def counted(self, conn):
        asked.append(conn)
        return peewee_check(self, conn)

    monkeypatch.setattr(PooledPostgresqlDatabase, "_is_closed", counted)
    return asked


def _backend(pool) -> int:
    return pool.execute_sql("SELECT pg_backend_pid()").fetchone()[0]


def _terminate(url: str, pid: int) -> None:
    database.query(url, "SELECT pg_terminate_backend(?)", (pid,))


def test_a_connection_just_given_back_is_handed_out_without_a_round_trip(pool, checks):
    with pool.connection_context():
        first = _backend(pool)
    with pool.connection_context():
        assert _backend(pool) == first
    assert checks == []


def test_an_older_idle_connection_is_checked_and_a_dropped_one_replaced(
        pool, checks, database_url, monkeypatch):
    monkeypatch.setattr(pool, "RECENT", 0.05)
    with pool.connection_context():
        first = _backend(pool)
    _terminate(database_url, first)
    time.sleep(0.1)
    with pool.connection_context():
        assert _backend(pool) != first  # replaced before any request saw it
    assert len(checks) == 1


def test_a_connection_dropped_within_the_window_fails_once_and_leaves_the_pool(
        pool, database_url):
    with pool.connection_context():
        first = _backend(pool)
    _terminate(database_url, first)
    with pytest.raises((OperationalError, InterfaceError, DatabaseError)):
        with pool.connection_context():
            _backend(pool)
    with pool.connection_context():
        assert _backend(pool) != first
