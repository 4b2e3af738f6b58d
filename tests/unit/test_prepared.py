"""domain/prepared: a query composed once gives what Peewee gives when it composes it anew."""

from __future__ import annotations

import datetime as dt

import pytest
from peewee import JOIN, Model, fn

from domain.accounts import Account
from domain.db import db, init_db
from domain.passes import VehiclePass
from domain.prepared import Prepared, Slot
from domain.schema import upgrade
from domain.territories import Membership, Territory, Unit, create_territory

NOW = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


def _live(territory, account, now):
    """The query as a page would build it, with values or with slots."""
    return (
        VehiclePass.select(VehiclePass, Account, Unit, Membership.id)
        .join(Account, on=(VehiclePass.account == Account.id))
        .switch(VehiclePass)
        .join(Unit, JOIN.LEFT_OUTER, on=(VehiclePass.unit == Unit.id))
        .switch(VehiclePass)
        .join(Membership, JOIN.LEFT_OUTER, attr="member", on=(
            (Membership.account == VehiclePass.account)
            & (Membership.territory == VehiclePass.territory)))
        .where((VehiclePass.territory == territory) & (VehiclePass.account == account)
               & (VehiclePass.valid_to.is_null() | (VehiclePass.valid_to > now)))
        .order_by(VehiclePass.id)
    )


LIVE = Prepared(lambda: _live(Slot("territory"), Slot("account"), Slot("now")))


@pytest.fixture
def world(app, make_account):
    with app.app_context(), db.connection_context():
        manager, resident, gone = make_account(), make_account(), make_account()
        territory = create_territory(manager, name="ЖК", kind="residential")
        unit = Unit.create(territory=territory, name="кв. 7")
        Membership.create(account=resident, territory=territory, role="resident", unit=unit)

        def add(plate, owner, end, unit=None):
            return VehiclePass.create(territory=territory, account=owner, plate=plate,
                                      valid_from=NOW - 2 * H, valid_to=end, unit=unit)

        add("A111AA77", resident, NOW + H, unit)
        add("B222BB77", resident, NOW - H)  # ended before NOW
        add("C333CC77", resident, None, unit)  # permanent
        add("E444EE77", gone, NOW + H)  # the owner is not a member
    return {"territory": territory, "resident": resident, "gone": gone}


def _shape(rows):
    return [
        (p.id, p.plate, p.valid_to, p.account.phone, p.unit.name if p.unit else None,
         p.member.id if p.member else None)
        for p in rows
    ]


def test_rows_are_the_models_peewee_builds(app, world):
    with app.app_context(), db.connection_context():
        for who in ("resident", "gone"):
            for now in (NOW, NOW - 3 * H, NOW + 5 * H):
                args = (world["territory"], world[who], now)
                expected = _shape(_live(*args))
                got = _shape(LIVE(territory=args[0], account=args[1], now=args[2]))
                assert got == expected


def test_values_are_converted_by_their_field(app, world):
    """An aware datetime in another zone and a model instance bind like Peewee binds them."""
    moscow = dt.timezone(dt.timedelta(hours=3))
    with app.app_context(), db.connection_context():
        rows = LIVE(territory=world["territory"], account=world["resident"].id,
                    now=(NOW + 30 * dt.timedelta(minutes=1)).astimezone(moscow))
        assert [p.plate for p in rows] == ["A111AA77", "C333CC77"]
        assert rows[0].valid_to == NOW + H and rows[0].valid_to.tzinfo is not None
        assert rows[0].member is not None and rows[0].unit.name == "кв. 7"


def test_an_outer_join_without_a_match_is_none_on_every_run(app, world):
    """The column layout kept from the first run must not carry one row's objects over."""
    with app.app_context(), db.connection_context():
        first = LIVE.first(territory=world["territory"], account=world["resident"], now=NOW)
        gone = LIVE.first(territory=world["territory"], account=world["gone"], now=NOW)
        again = LIVE.first(territory=world["territory"], account=world["resident"], now=NOW)
        assert gone.member is None and gone.unit is None
        assert first.member is not None and again.member.id == first.member.id
        assert LIVE.first(territory=world["territory"], account=world["gone"],
                          now=NOW + 5 * H) is None


def test_a_missing_value_is_an_error_not_a_null(app, world):
    with app.app_context(), db.connection_context(), pytest.raises(KeyError):
        LIVE(territory=world["territory"], account=world["resident"])


def test_another_database_gets_its_own_sql(app, world, database_url):
    """Re-pointing the database (a test's fresh one, PostgreSQL's %s) composes again."""
    ids = {"territory": world["territory"].id, "account": world["resident"].id, "now": NOW}
    with app.app_context(), db.connection_context():
        assert len(LIVE(**ids)) == 2
    try:
        init_db(database_url)
        with db.connection_context():
            upgrade()
            assert Territory.select().count() == 0
            # Run against the first database, the same ids would find its two passes.
            assert LIVE(**ids) == []
    finally:
        init_db(app.config["DATABASE_URL"])
    with app.app_context(), db.connection_context():
        assert len(LIVE(**ids)) == 2


def _state(obj):
    """Everything a model object holds, joined objects included, for comparing two builds."""
    if not isinstance(obj, Model):
        return obj
    extra = {k: _state(v) for k, v in vars(obj).items() if k not in ("__data__", "__rel__")}
    return (type(obj).__name__, dict(obj.__data__),
            {k: _state(v) for k, v in obj.__rel__.items()}, extra)


def _peewee_rows(prepared, **values):
    """The rows as Peewee's own cursor wrapper builds them from the same SQL and values."""
    sql, params = prepared.sql(**values)
    return list(prepared._compiled.query._get_cursor_wrapper(db.execute_sql(sql, params)))


def test_the_app_s_prepared_queries_build_rows_as_peewee_does(app, world):
    """Past the first run, rows are built without Peewee's wrapper (domain/prepared._Rows):
    every object, field, joined object and missing outer join must come out the same."""
    from domain import access, accounts, passes, territories

    territory, resident, gone = world["territory"], world["resident"], world["gone"]
    with app.app_context(), db.connection_context():
        token = accounts.sign_in(resident, "test", None)
        cases = [
            (access.PLATE_PASSES, {"territory": territory, "plate": "A111AA77"}),
            (access.PLATE_PASSES, {"territory": territory, "plate": "E444EE77"}),  # no member
            (access.PLATE_PASSES, {"territory": territory, "plate": "C333CC77"}),
            (accounts._LIVE_DEVICE, {"token_hash": accounts.token_digest(token), "now": NOW}),
            (territories._MEMBERSHIP, {"account": resident, "territory": territory}),
            (territories._DEVICE_IN, {"token_hash": accounts.token_digest(token), "now": NOW,
                                      "territory": territory}),
            (territories._DEVICE_IN, {"token_hash": accounts.token_digest(token), "now": NOW,
                                      "territory": 0}),  # not a member there
            (territories._OF_ACCOUNT, {"account": resident}),
            (territories._OF_ACCOUNT, {"account": gone}),
            (passes.OWN_LIVE, {"territory": territory, "account": resident, "now": NOW}),
            (passes.OWN_ENDED, {"territory": territory, "account": resident, "now": NOW}),
        ]
        for prepared, values in cases:
            prepared(**values)  # the first run learns the layout
            got = prepared(**values)
            assert prepared._compiled.rows is not None, "fell back to Peewee's wrapper"
            expected = _peewee_rows(prepared, **values)
            # Only `gone`, a member of nothing, has no memberships: every other case has rows
            # to compare, so the comparison cannot pass on two empty lists.
            assert bool(got) == (values.get("account") is not gone)
            assert [_state(r) for r in got] == [_state(r) for r in expected]
        assert access.PLATE_PASSES(territory=territory, plate="E444EE77")[0].member is None
        digest = accounts.token_digest(token)
        here = territories._DEVICE_IN.first(token_hash=digest, now=NOW, territory=territory)
        assert here.account.member.territory.id == territory.id
        assert territories._DEVICE_IN.first(token_hash=digest, now=NOW,
                                            territory=0).account.member is None


def test_rows_peewee_alone_can_build_keep_its_wrapper(app, world):
    """A computed column is no field of a model: such a query is not given the fast path."""
    counted = Prepared(lambda: (
        VehiclePass.select(VehiclePass.account, fn.COUNT(VehiclePass.id).alias("n"))
        .where(VehiclePass.territory == Slot("territory"))
        .group_by(VehiclePass.account).order_by(VehiclePass.account)))
    with app.app_context(), db.connection_context():
        first = counted(territory=world["territory"])
        again = counted(territory=world["territory"])
        assert counted._compiled.rows is None
        assert [(p.account_id, p.n) for p in again] == [(p.account_id, p.n) for p in first]
        assert sorted(p.n for p in again) == [1, 3]
