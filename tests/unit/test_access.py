"""domain/access.decide as a table: every rule and every reason, one row each."""

from __future__ import annotations

import datetime as dt

import pytest

from domain.access import REASONS, Credential, Decision, decide
from domain.billing import AccessGrant, Card
from domain.passes import VehiclePass
from domain.territories import Membership, Territory, create_territory

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


@pytest.fixture
def world(app, make_account):
    """A territory with a manager, a resident, a blocked resident, a former resident, and
    one pass per situation, each on its own plate."""
    with app.app_context():
        manager = make_account()
        territory = create_territory(manager, name="ЖК", kind="residential")
        other = create_territory(manager, name="Другой", kind="residential")
        resident = make_account()
        blocked = make_account()
        gone = make_account()
        guard = make_account()
        for person in (resident, blocked):
            Membership.create(account=person, territory=territory, role="resident")
        Membership.create(account=guard, territory=territory, role="operator")
        blocked.blocked = True
        blocked.save()

        def add(plate, owner, start, end, revoked=False, where=territory):
            return VehiclePass.create(
                territory=where, account=owner, plate=plate, valid_from=start, valid_to=end,
                revoked_at=NOW - H if revoked else None,
            ).id

        ids = {
            "A111AA77": add("A111AA77", resident, NOW - H, NOW + H),  # active
            "B222BB77": add("B222BB77", resident, NOW - 3 * H, NOW - H),  # expired
            "C333CC77": add("C333CC77", resident, NOW + H, NOW + 2 * H),  # upcoming
            "E444EE77": add("E444EE77", resident, NOW - H, NOW + H, revoked=True),
            "K555KK77": add("K555KK77", blocked, NOW - H, NOW + H),  # owner blocked
            "M666MM77": add("M666MM77", gone, NOW - H, NOW + H),  # owner not a member
            "H777HH77": add("H777HH77", resident, NOW - H, None),  # permanent
            "O888OO77": add("O888OO77", resident, NOW - H, NOW + H, where=other),
            # the same plate: one expired, one active with a later end → granted till that end
            "P999PP77": add("P999PP77", resident, NOW - 5 * H, NOW - 4 * H),
            "P999PP77+": add("P999PP77", resident, NOW - H, NOW + 5 * H),
            # an expired pass and one about to start: the upcoming one tells more
            "T100TT77": add("T100TT77", resident, NOW - 5 * H, NOW - 4 * H),
            "T100TT77+": add("T100TT77", resident, NOW + 2 * H, NOW + 3 * H),
            # a blocked owner's pass refuses now; a neighbour's starts in an hour: the refusal
            # holds only until then (the bridge caches it that long)
            "Y200YY77": add("Y200YY77", blocked, NOW - H, NOW + 5 * H),
            "Y200YY77+": add("Y200YY77", resident, NOW + H, NOW + 2 * H),
            # a pass of someone who is an operator now (filed before they became one)
            "G300GG77": add("G300GG77", guard, NOW - H, NOW + H),
            # revoked for good, and a current one: the exit is logged on the current one
            "X111XX77": add("X111XX77", resident, NOW - H, None, revoked=True),
            "X111XX77+": add("X111XX77", resident, NOW - H, NOW + 5 * H),
        }
        # App access: the resident paid until NOW + 2H, the manager never did.
        AccessGrant.create(account=resident, territory=territory, paid_until=NOW + 2 * H)
        AccessGrant.create(account=blocked, territory=territory, paid_until=NOW + 2 * H)
        # Cards: valid, waiting for the manager (no end), expired, of a blocked holder, of a
        # former member.
        Card.create(territory=territory, account=resident, number=8106606, valid_until=NOW + H)
        Card.create(territory=territory, account=resident, number=42, valid_until=None)
        Card.create(territory=territory, account=resident, number=43, valid_until=NOW - H)
        Card.create(territory=territory, account=blocked, number=44, valid_until=NOW + H)
        Card.create(territory=territory, account=gone, number=45, valid_until=NOW + H)
        Card.create(territory=other, account=resident, number=46, valid_until=NOW + H)
        yield {
            "t": territory, "other": other, "ids": ids, "resident": resident.id,
            "blocked": blocked.id, "gone": gone.id, "manager": manager.id, "guard": guard.id,
        }


IN, OUT = 1, 2
# (name, credential kind, value, direction, territory setup, code, reason, account, pass, until)
CASES = [
    ("active pass enters", "plate", "а 111 аа 77", IN, {}, 1, "pass_valid", "resident",
     "A111AA77", NOW + H),
    ("permanent pass enters for good", "plate", "H777HH77", IN, {}, 1, "pass_valid",
     "resident", "H777HH77", None),
    ("expired pass: no entry", "plate", "B222BB77", IN, {}, 3, "pass_expired", "resident",
     "B222BB77", None),
    ("expired pass: exit is free", "plate", "B222BB77", OUT, {}, 1, "exit_free", None, None,
     None),
    ("not started yet", "plate", "C333CC77", IN, {}, 2, "pass_not_started", "resident",
     "C333CC77", NOW + H),
    ("revoked", "plate", "E444EE77", IN, {}, 2, "revoked", "resident", "E444EE77", None),
    ("owner blocked", "plate", "K555KK77", IN, {}, 5, "account_blocked", "blocked", "K555KK77",
     None),
    ("owner removed from the territory", "plate", "M666MM77", IN, {}, 5, "not_member", "gone",
     "M666MM77", None),
    ("unknown plate", "plate", "X999XX99", IN, {}, 4, "unknown_plate", None, None, None),
    ("another territory's pass", "plate", "O888OO77", IN, {}, 4, "unknown_plate", None, None,
     None),
    ("empty plate", "plate", "  ", IN, {}, 4, "unknown_plate", None, None, None),
    ("expired and active: the active one grants", "plate", "P999PP77", IN, {}, 1,
     "pass_valid", "resident", "P999PP77+", NOW + 5 * H),
    ("expired and upcoming: the upcoming one answers", "plate", "T100TT77", IN, {}, 2,
     "pass_not_started", "resident", "T100TT77+", NOW + 2 * H),
    ("passes switched off", "plate", "A111AA77", IN, {"passes_enabled": False}, 2,
     "passes_off", None, None, None),
    ("exit not free: expired pass may still leave", "plate", "B222BB77", OUT,
     {"free_exit": False}, 1, "exit_after_pass", "resident", "B222BB77", None),
    ("a blocked owner's refusal ends when another pass of the plate starts", "plate",
     "Y200YY77", IN, {}, 5, "account_blocked", "blocked", "Y200YY77", NOW + H),
    ("an operator's pass lets nobody in", "plate", "G300GG77", IN, {}, 2, "owner_operator",
     "guard", "G300GG77", None),
    ("exit not free: an operator's car may still leave", "plate", "G300GG77", OUT,
     {"free_exit": False}, 1, "pass_valid", "guard", "G300GG77", NOW + H),
    ("exit not free: the current pass, not the revoked one, is the exit's", "plate",
     "X111XX77", OUT, {"free_exit": False}, 1, "pass_valid", "resident", "X111XX77+", NOW + 5 * H),
    ("exit not free: upcoming pass may not", "plate", "C333CC77", OUT, {"free_exit": False},
     2, "pass_not_started", "resident", "C333CC77", NOW + H),
    ("exit not free: unknown plate", "plate", "X999XX99", OUT, {"free_exit": False}, 2,
     "no_pass", None, None, None),
    ("exit not free: a car whose pass was revoked inside may still leave", "plate",
     "E444EE77", OUT, {"free_exit": False}, 1, "exit_after_pass", "resident", "E444EE77",
     None),
    ("phone of a member with paid app access", "account", "resident", IN, {}, 1, "member",
     "resident", None, NOW + 2 * H),
    ("phone of a member who has not paid", "account", "manager", IN, {}, 5, "not_paid",
     "manager", None, None),
    ("phone where app access is free", "account", "manager", IN, {"app_access_free": True}, 1,
     "member", "manager", None, None),
    ("phone of a blocked member", "account", "blocked", IN, {}, 5, "account_blocked",
     "blocked", None, None),
    ("phone of a non-member", "account", "gone", IN, {}, 5, "not_member", None, None, None),
    ("phone with garbage id", "account", "abc", IN, {}, 4, "not_member", None, None, None),
    ("phone, exit is free", "account", "gone", OUT, {}, 1, "exit_free", None, None, None),
    ("card bound and valid", "card", "8106606", IN, {}, 1, "card_valid", "resident", None,
     NOW + H),
    ("card bound unpaid waits for the manager", "card", "42", IN, {}, 2, "card_not_approved",
     None, None, None),
    ("card expired", "card", "43", IN, {}, 3, "card_expired", None, None, None),
    ("card of a blocked holder", "card", "44", IN, {}, 5, "account_blocked", "blocked", None,
     None),
    ("card of a former member", "card", "45", IN, {}, 5, "not_member", "gone", None, None),
    ("another territory's card", "card", "46", IN, {}, 4, "unknown_card", None, None, None),
    ("card never bound", "card", "1234567", IN, {}, 4, "unknown_card", None, None, None),
    ("card garbage", "card", "12,ab", IN, {}, 4, "unknown_card", None, None, None),
    ("card exit is free", "card", "1234567", OUT, {}, 1, "exit_free", None, None, None),
    ("a PIN: nothing stores PINs", "pin", "1234", IN, {}, 4, "pin_unsupported", None, None,
     None),
    ("a PIN, exit is free", "pin", "1234", OUT, {}, 1, "exit_free", None, None, None),
]


@pytest.mark.parametrize(
    ("kind", "value", "direction", "setup", "code", "reason", "account", "pass_key", "until"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_rules(app, world, kind, value, direction, setup, code, reason, account, pass_key,
               until):
    with app.app_context():
        if setup:
            Territory.update(**setup).where(Territory.id == world["t"].id).execute()
        if kind == "account" and value in world:
            value = str(world[value])
        decision = decide(world["t"].id, Credential(kind, value), direction, NOW)
    expected = Decision(
        code, reason, world[account] if account else None,
        world["ids"][pass_key] if pass_key else None, until,
    )
    assert decision == expected
    assert decision.granted is (code == 1)
    assert reason in REASONS


def test_unknown_territory(app):
    with app.app_context():
        assert decide(424242, Credential("plate", "A111AA77"), IN, NOW) == Decision(
            4, "unknown_territory"
        )


def test_period_edges(app, world):
    """The period is [from, to): in at its first instant, out at its last."""
    start = NOW - H
    end = NOW + H
    with app.app_context():
        t = world["t"].id
        cred = Credential("plate", "A111AA77")
        assert decide(t, cred, IN, start).granted
        assert not decide(t, cred, IN, start - dt.timedelta(seconds=1)).granted
        assert decide(t, cred, IN, end - dt.timedelta(seconds=1)).granted
        assert decide(t, cred, IN, end).reason == "pass_expired"


def test_decide_only_reads(app, world):
    from domain.gates import GateEvent

    with app.app_context():
        before = (VehiclePass.select().count(), GateEvent.select().count())
        for case in CASES:
            decide(world["t"].id, Credential(case[1], case[2]), case[3], NOW)
        assert (VehiclePass.select().count(), GateEvent.select().count()) == before


def test_billing_changes_raise_the_territory_version(app, make_account):
    """A bridge in another process learns of a bound card and of paid app access."""
    from domain import billing, versions

    with app.app_context():
        manager = make_account()
        territory = create_territory(manager, name="Сад", kind="kindergarten")
        before = versions.versions().get(territory.id, 0)
        card = billing.bind_card(manager, territory, "123,45678")
        bound = versions.versions()[territory.id]
        assert bound > before
        # The manager's approval and unbinding reach the gate the same way.
        billing.approve_card(territory, card.id, NOW.replace(year=2999))
        approved = versions.versions()[territory.id]
        assert approved > bound
        billing.unbind_card(territory, card.id)
        assert versions.versions()[territory.id] > approved
