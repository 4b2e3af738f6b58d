"""SQLite locked by another process: a write waits in gevent.sleep, so other greenlets run.

Before, SQLite's busy handler slept inside C for up to 5 s, and under gevent no greenlet
ran meanwhile: every gate of the bridge went unpolled while a CLI or a long web transaction
held the write lock. These tests hold the lock from a real second process on a real file
and count how often a ticking greenlet gets to run while a write waits for it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import gevent
import pytest
from peewee import OperationalError

from domain.db import open_database

pytestmark = pytest.mark.timing

TICK_S = 0.01

HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO t (v) VALUES ('holder')")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


@pytest.fixture
def sqlite_file(tmp_path) -> Iterator[tuple[str, object]]:
    """A WAL SQLite file with one table, opened as the app opens it (pooled=False)."""
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    database = open_database(url, pooled=False)
    database.connect()
    database.execute_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    yield str(tmp_path / "busy.db"), database
    database.close()


def hold_write_lock(path: str, seconds: float) -> subprocess.Popen:
    """Another process takes the write lock (BEGIN IMMEDIATE) and keeps it `seconds`."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, path, str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def run_beside_ticker(work) -> tuple[object, float, int]:
    """Run work() in a greenlet next to one that ticks every TICK_S: (outcome, s, ticks)."""
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        while True:
            gevent.sleep(TICK_S)
            ticks += 1

    ticker = gevent.spawn(tick)
    started = time.monotonic()
    job = gevent.spawn(work)
    job.join()
    took = time.monotonic() - started
    ticker.kill()
    outcome = job.exception if job.exception is not None else job.value
    return outcome, took, ticks


def test_a_transaction_waiting_for_the_lock_lets_other_greenlets_run(sqlite_file):
    path, database = sqlite_file
    holder = hold_write_lock(path, 1.0)

    def write() -> int:
        with database.atomic():  # BEGIN IMMEDIATE waits here
            database.execute_sql("INSERT INTO t (v) VALUES ('waiter')")
        return 1

    try:
        outcome, took, ticks = run_beside_ticker(write)
    finally:
        holder.communicate(timeout=10)
    assert outcome == 1
    assert 0.7 < took < 3.0, took
    # ~100 ticks if nothing blocks the hub; SQLite sleeping in C gave none.
    assert ticks >= took / TICK_S * 0.5, (ticks, took)
    rows = database.execute_sql("SELECT v FROM t ORDER BY id").fetchall()
    assert rows == [("holder",), ("waiter",)]


def test_a_statement_outside_a_transaction_waits_likewise(sqlite_file):
    path, database = sqlite_file
    holder = hold_write_lock(path, 1.0)
    try:
        outcome, took, ticks = run_beside_ticker(
            lambda: database.execute_sql("INSERT INTO t (v) VALUES ('alone')").rowcount)
    finally:
        holder.communicate(timeout=10)
    assert outcome == 1
    assert 0.7 < took < 3.0, took
    assert ticks >= took / TICK_S * 0.5, (ticks, took)


def test_past_the_limit_the_write_fails_cleanly_and_the_connection_goes_on(sqlite_file):
    path, database = sqlite_file
    database.busy_wait = 0.5  # the default is 5 s, as the busy timeout it replaces
    holder = hold_write_lock(path, 2.0)

    def write() -> None:
        with database.atomic():
            database.execute_sql("INSERT INTO t (v) VALUES ('late')")

    try:
        outcome, took, ticks = run_beside_ticker(write)
        assert isinstance(outcome, OperationalError) and "locked" in str(outcome), outcome
        assert 0.4 < took < 1.5, took
        assert ticks >= took / TICK_S * 0.5, (ticks, took)
        assert not database.in_transaction()
    finally:
        holder.communicate(timeout=10)
    write()  # the lock is free again: the same connection writes
    rows = database.execute_sql("SELECT v FROM t ORDER BY id").fetchall()
    assert rows == [("holder",), ("late",)]


def test_the_schema_upgrade_may_wait_on_the_server_without_limit(tmp_path):
    """python app.py and the bridge upgrade the schema under gevent at start; a step may run
    longer than PG_WAIT_S (an index on ten million events: 13 s), so there it has no limit."""
    from domain import db as database
    from domain.schema import SchemaVersion, upgrade

    seen = []
    look = (2, "look", lambda _steps: seen.append(database._pg_wait[-1]))
    sqlite = database.open_database(f"sqlite:///{tmp_path / 'up.db'}", pooled=False)
    with sqlite.connection_context():
        upgrade(sqlite, models=[SchemaVersion], migrations=[])  # made fresh: nothing runs
        upgrade(sqlite, models=[SchemaVersion], migrations=[look])
    assert seen == [None] and database._pg_wait[-1] == database.PG_WAIT_S


def test_an_upgrade_waits_for_another_process_s_upgrade_past_the_usual_limit(sqlite_file):
    """A web process and the bridge started together both upgrade: the loser waits for the
    winner's lock as long as its upgrade takes (13.7 s for a tenth of gen.py's scale), where
    any other write gives up after busy_wait (the bridge died at start, «database is
    locked»)."""
    from domain.db import patient_server

    path, database = sqlite_file
    database.busy_wait = 0.5
    holder = hold_write_lock(path, 1.5)

    def upgrade_like() -> None:
        with patient_server(), database.atomic(lock_type="IMMEDIATE"):
            database.execute_sql("INSERT INTO t (v) VALUES ('upgraded')")

    try:
        outcome, took, ticks = run_beside_ticker(upgrade_like)
    finally:
        holder.communicate(timeout=10)
    assert outcome is None and took > 1.0, (outcome, took)
    assert ticks >= took / TICK_S * 0.5, (ticks, took)
    rows = database.execute_sql("SELECT v FROM t ORDER BY id").fetchall()
    assert rows == [("holder",), ("upgraded",)]
