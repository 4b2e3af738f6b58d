"""One deferred Peewee database for every model, set up from DATABASE_URL."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from peewee import DatabaseProxy, DateTimeField, Model, PostgresqlDatabase, SqliteDatabase
from playhouse.db_url import parse
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

db = DatabaseProxy()

# SQLite is the embedded default; WAL and a busy timeout let the web process and a
# separate gatebridge process share the file without "database is locked" errors.
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 5000,
    "synchronous": "normal",
}


def utcnow() -> dt.datetime:
    """The current moment as an aware UTC datetime."""
    return dt.datetime.now(dt.UTC)


class UtcDateTimeField(DateTimeField):
    """Stores an aware datetime as UTC and hands it back aware, on SQLite and PostgreSQL alike."""

    def db_value(self, value: Any) -> Any:
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                raise ValueError("naive datetimes are not stored; attach a time zone")
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return super().db_value(value)

    def python_value(self, value: Any) -> Any:
        value = super().python_value(value)
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value


class BaseModel(Model):
    """Base of every model: bound to the deferred database."""

    class Meta:
        database = db
        legacy_table_names = False


# Each request takes a connection and gives it back (app.py): a pool keeps them open, so a
# request does not pay for opening the SQLite file and setting its pragmas (a quarter of a
# check's time, bench/README.md), or for PostgreSQL starting a server process. One pool per
# process; a request beyond the limit waits for a free connection.
POOL = {"max_connections": 64, "stale_timeout": 300, "timeout": 10}


class PostgresqlPool(PooledPostgresqlDatabase):
    """Peewee's PostgreSQL pool, without asking the server about a connection just used.

    Peewee checks each idle connection with a SELECT 1 round trip as it hands it out, so
    that one the server dropped (a restart, a terminated backend) is replaced rather than
    given to a request. Under load that is a round trip more on every request: a fifth of a
    territory page's throughput (bench/README.md). A connection given back less than
    RECENT seconds ago is handed out without the check (HikariCP skips it likewise within
    500 ms of last use); if the server dropped it in that moment, the request that gets it
    fails once and the connection is closed when given back. Older ones are still checked.
    """

    RECENT = 0.5

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._given_back: dict[int, float] = {}
        super().__init__(*args, **kwargs)

    def _can_reuse(self, conn: Any) -> bool:
        reusable = super()._can_reuse(conn)
        if reusable:
            self._given_back[id(conn)] = time.monotonic()
        return reusable

    def _is_closed(self, conn: Any) -> bool:
        given_back = self._given_back.pop(id(conn), None)
        if (given_back is not None and not conn.closed
                and time.monotonic() - given_back < self.RECENT
                and self._adapter.txn_status(conn) == self._adapter.txn_idle):
            return False
        return super()._is_closed(conn)

    def _close_raw(self, conn: Any) -> None:
        self._given_back.pop(id(conn), None)
        super()._close_raw(conn)


def open_database(url: str, pooled: bool = True) -> Any:
    """Build a Peewee database object for a DATABASE_URL (sqlite:///… or postgresql://…).

    `pooled=False` for a one-off tool (a schema template, a test's look into a database):
    its close() really closes, so nothing stays connected to the database afterwards.
    """
    pool = POOL if pooled else {}
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        # check_same_thread=False: gevent's thread pool may finish work begun elsewhere.
        # lock_type: every transaction takes the write lock at BEGIN and waits for it (busy
        # timeout). A deferred one that reads, then writes, fails at once with "database is
        # locked" when another process (the bridge, a second web process) wrote meanwhile.
        cls = PooledSqliteDatabase if pooled else SqliteDatabase
        return cls(path, pragmas=SQLITE_PRAGMAS, check_same_thread=False,
                   lock_type="IMMEDIATE", **pool)
    if url.startswith(("postgresql://", "postgres://")):
        _cooperative_psycopg2()
        params = parse(url)
        # Many short queries at once, not one big one: a day of the log spent 7 of its 11.7 ms
        # waiting for a parallel worker to start and share a scan of 1 232 rows
        # (bench/README.md). A URL's own ?options=… wins.
        params.setdefault("options", "-c max_parallel_workers_per_gather=0")
        cls = PostgresqlPool if pooled else PostgresqlDatabase
        return cls(**params, **pool)
    raise ValueError(f"unsupported DATABASE_URL scheme: {url.split(':', 1)[0]}")


def _gevent_wait(conn: Any, timeout: float | None = None) -> None:
    """psycopg2's wait callback: yield to other greenlets while libpq waits on its socket."""
    from gevent.socket import wait_read, wait_write
    from psycopg2 import OperationalError, extensions

    while True:
        state = conn.poll()
        if state == extensions.POLL_OK:
            return
        if state == extensions.POLL_READ:
            wait_read(conn.fileno(), timeout=timeout)
        elif state == extensions.POLL_WRITE:
            wait_write(conn.fileno(), timeout=timeout)
        else:
            raise OperationalError(f"unexpected psycopg2 poll state {state}")


def _cooperative_psycopg2() -> None:
    """Under gevent (app.py, wsgi.py, the bridge), a query must not stall the whole process.

    psycopg2 is C: its blocking waits on libpq's socket would not yield to other greenlets,
    so one slow query would freeze every request of the worker. With this wait callback
    psycopg2 runs libpq asynchronously and waits through gevent instead.
    """
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        return
    from psycopg2 import extensions

    if extensions.get_wait_callback() is None:
        extensions.set_wait_callback(_gevent_wait)


def init_db(url: str) -> None:
    """Point the deferred database at DATABASE_URL (closing a previous pool's connections)."""
    previous = db.obj
    if previous is not None and hasattr(previous, "close_all"):
        previous.close_all()
    db.initialize(open_database(url))

