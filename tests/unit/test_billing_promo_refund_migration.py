"""Migration 9 on a database made before it: payments keep working, learn their promo code's
text while the code exists, and a refunded one counts its whole amount as refunded."""

from __future__ import annotations

import datetime as dt

from domain.billing import Card, Payment, PaymentEvent, PromoCode
from domain.schema import upgrade
from domain.territories import Membership, Territory, Unit
from tests.unit.conftest import garden

T0 = dt.datetime(2024, 1, 10, 9, 0, tzinfo=dt.UTC)


def test_a_database_from_before_promo_texts_and_partial_refunds_upgrades(scratch):
    database = scratch()
    with garden(database) as (models, t, parent):
        leto = PromoCode.create(territory=t, code="LETO", percent=10)

        def paid(key, status, promo=None):
            return Payment.create(
                territory=t, account=parent, kind="app", status=status, method="sbp",
                title="Доступ", months=3, price_kopecks=8500, discount_kopecks=850 if promo else 0,
                expected_kopecks=7650 if promo else 8500, amount_kopecks=7650 if promo else 8500,
                promo=promo, provider="sandbox", idempotence_key=key, email="p@example.com",
                paid_at=T0).id

        with_code, refunded, plain = paid("a", "succeeded", leto), paid("b", "refunded"), paid(
            "c", "succeeded")
        canceled = paid("d", "canceled", leto)
        # Rows that refer to the tables the steps add NOT NULL columns to (territory: step 1,
        # payment: step 9): on SQLite a rebuild of those tables emptied them.
        for payment_id in (with_code, refunded, plain):
            PaymentEvent.create(payment=payment_id, event="payment.succeeded")
        Card.create(territory=t, account=parent, number=42, payment=plain)
        unit = Unit.create(territory=t, name="Группа 1")
        Membership.create(territory=t, account=parent, role="resident", unit=unit)
        database.execute_sql("ALTER TABLE payment DROP COLUMN promo_code")
        database.execute_sql("ALTER TABLE payment DROP COLUMN refunded_kopecks")
        for column in ("max_permanent_passes", "card_price_kopecks", "card_validity_months"):
            database.execute_sql(f"ALTER TABLE territory DROP COLUMN {column}")
    database.close()

    database = scratch()
    with database.bind_ctx(models):
        assert {1, 9} <= set(upgrade(database))
        assert PaymentEvent.select().where(PaymentEvent.event == "payment.succeeded").count() == 3
        assert Card.get(Card.number == 42).payment_id == plain
        assert (Unit.select().count(), Membership.select().count()) == (1, 1)
        assert Territory.get_by_id(t.id).card_validity_months == 48
        # The cancel gave its promo use back then; a late cancel from the provider must not
        # give it back again.
        assert PaymentEvent.get(PaymentEvent.payment == canceled).event == "promo.released"
        assert Payment.get_by_id(with_code).promo_code == "LETO"
        assert Payment.get_by_id(plain).promo_code is None
        assert Payment.get_by_id(refunded).refunded_kopecks == 8500
        assert Payment.get_by_id(plain).refunded_kopecks == 0
        assert Payment.get_by_id(plain).refundable_kopecks == 8500
