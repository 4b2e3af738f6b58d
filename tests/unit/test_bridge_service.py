"""BridgeService's database side without a controller: events written once, cache keys."""

from __future__ import annotations

from dataclasses import replace

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
            config = config_of(Gate.get_by_id(gate.id))
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
