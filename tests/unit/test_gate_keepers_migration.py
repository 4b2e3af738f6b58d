"""Migration 11 on a database made before it: every gate has named its controller since it
was made, and the statuses learn where the bridge's reached identities go."""

from __future__ import annotations

import datetime as dt

from domain.gates import Gate, GateEvent, GateStatus
from domain.schema import upgrade
from tests.unit.conftest import garden

T0 = dt.datetime(2024, 1, 10, 9, 0, tzinfo=dt.UTC)


def test_a_database_from_before_controller_keepers_upgrades(scratch):
    database = scratch()
    with garden(database) as (models, t, _parent):
        gate = Gate.create(territory=t, name="Въезд", host="10.0.0.5", port=502, unit_id=1,
                           created_at=T0)
        GateStatus.create(gate=gate, status="online")
        GateEvent.create(territory=t, gate=gate, kind="card", credential="42", code=1,
                         reason="card_valid")
        database.execute_sql("ALTER TABLE gate DROP COLUMN address_since")
        database.execute_sql("ALTER TABLE gate_status DROP COLUMN reached")
    database.close()

    database = scratch()
    with database.bind_ctx(models):
        assert 11 in upgrade(database)
        upgraded = Gate.get_by_id(gate.id)
        assert upgraded.address_since == T0  # named its controller since it was made
        status = GateStatus.get(GateStatus.gate == gate.id)
        assert (status.status, status.reached) == ("online", None)
        assert GateEvent.select().where(GateEvent.gate == gate.id).count() == 1
