"""YooKassa through the official SDK, against a local server speaking the API calls we use.

The real API cannot be reached here; the fake below checks what the real one would reject
(Basic auth, an Idempotence-Key, amounts as strings) and answers in its JSON shape.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app import create_app
from domain import billing
from domain.billing import AccessGrant, Payment
from domain.db import db
from domain.schema import upgrade
from tests.billing_fixtures import join, kindergarten, token
from tests.conftest import Auth

SHOP, KEY = "123456", "test_secret"


class FakeYooKassa(ThreadingHTTPServer):
    """Just enough of api.yookassa.ru/v3: create/get/cancel payments, create/get refunds."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.payments: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.keys: dict[str, dict] = {}  # Idempotence-Key → the object it created
        self.requests: list[tuple[str, str, dict]] = []
        self.refund_status = "succeeded"  # what a new refund starts as

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/v3"


class Handler(BaseHTTPRequestHandler):
    server: FakeYooKassa

    def log_message(self, *args):
        pass

    def _send(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self):
        expected = "Basic " + base64.b64encode(f"{SHOP}:{KEY}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self._send(401, {"type": "error", "code": "invalid_credentials"})
            return False
        return True

    def do_POST(self):  # noqa: N802
        if not self._authorized():
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else {}
        key = self.headers.get("Idempotence-Key")
        self.server.requests.append(("POST", self.path, {"key": key, "body": body}))
        if not key:
            return self._send(400, {"type": "error", "code": "invalid_request"})
        if key in self.server.keys:
            return self._send(200, self.server.keys[key])
        if self.path == "/v3/payments":
            assert isinstance(body["amount"]["value"], str)
            pid = str(uuid.uuid4())
            kind = body["confirmation"]["type"]
            confirmation = {"type": kind}
            if kind == "qr":
                confirmation["confirmation_data"] = f"https://qr.nspk.ru/{pid}"
            else:
                confirmation["confirmation_url"] = f"https://yoomoney.ru/checkout/{pid}"
            obj = {"id": pid, "status": "pending", "paid": False, "amount": body["amount"],
                   "confirmation": confirmation, "created_at": "2024-03-10T09:00:00.000Z",
                   "description": body.get("description", ""), "metadata": body.get("metadata", {}),
                   "recipient": {"account_id": SHOP, "gateway_id": "1"}, "refundable": False,
                   "test": True}
            self.server.payments[pid] = obj
        elif self.path == "/v3/refunds":
            payment = self.server.payments[body["payment_id"]]
            obj = {"id": str(uuid.uuid4()), "payment_id": payment["id"],
                   "status": self.server.refund_status,
                   "amount": body["amount"], "created_at": "2024-03-10T10:00:00.000Z"}
            self.server.refunds[obj["id"]] = obj
        elif self.path.startswith("/v3/payments/") and self.path.endswith("/cancel"):
            # Only a payment waiting for capture can be canceled; a pending one cannot.
            obj = self.server.payments[self.path.split("/")[3]]
            if obj["status"] != "waiting_for_capture":
                return self._send(400, {"type": "error", "code": "invalid_request",
                                        "description": "Payment is not waiting for capture"})
            obj["status"] = "canceled"
        else:
            return self._send(404, {"type": "error", "code": "not_found"})
        self.server.keys[key] = obj
        self._send(200, obj)

    def do_GET(self):  # noqa: N802
        if not self._authorized():
            return
        self.server.requests.append(("GET", self.path, {}))
        kind, _, oid = self.path.removeprefix("/v3/").partition("/")
        found = (self.server.payments if kind == "payments" else self.server.refunds).get(oid)
        if found is None:
            return self._send(404, {"type": "error", "code": "not_found"})
        self._send(200, found)


@pytest.fixture
def api():
    server = FakeYooKassa()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def yk(tmp_path, api, make_account, database_url):
    app = create_app({
        "TESTING": True, "SECRET_KEY": "test-secret", "INSTANCE_PATH": str(tmp_path / "i"),
        "DATABASE_URL": database_url, "PAYMENT_PROVIDER": "yookassa",
        "YOOKASSA_SHOP_ID": SHOP, "YOOKASSA_SECRET_KEY": KEY, "YOOKASSA_API_URL": api.url,
    })
    with app.test_request_context():
        upgrade()
        parent = make_account(email="parent@example.com")
        admin = make_account(is_admin=True)
        territory = kindergarten(make_account())
        join(parent, territory)
    client = app.test_client()
    Auth(client).login(parent.phone)
    yield {"app": app, "client": client, "territory": territory, "parent": parent, "admin": admin}
    db.close()


def _buy(yk, method="sbp"):
    client, tid = yk["client"], yk["territory"].id
    path = f"/t/{tid}/billing/access"
    period = billing.TariffPeriod.of(tid).first()
    return client.post(path, data={"csrf_token": token(client, path), "period": period.id,
                                   "email": "parent@example.com", "method": method})


def _notify(yk, obj_id, event="payment.succeeded", ip="185.71.76.5"):
    body = json.dumps({"type": "notification", "event": event,
                       "object": {"id": obj_id, "status": "succeeded"}}).encode()
    return yk["client"].post("/billing/webhook", data=body, environ_base={"REMOTE_ADDR": ip},
                             headers={"Content-Type": "application/json"})


def test_payment_created_with_our_idempotence_key(yk, api):
    response = _buy(yk)
    assert response.status_code == 302
    payment = Payment.get()
    method, path, sent = api.requests[0]
    assert (method, path) == ("POST", "/v3/payments")
    assert sent["key"] == payment.idempotence_key
    assert sent["body"]["amount"] == {"value": "85.00", "currency": "RUB"}
    assert sent["body"]["payment_method_data"] == {"type": "sbp"}
    assert payment.provider == "yookassa" and payment.provider_payment_id in api.payments
    assert payment.confirmation_url == f"https://qr.nspk.ru/{payment.provider_payment_id}"
    page = yk["client"].get(response.headers["Location"]).get_data(as_text=True)
    assert "<svg" in page and "Ожидается оплата" in page


def test_bank_card_goes_to_yookassa_form(yk, api):
    _buy(yk, method="bank_card")
    payment = Payment.get()
    assert payment.confirmation_url.startswith("https://yoomoney.ru/checkout/")
    assert api.requests[0][2]["body"]["confirmation"]["type"] == "redirect"


def test_webhook_refetches_and_applies_once(yk, api):
    _buy(yk)
    payment = Payment.get()
    # The notification claims success, but the API still says pending: nothing happens.
    assert _notify(yk, payment.provider_payment_id).status_code == 200
    assert Payment.get().status == "pending"
    api.payments[payment.provider_payment_id].update(status="succeeded", paid=True)
    for _ in range(3):
        assert _notify(yk, payment.provider_payment_id).status_code == 200
    paid = Payment.get()
    assert paid.status == "succeeded" and paid.amount_kopecks == 8500
    assert AccessGrant.get().paid_until == paid.paid_until
    assert ("GET", f"/v3/payments/{payment.provider_payment_id}", {}) in api.requests


def test_webhook_from_outside_yookassa_networks_is_refused(yk, api):
    _buy(yk)
    payment = Payment.get()
    api.payments[payment.provider_payment_id].update(status="succeeded", paid=True)
    assert _notify(yk, payment.provider_payment_id, ip="203.0.113.9").status_code == 403
    assert _notify(yk, payment.provider_payment_id, ip="127.0.0.1").status_code == 403
    assert Payment.get().status == "pending"
    assert not [r for r in api.requests if r[0] == "GET"]  # never even asked the API
    # IPv6 from YooKassa's published list is trusted.
    assert _notify(yk, payment.provider_payment_id, ip="2a02:5180:0:1509::1").status_code == 200


def test_webhook_for_an_unknown_payment(yk, api):
    assert _notify(yk, "no-such-payment").status_code == 400


def test_api_amount_must_match(yk, api):
    _buy(yk)
    payment = Payment.get()
    api.payments[payment.provider_payment_id].update(
        status="succeeded", amount={"value": "1.00", "currency": "RUB"})
    assert _notify(yk, payment.provider_payment_id).status_code == 409
    assert Payment.get().status == "pending"


def test_refund_through_the_api(yk, api):
    _buy(yk)
    payment = Payment.get()
    api.payments[payment.provider_payment_id].update(status="succeeded", paid=True)
    _notify(yk, payment.provider_payment_id)
    client = yk["client"]
    Auth(client).logout()
    Auth(client).login(yk["admin"].phone)
    client.post(f"/payments/{payment.id}/refund", data={"csrf_token": token(client, "/payments")})
    refunded = Payment.get()
    assert refunded.status == "refunded"
    post = [r for r in api.requests if r[1] == "/v3/refunds"][0]
    assert post[2]["key"] == f"{payment.idempotence_key}-refund-8500"
    assert post[2]["body"]["amount"] == {"value": "85.00", "currency": "RUB"}
    # YooKassa's later refund.succeeded notification changes nothing more.
    refund_id = next(iter(api.refunds))
    assert _notify(yk, refund_id, event="refund.succeeded").status_code == 200
    assert Payment.get().status == "refunded"


def _as_admin(yk):
    client = yk["client"]
    Auth(client).logout()
    Auth(client).login(yk["admin"].phone)
    return client


def test_a_refund_yookassa_confirms_later_is_said_to_be_requested(yk, api):
    _buy(yk)
    payment = Payment.get()
    api.payments[payment.provider_payment_id].update(status="succeeded", paid=True)
    _notify(yk, payment.provider_payment_id)
    api.refund_status = "pending"
    client = _as_admin(yk)
    page = client.post(f"/payments/{payment.id}/refund", follow_redirects=True,
                       data={"csrf_token": token(client, "/payments")}).get_data(as_text=True)
    assert "запрошен" in page and "возвращён" not in page
    assert Payment.get().status == "succeeded"  # nothing is back yet
    refund_id = next(iter(api.refunds))
    assert _notify(yk, refund_id, event="refund.succeeded").status_code == 200
    assert Payment.get().status == "succeeded"  # YooKassa still says pending
    api.refunds[refund_id]["status"] = "succeeded"
    assert _notify(yk, refund_id, event="refund.succeeded").status_code == 200
    refunded = Payment.get()
    assert (refunded.status, refunded.refunded_kopecks) == ("refunded", 8500)
    assert AccessGrant.get().paid_until <= refunded.closed_at


def test_a_partial_refund_made_at_yookassa_is_partial_here(yk, api):
    _buy(yk)
    payment = Payment.get()
    api.payments[payment.provider_payment_id].update(status="succeeded", paid=True)
    _notify(yk, payment.provider_payment_id)
    until = AccessGrant.get().paid_until
    api.refunds["r-1"] = {"id": "r-1", "payment_id": payment.provider_payment_id,
                          "status": "succeeded", "amount": {"value": "10.00", "currency": "RUB"},
                          "created_at": "2024-03-10T10:00:00.000Z"}
    assert _notify(yk, "r-1", event="refund.succeeded").status_code == 200
    partly = Payment.get()
    assert (partly.status, partly.refunded_kopecks) == ("succeeded", 1000)
    assert AccessGrant.get().paid_until == until


def test_the_payers_cancel_keeps_the_promo_use_until_yookassa_cancels(yk, api):
    """A pending one-stage payment cannot be canceled through the API: it stays payable, so
    the use stays taken until YooKassa cancels it (payment.canceled)."""
    billing.add_promo(yk["territory"], "ONCE", percent=10, usage_limit=1)
    client, tid = yk["client"], yk["territory"].id
    path = f"/t/{tid}/billing/access"
    client.post(path, data={"csrf_token": token(client, path), "email": "parent@example.com",
                            "period": billing.TariffPeriod.of(tid).first().id, "method": "sbp",
                            "promo": "once"})
    payment = Payment.get()
    checkout = f"/t/{tid}/billing/payments/{payment.id}"
    client.post(checkout + "/cancel", data={"csrf_token": token(client, checkout)})
    assert ("POST", f"/v3/payments/{payment.provider_payment_id}/cancel") in [
        r[:2] for r in api.requests]
    assert Payment.get().status == "canceled"
    assert billing.PromoCode.get().used_count == 1
    api.payments[payment.provider_payment_id]["status"] = "canceled"
    assert _notify(yk, payment.provider_payment_id, event="payment.canceled").status_code == 200
    assert billing.PromoCode.get().used_count == 0


def test_unreachable_api_leaves_no_half_payment(yk, api):
    api.shutdown()
    api.server_close()
    response = _buy(yk)
    assert response.status_code == 422
    assert "Платёжный сервис сейчас недоступен" in response.get_data(as_text=True)
    assert Payment.get().status == "canceled"


def test_missing_credentials_fail_at_start(tmp_path):
    with pytest.raises(ValueError, match="YOOKASSA_SHOP_ID"):
        create_app({"TESTING": True, "SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path),
                    "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
                    "PAYMENT_PROVIDER": "yookassa", "YOOKASSA_SHOP_ID": "",
                    "YOOKASSA_SECRET_KEY": ""})
