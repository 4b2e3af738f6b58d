"""The bridge's writer: on_event and on_state never wait on the database.

A poller greenlet hands its events and states to BridgeService; one writer greenlet writes
them, spools events the database cannot take and drains the spool when it answers again.
The hang itself is real: a PostgreSQL cluster of the test's own is frozen with SIGSTOP
(nothing refused, nothing answered — what an audit saw stop every gate), and a SQLite file
is held locked by a second process.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import gevent
import gevent.event
import pytest

from domain.accounts import Account
from domain.db import _gevent_wait, db, init_db, open_database
from domain.gates import Gate
from domain.territories import create_territory
from gatebridge import protocol as p
from gatebridge.poller import ControllerConfig, ControllerState
from gatebridge.service import BridgeService
from tests import database
from tests.database import query
from tests.pg import Cluster

TICK_S = 0.02


def wait_until(predicate, timeout: float = 10.0):
    """Like conftest's wait_for, but sleeping in gevent so the writer greenlet runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        gevent.sleep(0.05)
    return None


def make_gate(app) -> ControllerConfig:
    """A territory letting cars out freely, one gate on it; the poller's view of the gate."""
    with app.app_context(), db.connection_context():
        manager = Account.create(phone="+79990000601", surname="Управляева")
        territory = create_territory(manager, name="ЖК", kind="residential")
        gate = Gate.create(territory=territory, name="Въезд", host="127.0.0.1", port=5020)
    return ControllerConfig(gate_id=gate.id, territory_id=territory.id, host="127.0.0.1",
                            direction="both", free_exit=True)


def exit_card(seq: int) -> p.Snapshot:
    """An exit with card number 1000+seq: granted by the poller, no decide()."""
    return p.Snapshot(event_seq=seq, event_type=p.EventType.CARD, direction=p.Direction.EXIT,
                      bit_length=26, card_number=1000 + seq)


# The test reads through a connection of its own: greenlets of this (unpatched) process
# share peewee's per-thread connection, and the writer may be using it.


def recorded(app) -> list[str]:
    """The credentials of the GateEvents, in the order they were written."""
    rows = query(app.config["DATABASE_URL"], "SELECT credential FROM gate_event ORDER BY id")
    return [credential for credential, in rows]


def stored_state(app, gate_id: int) -> str | None:
    """The last_error of the gate's stored state (the tick that sent it)."""
    rows = query(app.config["DATABASE_URL"],
                 "SELECT last_error FROM gate_status WHERE gate_id = ?", (gate_id,))
    return rows[0][0] if rows else None


class PollerLike:
    """A greenlet that calls on_event and on_state the way a controller's greenlet does,
    every TICK_S, timing each call."""

    def __init__(self, service: BridgeService, config: ControllerConfig) -> None:
        self.service = service
        self.config = config
        self.sent: list[str] = []
        self.ticks = 0
        self.slowest = 0.0
        self.greenlet: gevent.Greenlet | None = None

    def run(self, seconds: float, events_every: int = 10) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.ticks += 1
            started = time.monotonic()
            if self.ticks % events_every == 0:
                seq = len(self.sent) + 1
                self.service.on_event(self.config, exit_card(seq), p.DecisionCode.GRANT, 0.001)
                self.sent.append(str(1000 + seq))
            self.service.on_state(self.config, ControllerState(
                self.config.gate_id, status="online", last_error=f"tick {self.ticks}"))
            self.slowest = max(self.slowest, time.monotonic() - started)
            gevent.sleep(TICK_S)


@pytest.fixture
def service_of() -> Iterator:
    """Factory: a BridgeService for an app with its writer greenlet running."""
    writers: list[gevent.Greenlet] = []

    def make(app, **options) -> BridgeService:
        service = BridgeService(app, **{"drain_s": 0.2, **options})
        writers.append(gevent.spawn(service.writer))
        return service

    yield make
    gevent.killall(writers)


def test_events_are_written_in_order_and_only_a_gates_latest_state(app, service_of):
    config = make_gate(app)
    service = service_of(app)
    for seq in range(1, 6):
        service.on_event(config, exit_card(seq), p.DecisionCode.GRANT, 0.001)
    for n in range(1, 4):
        service.on_state(config, ControllerState(config.gate_id, status="online",
                                                 last_error=f"state {n}"))
    assert service._states[config.gate_id][1].last_error == "state 3"  # one kept, not three
    assert wait_until(lambda: len(recorded(app)) == 5), recorded(app)
    assert recorded(app) == ["1001", "1002", "1003", "1004", "1005"]
    assert wait_until(lambda: stored_state(app, config.gate_id) == "state 3")
    assert not service.spool


def test_a_full_queue_spools_its_oldest_events_and_the_order_holds(app):
    config = make_gate(app)
    service = BridgeService(app, queue_max=3)  # no writer running: it is "stuck"
    for seq in range(1, 8):
        service.on_event(config, exit_card(seq), p.DecisionCode.GRANT, 0.001)
    assert len(service._events) == 3 and service.spool.pending() == 4
    with app.app_context():
        service.write_pending()
    assert recorded(app) == [str(1000 + seq) for seq in range(1, 8)]
    assert not service.spool


def test_an_event_being_written_when_the_queue_overflows_keeps_its_place(app, monkeypatch):
    """The writer is stuck on event 1 while the queue fills: the overflow spools event 1
    first, and its write that then fails does not put it after the later ones."""
    config = make_gate(app)
    service = BridgeService(app, queue_max=3)
    stuck = gevent.event.Event()

    def stalls(event):
        stuck.set()
        gevent.sleep(0.3)
        raise OSError("the database did not answer")

    monkeypatch.setattr(service, "_write_event_now", stalls)
    service.on_event(config, exit_card(1), p.DecisionCode.GRANT, 0.001)
    with app.app_context():
        writer = gevent.spawn(service.write_pending)
        stuck.wait(2)
        for seq in range(2, 6):  # the queue overflows while event 1 is in flight
            service.on_event(config, exit_card(seq), p.DecisionCode.GRANT, 0.001)
        writer.join(5)
        monkeypatch.undo()
        service._retry_at = 0.0
        service.write_pending()
    assert recorded(app) == [str(1000 + seq) for seq in range(1, 6)]


def test_a_decision_that_never_reached_the_gate_is_logged_as_controller_offline(app):
    """decide() granted, the write was lost and the poller reports «try again» for it: the
    log says the controller was not reached, not «Действующий пропуск»."""
    from domain import access

    config = make_gate(app)
    service = BridgeService(app)
    entry = p.Snapshot(event_seq=7, event_type=p.EventType.CARD, direction=p.Direction.ENTRY,
                       bit_length=26, card_number=77)
    service._decisions[(config.gate_id, 7)] = access.Decision(1, "pass_valid")
    service.on_event(config, entry, p.DecisionCode.TRY_AGAIN, 0.001)
    assert service._events[0]["code"] == 6 and service._events[0]["reason"] == "gate_offline"


@pytest.mark.parametrize("event_type, kind, reason", [
    (p.EventType.REMOTE, "remote", "remote_unsupported"),
    (p.EventType.PLATE, "plate", "plate_unreadable"),  # a car seen, no plate read
    (99, "other", "unknown_event"),  # a type GATE-CTL v1 does not know
])
def test_an_event_with_nothing_to_check_says_what_it_was(app, event_type, kind, reason):
    """They were all «Кнопка»/«Карта» and «Карта не найдена» in the log."""
    config = make_gate(app)
    service = BridgeService(app)
    snapshot = p.Snapshot(event_seq=3, event_type=event_type, direction=p.Direction.ENTRY)
    with app.app_context():
        assert service.decide(config, snapshot) == p.DecisionCode.DENY_UNKNOWN
    service.on_event(config, snapshot, p.DecisionCode.DENY_UNKNOWN, 0.001)
    event = service._events[0]
    assert (event["kind"], event["reason"], event["credential"]) == (kind, reason, "")


def test_events_waiting_when_the_bridge_stops_are_spooled_for_its_restart(app):
    config = make_gate(app)
    service = BridgeService(app)
    service.on_event(config, exit_card(1), p.DecisionCode.GRANT, 0.001)
    service._spool_waiting()  # what run() does last
    assert service.spool.pending() == 1
    with app.app_context():
        BridgeService(app).write_pending()  # the next bridge process
    assert recorded(app) == ["1001"]


HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


@pytest.mark.timing
@pytest.mark.skipif(database.postgresql(), reason="SQLite pass only")
def test_sqlite_locked_by_another_process_spools_and_drains_in_order(app, service_of):
    config = make_gate(app)
    service = service_of(app, write_s=0.5)
    path = app.config["DATABASE_URL"].removeprefix("sqlite:///")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, path, "2.0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        poller = PollerLike(service, config)
        gevent.spawn(poller.run, 1.6).join()
        assert service.spool.pending() >= 1  # the writer gave up and spooled
    finally:
        holder.communicate(timeout=10)
    assert poller.slowest < 0.02, poller.slowest
    assert poller.ticks >= 1.6 / TICK_S * 0.5, poller.ticks
    assert wait_until(lambda: len(recorded(app)) == len(poller.sent)), service.spool.pending()
    assert recorded(app) == poller.sent
    last = f"tick {poller.ticks}"
    assert wait_until(lambda: stored_state(app, config.gate_id) == last)


# -- a PostgreSQL server that hangs -----------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[Cluster]:
    """A PostgreSQL cluster of this module's own: the tests freeze it."""
    with Cluster.create() as pg:
        yield pg


@pytest.fixture
def pg_app(app, server, tmp_path):
    """An app on the frozen-to-be cluster, psycopg2 waiting through gevent as under the
    bridge (the test process is not monkey-patched, so domain.db does not set it)."""
    from psycopg2 import extensions

    from app import create_app

    pg = create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": server.fresh_database(),
                     "INSTANCE_PATH": str(tmp_path / "pg-instance")})
    previous = extensions.get_wait_callback()
    extensions.set_wait_callback(functools.partial(_gevent_wait, timeout=1.0))
    yield pg
    extensions.set_wait_callback(previous)
    db.close_all()
    init_db(app.config["DATABASE_URL"])  # hand the shared proxy back to the test's app


class Frozen:
    """SIGSTOP the cluster's postmaster and every backend; SIGCONT them on exit."""

    def __init__(self, server: Cluster) -> None:
        postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
        self.pids = [postmaster, *children(postmaster)]

    def __enter__(self) -> Frozen:
        self._signal(signal.SIGSTOP)
        return self

    def __exit__(self, *exc: object) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, number: int) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, number)
            except ProcessLookupError:
                pass  # a short-lived child (a backend, a worker) that ended meanwhile


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
@pytest.mark.timing
def test_a_hung_postgresql_holds_up_no_poller_and_loses_no_event(pg_app, server, service_of):
    config = make_gate(pg_app)
    service = service_of(pg_app)
    service.on_event(config, exit_card(0), p.DecisionCode.GRANT, 0.001)
    assert wait_until(lambda: recorded(pg_app) == ["1000"])  # a pooled connection is warm
    poller = PollerLike(service, config)
    with Frozen(server):
        gevent.spawn(poller.run, 3.0).join()
        assert wait_until(lambda: service.spool.pending() == len(poller.sent), timeout=5)
    # Never held up: every call returned at once and the greenlet ticked all along.
    assert poller.slowest < 0.02, poller.slowest
    assert poller.ticks >= 3.0 / TICK_S * 0.5, poller.ticks
    assert len(poller.sent) >= 10
    events = wait_until(lambda: len(rows := recorded(pg_app)) == len(poller.sent) + 1 and rows)
    assert events == ["1000", *poller.sent]  # none lost, none twice, in order
    last = f"tick {poller.ticks}"
    assert wait_until(lambda: stored_state(pg_app, config.gate_id) == last)


@pytest.mark.slow
@pytest.mark.timing
def test_a_query_to_a_hung_postgresql_fails_after_a_few_seconds(server):
    """domain.db's own wait bound (PG_WAIT_S), under the bridge's gevent wait callback."""
    from peewee import OperationalError
    from psycopg2 import extensions

    from domain.db import PG_WAIT_S

    pg = open_database(server.fresh_database(), pooled=False)
    previous = extensions.get_wait_callback()
    extensions.set_wait_callback(_gevent_wait)
    try:
        pg.connect()
        with Frozen(server):
            started = time.monotonic()
            with pytest.raises(OperationalError, match="did not answer"):
                pg.execute_sql("SELECT 1")
            took = time.monotonic() - started
        assert PG_WAIT_S - 0.5 < took < PG_WAIT_S + 2, took
        assert pg._state.conn.closed  # psycopg2 drops it: its state is unknown
    finally:
        extensions.set_wait_callback(previous)
        pg.close()
