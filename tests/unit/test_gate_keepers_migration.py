"""Migration 11 on a database made before it, and gate.address_since, which steps 11 to 12
added and nothing reads since stop 24: the statuses learn where the bridge's reached
identities go; the unread column is neither added any more nor dropped yet (processes of the
previous release still select it while an upgrade rolls through), and the gates work with it
there or not."""

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
        assert 11 in upgrade(database)
        assert "reached" in _columns(database, "gate_status")
        assert "address_since" not in _columns(database, "gate")
        _still_there(gate)


def test_the_unread_address_since_stays_for_the_previous_release_and_is_not_in_the_way(scratch):
    database = scratch()
    with garden(database) as (models, t, _parent):
        gate = _gate_with_history(t)
        # As steps 11 to 12 left it: added, and filled from created_at.
        database.execute_sql("ALTER TABLE gate ADD COLUMN address_since TIMESTAMP")
        database.execute_sql("UPDATE gate SET address_since = created_at")
    database.close()

    database = scratch()
    with database.bind_ctx(models):
        upgrade(database)
        assert "address_since" in _columns(database, "gate")  # an old process still reads it
        _still_there(gate)
        # And the gates are made and read as before, the column left empty.
        made = Gate.create(territory=t, name="Выезд", host="10.0.0.6")
        assert database.execute_sql(
            f"SELECT address_since FROM gate WHERE id = {made.id}").fetchone() == (None,)
