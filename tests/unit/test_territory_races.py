"""Checks that span a territory's rows hold when two people act at the same instant.

On PostgreSQL (read committed) each transaction counted what was committed before it and
both went ahead (concurrency audit, stop 24): two managers demoted each other and left the
territory with none, a unit was deleted while someone was accepted into it, one unit was
made twice in two cases, one person had two pending requests, eight sign-ups at once sent
seven calls. Each test holds the first person's transaction open on another connection,
written as the code writes it (the territory's row, or the codes' advisory lock, taken
first), and lets the second person's call run meanwhile: it must wait, then see the first.
On SQLite every writer takes the database's lock at BEGIN, and the same tests hold.
"""

from __future__ import annotations

import pytest

from domain import codes
from domain.db import lock_key, utcnow
from domain.territories import (
    JoinRequest,
    Membership,
    Unit,
    add_unit,
    create_territory,
    delete_unit,
    request_join,
    update_member,
)
from tests import database as test_database
from tests.gate_race import in_request, race


def _first(writes: list, territory_id: int | None = None, holds: tuple[str, ...] = ()):
    """For race(): the first person's transaction, as the code runs it: the territory's row
    or the named advisory locks first (PostgreSQL), then its writes (Peewee queries, run on
    the other connection)."""

    def write(database) -> None:
        if test_database.postgresql():
            if territory_id is not None:
                database.execute_sql("SELECT id FROM territory WHERE id = %s FOR UPDATE",
                                     (territory_id,))
            for name in sorted(holds):
                database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (lock_key(name),))
        for query in writes:
            database.execute(query)

    return write


@pytest.fixture
def place(app, make_account):
    with app.app_context():
        first, second = make_account(phone="+79997770001"), make_account(phone="+79997770002")
        t = create_territory(first, name="ЖК", kind="residential")
        other = Membership.create(account=second, territory=t, role="manager")
        mine = Membership.get((Membership.account == first) & (Membership.territory == t))
        return {"t": t, "mine": mine.id, "other": other.id, "second": second}


def test_two_managers_demoting_each_other_at_once_leave_one_manager(app, place):
    t = place["t"]
    first = _first([Membership.update(role="operator").where(Membership.id == place["mine"])],
                   t.id)
    outcome = race(app, first, in_request(app, lambda: update_member(
        t, place["other"], role="operator", unit_id=None)))
    assert outcome.get("result") == (
        "Это последний управляющий территории — назначьте сначала другого"), outcome
    with app.app_context():
        roles = sorted(m.role for m in Membership.select().where(Membership.territory == t))
    assert roles == ["manager", "operator"]


def test_a_unit_is_not_deleted_while_someone_is_accepted_into_it(app, place, make_account):
    t = place["t"]
    with app.app_context():
        unit = add_unit(t, "Дом 5")
        joining = make_account(phone="+79997770003")
    first = _first([Membership.insert(account=joining.id, territory=t.id, role="resident",
                                      unit=unit.id)], t.id)
    outcome = race(app, first, in_request(app, lambda: delete_unit(t, unit.id)))
    assert outcome.get("result") == (
        "К объекту подключены люди — сначала переведите их в другой"), outcome
    with app.app_context():
        assert Unit.get_or_none(Unit.id == unit.id) is not None
        assert Membership.get(Membership.account == joining).unit_id == unit.id


def test_one_unit_added_from_two_tabs_in_two_cases_is_made_once(app, place):
    t = place["t"]
    first = _first([Unit.insert(territory=t.id, name="дом 11b")], t.id)
    outcome = race(app, first, in_request(app, lambda: add_unit(t, "ДОМ 11B")))
    assert outcome.get("result") == "Такой объект уже есть", outcome
    with app.app_context():
        assert [u.name for u in Unit.select().where(Unit.territory == t)] == ["дом 11b"]


def test_one_person_s_request_sent_from_two_tabs_is_one_request(app, place, make_account):
    t = place["t"]
    with app.app_context():
        asking = make_account(phone="+79997770004")
    first = _first([JoinRequest.insert(account=asking.id, territory=t.id, unit_label="Дом 1")],
                   t.id)
    outcome = race(app, first, in_request(app, lambda: request_join(asking, t.code, "Дом 1")))
    assert outcome.get("result") == "Запрос уже отправлен — дождитесь решения управляющего"
    with app.app_context():
        assert JoinRequest.select().where(JoinRequest.account == asking).count() == 1


def test_sign_ups_at_once_to_one_phone_send_one_code(app):
    phone, now = "+79995550001", utcnow()
    with app.app_context():
        key = codes.target_key(phone)  # keyed with the app's secret
    first = _first([codes.SendLog.insert(key=key, channel="call", at=now),
                    codes.Code.insert(purpose=codes.SIGNUP, target=phone, channel="call",
                                      secret_hash="x", created_at=now,
                                      expires_at=now + codes.CODE_TTL)],
                   holds=(key, "global"))
    outcome = race(app, first, in_request(app, lambda: codes.issue(
        codes.SIGNUP, phone, "call", ip=None)))
    assert str(outcome.get("result", "")).startswith("Новый код можно запросить через"), outcome
    with app.app_context():
        assert codes.Code.select().where(codes.Code.target == phone).count() == 1


def test_joining_by_number_as_a_manager_accepts_the_person_speaks_to_the_person(app, place,
                                                                              make_account):
    """They were told «Этот человек уже подключён к территории», the manager's words."""
    from domain.territories import join_by_account_number

    t = place["t"]
    with app.app_context():
        unit = add_unit(t, "Дом 7", account_number="77001")
        joining = make_account(phone="+79997770005")
    first = _first([Membership.insert(account=joining.id, territory=t.id, role="resident",
                                      unit=unit.id)], t.id)
    outcome = race(app, first, in_request(app, lambda: join_by_account_number(
        joining, t.id, "77001")))
    assert outcome.get("result") == "Вы уже подключены к этой территории", outcome


def test_two_managers_asking_to_delete_their_accounts_at_once_leave_one(app, place,
                                                                        make_account):
    """Both were promised a deletion, and the territory (with a resident) had no manager
    not on their way out."""
    import datetime as dt

    from domain import accounts, codes
    from domain.accounts import Account

    t = place["t"]
    with app.test_request_context():
        Membership.create(account=make_account(phone="+79997770006"), territory=t,
                          role="operator")
        second = Account.get_by_id(place["second"].id)
        code, secret = codes.issue(codes.DELETION, second.phone, "sms", ip=None,
                                   account=second)
        first_id = Membership.get_by_id(place["mine"]).account_id
    first = _first([Account.update(deletion_due_at=utcnow() + dt.timedelta(days=30)).where(
        Account.id == first_id)], t.id)
    outcome = race(app, first, in_request(app, lambda: accounts.confirm_deletion(
        second, code.id, secret)))
    assert str(outcome.get("result", "")).startswith("Вы единственный управляющий"), outcome
    with app.app_context():
        assert Account.get_by_id(second.id).deletion_due_at is None
