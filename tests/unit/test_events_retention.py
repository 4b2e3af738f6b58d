"""Gate events: retention (`events prune`) on SQLite and PostgreSQL, monthly partitions on PG."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from domain.accounts import Account
from domain.db import db
from domain.gates import GateEvent, record_event
from domain.retention import (
    DEFAULT_PARTITION,
    is_partitioned,
    month_partitions,
    partition_events,
    prune_events,
)
from domain.territories import create_territory
from tests import database as test_database

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
AGES = [700, 500, 401, 399, 30, 0]  # days before NOW


def _events(ages=AGES) -> int:
    owner = Account.create(phone=f"+7999{uuid.uuid4().int % 10**7:07d}")
    territory = create_territory(owner, name="ЖК", kind="residential")
    for days in ages:
        record_event(territory.id, code=1, reason="pass_valid", kind="plate",
                     credential="A777AA77", at=NOW - dt.timedelta(days=days))
    return territory.id


def _ages() -> list[int]:
    return sorted((NOW - e.at).days for e in GateEvent.select())


def test_prune_on_sqlite_keeps_what_is_younger_than_the_retention(app):
    with app.app_context():
        _events()
        assert prune_events(400, now=NOW, batch=2) == 3  # batches smaller than the work
        assert _ages() == [0, 30, 399]
        assert prune_events(400, now=NOW) == 0


def test_prune_command_takes_its_default_from_the_environment(app):
    with app.app_context():
        _events([3000, 2000, 10])  # far enough back for any `now`
    runner = app.test_cli_runner()
    app.config["EVENTS_RETENTION_DAYS"] = 2500  # what EVENTS_RETENTION_DAYS=2500 sets at start
    result = runner.invoke(args=["events", "prune"])
    assert result.exit_code == 0, result.output
    assert "pruned 1 events older than 2500 days" in result.output
    result = runner.invoke(args=["events", "prune", "--older-than-days", "100"])
    assert "pruned 1 events older than 100 days" in result.output
    with app.app_context():
        assert GateEvent.select().count() == 1
    refused = runner.invoke(args=["events", "prune", "--older-than-days", "0"])
    assert refused.exit_code != 0
    if not test_database.postgresql():
        # On the PostgreSQL pass this database is shared by every test: partitioning it
        # would outlive the test. Partitions are tested on databases of their own below.
        partition = runner.invoke(args=["events", "partition"])
        assert partition.exit_code != 0 and "PostgreSQL" in partition.output


@pytest.fixture
def pg_app(tmp_path):
    """An app on a PostgreSQL database of its own (the session's throwaway cluster)."""
    from app import create_app
    from domain.schema import upgrade

    url = test_database.cluster().create_database()
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": url,
                      "INSTANCE_PATH": str(tmp_path / "instance")})
    with app.app_context():
        upgrade()
    yield app
    db.close()


def test_the_hourly_housekeeping_applies_the_retention(app):
    """`python app.py` and the bridge prune by themselves: no cron needed for the policy."""
    from jobs import PurgeJob

    with app.app_context():
        _events([3000, 2000, 10])
    app.config["EVENTS_RETENTION_DAYS"] = 1000  # what EVENTS_RETENTION_DAYS=1000 sets at start
    PurgeJob(app).run_once()
    with app.app_context():
        assert [e.at for e in GateEvent.select()] == [NOW - dt.timedelta(days=10)]


def test_prune_on_postgresql_without_partitions(pg_app):
    with pg_app.app_context():
        _events()
        assert not is_partitioned()
        assert prune_events(400, now=NOW, batch=2) == 3
        assert _ages() == [0, 30, 399]


def test_partitioned_events_take_inserts_prune_by_month_and_read_only_needed_months(pg_app):
    with pg_app.app_context():
        tid = _events()
        before = GateEvent.select().count()
        created = partition_events(months_ahead=2, now=NOW)
        assert is_partitioned() and DEFAULT_PARTITION in created
        months = month_partitions()
        # one per month from the oldest event (700 days back) to two months ahead of NOW
        assert "gate_event_p202412" in months and "gate_event_p202701" in months
        assert GateEvent.select().count() == before
        assert partition_events(months_ahead=2, now=NOW) == []  # idempotent

        # Peewee inserts still return ids from the same sequence, after the old ones.
        newest = max(e.id for e in GateEvent.select())
        fresh = record_event(tid, code=4, reason="unknown_plate", kind="plate",
                             credential="B222BB77", at=NOW)
        assert fresh.id > newest and GateEvent.get_by_id(fresh.id).credential == "B222BB77"
        assert [e.id for e in GateEvent.feed(tid).limit(1)] == [fresh.id]

        # An event beyond the prepared months lands in the default partition, and moves into
        # its own month when that month is created.
        late = record_event(tid, code=1, reason="x", kind="manual",
                            at=NOW + dt.timedelta(days=150))
        in_default = db.execute_sql(f"SELECT count(*) FROM {DEFAULT_PARTITION}").fetchone()[0]
        assert in_default == 1
        created = partition_events(months_ahead=6, now=NOW)
        assert "gate_event_p202704" in created
        assert db.execute_sql(f"SELECT count(*) FROM {DEFAULT_PARTITION}").fetchone()[0] == 0
        assert GateEvent.get_by_id(late.id).reason == "x"

        # A query by date reads only the months it covers (partition pruning).
        since = (NOW - dt.timedelta(days=5)).replace(tzinfo=None)
        plan = "\n".join(r[0] for r in db.execute_sql(
            "EXPLAIN SELECT * FROM gate_event WHERE territory_id = %s AND at >= %s", (tid, since)
        ).fetchall())
        assert "gate_event_p202611" in plan and "gate_event_p202501" not in plan

        # Whole months older than the cut-off are dropped, the rest deleted row by row.
        removed = prune_events(400, now=NOW)
        assert removed == 3
        assert "gate_event_p202412" not in month_partitions()
        assert sorted(d for d in _ages() if d >= 0) == [0, 0, 30, 399]
