"""«Открыть» and the end of someone's access at the same instant (concurrency audit, stop 24).

A member removed while their press was on its way still had the gate opened, logged as a
granted «member» event. Now the press decides again with the membership and the account
held: a removal committed first is seen, and one that comes after the press fails the
press's command before the bridge takes it. Each test holds one side's transaction open on
another connection (tests/gate_race) and runs the other meanwhile.
"""

from __future__ import annotations

import pytest

from domain import gates
from domain.access import DENY_BLOCKED, Credential, decide
from domain.accounts import Account, set_blocked
from domain.db import db, utcnow
from domain.gates import Gate, GateCommand, GateEvent
from domain.territories import Membership, Territory, create_territory, remove_member
from tests import database as test_database
from tests.gate_race import in_request, race


@pytest.fixture
def site(app, make_account):
    with app.app_context():
        manager, resident = make_account(phone="+79997770021"), make_account(phone="+79997770022")
        t = create_territory(manager, name="ЖК", kind="residential")
        Territory.update(app_access_free=True).where(Territory.id == t.id).execute()
        member = Membership.create(account=resident, territory=t, role="operator")
        gate = Gate.create(territory=t, name="Въезд", host="127.0.0.1", port=5020)
        return {"t": Territory.get_by_id(t.id), "resident": resident, "member": member.id,
                "gate": gate.id}


def _online(gate_id: int) -> None:
    gates.save_status(gate_id, status="online", last_seen_at=utcnow(), heartbeat=1,
                      gate_state=0, fault_code=0, last_error=None)


def _locking(*rows: tuple[str, int]):
    """SELECT … FOR UPDATE of each (table, id) on PostgreSQL (SQLite: the writes lock)."""
    def lock(database) -> None:
        if test_database.postgresql():
            for table, row_id in rows:
                database.execute_sql(f"SELECT id FROM {table} WHERE id = %s FOR UPDATE",
                                     (row_id,))
    return lock


def _press(app, site):
    def run():
        with app.test_request_context():
            gate = Gate.get_by_id(site["gate"])
            _online(gate.id)
            t = site["t"]
            try:
                return gates.request_open(
                    gate, site["resident"].id, "phone", member_id=site["member"],
                    recheck=lambda: decide(t, Credential("account", str(site["resident"].id)),
                                           1, utcnow()))
            except gates.PressRefused as refused:
                return refused.decision.reason
            finally:
                db.close()
    return run


def test_a_press_after_the_removal_committed_is_refused(app, site):
    def removal(database) -> None:
        _locking(("territory", site["t"].id), ("membership", site["member"]))(database)
        database.execute(Membership.delete().where(Membership.id == site["member"]))

    outcome = race(app, removal, _press(app, site))
    assert outcome.get("result") == "not_member", outcome
    with app.app_context():
        assert GateCommand.select().count() == 0


def _pending_press(site):
    """The press's transaction, as request_open writes it, not committed yet."""
    def press(database) -> None:
        _locking(("gate", site["gate"]), ("membership", site["member"]),
                 ("account", site["resident"].id))(database)
        database.execute(GateCommand.insert(gate=site["gate"], territory=site["t"].id,
                                            account=site["resident"].id, reason="phone",
                                            created_at=utcnow()))
    return press


@pytest.mark.parametrize("ending", ["removed", "blocked"])
def test_a_press_on_its_way_when_access_ends_opens_nothing(app, site, ending):
    def end():
        if ending == "removed":
            remove_member(site["t"], site["member"])
        else:
            set_blocked(Account.get_by_id(site["resident"].id), True)

    outcome = race(app, _pending_press(site), in_request(app, end))
    assert "error" not in outcome, outcome
    with app.app_context():
        command = GateCommand.get()
        assert (command.status, command.failure) == ("failed", "access_ended")
        event = GateEvent.get()
        reason = "not_member" if ending == "removed" else "account_blocked"
        assert (event.code, event.reason, event.account_id) == (
            DENY_BLOCKED, reason, site["resident"].id)


def test_a_gate_edited_while_it_is_deleted_is_not_saved(app, site):
    """The edit said «Сохранено» over a gate that was gone."""
    from domain.errors import NotFound

    def deletion(database) -> None:
        _locking(("gate", site["gate"]))(database)
        database.execute(Gate.delete().where(Gate.id == site["gate"]))

    def edit():
        with app.test_request_context():
            try:
                gates.update_gate(site["t"].id, site["gate"], name="Въезд-2", host="127.0.0.1",
                                  port=5020, unit_id=1, direction="both", poll_ms=200,
                                  word_order="big", enabled=True)
                return "saved"
            except NotFound:
                return "gone"
            finally:
                db.close()

    outcome = race(app, deletion, edit)
    assert outcome.get("result") == "gone", outcome
