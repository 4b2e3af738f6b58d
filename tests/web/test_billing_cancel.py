"""Pending payments end: the payer's «Отменить», the hourly expiry, the account's deletion —
and money the bank takes after that is never left «Отменен»."""

from __future__ import annotations

import datetime as dt

import pytest

from domain import accounts, billing
from domain.accounts import Account
from domain.billing import AccessGrant, Payment, PromoCode
from domain.db import db, utcnow
from jobs import PurgeJob
from tests.billing_fixtures import join, kindergarten, wire_sandbox
from tests.web.territory_kit import post, signed_in


@pytest.fixture
def shop(app, make_account):
    """A kindergarten with a 10 % promo code good for one use, a signed-in parent."""
    with app.test_request_context():
        manager, parent = make_account(), make_account()
        admin = make_account(is_admin=True)
        territory = kindergarten(manager)
        join(parent, territory)
        billing.add_promo(territory, "LETO", percent=10, usage_limit=1)
    wire_sandbox(app)
    return {"tid": territory.id, "t": territory, "parent": signed_in(app, parent),
            "parent_id": parent.id, "admin": signed_in(app, admin)}


def _checkout(shop, kind="app"):
    """Open a payment with the promo code; the payment and its checkout page's address."""
    tid = shop["tid"]
    if kind == "card":
        response = post(shop["parent"], f"/t/{tid}/billing/card/buy",
                        {"email": "p@example.com", "method": "sbp", "promo": "leto"})
    else:
        period = billing.TariffPeriod.of(tid).where(billing.TariffPeriod.months == 3).get()
        response = post(shop["parent"], f"/t/{tid}/billing/access", {
            "period": period.id, "email": "p@example.com", "method": "sbp", "promo": "leto"})
    assert response.status_code == 302
    return Payment.select().order_by(Payment.id.desc()).get(), response.headers["Location"]


def _bank_pays(client, payment):
    bank = payment.confirmation_url.replace("http://localhost", "")
    return post(client, bank + "/pay")


def _promo_uses():
    return PromoCode.get().used_count


def test_the_payer_cancels_a_pending_payment(shop):
    payment, checkout = _checkout(shop)
    assert _promo_uses() == 1
    page = shop["parent"].get(checkout).get_data(as_text=True)
    cancel = f"/t/{shop['tid']}/billing/payments/{payment.id}/cancel"
    assert f'action="{cancel}"' in page and 'data-confirm="Отменить платёж?' in page

    assert shop["parent"].post(cancel).status_code == 400  # no CSRF token, nothing happens
    assert Payment.get_by_id(payment.id).status == "pending"
    response = post(shop["parent"], cancel)
    assert response.status_code == 302 and response.headers["Location"].endswith(checkout)
    assert Payment.get_by_id(payment.id).status == "canceled"
    assert _promo_uses() == 0
    assert "Отменен" in shop["parent"].get("/payments").get_data(as_text=True)
    after = shop["parent"].get(checkout).get_data(as_text=True)
    assert "Отменить платёж?" not in after
    assert "Платёж отменён, деньги не списаны." in after and "отклонён" not in after


def test_nobody_else_cancels_it_and_a_paid_one_stays_paid(app, shop, make_account):
    payment, _checkout_page = _checkout(shop)
    with app.test_request_context():
        stranger = make_account()
        join(stranger, shop["t"])
    cancel = f"/t/{shop['tid']}/billing/payments/{payment.id}/cancel"
    assert post(signed_in(app, stranger), cancel).status_code == 404
    _bank_pays(shop["parent"], payment)
    answer = post(shop["parent"], cancel, follow_redirects=True)
    assert "Платёж уже не ожидает оплаты" in answer.get_data(as_text=True)
    assert Payment.get_by_id(payment.id).status == "succeeded"
    assert _promo_uses() == 1


def test_the_cancel_closes_the_bank_link_so_the_promo_limit_holds(app, shop):
    """Audit: «Отменить» gave the promo's use back while the bank still took money by the old
    link; a second checkout took the use again, both were paid at the discount: «2 / 1»."""
    first, _page = _checkout(shop)
    post(shop["parent"], f"/t/{shop['tid']}/billing/payments/{first.id}/cancel")
    assert Payment.get_by_id(first.id).status == "canceled" and _promo_uses() == 0
    # The bank's page of the canceled payment offers nothing to pay, and paying is refused.
    bank = first.confirmation_url.replace("http://localhost", "")
    assert "Оплатить" not in shop["parent"].get(bank).get_data(as_text=True)
    second, _page = _checkout(shop)  # the use was free: taken again
    assert _promo_uses() == 1
    assert _bank_pays(shop["parent"], second).status_code == 302
    assert _bank_pays(shop["parent"], first).status_code == 409  # «деньги не списаны»
    assert Payment.get_by_id(first.id).status == "canceled"
    assert Payment.get_by_id(second.id).status == "succeeded"
    assert _promo_uses() == 1
    settings = shop["admin"].get(f"/t/{shop['tid']}/billing/settings")
    assert "сверх лимита" not in settings.get_data(as_text=True)


def _provider_cannot_cancel(app, monkeypatch):
    """A provider that cannot cancel a pending payment (YooKassa's one-stage payments): it
    stays payable until the provider lets it expire."""
    monkeypatch.setattr(app.extensions["payments"], "cancel", lambda *_args: "pending")


def test_paid_at_the_bank_after_the_cancel_it_still_buys(app, shop, monkeypatch):
    _provider_cannot_cancel(app, monkeypatch)
    payment, _page = _checkout(shop)
    post(shop["parent"], f"/t/{shop['tid']}/billing/payments/{payment.id}/cancel")
    assert Payment.get_by_id(payment.id).status == "canceled"
    # The link can still be paid: the use stays taken, nobody else gets it meanwhile.
    assert _promo_uses() == 1
    refused = post(shop["parent"], f"/t/{shop['tid']}/billing/access", {
        "period": billing.TariffPeriod.of(shop["tid"]).first().id, "email": "p@example.com",
        "method": "sbp", "promo": "leto"})
    assert refused.status_code == 422 and "исчерпаны" in refused.get_data(as_text=True)
    assert _bank_pays(shop["parent"], payment).status_code == 302
    paid = Payment.get_by_id(payment.id)
    assert (paid.status, paid.amount_kopecks, paid.closed_at) == ("succeeded", 7650, None)
    assert AccessGrant.get().paid_until == paid.paid_until
    assert _promo_uses() == 1  # counted once: it never went back


def test_the_providers_own_cancel_gives_the_use_back_once(app, shop, monkeypatch):
    _provider_cannot_cancel(app, monkeypatch)
    payment, _page = _checkout(shop)
    post(shop["parent"], f"/t/{shop['tid']}/billing/payments/{payment.id}/cancel")
    assert _promo_uses() == 1
    for _ in range(2):  # the provider let it expire and says so, twice
        billing.apply_cancel(payment.provider_payment_id)
    assert _promo_uses() == 0


def test_a_success_beyond_the_limit_applies_and_says_so(app, shop, caplog):
    """A provider that takes money for a payment it had canceled (the use went back, another
    checkout took it): the money is taken, so the purchase stands; the use counts, for the
    discount was given; the excess is logged and shown beside the code."""
    first, _page = _checkout(shop)
    post(shop["parent"], f"/t/{shop['tid']}/billing/payments/{first.id}/cancel")
    second, _page = _checkout(shop)
    assert billing.apply_success(second.provider_payment_id, second.expected_kopecks)
    assert billing.apply_success(first.provider_payment_id, first.expected_kopecks)
    assert Payment.get_by_id(first.id).status == "succeeded"
    assert _promo_uses() == 2
    assert "beyond its usage limit" in caplog.text
    settings = shop["admin"].get(f"/t/{shop['tid']}/billing/settings")
    assert "сверх лимита" in settings.get_data(as_text=True)


def test_the_hourly_job_cancels_payments_pending_too_long(app, shop):
    old, _page = _checkout(shop)
    long_ago = utcnow() - billing.PENDING_LIFETIME - dt.timedelta(minutes=1)
    Payment.update(created_at=long_ago).where(Payment.id == old.id).execute()
    period = billing.TariffPeriod.of(shop["tid"]).first()
    recent = post(shop["parent"], f"/t/{shop['tid']}/billing/access", {
        "period": period.id, "email": "p@example.com", "method": "sbp"})
    assert recent.status_code == 302
    PurgeJob(app).run_once()
    assert Payment.get_by_id(old.id).status == "canceled"
    assert _promo_uses() == 0
    assert Payment.select().where(Payment.status == "pending").count() == 1
    # Canceled at the bank too: its link takes no money, so the use it gave back holds.
    _bank_pays(shop["parent"], old)
    assert Payment.get_by_id(old.id).status == "canceled"


def test_the_hourly_job_keeps_the_use_while_the_provider_cannot_cancel(app, shop,
                                                                       monkeypatch):
    _provider_cannot_cancel(app, monkeypatch)
    old, _page = _checkout(shop)
    long_ago = utcnow() - billing.PENDING_LIFETIME - dt.timedelta(minutes=1)
    Payment.update(created_at=long_ago).where(Payment.id == old.id).execute()
    PurgeJob(app).run_once()
    assert Payment.get_by_id(old.id).status == "canceled"
    assert _promo_uses() == 1
    _bank_pays(shop["parent"], old)
    assert Payment.get_by_id(old.id).status == "succeeded" and _promo_uses() == 1


# -- deletion of the payer's account -----------------------------------------------------------


def _purge(app, account_id):
    with app.test_request_context(), db.connection_context():
        Account.update(deletion_due_at=utcnow() - dt.timedelta(seconds=1)).where(
            Account.id == account_id).execute()
        assert accounts.purge_deleted() == 1


def test_deletion_cancels_open_payments_and_money_paid_later_goes_back(app, shop):
    payment, _page = _checkout(shop)
    _purge(app, shop["parent_id"])
    gone = Payment.get_by_id(payment.id)
    assert (gone.status, gone.account_id, gone.email) == ("canceled", None, "")
    assert _promo_uses() == 0
    # Someone pays the old link: the money comes back at once, nobody gets anything.
    bank = app.test_client()
    assert _bank_pays(bank, payment).status_code == 302
    refunded = Payment.get_by_id(payment.id)
    assert (refunded.status, refunded.amount_kopecks) == ("refunded", 7650)
    assert AccessGrant.select().count() == 0


def test_a_deleted_payers_card_purchase_awaits_no_card(app, shop):
    payment, _page = _checkout(shop, kind="card")
    _bank_pays(shop["parent"], payment)
    registry = shop["admin"].get("/payments").get_data(as_text=True)
    assert "Требуется ввод карты" in registry
    _purge(app, shop["parent_id"])
    registry = shop["admin"].get("/payments").get_data(as_text=True)
    assert "Требуется ввод карты" not in registry and "Завершен" in registry
