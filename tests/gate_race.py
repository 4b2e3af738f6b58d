"""Two managers saving one controller at the same instant, on a real database: the first one's
transaction holds its new gate uncommitted while the second one's save runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask

from domain.db import open_database
from domain.gates import Gate
from tests import database as test_database


def _waiting_for_a_lock(url: str) -> bool:
    """PostgreSQL: a session of the test database waits for a row lock (the INSERT into the
    unique index, behind the other transaction's uncommitted row)."""
    return bool(test_database.query(
        url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
             " AND wait_event_type = 'Lock'")[0][0])


def race(app: Flask, write_first: Callable[[Any], None], second: Callable[[], Any]) -> dict:
    """`write_first(other_database)` writes a gate in a transaction of another connection
    (the first manager, not committed yet); `second()` runs meanwhile in a thread (the second
    manager), and the first commits only once the second is past its check and waiting in
    its INSERT (PostgreSQL; on SQLite every write transaction takes the lock at BEGIN, so the
    second waits there and its check sees the first gate). Returns what `second` returned or
    raised."""
    url = app.config["DATABASE_URL"]
    other = open_database(url, pooled=False)
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = second()
        except Exception as error:  # handed to the test
            outcome["error"] = error

    try:
        with other.atomic():
            write_first(other)
            thread = threading.Thread(target=run)
            thread.start()
            deadline = time.monotonic() + 5
            if test_database.postgresql():
                while not _waiting_for_a_lock(url):
                    assert time.monotonic() < deadline, "the second save never reached the index"
                    assert thread.is_alive(), f"the second save did not wait: {outcome}"
                    time.sleep(0.02)
            else:
                time.sleep(0.3)
        thread.join(10)
        assert not thread.is_alive()
    finally:
        other.close()
    return outcome


def in_request(app: Flask, call: Callable[[], Any]) -> Callable[[], Any]:
    """For race()'s `second`: `call()` in a request of the app, on the thread's own
    connection, closed after; a refusal (DomainError) is returned as its message."""
    from domain.db import db
    from domain.errors import DomainError

    def run() -> Any:
        with app.test_request_context():
            try:
                return call()
            except DomainError as error:
                return str(error.message)
            finally:
                db.close()

    return run


def insert_gate(territory_id: int, name: str, host: str, port: int, unit_id: int):
    """For race(): the first manager's gate, written as add_gate writes it after its check."""

    def write(database) -> None:
        database.execute(Gate.insert(territory=territory_id, name=name, host=host, port=port,
                                     unit_id=unit_id))

    return write
