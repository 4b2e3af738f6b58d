"""BridgeService's database side without a controller: events written once, cache keys."""

from __future__ import annotations

from dataclasses import replace

import pytest

from domain.db import utcnow
from domain.gates import Gate, GateEvent
from domain.territories import create_territory
from gatebridge import protocol as p
from gatebridge.service import BridgeService, access_credential


def test_a_spooled_event_handed_over_twice_is_written_once(app, make_account):
    with app.app_context():
        manager = make_account()
        t = create_territory(manager, name="ЖК", kind="residential")
        gate = Gate.create(territory=t, name="Въезд", host="127.0.0.1", port=5020)
        event = {"territory_id": t.id, "gate_id": gate.id, "at": utcnow().isoformat(),
                 "kind": "plate", "credential": "A777AA77", "direction": 1, "code": 4,
                 "reason": "unknown_plate", "account_id": None, "spool_id": "abc"}
        BridgeService.write_event(event)
        BridgeService.write_event(event)  # a crash between writing and noting the offset
        assert GateEvent.select().count() == 1
        gone = dict(event, gate_id=9999, account_id=8888, spool_id="def",
                    at=utcnow().isoformat())
        BridgeService.write_event(gone)  # a gate deleted meanwhile does not block the spool
        assert GateEvent.select().where(GateEvent.gate.is_null()).count() == 1


def test_controller_credentials_become_access_credentials():
    assert access_credential(p.Credential("plate", "a777aa77")).value == "A777AA77"
    assert access_credential(p.Credential("card", "00042")).value == "42"


def test_watch_reads_recent_changes_and_resyncs_in_full(app, make_account, monkeypatch):
    import datetime as dt

    from domain import versions
    from gatebridge import service as service_module

    with app.app_context():
        manager = make_account()
        first = create_territory(manager, name="ЖК", kind="residential")
        second = create_territory(manager, name="БЦ", kind="business")
        versions.bump(first.id)
        versions.bump(second.id)
        bridge = BridgeService(app)
        invalidated: list[int] = []
        monkeypatch.setattr(bridge.cache, "invalidate", lambda tid=None, key=None: invalidated.append(tid))
        bridge.watch()  # the first call learns every version
        assert invalidated == []
        versions.bump(first.id)
        bridge.watch()
        assert invalidated == [first.id]
        # A change stamped long ago (as if its transaction was slow) is caught by the resync.
        versions.TerritoryVersion.update(
            version=versions.TerritoryVersion.version + 1,
            changed_at=utcnow() - dt.timedelta(minutes=5),
        ).where(versions.TerritoryVersion.territory_id == second.id).execute()
        bridge.watch()
        assert invalidated == [first.id]
        monkeypatch.setattr(service_module, "FULL_RESYNC", 0.0)
        bridge.watch()
        assert invalidated == [first.id, second.id]


def test_the_identity_a_gate_reached_is_stored_and_handed_to_the_next_bridge(
        app, make_account):
    """A switched-off gate keeps its controller across a restart: the service stores what
    each gate reached with the address it reached it at, and the next one hands the poller
    only what still matches the gate's address."""
    import ipaddress

    from gatebridge.poller import ControllerState, Reach
    from gatebridge.service import config_of

    with app.app_context():
        t = create_territory(make_account(), name="ЖК", kind="residential")
        kept = Gate.create(territory=t, name="Въезд", host="10.0.0.5", port=502)
        moved = Gate.create(territory=t, name="Выезд", host="10.0.0.6", port=502)
        first = BridgeService(app)
        for gate, identity in ((kept, ("10.0.0.5", 502, 77)), (moved, ("10.0.0.6", 502,
                                                                        ("unit", 1)))):
            config = config_of(Gate.get_by_id(gate.id), t.free_exit)
            first.poller.configs[gate.id] = config
            first.poller.reached[gate.id] = Reach(identity, 1000.0)
            first.store_state(config, ControllerState(gate.id, status="online"))
        Gate.update(enabled=False).execute()  # both switched off, then the bridge restarts
        Gate.update(host="10.0.0.9").where(Gate.id == moved.id).execute()  # pointed elsewhere
        second = BridgeService(app)
        second.reload()
        assert set(second.poller.held) == {kept.id}
        assert second.poller.reached == {kept.id: Reach(("10.0.0.5", 502, 77), 1000.0)}
        app.config["GATE_NETWORKS"] = (ipaddress.ip_network("10.0.0.0/24"),)
        assert BridgeService(app).poller.networks == app.config["GATE_NETWORKS"]


def test_an_identity_stored_before_its_moment_was_is_not_taken():
    """Stored at stop 21, `gate_status.reached` had no moment of first reach, and may record
    a controller taken over by the ranking of then (claims re-audit, stop 22): it is not
    handed to the next bridge, and the gate reaches its controller again."""
    from gatebridge.poller import ControllerConfig, Reach
    from gatebridge.service import reached_identity, reached_json

    config = ControllerConfig(gate_id=1, territory_id=1, host="10.0.0.5", port=502)
    device = '"device": ["10.0.0.5", 502, 1, null], "identity": ["10.0.0.5", 502, 77]'
    assert reached_identity(config, f'{{{device}, "since": 1500.5}}') == Reach(
        ("10.0.0.5", 502, 77), 1500.5)
    assert reached_identity(config, f'{{{device}}}') is None  # stop 21: no moment
    assert reached_identity(config, f'{{{device}, "since": "later"}}') is None
    stored = reached_json(config, Reach(("10.0.0.5", 502, ("unit", 1)), 1500.5))
    assert reached_identity(config, stored) == Reach(("10.0.0.5", 502, ("unit", 1)), 1500.5)
    # Reached before the gate was given a serial: not the gate's any more.
    assert reached_identity(replace(config, serial=77), stored) is None


def test_a_moved_version_reloads_that_territory_s_gates_only(app, make_account, monkeypatch):
    """Every pass filed moves its territory's version, and the bridge reloaded every gate of
    every territory then: ~0.8 s of its loop at 10 000 territories (bench/README.md). Now it
    reads the moved territories' gates; the rest wait for the periodic reload."""
    from domain import gates, versions
    from gatebridge import service as service_module

    def gate_args(gate, **changed):
        return {"name": gate.name, "host": gate.host, "port": gate.port,
                "unit_id": gate.unit_id, "direction": gate.direction,
                "poll_ms": gate.poll_ms, "word_order": gate.word_order,
                "enabled": gate.enabled, **changed}

    with app.app_context():
        manager = make_account()
        moved = create_territory(manager, name="ЖК", kind="residential")
        still = create_territory(manager, name="БЦ", kind="business")
        entry = gates.add_gate(moved, name="Въезд", host="10.0.0.5", port=502)
        side = gates.add_gate(moved, name="Калитка", host="10.0.0.6", port=502)
        gone = gates.add_gate(moved, name="Выезд", host="10.0.0.7", port=502)
        other = gates.add_gate(still, name="Въезд", host="10.0.1.5", port=502)
        bridge = BridgeService(app)
        bridge.reload()
        bridge.watch()  # learns the versions
        assert set(bridge.poller.configs) == {entry.id, side.id, gone.id, other.id}

        gates.update_gate(moved.id, entry.id, **gate_args(entry, port=503))
        gates.update_gate(moved.id, side.id, **gate_args(side, enabled=False))
        gates.delete_gate(moved.id, gone.id)
        Gate.update(port=504).where(Gate.id == other.id).execute()  # by hand: no version
        read: list[set[int] | None] = []
        real_reload = bridge._reload
        monkeypatch.setattr(bridge, "_reload", lambda ts: (read.append(ts), real_reload(ts)))
        bridge.watch()
        assert read == [{moved.id}]
        assert bridge.poller.configs[entry.id].port == 503
        assert side.id not in bridge.poller.configs and side.id in bridge.poller.held
        assert gone.id not in bridge.poller.configs
        assert bridge.poller.configs[other.id].port == 502  # not read: its version stood

        bridge.reload()  # the periodic one, the safety net for rows written by hand
        assert bridge.poller.configs[other.id].port == 504
        assert side.id in bridge.poller.held

        # More territories moved at once than a query should name: one reload of all.
        monkeypatch.setattr(service_module, "RELOAD_SOME_MAX", 1)
        versions.bump(moved.id)
        versions.bump(still.id)
        bridge.watch()
        assert read[-1] is None


def test_a_step_the_database_failed_is_tried_again_soon(app, monkeypatch):
    """The whole reload runs every RELOAD_S (30 s): a bridge started while the database was
    away would have polled no gate for that long."""
    import gevent
    from peewee import OperationalError

    from gatebridge import service as service_module

    monkeypatch.setattr(service_module, "RETRY_S", 0.05)
    calls: list[int] = []

    def reload() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("the database is away")

    loop = gevent.spawn(BridgeService(app)._every, 30.0, reload)
    try:
        gevent.sleep(0.5)
    finally:
        loop.kill()
    assert len(calls) == 2  # again after RETRY_S, then not before RELOAD_S


def test_a_bridge_started_while_the_database_is_away_looks_again_every_few_seconds(
        app, monkeypatch):
    """Its pauses grew to 30 s: every gate stayed unpolled for up to 30 s after the database
    came back (bridge audit, stop 24)."""
    from peewee import OperationalError

    import domain.schema
    from gatebridge import __main__ as bridge_main

    failures = iter(range(6))

    def upgrade(*_args, **_kwargs):
        if next(failures, None) is not None:
            raise OperationalError("connection refused")
        return []

    pauses: list[float] = []

    class Stopping:
        def wait(self, pause):
            pauses.append(pause)
            return False

    monkeypatch.setattr(domain.schema, "upgrade", upgrade)
    assert bridge_main._upgraded(app, Stopping()) is True
    assert pauses == [1.0, 2.0, 3.0, 3.0, 3.0, 3.0]


def test_what_changed_while_the_bridge_could_not_read_is_read_when_it_can(
        app, make_account, monkeypatch):
    """watch() read the versions of the last 5 s before now: a pass revoked while only the
    bridge had lost the database was let in until the next full read (bridge audit, stop 24).
    It now reads from its last read that went through."""
    import datetime as dt

    from peewee import OperationalError

    from domain import versions

    with app.app_context():
        t = create_territory(make_account(), name="ЖК", kind="residential")
        versions.bump(t.id)
        bridge = BridgeService(app)
        invalidated: list[int] = []
        monkeypatch.setattr(bridge.cache, "invalidate",
                            lambda tid=None, key=None: invalidated.append(tid))
        bridge.watch()  # learns every version
        # The bridge's reads fail for a while; meanwhile a change is stamped, long enough
        # ago by the time the database answers again that "the last 5 s" would miss it.
        real = versions.versions
        monkeypatch.setattr(versions, "versions",
                            lambda since=None: (_ for _ in ()).throw(OperationalError("away")))
        with pytest.raises(OperationalError):
            bridge.watch()
        versions.TerritoryVersion.update(
            version=versions.TerritoryVersion.version + 1,
            changed_at=utcnow() - dt.timedelta(seconds=20),
        ).where(versions.TerritoryVersion.territory_id == t.id).execute()
        bridge._read_at -= dt.timedelta(seconds=30)  # the outage lasted half a minute
        monkeypatch.setattr(versions, "versions", real)
        bridge.watch()
        assert invalidated == [t.id]


def test_a_gate_pointed_elsewhere_and_back_has_reached_nothing_there_yet(app, make_account):
    """Moved away and back, a gate took the controller another territory's gate had served
    meanwhile: its old «reached» came back with it and ranked it first (bridge audit,
    stop 24). An edit of the address forgets it; one of the poll interval keeps it; the
    bridge's writer, still on the old address for a moment, cannot write it back."""
    from domain import gates
    from gatebridge.poller import ControllerState, Reach
    from gatebridge.service import config_of, reached_json

    with app.app_context():
        t = create_territory(make_account(), name="ЖК", kind="residential")
        gate = gates.add_gate(t, name="Въезд", host="10.0.0.5", port=502)
        bridge = BridgeService(app)
        old = config_of(Gate.get_by_id(gate.id), t.free_exit)
        bridge.poller.configs[gate.id] = old
        bridge.poller.reached[gate.id] = Reach(("10.0.0.5", 502, 77), 1000.0)
        bridge.store_state(old, ControllerState(gate.id, status="online"))

        def stored():
            return gates.GateStatus.get(gates.GateStatus.gate == gate.id).reached

        def edit(**changed):
            fields = {"name": "Въезд", "host": "10.0.0.5", "port": 502, "unit_id": 1,
                      "direction": "both", "poll_ms": 200, "word_order": "big",
                      "enabled": True, **changed}
            gates.update_gate(t.id, gate.id, **fields)

        assert stored() is not None
        edit(poll_ms=100)
        assert stored() is not None  # the same controller: still its own
        edit(port=503)
        assert stored() is None
        bridge.reload()  # as the version watch does
        assert gate.id not in bridge.poller.reached
        # The writer's state of the old address, stored after the edit, is not taken.
        gates.save_status(gate.id, status="online", last_seen_at=None, heartbeat=None,
                          gate_state=0, fault_code=0, last_error=None,
                          reached=reached_json(old, Reach(("10.0.0.5", 502, 77), 1000.0)))
        assert stored() is None
        edit(port=502)  # and back: nothing reached here yet
        assert stored() is None
        bridge.reload()
        assert gate.id not in bridge.poller.reached
