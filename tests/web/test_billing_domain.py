"""Domain operations on a real database: card binding, extensions, refunds, access queries."""

from __future__ import annotations

import datetime as dt

import pytest

from domain import billing
from domain.billing import AccessGrant, Card, Payment
from domain.errors import DomainError, NotFound
from tests.billing_fixtures import join, kindergarten

NOW = dt.datetime(2024, 3, 10, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def ctx(app, make_account):
    with app.test_request_context():
        manager, parent, other = make_account(), make_account(), make_account()
        territory = kindergarten(manager)
        join(parent, territory)
        join(other, territory)
        yield {"territory": territory, "parent": parent, "other": other}


def _buy(ctx, kind="app", months=3, at=NOW, who="parent", promo=""):
    territory = ctx["territory"]
    offer = billing.card_offer(territory) if kind == "card" else billing.app_offer(
        territory, billing.TariffPeriod.of(territory.id).where(
            billing.TariffPeriod.months == months).get().id)
    payment = billing.start_purchase(ctx[who], territory, offer, email="p@example.com",
                                     method="sbp", provider="sandbox", promo_code=promo, now=at)
    billing.attach_provider(payment, f"ext-{payment.id}", None)
    assert billing.apply_success(f"ext-{payment.id}", payment.expected_kopecks, now=at)
    return Payment.get_by_id(payment.id)


def test_app_access_extends_from_the_current_end(ctx):
    first = _buy(ctx, months=3)
    second = _buy(ctx, months=12, at=NOW + dt.timedelta(days=10))
    assert second.period_start == first.paid_until
    assert second.paid_until == billing.add_months(first.paid_until, 12, "Europe/Moscow")
    lapsed_at = second.paid_until + dt.timedelta(days=5)
    third = _buy(ctx, months=3, at=lapsed_at)
    assert third.period_start == lapsed_at
    until = billing.app_access_until(ctx["parent"].id, ctx["territory"].id, lapsed_at)
    assert until == third.paid_until


def test_app_access_until(ctx):
    assert billing.app_access_until(ctx["parent"].id, ctx["territory"].id, NOW) is None
    payment = _buy(ctx)
    assert billing.app_access_until(ctx["parent"].id, ctx["territory"].id, NOW) == \
        payment.paid_until
    assert billing.app_access_until(ctx["parent"].id, ctx["territory"].id,
                                    payment.paid_until) is None
    billing.Territory.update(app_access_free=True).execute()
    assert billing.app_access_until(ctx["other"].id, ctx["territory"].id, NOW) == \
        billing.FAR_FUTURE


def test_refund_takes_back_exactly_what_it_bought(ctx):
    first = _buy(ctx, months=3)
    second = _buy(ctx, months=12)
    assert billing.apply_refund(first.provider_payment_id, now=NOW)
    # The 12 months bought after it now run from when they were bought, in calendar months:
    # a fixed 3-month span (92 days here) taken off would end them a day or two off.
    later = Payment.get_by_id(second.id)
    assert later.period_start == NOW
    assert later.paid_until == billing.add_months(NOW, 12, "Europe/Moscow")
    assert AccessGrant.get().paid_until == later.paid_until  # the registry and access agree
    assert not billing.apply_refund(first.provider_payment_id, now=NOW)  # once
    assert Payment.get_by_id(first.id).status == "refunded"


def test_refund_of_the_last_purchase_ends_access_where_it_began(ctx):
    first = _buy(ctx, months=3)
    second = _buy(ctx, months=12)
    assert billing.apply_refund(second.provider_payment_id, now=NOW)
    assert AccessGrant.get().paid_until == first.paid_until
    assert Payment.get_by_id(first.id).paid_until == first.paid_until


def test_card_bound_without_purchase_waits_for_the_manager(ctx):
    from domain.access import Credential, decide

    territory = ctx["territory"]
    card = billing.bind_card(ctx["parent"], territory, "123,45678", now=NOW)
    assert card.valid_until is None and card.status(NOW) == "waiting"
    assert billing.card_access(territory.id, 8_106_606, NOW) is None
    refused = decide(territory.id, Credential("card", "8106606"), 1, NOW)
    assert (refused.granted, refused.reason) == (False, "card_not_approved")
    assert billing.card_access(territory.id, 8_106_607, NOW) is None

    until = NOW + dt.timedelta(days=30)
    with pytest.raises(DomainError, match="уже прошла"):
        billing.approve_card(territory, card.id, NOW, now=NOW)
    billing.approve_card(territory, card.id, until, now=NOW)
    assert billing.card_access(territory.id, 8_106_606, NOW) == (ctx["parent"].id, until)
    assert decide(territory.id, Credential("card", "8106606"), 1, NOW).reason == "card_valid"
    with pytest.raises(DomainError, match="уже действует дольше"):
        billing.approve_card(territory, card.id, until - dt.timedelta(days=1), now=NOW)
    assert billing.card_access(territory.id, 8_106_606, until) is None  # its end is an end

    billing.unbind_card(territory, card.id)
    assert billing.card_access(territory.id, 8_106_606, NOW) is None
    assert billing.bind_card(ctx["other"], territory, "0008106606", now=NOW).account_id == \
        ctx["other"].id


def test_another_territorys_card_is_not_found(ctx, make_account):
    card = billing.bind_card(ctx["parent"], ctx["territory"], "5,5", now=NOW)
    elsewhere = kindergarten(make_account(), name="Другой сад")
    with pytest.raises(NotFound):
        billing.approve_card(elsewhere, card.id, NOW + dt.timedelta(days=1), now=NOW)
    with pytest.raises(NotFound):
        billing.unbind_card(elsewhere, card.id)
    assert Card.get_by_id(card.id).valid_until is None


def test_card_bought_then_bound_is_valid_from_purchase(ctx):
    payment = _buy(ctx, kind="card")
    assert payment.awaits_card
    card = billing.bind_card(ctx["parent"], ctx["territory"], "0008106606",
                             now=NOW + dt.timedelta(days=2))
    assert card.valid_until == billing.add_months(NOW, 48, "Europe/Moscow")
    expired = card.valid_until + dt.timedelta(seconds=1)
    assert billing.card_access(ctx["territory"].id, 8_106_606, expired) is None
    # A second card bought and entered with the same number extends it.
    _buy(ctx, kind="card", at=NOW + dt.timedelta(days=30))
    again = billing.bind_card(ctx["parent"], ctx["territory"], "123,45678")
    assert again.valid_until == billing.add_months(card.valid_until, 48, "Europe/Moscow")


def test_trying_numbers_bound_to_others_is_limited(ctx):
    """Five numbers that belong to someone else in an hour, then a pause: trying numbers
    would tell which cards are in use. Binding one's own card is not a guess."""
    from domain import limits

    for n in range(limits.CARD_NUMBER.tries):
        billing.bind_card(ctx["other"], ctx["territory"], f"7,{n}", now=NOW)
        with pytest.raises(DomainError, match="другому аккаунту"):
            billing.bind_card(ctx["parent"], ctx["territory"], f"7,{n}", now=NOW)
    with pytest.raises(DomainError, match="Слишком много попыток"):
        billing.bind_card(ctx["parent"], ctx["territory"], "9,9", now=NOW)
    for n in range(limits.CARD_NUMBER.tries + 1):  # the other parent binds freely
        billing.bind_card(ctx["other"], ctx["territory"], f"8,{n}", now=NOW)


def test_card_refusals(ctx):
    billing.bind_card(ctx["other"], ctx["territory"], "123,45678", now=NOW)
    with pytest.raises(DomainError, match="другому аккаунту"):
        billing.bind_card(ctx["parent"], ctx["territory"], "0008106606", now=NOW)
    billing.bind_card(ctx["parent"], ctx["territory"], "5,5", now=NOW)
    with pytest.raises(DomainError, match="уже привязана к вашему"):
        billing.bind_card(ctx["parent"], ctx["territory"], "5,5", now=NOW)
    with pytest.raises(DomainError):
        billing.bind_card(ctx["parent"], ctx["territory"], "abc", now=NOW)
    assert Card.select().count() == 2


def test_card_refund_takes_back_the_purchase_from_a_new_card(ctx):
    payment = _buy(ctx, kind="card")
    billing.bind_card(ctx["parent"], ctx["territory"], "7,7", now=NOW)
    billing.apply_refund(payment.provider_payment_id, now=NOW)
    # Nothing covers the card any more: it waits for the manager, as if bound unpaid.
    assert Card.get().valid_until is None
    assert billing.card_access(ctx["territory"].id, 7 * 65536 + 7, NOW) is None


def test_card_refund_restores_the_end_the_card_had(ctx):
    territory = ctx["territory"]
    card = billing.bind_card(ctx["parent"], territory, "7,7", now=NOW)
    approved = NOW + dt.timedelta(days=100)
    billing.approve_card(territory, card.id, approved, now=NOW)
    payment = _buy(ctx, kind="card", at=NOW + dt.timedelta(days=1))
    extended = billing.bind_card(ctx["parent"], territory, "7,7", now=NOW + dt.timedelta(days=1))
    assert extended.valid_until == billing.add_months(approved, 48, territory.timezone)
    billing.apply_refund(payment.provider_payment_id, now=NOW + dt.timedelta(days=2))
    assert Card.get().valid_until == approved
    assert billing.card_access(territory.id, 7 * 65536 + 7, NOW + dt.timedelta(days=2)) == (
        ctx["parent"].id, approved)


def test_card_refund_of_an_expired_cards_renewal_gives_back_its_old_end(ctx):
    territory = ctx["territory"]
    card = billing.bind_card(ctx["parent"], territory, "7,7", now=NOW)
    old_end = NOW + dt.timedelta(days=1)
    billing.approve_card(territory, card.id, old_end, now=NOW)
    later = NOW + dt.timedelta(days=10)
    payment = _buy(ctx, kind="card", at=later)
    billing.bind_card(ctx["parent"], territory, "7,7", now=later)
    billing.apply_refund(payment.provider_payment_id, now=later)
    assert Card.get().valid_until == old_end


def test_refund_of_an_earlier_card_purchase_takes_back_only_its_span(ctx):
    territory = ctx["territory"]
    first = _buy(ctx, kind="card")
    billing.bind_card(ctx["parent"], territory, "7,7", now=NOW)
    second = _buy(ctx, kind="card", at=NOW + dt.timedelta(days=5))
    billing.bind_card(ctx["parent"], territory, "7,7", now=NOW + dt.timedelta(days=5))
    second = Payment.get_by_id(second.id)
    first = Payment.get_by_id(first.id)
    billing.apply_refund(first.provider_payment_id, now=NOW + dt.timedelta(days=6))
    assert Card.get().valid_until == second.paid_until - (first.paid_until - first.period_start)
    billing.apply_refund(second.provider_payment_id, now=NOW + dt.timedelta(days=6))
    assert Card.get().valid_until < NOW + dt.timedelta(days=6)


def test_promo_math_and_limit(ctx):
    billing.add_promo(ctx["territory"], "half", percent=50, usage_limit=1)
    payment = _buy(ctx, promo="HALF")
    assert (payment.price_kopecks, payment.discount_kopecks, payment.expected_kopecks) == (
        8500, 4250, 4250)
    with pytest.raises(DomainError, match="исчерпаны"):
        _buy(ctx, promo="half")
    # Made for today's prices (85,00 ₽ − 84,00 ₽ leaves the 1,00 ₽ minimum); a cheaper
    # period added later is refused at checkout.
    billing.add_promo(ctx["territory"], "BIG", fixed_kopecks=8400)
    tariff = billing.Tariff.get(billing.Tariff.territory == ctx["territory"])
    billing.add_period(ctx["territory"], tariff.id, 1, 8450)
    with pytest.raises(DomainError, match="меньше 1,00"):
        _buy(ctx, months=1, promo="big")


def test_amount_mismatch_applies_nothing(ctx):
    territory = ctx["territory"]
    offer = billing.card_offer(territory)
    payment = billing.start_purchase(ctx["parent"], territory, offer, email="p@example.com",
                                     method="sbp", provider="sandbox")
    billing.attach_provider(payment, "ext-x", None)
    with pytest.raises(billing.AmountMismatch):
        billing.apply_success("ext-x", 100)
    assert Payment.get_by_id(payment.id).status == "pending"


def test_card_numbers_beyond_bigint_are_exact(ctx):
    huge = 2**64 - 1
    card = billing.bind_card(ctx["parent"], ctx["territory"], str(huge), now=NOW)
    billing.approve_card(ctx["territory"], card.id, NOW + dt.timedelta(days=1), now=NOW)
    assert Card.get().number == huge
    assert billing.card_access(ctx["territory"].id, huge, NOW)[0] == ctx["parent"].id


def test_seed_demo_tariffs_are_idempotent(app):
    from domain.demo import seed_demo

    with app.test_request_context():
        seed_demo()
        seed_demo()
        assert billing.Tariff.select().count() == 2
        assert billing.TariffPeriod.select().count() == 4
        group1 = billing.Tariff.get(billing.Tariff.name == "Родители группы 1")
        assert sorted((p.months, p.price_kopecks) for p in group1.periods) == [
            (3, 8500), (12, 30000)]
