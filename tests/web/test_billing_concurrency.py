"""Exactly once under real concurrency: ten identical webhooks at once against the real gevent
server, and a promo code's usage limit raced by ten threads on one SQLite file."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from app import create_app
from domain import billing
from domain.billing import AccessGrant, Payment, PaymentEvent, PromoCode
from domain.db import db
from domain.errors import DomainError
from domain.schema import upgrade
from providers.outbox import Outbox
from providers.payments.sandbox import SandboxProvider
from tests.billing_fixtures import join, kindergarten
from tests.database import url_for
from tests.server import running_app

pytestmark = pytest.mark.slow


def _app_on(instance, url, secret="e2e-secret"):
    return create_app({"TESTING": True, "SECRET_KEY": secret, "INSTANCE_PATH": str(instance),
                       "DATABASE_URL": url})


def _race(n, work):
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as error:  # collected and asserted on below
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_ten_identical_notifications_at_once_apply_once(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    with running_app(instance) as base:
        app = _app_on(instance, url_for(instance))
        with app.test_request_context(), db.connection_context():
            from domain import accounts

            manager = accounts.create_account(phone="+79990001001", password="secret2024pass")
            parent = accounts.create_account(phone="+79990001002", password="secret2024pass")
            territory = kindergarten(manager)
            join(parent, territory)
            period = billing.TariffPeriod.of(territory.id).first()
            payment = billing.start_purchase(
                parent, territory, billing.app_offer(territory, period.id),
                email="parent@example.com", method="sbp", provider="sandbox")
            billing.attach_provider(payment, "sbx-race", None)
        body = json.dumps({"type": "notification", "event": "payment.succeeded", "object": {
            "id": "sbx-race", "status": "succeeded", "paid": True,
            "amount": {"value": "85.00", "currency": "RUB"}}}).encode()
        signature = SandboxProvider("e2e-secret").sign(body)

        def post(_i):
            request = urllib.request.Request(
                base + "/billing/webhook", data=body, method="POST",
                headers={"Content-Type": "application/json", "X-Sandbox-Signature": signature})
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status

        statuses = _race(10, post)
        assert statuses == [200] * 10
        with db.connection_context():
            assert PaymentEvent.select().count() == 1
            paid = Payment.get()
            assert paid.status == "succeeded" and paid.amount_kopecks == 8500
            assert paid.paid_until == billing.add_months(paid.paid_at, 3, territory.timezone)
            assert AccessGrant.get().paid_until == paid.paid_until
        receipts = [e for e in Outbox(instance / "outbox.jsonl").entries()
                    if e["channel"] == "email"]
        assert len(receipts) == 1


def test_promo_usage_limit_holds_under_concurrency(tmp_path, database_url):
    app = _app_on(tmp_path, database_url)
    with app.test_request_context(), db.connection_context():
        upgrade()
        from domain import accounts

        manager = accounts.create_account(phone="+79990001001", password="secret2024pass")
        territory = kindergarten(manager)
        people = []
        for i in range(10):
            person = accounts.create_account(phone=f"+7999000200{i}", password="secret2024pass")
            join(person, territory)
            people.append(person)
        billing.add_promo(territory, "RACE", percent=10, usage_limit=3)
        offer = billing.app_offer(territory, billing.TariffPeriod.of(territory.id).first().id)

    def buy(i):
        with app.app_context(), db.connection_context():
            return billing.start_purchase(people[i], territory, offer, email="a@example.com",
                                          method="sbp", provider="sandbox", promo_code="race")

    results = _race(10, buy)
    made = [r for r in results if isinstance(r, Payment)]
    refused = [r for r in results if isinstance(r, DomainError)]
    assert len(made) == 3 and len(refused) == 7, results
    with db.connection_context():
        assert PromoCode.get().used_count == 3
        assert Payment.select().where(Payment.promo.is_null(False)).count() == 3
    db.close()


def test_a_cancel_racing_the_banks_success_never_leaves_paid_money_canceled(tmp_path,
                                                                           database_url):
    app = _app_on(tmp_path, database_url)
    with app.test_request_context(), db.connection_context():
        upgrade()
        from domain import accounts

        manager = accounts.create_account(phone="+79990001001", password="secret2024pass")
        parent = accounts.create_account(phone="+79990001002", password="secret2024pass")
        territory = kindergarten(manager)
        join(parent, territory)
        billing.add_promo(territory, "RACE", percent=10)
        offer = billing.app_offer(territory, billing.TariffPeriod.of(territory.id).first().id)
        payments = []
        for i in range(6):
            payment = billing.start_purchase(parent, territory, offer, email="a@example.com",
                                             method="sbp", provider="sandbox",
                                             promo_code="race")
            billing.attach_provider(payment, f"sbx-{i}", None)
            payments.append(payment)

    for payment in payments:
        def work(i, payment=payment):
            with app.app_context(), db.connection_context():
                if i == 0:
                    return billing.cancel_by_payer(payment)
                return billing.apply_success(payment.provider_payment_id,
                                             payment.expected_kopecks)

        results = _race(2, work)
        assert not [r for r in results if isinstance(r, Exception)], results
        assert results[1] is True  # the money always buys, whoever came first

    with db.connection_context():
        assert {p.status for p in Payment.select()} == {"succeeded"}
        assert PromoCode.get().used_count == 6
        last = Payment.select().order_by(Payment.paid_until.desc()).get()
        assert AccessGrant.get().paid_until == last.paid_until
    db.close()
