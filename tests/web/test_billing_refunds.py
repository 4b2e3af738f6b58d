"""Refunds as the provider announces them: only once the payment is paid here, once per
refund, partial ones adding up; and the admin's «Вернуть» saying what really happened."""

from __future__ import annotations

import json

import pytest

from domain import billing
from domain.billing import AccessGrant, Payment, PaymentEvent
from domain.db import utcnow
from providers.payments import PaymentError
from tests.billing_fixtures import join, kindergarten, wire_sandbox
from tests.web.territory_kit import post, signed_in


@pytest.fixture
def shop(app, make_account):
    """A kindergarten, a signed-in parent with an open SBP checkout, a signed-in admin."""
    with app.test_request_context():
        parent, admin = make_account(email="p@example.com"), make_account(is_admin=True)
        territory = kindergarten(make_account())
        join(parent, territory)
    wire_sandbox(app)
    client = signed_in(app, parent)
    period = billing.TariffPeriod.of(territory.id).where(billing.TariffPeriod.months == 3).get()
    opened = post(client, f"/t/{territory.id}/billing/access", {
        "period": period.id, "email": "p@example.com", "method": "sbp"})
    assert opened.status_code == 302
    return {"app": app, "tid": territory.id, "parent": client, "parent_id": parent.id,
            "admin": signed_in(app, admin), "payment": Payment.get(),
            "checkout": opened.headers["Location"]}


def _refund_notice(shop, value, refund_id):
    """A signed refund.succeeded of the sandbox's shape: the refund, naming its payment."""
    body = json.dumps({"type": "notification", "event": "refund.succeeded", "object": {
        "id": refund_id, "payment_id": shop["payment"].provider_payment_id,
        "status": "succeeded", "amount": {"value": value, "currency": "RUB"}}}).encode()
    provider = shop["app"].extensions["payments"]
    return shop["app"].test_client().post("/billing/webhook", data=body, headers={
        "Content-Type": "application/json", "X-Sandbox-Signature": provider.sign(body)})


def _pay(shop):
    bank = shop["payment"].confirmation_url.replace("http://localhost", "")
    assert post(shop["parent"], bank + "/pay").status_code == 302


def _refund_by_admin(shop):
    response = post(shop["admin"], f"/payments/{shop['payment'].id}/refund",
                    follow_redirects=True)
    return response.get_data(as_text=True)


def _access_until():
    return billing.app_access_until(AccessGrant.get().account_id, AccessGrant.get().territory_id,
                                    utcnow())


def test_a_refund_announced_before_the_success_is_not_recorded(shop):
    """Audit: a refund.succeeded for a still pending payment was stored; the real refund was
    then a «repeat» forever, and «Вернуть» said «возвращён» while nothing changed."""
    assert _refund_notice(shop, "85.00", "rfd-early").status_code == 409  # «later, please»
    assert PaymentEvent.select().count() == 0
    assert Payment.get().status == "pending"
    _pay(shop)
    assert Payment.get().status == "succeeded" and _access_until() is not None

    page = _refund_by_admin(shop)
    assert f"Платёж № {shop['payment'].id}" in page and "возвращён" in page
    refunded = Payment.get()
    assert (refunded.status, refunded.refunded_kopecks) == ("refunded", 8500)
    assert _access_until() is None
    assert "Вернуть" not in shop["admin"].get("/payments").get_data(as_text=True)


def test_the_early_refund_applies_when_announced_again_after_the_success(shop):
    assert _refund_notice(shop, "85.00", "rfd-early").status_code == 409
    _pay(shop)
    assert _refund_notice(shop, "85.00", "rfd-early").status_code == 200
    assert Payment.get().status == "refunded" and _access_until() is None


def test_partial_refunds_add_up_and_only_the_whole_takes_the_access_back(shop):
    """Audit: a refund of 1,00 ₽ of 85,00 ₽ made the payment «Возвращен» and took all the
    time it bought."""
    _pay(shop)
    until = _access_until()
    assert _refund_notice(shop, "1.00", "rfd-1").status_code == 200
    assert _refund_notice(shop, "1.00", "rfd-1").status_code == 200  # the same one again
    partly = Payment.get()
    assert (partly.status, partly.refunded_kopecks, partly.amount_kopecks) == (
        "succeeded", 100, 8500)
    assert _access_until() == until
    registry = shop["admin"].get("/payments").get_data(as_text=True)
    assert "Завершен" in registry and "возвращено 1,00\xa0₽" in registry
    # «Вернуть» returns what is left, and says how much.
    assert "Вернуть 84,00\xa0₽ за платёж" in registry
    status = shop["parent"].get(shop["checkout"]).get_data(as_text=True)
    assert "Частично возвращено: 1,00\xa0₽" in status

    assert _refund_notice(shop, "50.00", "rfd-2").status_code == 200
    assert Payment.get().refunded_kopecks == 5100 and _access_until() == until
    assert _refund_notice(shop, "34.00", "rfd-3").status_code == 200
    whole = Payment.get()
    assert (whole.status, whole.refunded_kopecks) == ("refunded", 8500)
    assert _access_until() is None


def test_the_admin_refunds_what_is_left_after_a_partial_refund(shop):
    _pay(shop)
    _refund_notice(shop, "1.00", "rfd-1")
    page = _refund_by_admin(shop)
    assert "возвращён" in page
    refunded = Payment.get()
    assert (refunded.status, refunded.refunded_kopecks) == ("refunded", 8500)
    events = {e.event: e.amount_kopecks for e in PaymentEvent.select()}
    assert sorted(v for k, v in events.items() if k.startswith("refund")) == [100, 8400]


def test_a_refused_refund_says_so(shop, monkeypatch):
    _pay(shop)

    def refuse(*_args):
        raise PaymentError("the bank is closed")

    monkeypatch.setattr(shop["app"].extensions["payments"], "refund", refuse)
    page = _refund_by_admin(shop)
    assert "Платёжный сервис не вернул деньги" in page and "возвращён" not in page
    assert Payment.get().status == "succeeded"
