"""Migrations 11 and 13 on databases made before them: the statuses learn where the
bridge's reached identities go, and gate.address_since, which steps 11 to 12 added and
nothing reads any more, goes without taking a row along."""

from __future__ import annotations

import datetime as dt

from domain.gates import Gate, GateEvent, GateStatus
from domain.schema import upgrade
from tests.unit.conftest import garden

T0 = dt.datetime(2024, 1, 10, 9, 0, tzinfo=dt.UTC)


def _columns(database, table: str) -> set[str]:
    return {c.name for c in database.get_columns(table)}


def _gate_with_history(t):
    gate = Gate.create(territory=t, name="Въезд", host="10.0.0.5", port=502, unit_id=1,
                       created_at=T0)
    GateStatus.create(gate=gate, status="online")
    GateEvent.create(territory=t, gate=gate, kind="card", credential="42", code=1,
                     reason="card_valid")
    return gate


def _still_there(gate) -> None:
    upgraded = Gate.get_by_id(gate.id)
    assert (upgraded.name, upgraded.host, upgraded.created_at) == ("Въезд", "10.0.0.5", T0)
    status = GateStatus.get(GateStatus.gate == gate.id)
    assert (status.status, status.reached) == ("online", None)
    assert GateEvent.select().where(GateEvent.gate == gate.id).count() == 1


def test_a_database_from_before_controller_keepers_upgrades(scratch):
    database = scratch()
    with garden(database) as (models, t, _parent):
        gate = _gate_with_history(t)
        database.execute_sql("ALTER TABLE gate_status DROP COLUMN reached")
    database.close()

    database = scratch()
    with database.bind_ctx(models):
        assert {11, 13} <= set(upgrade(database))
        assert "reached" in _columns(database, "gate_status")
        assert "address_since" not in _columns(database, "gate")
        _still_there(gate)


def test_the_unread_address_since_is_dropped_and_every_row_stays(scratch):
    database = scratch()
    with garden(database) as (models, t, _parent):
        gate = _gate_with_history(t)
        # As steps 11 to 12 left it: added, and filled from created_at.
        database.execute_sql("ALTER TABLE gate ADD COLUMN address_since TIMESTAMP")
        database.execute_sql("UPDATE gate SET address_since = created_at")
    database.close()

    database = scratch()
    with database.bind_ctx(models):
        assert 13 in upgrade(database)
        assert "address_since" not in _columns(database, "gate")
        _still_there(gate)
        # And a gate is made as before.
        Gate.create(territory=t, name="Выезд", host="10.0.0.6")
