"""The database goes away under a running bridge (its own process) and comes back.

A throwaway PostgreSQL server is stopped with `pg_ctl stop` while the bridge runs: known
credentials keep being decided from the cache, an unknown one gets «try again» (6), exits
stay free, every event is spooled to the instance folder — and once the server is started
again every spooled event is in GateEvent, none lost and none twice.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from domain import gates
from domain.db import db, init_db, utcnow
from domain.gates import GateEvent
from domain.passes import VehiclePass, normalize_plate
from domain.territories import Membership, Unit, create_territory
from tests.bridge.conftest import decision, settled_decision, wait_for
from tests.pg import Cluster

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timing,
    pytest.mark.filterwarnings('ignore:Peewee no longer uses the "autorollback"'),
]


@pytest.fixture
def server():
    """A PostgreSQL cluster of this test's own: the test stops and starts it."""
    with Cluster.create() as pg:
        yield pg


@pytest.fixture
def pg_app(app, server, tmp_path):
    from app import create_app

    pg = create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": server.fresh_database(),
                     "INSTANCE_PATH": str(tmp_path / "pg-instance")})
    yield pg
    db.close()
    init_db(app.config["DATABASE_URL"])  # hand the shared proxy back to the test's app


def _gated_home(pg_app, simulator, start_bridge, plates, free_exit=True):
    """A residential territory with a resident whose `plates` have passes valid today, a
    gate on the simulator, and the bridge running with the gate online."""
    from domain.accounts import Account

    with pg_app.app_context(), db.connection_context():
        manager = Account.create(phone="+79990000402", surname="Управляева")
        resident = Account.create(phone="+79990000403", surname="Федоров")
        t = create_territory(manager, name="ЖК", kind="residential")
        t.free_exit = free_exit
        t.save()
        unit = Unit.create(territory=t, name="Дом 1")
        member = Membership.create(account=resident, territory=t, role="resident", unit=unit)
        passes = {plate: VehiclePass.create(territory=t, account=resident,
                                            plate=normalize_plate(plate),
                                            valid_from=utcnow() - dt.timedelta(hours=1),
                                            valid_to=utcnow() + dt.timedelta(days=1))
                  for plate in plates}
        gate = gates.add_gate(t, name="Въезд", host=simulator.modbus_host,
                              port=simulator.modbus_port, direction="both", poll_ms=50)
    db.close()
    bridge = start_bridge(pg_app.config["DATABASE_URL"], Path(pg_app.instance_path))

    def online():
        with pg_app.app_context(), db.connection_context():
            return gates.gate_online(gate.id)

    assert wait_for(online, timeout=20), bridge.log()
    return SimpleNamespace(member=member, passes=passes, gate=gate, bridge=bridge)


def _events(app):
    with app.app_context(), db.connection_context():
        return list(GateEvent.select().order_by(GateEvent.at, GateEvent.id))


def test_database_outage_keeps_deciding_spools_and_loses_nothing(
    pg_app, server, simulator, start_bridge
):
    known, stranger = normalize_plate("А777АА77"), normalize_plate("В123ВВ77")
    home = _gated_home(pg_app, simulator, start_bridge, ["А777АА77"])
    bridge, gate, instance = home.bridge, home.gate, Path(pg_app.instance_path)
    seq = simulator.present(type="plate", plate="A777AA77")
    assert decision(simulator, seq) == 1  # now in the bridge's cache
    assert wait_for(lambda: len(_events(pg_app)) == 1)
    db.close()

    server.stop()
    try:
        outage = []
        seq = simulator.present(type="plate", plate="A777AA77")
        outage.append(decision(simulator, seq))  # cached: still opens
        seq = simulator.present(type="plate", plate="B123BB77")
        outage.append(decision(simulator, seq))  # unknown: try again
        seq = simulator.present(type="card", card=4242, bit_length=26, direction=2)
        outage.append(decision(simulator, seq))  # exit: free
        seq = simulator.present(type="plate", plate="A777AA77")
        outage.append(decision(simulator, seq))
        assert outage == [1, 6, 1, 1], bridge.log()
        spool = instance / "gate-events.spool"
        assert wait_for(lambda: spool.exists() and len(spool.read_text().splitlines()) == 4,
                        timeout=3), bridge.log()
        time.sleep(1.5)  # the drainer keeps failing meanwhile, and must not lose anything
    finally:
        server.start()

    events = wait_for(lambda: len(rows := _events(pg_app)) >= 5 and rows, timeout=15)
    assert events, bridge.log()
    time.sleep(1.5)  # nothing written twice by a later drain
    events = _events(pg_app)
    assert [(e.credential, e.code, e.direction, e.reason) for e in events] == [
        (known, 1, 1, "pass_valid"),
        (known, 1, 1, "pass_valid"),
        (stranger, 6, 1, "unavailable"),
        ("4242", 1, 2, "exit_free"),
        (known, 1, 1, "pass_valid"),
    ]
    assert all(e.source == "bridge" and e.gate_id == gate.id for e in events)
    assert not (instance / "gate-events.spool").exists() or not (
        instance / "gate-events.spool"
    ).read_text().strip()


def test_a_change_in_the_territory_keeps_the_last_answers_for_an_outage(
    pg_app, server, simulator, start_bridge
):
    from domain.passes import file_pass, revoke_pass

    neighbour = normalize_plate("В123ВВ77")
    home = _gated_home(pg_app, simulator, start_bridge, ["А777АА77", "С555СС77"])
    bridge, member, doomed = home.bridge, home.member, home.passes["С555СС77"]
    assert decision(simulator, simulator.present(type="plate", plate="A777AA77")) == 1
    assert decision(simulator, simulator.present(type="plate", plate="B123BB77")) == 4
    assert decision(simulator, simulator.present(type="plate", plate="C555CC77")) == 1

    # An unrelated pass is filed in the same territory: its version moves. Another pass,
    # granted a moment ago, is revoked and not presented again before the outage.
    with pg_app.app_context(), db.connection_context():
        file_pass(Membership.get_by_id(member.id), plate=neighbour,
                  valid_to=utcnow() + dt.timedelta(days=1))
        revoke_pass(Membership.get_by_id(member.id), doomed.id)
    db.close()

    def neighbour_granted():
        return decision(simulator, simulator.present(type="plate", plate="B123BB77")) == 1

    assert wait_for(neighbour_granted, timeout=10, interval=0.1), bridge.log()
    time.sleep(1.0)  # the bridge has certainly seen the new version (it looks every 0.2 s)

    server.stop()
    try:
        # Not presented since the change, yet its last known answer still opens.
        seq = simulator.present(type="plate", plate="A777AA77")
        assert decision(simulator, seq) == 1, bridge.log()
        seq = simulator.present(type="plate", plate="B123BB77")
        assert decision(simulator, seq) == 1, bridge.log()
        # The revocation reached the fallback before the outage (the bridge re-read it).
        seq = simulator.present(type="plate", plate="C555CC77")
        assert decision(simulator, seq) == 2, bridge.log()
    finally:
        server.start()


def test_without_free_exit_an_outage_answers_exits_from_what_was_known(
    pg_app, server, simulator, start_bridge
):
    home = _gated_home(pg_app, simulator, start_bridge, ["А777АА77", "С555СС77"],
                       free_exit=False)
    bridge = home.bridge

    def answer(plate, direction):
        seq = simulator.present(type="plate", plate=plate, direction=direction)
        return decision(simulator, seq)

    def known(plate, direction):
        return settled_decision(simulator, type="plate", plate=plate, direction=direction)

    # Known before the outage: one car came in, another went out, a stranger was kept in.
    assert [known("A777AA77", 1), known("C555CC77", 2), known("B123BB77", 2)] == [1, 1, 2]
    db.close()

    server.stop()
    try:
        outage = [
            answer("A777AA77", 2),  # let in, so let out
            answer("C555CC77", 2),  # its own last answer
            answer("B123BB77", 2),  # its own last answer: still no pass
            answer("E444EE77", 2),  # never seen: nothing to go on
            decision(simulator, simulator.present(type="exit_button")),
        ]
        assert outage == [1, 1, 2, 6, 1], bridge.log()
    finally:
        server.start()
    spooled = [(2, 1, "pass_valid"), (2, 1, "pass_valid"), (2, 2, "no_pass"),
               (2, 6, "unavailable"), (2, 1, "exit_button")]

    def written():
        return [(e.direction, e.code, e.reason) for e in _events(pg_app)[-5:]] == spooled

    assert wait_for(written, timeout=15), (_events(pg_app), bridge.log())


def test_a_bridge_started_before_its_database_waits_for_it(tmp_path, start_bridge):
    """Deploy audit: a bridge started while the database could not be reached exited at once,
    and its service manager, restarting it every two seconds, gave up before the database
    came back. It waits now, and runs once the database is there."""
    folder = tmp_path / "not-yet"  # SQLite cannot open a file in a folder that is missing
    instance = tmp_path / "instance"
    instance.mkdir()
    bridge = start_bridge(f"sqlite:///{folder / 'propusk.db'}", instance)
    assert wait_for(lambda: "trying again" in bridge.log(), timeout=20), bridge.log()
    assert bridge.proc.poll() is None, bridge.log()
    folder.mkdir()
    assert wait_for(lambda: "gatebridge running" in bridge.log(), timeout=20), bridge.log()
    assert bridge.stop() == 0
