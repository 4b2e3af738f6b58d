"""One deferred Peewee database for every model, set up from DATABASE_URL."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from peewee import (
    SQL,
    AutoField,
    DatabaseProxy,
    DateTimeField,
    Model,
    NodeList,
    OperationalError,
    PeeweeException,
    PostgresqlDatabase,
    SqliteDatabase,
    fn,
)
from playhouse.db_url import parse
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

T = TypeVar("T")

db = DatabaseProxy()

# SQLite's own busy handler sleeps inside C, and under gevent that stops every greenlet of
# the process: a CLI holding the write lock for seconds froze every gate. So SQLite waits at
# most BUSY_C_MS by itself; past that, a write that finds the file locked waits in
# gevent.sleep pauses (BUSY_PAUSE_S, doubling up to BUSY_PAUSE_MAX_S), as long as the
# 5 s busy timeout it replaces, then fails with "database is locked".
BUSY_C_MS = 5
BUSY_WAIT_S = 5.0
BUSY_PAUSE_S = 0.002
BUSY_PAUSE_MAX_S = 0.1

# SQLite is the embedded default; WAL and waiting for a busy lock let the web process and a
# separate gatebridge process share the file without "database is locked" errors. The busy
# timeout comes first: the pragmas after it may need a lock.
SQLITE_PRAGMAS = {
    "busy_timeout": BUSY_C_MS,
    "journal_mode": "wal",
    "foreign_keys": 1,
    "synchronous": "normal",
}

# A PostgreSQL server that stops answering (hung, its host gone, packets dropped) must end
# in an error, not a wait without end: a bridge greenlet stuck on it stopped every gate.
# CONNECT_TIMEOUT_S is libpq's own (blocking connections); under gevent psycopg2 waits
# through _gevent_wait, which gives up when the socket stays silent for PG_WAIT_S. No web
# query takes near that; work known to be long (the schema's upgrade, which `python app.py`
# and `python -m gatebridge` run at start: an index on ten million events takes 13 s) runs
# inside patient_server(), and `cli.py` runs without gevent and so without this bound.
CONNECT_TIMEOUT_S = 5
PG_WAIT_S = 5.0
_pg_wait: list[float | None] = [PG_WAIT_S]


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


class NeverReusedId(AutoField):
    """The `id` of a model without a primary key of its own: never given to a second row.

    SQLite's plain INTEGER PRIMARY KEY gives max(id) + 1, so once the newest row is deleted
    the next insert takes its id, and a page still open acts on the newcomer: a manager's
    «Принять» on a request its author had cancelled made a stranger an operator. On SQLite
    the column is INTEGER PRIMARY KEY AUTOINCREMENT (the largest id ever given is kept in
    sqlite_sequence); PostgreSQL's SERIAL sequence never goes back, so there it stays as is.
    Which one is decided by the database that creates the table, so one model serves both.
    """

    def ddl(self, ctx: Any) -> Any:
        node = super().ddl(ctx)
        # The schema manager's database is the one whose context `ctx` is: a bind_ctx()
        # or a pool swapped in by init_db() is seen, not the database of the moment the
        # model was declared.
        database = self.model._schema.database
        if isinstance(getattr(database, "obj", database), SqliteDatabase):
            return NodeList((node, SQL("AUTOINCREMENT")))
        return node


class BaseModel(Model):
    """Base of every model: bound to the deferred database; `id` unless a model has its own key."""

    id = NeverReusedId()

    class Meta:
        database = db
        legacy_table_names = False


class NewestFirst:
    """A model listed newest first, by (created_at, id), and paged by keyset on those two."""

    @classmethod
    def page_after(cls, query, pivot: Any, per: int, backwards: bool = False):
        """One page of a newest-first query that starts next to `pivot`, by keyset.

        The page after a pivot holds the rows below it, `backwards` the rows above it
        (returned in list order). No OFFSET, so a page deep in a territory of a million
        passes costs what the first one does: an index on (territory, created_at, id) is
        entered at the pivot. Returns (rows, more), `more` saying that another page lies
        beyond in the same direction.
        """
        if pivot is not None:
            at, pid = pivot.created_at, pivot.id
            if backwards:
                query = query.where(
                    (cls.created_at >= at) & ((cls.created_at > at) | (cls.id > pid))
                ).order_by(cls.created_at.asc(), cls.id.asc())
            else:
                query = query.where(
                    (cls.created_at <= at) & ((cls.created_at < at) | (cls.id < pid))
                )
        rows = list(query.limit(per + 1))
        more = len(rows) > per
        rows = rows[:per]
        return (rows[::-1] if backwards else rows), more


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


# What "the database is unreachable" looks like: peewee's errors (psycopg2's and sqlite3's
# are wrapped into them) and socket-level failures.
DB_ERRORS: tuple[type[BaseException], ...] = (PeeweeException, OSError)


def is_busy(exc: BaseException | None) -> bool:
    """Is this SQLite's SQLITE_BUSY (another connection holds the lock), raw or peewee's?"""
    exc = getattr(exc, "orig", exc)  # peewee keeps the driver's exception there
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF == sqlite3.SQLITE_BUSY
    return "database is locked" in str(exc)


def patiently(attempt: Callable[[], T], wait: float) -> T:
    """attempt(), again after a gevent.sleep while SQLite is busy, for up to `wait` seconds.

    Only for a step that leaves nothing behind when it fails busy: opening a connection,
    BEGIN, a statement outside a transaction (SQLite rolls a failed one back whole).
    """
    import gevent

    deadline = time.monotonic() + wait
    pause = BUSY_PAUSE_S
    while True:
        try:
            return attempt()
        except (OperationalError, sqlite3.OperationalError) as exc:
            if not is_busy(exc) or time.monotonic() + pause > deadline:
                raise
        gevent.sleep(pause)
        pause = min(pause * 2, BUSY_PAUSE_MAX_S)


SEARCH_WORDS = 6  # the words of a search read; more only make the query longer


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def writing() -> Any:
    """A transaction that reads and then writes what it read decided.

    SQLite: its write lock is taken at BEGIN (IMMEDIATE). In WAL mode a deferred
    transaction that reads and then writes fails at once with SQLITE_BUSY when another
    writer committed in between; taking the lock first makes concurrent writers wait their
    turn (busy_timeout) instead. PostgreSQL: an ordinary transaction, whose rows are held
    with for_update(). Inside another transaction: a savepoint, under its lock.
    """
    if isinstance(getattr(db, "obj", db), SqliteDatabase) and db.transaction_depth() == 0:
        return db.atomic(lock_type="IMMEDIATE")
    return db.atomic()


def for_update(query: Any) -> Any:
    """Hold the selected rows where the database can (PostgreSQL); SQLite's write lock,
    taken at writing()'s BEGIN, already lets one writer at a time in."""
    return query.for_update() if getattr(getattr(db, "obj", db), "for_update", False) else query


def hold(*names: str) -> None:
    """Inside a transaction on PostgreSQL, one at a time per name: a transaction-level
    advisory lock for each, taken in one order so that two holders never wait for each
    other. For a check over rows that may not exist yet and the insert it allows (the codes
    sent to one phone or from one address: eight sign-ups at once sent seven calls). SQLite
    runs one writer at a time already."""
    if not isinstance(getattr(db, "obj", db), PostgresqlDatabase):
        return
    for name in sorted(set(names)):
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (lock_key(name),))


def lock_key(name: str) -> int:
    """The 64-bit key of hold()'s advisory lock for a name."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big",
                          signed=True)


def folded(text: str) -> str:
    """Text as searches compare it: lower case, «ё» read as «е» (most people type «е»)."""
    return text.lower().replace("ё", "е")


def contains_text(field: Any, text: str) -> Any:
    """`field` contains `text` whatever the case, in any alphabet, «ё» and «е» alike, on
    SQLite (its own lower() and LIKE fold ASCII letters only) and on PostgreSQL alike."""
    return folded_field(field).contains(folded(text))


def folded_field(field: Any) -> Any:
    """`field` as folded() folds text, in SQL: to search it, and to sort names as people do
    («Ёлкин» was sorted before «Абрамов», «иванов» after «Яковлев»)."""
    return fn.replace(fn.lower(field), "ё", "е")


def every_word(text: str, *fields: Any) -> Any:
    """Each word of `text` in one of `fields` (contains_text): «Федоров Роман» finds the one
    whose surname is Фёдоров and name Роман; None for no words."""
    found = None
    for word in text.split()[:SEARCH_WORDS]:
        anywhere = contains_text(fields[0], word)
        for field in fields[1:]:
            anywhere |= contains_text(field, word)
        found = anywhere if found is None else found & anywhere
    return found


class CooperativeSqlite:
    """SQLite that waits for another connection's lock in gevent.sleep, never inside C.

    Retried: opening (the pragmas may need a lock), BEGIN IMMEDIATE — where a transaction
    takes its write lock (lock_type), and in WAL mode none is needed later — and statements
    outside a transaction. A statement inside an open transaction is not: its earlier
    statements are part of the same transaction, and whether a retry is right is the
    caller's to say.
    """

    busy_wait = BUSY_WAIT_S

    def _patience(self) -> float:
        return self.busy_wait if _pg_wait[-1] is not None else PATIENT_LOCK_S

    def init(self, database: Any, **kwargs: Any) -> None:
        super().init(database, **kwargs)
        # sqlite3.connect's `timeout` is a busy timeout too, slept in C like the pragma's.
        self._timeout = BUSY_C_MS / 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # SQLite's lower() folds ASCII letters only: «РОМАН» stayed «РОМАН», and a search
        # for «роман» missed it (contains_text). Python's knows every alphabet.
        self.register_function(_lower, "lower", 1)

    def _connect(self) -> Any:
        return patiently(super()._connect, self._patience())

    def begin(self, lock_type: str | None = None) -> None:
        parent = super()
        patiently(lambda: parent.begin(lock_type), self._patience())

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        parent = super()
        if self._in_transaction():
            return parent.execute_sql(sql, params)
        return patiently(lambda: parent.execute_sql(sql, params), self._patience())

    def _in_transaction(self) -> bool:
        # Peewee's stack knows its atomic() blocks; the connection also knows a BEGIN sent
        # as plain SQL.
        if self.in_transaction():
            return True
        state = self._state
        return not state.closed and state.conn.in_transaction


class Sqlite(CooperativeSqlite, SqliteDatabase):
    """A one-off SQLite connection that waits for locks cooperatively."""


class SqlitePool(CooperativeSqlite, PooledSqliteDatabase):
    """The pooled SQLite database of a process, waiting for locks cooperatively."""


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
        cls = SqlitePool if pooled else Sqlite
        return cls(path, pragmas=SQLITE_PRAGMAS, check_same_thread=False,
                   lock_type="IMMEDIATE", **pool)
    if url.startswith(("postgresql://", "postgres://")):
        _cooperative_psycopg2()
        params = parse(url)
        # Many short queries at once, not one big one: a day of the log spent 7 of its 11.7 ms
        # waiting for a parallel worker to start and share a scan of 1 232 rows
        # (bench/README.md). A URL's own ?options=… wins.
        params.setdefault("options", "-c max_parallel_workers_per_gather=0")
        params.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
        cls = PostgresqlPool if pooled else PostgresqlDatabase
        return cls(**params, **pool)
    raise ValueError(f"unsupported DATABASE_URL scheme: {url.split(':', 1)[0]}")


# How long work known to be long waits for SQLite's write lock (patient_server): another
# process's schema upgrade holds it for as long as the upgrade takes (13.7 s for a tenth of
# bench/gen.py's full scale, minutes for all of it).
PATIENT_LOCK_S = 3600.0


@contextmanager
def patient_server() -> Iterator[None]:
    """For work known to be long (the schema upgrade): wait for a silent PostgreSQL server
    without limit, and for SQLite's write lock up to PATIENT_LOCK_S. A web process and the
    bridge started together both upgrade; the one that loses the race waits for the other
    one's upgrade, which holds the lock throughout, instead of dying after BUSY_WAIT_S."""
    _pg_wait.append(None)
    try:
        yield
    finally:
        _pg_wait.pop()


def _gevent_wait(conn: Any, timeout: float | None = None) -> None:
    """psycopg2's wait callback: yield to other greenlets while libpq waits on its socket.

    A socket silent for `timeout` seconds ends in psycopg2's OperationalError (peewee's,
    once wrapped); psycopg2 then closes the connection, whose state is unknown, so the pool
    drops it rather than handing it out again.
    """
    from gevent.socket import wait_read, wait_write
    from psycopg2 import OperationalError as PgOperationalError
    from psycopg2 import extensions

    timeout = timeout if timeout is not None else _pg_wait[-1]
    silent = PgOperationalError(f"the database server did not answer within {timeout} s")
    while True:
        state = conn.poll()
        if state == extensions.POLL_OK:
            return
        if state == extensions.POLL_READ:
            wait_read(conn.fileno(), timeout=timeout, timeout_exc=silent)
        elif state == extensions.POLL_WRITE:
            wait_write(conn.fileno(), timeout=timeout, timeout_exc=silent)
        else:
            raise PgOperationalError(f"unexpected psycopg2 poll state {state}")


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

