# ruff: noqa: S608 - the only names put into SQL here are this module's constants and
# partition names it made itself (gate_event_pYYYYMM); values always go as parameters.
"""How long gate events are kept, and (on PostgreSQL) the event table split by month.

Retention: `prune_events(days)` deletes the events older than `days` (400 by default, the
EVENTS_RETENTION_DAYS setting), in batches so the bridge can keep writing meanwhile. It
works on SQLite and PostgreSQL alike; `flask --app app events prune` runs it.

Partitioning (PostgreSQL only): `partition_events()` turns gate_event into a table
partitioned by range of `at`, one partition per calendar month (UTC) named
gate_event_pYYYYMM, plus gate_event_default for anything outside them (a late spooled
event, a clock far off). The primary key becomes (id, at), as PostgreSQL requires the
partition key in it; ids still come from the same sequence, so Peewee's inserts
(INSERT … RETURNING id) and every query by id work as before. Run again (daily, with
prune) it creates the months ahead, moving rows out of the default partition first when
some landed there. With partitions, pruning drops whole months — instant, no vacuum —
and deletes row by row only in the month the cut-off falls in.

Queries filtered by `at` (the log's dates, the bridge's duplicate check, prune) read only
the months they touch; the live feed (`territory` and `id > last`) reads each month's
(territory, id) index for a few entries and stops.
"""

from __future__ import annotations

import datetime as dt
import re

from flask import current_app, has_app_context
from peewee import PostgresqlDatabase

from domain.db import db, utcnow
from domain.gates import GateEvent

DEFAULT_RETENTION_DAYS = 400
MAX_RETENTION_DAYS = 36_500  # a century: the cut-off must stay after the year 1
PRUNE_BATCH = 10_000
MONTHS_AHEAD = 3
TABLE = "gate_event"
DEFAULT_PARTITION = f"{TABLE}_default"
_MONTH_RE = re.compile(rf"^{TABLE}_p(\d{{4}})(\d{{2}})$")


def retention_days() -> int:
    """The configured retention: the app's EVENTS_RETENTION_DAYS (read from the environment
    and checked when the app starts), else 400 days."""
    if not has_app_context():
        return DEFAULT_RETENTION_DAYS
    return current_app.config.get("EVENTS_RETENTION_DAYS") or DEFAULT_RETENTION_DAYS


def is_postgres() -> bool:
    return isinstance(db.obj, PostgresqlDatabase)


def is_partitioned() -> bool:
    """True when gate_event is a partitioned table (PostgreSQL after partition_events)."""
    if not is_postgres():
        return False
    row = db.execute_sql(
        "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relname = %s AND n.nspname = current_schema()", (TABLE,)
    ).fetchone()
    return bool(row) and row[0] == "p"


def _month_start(moment: dt.datetime) -> dt.date:
    return dt.date(moment.year, moment.month, 1)


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def month_partitions() -> dict[str, tuple[dt.date, dt.date]]:
    """The monthly partitions present, by name: (first day, first day of the next month)."""
    rows = db.execute_sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s", (TABLE,)
    ).fetchall()
    found = {}
    for (name,) in rows:
        match = _MONTH_RE.match(name)
        if match:
            start = dt.date(int(match[1]), int(match[2]), 1)
            found[name] = (start, _next_month(start))
    return found


def prune_events(older_than_days: int | None = None, now: dt.datetime | None = None,
                 batch: int = PRUNE_BATCH) -> int:
    """Delete gate events older than the retention; returns how many went."""
    days = retention_days() if older_than_days is None else older_than_days
    if days < 1:
        raise ValueError("retention must be at least one day")
    cutoff = (now or utcnow()) - dt.timedelta(days=days)
    removed = 0
    if is_partitioned():
        limit = cutoff.astimezone(dt.UTC).date()
        for name, (_start, end) in sorted(month_partitions().items()):
            if end <= limit:  # the whole month is older than the cut-off
                with db.atomic():
                    removed += db.execute_sql(f'SELECT count(*) FROM "{name}"').fetchone()[0]
                    db.execute_sql(f'DROP TABLE "{name}"')
    stale = GateEvent.select(GateEvent.id).where(GateEvent.at < cutoff).limit(batch)
    while True:
        with db.atomic():
            count = (
                GateEvent.delete()
                .where(GateEvent.id.in_(stale) & (GateEvent.at < cutoff))
                .execute()
            )
        removed += count
        if count < batch:
            return removed


def apply_policy(older_than_days: int | None = None) -> tuple[int, list[str]]:
    """The events' policy in one go: prune past the retention and, once partitioned, create
    the coming months. Returns (events removed, partitions created)."""
    removed = prune_events(older_than_days)
    return removed, partition_events() if is_partitioned() else []


def partition_events(months_ahead: int = MONTHS_AHEAD, now: dt.datetime | None = None) -> list[str]:
    """Partition gate_event by month (converting it once) and create the months ahead.

    Returns the partitions created. PostgreSQL only; idempotent.
    """
    if not is_postgres():
        raise RuntimeError("partitioning by month is for PostgreSQL; on SQLite use prune only")
    now = now or utcnow()
    created: list[str] = []
    with db.atomic():
        if not is_partitioned():
            created += _convert()
        last = _month_start(now)
        for _ in range(months_ahead):
            last = _next_month(last)
        present = month_partitions()
        month = _month_start(now)
        while month <= last:
            name = f"{TABLE}_p{month:%Y%m}"
            if name not in present:
                _add_month(name, month, _next_month(month))
                created.append(name)
            month = _next_month(month)
    return created


def _add_month(name: str, start: dt.date, end: dt.date) -> None:
    """Create one month's partition; rows of that month already in the default move into it."""
    bounds = (start.isoformat(), end.isoformat())
    db.execute_sql(f'CREATE TABLE "{name}" (LIKE "{TABLE}" INCLUDING DEFAULTS)')
    has_default = db.execute_sql(
        "SELECT 1 FROM pg_class WHERE relname = %s", (DEFAULT_PARTITION,)
    ).fetchone()
    if has_default:
        where = 'WHERE "at" >= %s AND "at" < %s'
        db.execute_sql(f'INSERT INTO "{name}" SELECT * FROM "{DEFAULT_PARTITION}" {where}', bounds)
        db.execute_sql(f'DELETE FROM "{DEFAULT_PARTITION}" {where}', bounds)
    db.execute_sql(
        f'ALTER TABLE "{TABLE}" ATTACH PARTITION "{name}" FOR VALUES FROM (%s) TO (%s)', bounds
    )


def _convert() -> list[str]:
    """Replace the plain gate_event by a partitioned one holding the same rows."""
    old = f"{TABLE}_unpartitioned"
    indexes = db.execute_sql(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
        "AND schemaname = current_schema()", (TABLE,)
    ).fetchall()
    foreign_keys = db.execute_sql(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'f'", (TABLE,)
    ).fetchall()
    span = db.execute_sql(f'SELECT min("at"), max("at") FROM "{TABLE}"').fetchone()
    db.execute_sql(f'LOCK TABLE "{TABLE}" IN ACCESS EXCLUSIVE MODE')
    db.execute_sql(f'ALTER TABLE "{TABLE}" RENAME TO "{old}"')
    # The id sequence outlives the old table: the new one takes its numbers on.
    db.execute_sql(f'ALTER SEQUENCE "{TABLE}_id_seq" OWNED BY NONE')
    for name, _definition in indexes:
        db.execute_sql(f'ALTER INDEX "{name}" RENAME TO "{name}_old"')
    db.execute_sql(
        f'CREATE TABLE "{TABLE}" (LIKE "{old}" INCLUDING DEFAULTS) PARTITION BY RANGE ("at")'
    )
    db.execute_sql(f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{TABLE}_pkey" PRIMARY KEY (id, "at")')
    for name, definition in indexes:
        if name != f"{TABLE}_pkey":
            db.execute_sql(definition.replace(f".{old} ", f".{TABLE} "))
    db.execute_sql(f'CREATE TABLE "{DEFAULT_PARTITION}" PARTITION OF "{TABLE}" DEFAULT')
    created = [DEFAULT_PARTITION]
    if span[0] is not None:
        month, last = _month_start(span[0]), _month_start(span[1])
        while month <= last:
            name = f"{TABLE}_p{month:%Y%m}"
            db.execute_sql(
                f'CREATE TABLE "{name}" PARTITION OF "{TABLE}" FOR VALUES FROM (%s) TO (%s)',
                (month.isoformat(), _next_month(month).isoformat()),
            )
            created.append(name)
            month = _next_month(month)
    db.execute_sql(f'INSERT INTO "{TABLE}" SELECT * FROM "{old}"')
    db.execute_sql(f'DROP TABLE "{old}"')
    db.execute_sql(f'ALTER SEQUENCE "{TABLE}_id_seq" OWNED BY "{TABLE}".id')
    for name, definition in foreign_keys:
        db.execute_sql(f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{name}" {definition}')
    db.execute_sql(f'ANALYZE "{TABLE}"')
    return created
