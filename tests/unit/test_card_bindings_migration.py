"""Migration 6 on a database made before it: card purchases learn what their binding changed,
and a card bound with no end (valid for good until then) waits for the manager."""

from __future__ import annotations

import datetime as dt

from domain.access import Credential, decide
from domain.billing import Card, Payment
from domain.schema import upgrade
from domain.territories import Membership
from tests.unit.conftest import garden

T0 = dt.datetime(2024, 1, 10, 9, 0, tzinfo=dt.UTC)


def test_a_database_from_before_card_approval_upgrades(app, scratch):
    database = scratch()
    with garden(database) as (models, t, parent):
        Membership.create(account=parent, territory=t, role="resident")
        Card.create(territory=t, account=parent, number=42, valid_until=None)

        def bound(number, period_start, paid_until):
            payment = Payment.create(
                territory=t, account=parent, kind="card", status="succeeded", method="sbp",
                title="Карта доступа", months=48, price_kopecks=15000, expected_kopecks=15000,
                amount_kopecks=15000, provider="sandbox", idempotence_key=f"k{number}",
                email="p@example.com", paid_at=T0, period_start=period_start,
                paid_until=paid_until)
            Card.create(territory=t, account=parent, number=number, valid_until=paid_until,
                        payment=payment)
            return payment.id

        renewal = bound(43, T0 + dt.timedelta(days=30), T0 + dt.timedelta(days=1500))
        first = bound(44, T0, T0 + dt.timedelta(days=1461))
        database.execute_sql("ALTER TABLE payment DROP COLUMN card_until_before")
        database.execute_sql("ALTER TABLE payment DROP COLUMN card_number")
    database.close()

    database = scratch()
    with database.bind_ctx(models):
        assert 6 in upgrade(database)
        renewed, new = Payment.get_by_id(renewal), Payment.get_by_id(first)
        assert (renewed.card_number, renewed.card_until_before) == (
            43, T0 + dt.timedelta(days=30))
        assert (new.card_number, new.card_until_before) == (44, None)
        with app.test_request_context():
            waiting = decide(t.id, Credential("card", "42"), 1, T0)
            assert (waiting.granted, waiting.reason) == (False, "card_not_approved")
            assert decide(t.id, Credential("card", "44"), 1, T0).reason == "card_valid"
