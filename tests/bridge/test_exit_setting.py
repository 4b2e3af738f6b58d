"""The territory's «Свободный выезд» at the gate: the bridge (its own process) honours it."""

from __future__ import annotations

import datetime as dt

import pytest

from domain import gates, territories
from domain.db import db, utcnow
from domain.gates import GateEvent
from domain.passes import VehiclePass, normalize_plate
from domain.territories import Membership, Territory, Unit, create_territory
from tests.bridge.conftest import decision, settled_decision, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timing]


def _set_free_exit(app, tid, on):
    with app.app_context(), db.connection_context():
        t = Territory.get_by_id(tid)
        territories.update_settings(t, name=t.name, address=t.address, timezone=t.timezone,
                                    passes_enabled=True, app_access_free=False, free_exit=on)
    db.close()


def test_without_free_exit_the_bridge_decides_exits_as_access_does(
    app, make_account, simulator, start_bridge
):
    with app.app_context():
        manager = make_account(phone="+79990000502", surname="Управляева")
        t = create_territory(manager, name="ЖК", kind="residential")
        unit = Unit.create(territory=t, name="Дом 1")
        resident = make_account(phone="+79990000503", surname="Федоров")
        Membership.create(account=resident, territory=t, role="resident", unit=unit)
        # Came in on a pass that has ended since: may still leave, may not come back.
        VehiclePass.create(territory=t, account=resident, plate=normalize_plate("А777АА77"),
                           valid_from=utcnow() - dt.timedelta(days=2),
                           valid_to=utcnow() - dt.timedelta(days=1))
        gate = gates.add_gate(t, name="Ворота", host=simulator.modbus_host,
                              port=simulator.modbus_port, direction="both", poll_ms=50)
    _set_free_exit(app, t.id, False)
    bridge = start_bridge(app.config["DATABASE_URL"], app.instance_path)

    def online():
        with app.app_context(), db.connection_context():
            return gates.gate_online(gate.id)

    assert wait_for(online, timeout=20), bridge.log()
    out = {"type": "plate", "direction": 2}
    assert settled_decision(simulator, plate="B123BB77", **out) == 2, bridge.log()
    assert settled_decision(simulator, plate="A777AA77", **out) == 1
    assert settled_decision(simulator, type="plate", plate="A777AA77") == 3
    assert decision(simulator, simulator.present(type="exit_button")) == 1

    def recorded():
        # (Without the «try again» a busy machine may have answered first: settled_decision.)
        with app.app_context(), db.connection_context():
            return [(e.direction, e.code, e.reason)
                    for e in GateEvent.select().order_by(GateEvent.id) if e.code != 6]

    assert wait_for(lambda: len(recorded()) == 4), bridge.log()
    assert recorded() == [(2, 2, "no_pass"), (2, 1, "exit_after_pass"), (1, 3, "pass_expired"),
                          (2, 1, "exit_button")]

    # Ticked again: a stranger drives out once the bridge has reloaded its gates.
    _set_free_exit(app, t.id, True)

    def stranger_leaves():
        return decision(simulator, simulator.present(plate="B123BB77", **out)) == 1

    assert wait_for(stranger_leaves, timeout=10, interval=0.2), bridge.log()
    assert wait_for(lambda: recorded()[-1] == (2, 1, "exit_free"))
