"""The sandbox: a bank simulated inside the app, the default provider (PAYMENT_PROVIDER=sandbox).

It keeps its own ledger (SandboxBankPayment, its "bank side") and pages where the payer
pays or declines and the admin refunds (blueprints/billing/bank.py). Whatever happens
there reaches the shop the way YooKassa's news does: an HTTP POST of the same JSON to the
app's webhook route, signed with an HMAC of the app's SECRET_KEY — never a direct call
into our code, so the webhook route is exercised exactly as in production.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable

from flask import url_for
from peewee import CharField, IntegerField, TextField

from domain.billing import kopecks_to_value, value_to_kopecks
from domain.db import BaseModel, UtcDateTimeField, utcnow
from providers.payments import (
    CANCELED,
    REFUNDED,
    SUCCEEDED,
    Charge,
    Checkout,
    NotificationRejected,
    PaymentError,
    ProviderEvent,
    ProviderRefund,
)

log = logging.getLogger("propusk.sandbox")

SIGNATURE_HEADER = "X-Sandbox-Signature"
DELIVERY_TIMEOUT = 15.0

# (url, body, headers) → HTTP status of the webhook's answer
Deliver = Callable[[str, bytes, dict[str, str]], int]


class SandboxBankPayment(BaseModel):
    """A payment as the sandbox bank sees it."""

    id = CharField(primary_key=True, max_length=40)
    idempotence_key = CharField(max_length=64, unique=True)
    amount_kopecks = IntegerField()
    description = CharField(max_length=200)
    method = CharField(max_length=12)
    return_url = TextField()
    metadata = TextField(default="{}")
    status = CharField(max_length=12, default="pending")  # pending, succeeded, canceled, refunded
    created_at = UtcDateTimeField(default=utcnow)
    refund_id = CharField(max_length=40, null=True)

    def as_object(self) -> dict:
        """The payment in YooKassa's JSON shape."""
        return {
            "id": self.id,
            "status": "canceled" if self.status == "canceled" else (
                "pending" if self.status == "pending" else "succeeded"),
            "paid": self.status in ("succeeded", "refunded"),
            "amount": {"value": kopecks_to_value(self.amount_kopecks), "currency": "RUB"},
            "description": self.description,
            "payment_method": {"type": self.method},
            "metadata": json.loads(self.metadata or "{}"),
            "created_at": self.created_at.isoformat(),
            "test": True,
        }


def http_deliver(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST the notification over HTTP; the webhook's status code (0 when unreachable)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"webhook URL must be http(s): {url!r}")
    # The URL is our own webhook route (url_for or SANDBOX_WEBHOOK_URL), never user input.
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=DELIVERY_TIMEOUT) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError as error:
        log.warning("sandbox webhook %s unreachable: %s", url, error)
        return 0


class SandboxProvider:
    """The embedded bank."""

    name = "sandbox"

    def __init__(self, secret_key: str, webhook_url: str | None = None,
                 deliver: Deliver = http_deliver) -> None:
        # A key of its own, derived from SECRET_KEY, so a signature is good for nothing else.
        self._key = hmac.new(
            secret_key.encode(), b"propusk sandbox webhook", hashlib.sha256
        ).digest()
        self.webhook_url = webhook_url
        self.deliver = deliver

    # -- the shop's side ------------------------------------------------------------------

    def create(self, charge: Charge) -> Checkout:
        """Open a payment at the bank; the same idempotence key gives back the same payment."""
        found = SandboxBankPayment.get_or_none(
            SandboxBankPayment.idempotence_key == charge.idempotence_key
        )
        if found is None:
            found = SandboxBankPayment.create(
                id=f"sbx-{secrets.token_hex(12)}",
                idempotence_key=charge.idempotence_key,
                amount_kopecks=charge.amount_kopecks,
                description=charge.description[:200],
                method=charge.method,
                return_url=charge.return_url,
                metadata=json.dumps(charge.metadata),
            )
        url = url_for("sandbox_bank.pay_page", payment_id=found.id, _external=True)
        return Checkout(found.id, url)

    def refund(self, provider_payment_id: str, amount_kopecks: int,
               idempotence_key: str) -> ProviderRefund:
        """Give money back and tell the shop by webhook.

        The bank keeps no partial state: any refund of a paid payment (the whole of it, or
        what is left after refunds announced elsewhere) closes it as refunded.
        """
        payment = SandboxBankPayment.get_or_none(SandboxBankPayment.id == provider_payment_id)
        if payment is None:
            raise PaymentError("no such payment at the sandbox bank")
        if payment.status == "refunded":
            return ProviderRefund(payment.refund_id or "", "succeeded")
        if payment.status != "succeeded" or not 0 < amount_kopecks <= payment.amount_kopecks:
            raise PaymentError("the sandbox bank refunds a succeeded payment, up to its amount")
        refund = {
            "id": f"rfd-{hashlib.sha256(idempotence_key.encode()).hexdigest()[:24]}",
            "payment_id": payment.id,
            "status": "succeeded",
            "amount": {"value": kopecks_to_value(amount_kopecks), "currency": "RUB"},
        }
        self._move(payment, "succeeded", "refunded", REFUNDED, refund, refund_id=refund["id"])
        return ProviderRefund(refund["id"], "succeeded")

    def cancel(self, provider_payment_id: str, idempotence_key: str) -> str:
        """The shop cancels a payment nobody paid: its page takes no money any more. The shop
        asked, so no notification is sent (it knows)."""
        payment = SandboxBankPayment.get_or_none(SandboxBankPayment.id == provider_payment_id)
        if payment is None:
            raise PaymentError("no such payment at the sandbox bank")
        SandboxBankPayment.update(status="canceled").where(
            (SandboxBankPayment.id == payment.id) & (SandboxBankPayment.status == "pending")
        ).execute()
        status = SandboxBankPayment.get_by_id(payment.id).status
        return "succeeded" if status == "refunded" else status

    def parse_notification(self, body: bytes, headers: dict[str, str],
                           remote_addr: str) -> ProviderEvent:
        """Accept only notifications signed with our key; read them as YooKassa's."""
        signature = headers.get(SIGNATURE_HEADER, "")
        if not hmac.compare_digest(signature, self.sign(body)):
            raise NotificationRejected("bad signature", 403)
        return read_notification(body)

    def sign(self, body: bytes) -> str:
        """The signature the bank puts on a notification body."""
        return hmac.new(self._key, body, hashlib.sha256).hexdigest()

    # -- the bank's side (its pages) ------------------------------------------------------

    def pay(self, payment: SandboxBankPayment) -> None:
        """The payer paid: the bank notifies the shop."""
        self._move(payment, "pending", "succeeded", SUCCEEDED)

    def decline(self, payment: SandboxBankPayment) -> None:
        """The payer (or the bank) declined: the bank notifies the shop."""
        self._move(payment, "pending", "canceled", CANCELED)

    def _move(self, payment: SandboxBankPayment, before: str, after: str, event: str,
              obj: dict | None = None, **changes: object) -> None:
        # No transaction is held while the webhook runs: it writes to the same database.
        moved = (
            SandboxBankPayment.update(status=after, **changes)
            .where((SandboxBankPayment.id == payment.id) & (SandboxBankPayment.status == before))
            .execute()
        )
        if not moved:
            raise PaymentError(f"the payment is no longer {before}")
        payment.status = after
        body = json.dumps(
            {"type": "notification", "event": event, "object": obj or payment.as_object()},
            ensure_ascii=False,
        ).encode()
        url = self.webhook_url or url_for("billing.webhook", _external=True)
        status = self.deliver(
            url, body, {"Content-Type": "application/json", SIGNATURE_HEADER: self.sign(body)}
        )
        if not 200 <= status < 300:
            SandboxBankPayment.update(status=before).where(
                SandboxBankPayment.id == payment.id
            ).execute()
            payment.status = before
            raise PaymentError(f"the shop's webhook answered {status}")


def read_notification(body: bytes) -> ProviderEvent:
    """Read a notification in YooKassa's shape (used where its sender is already trusted)."""
    try:
        data = json.loads(body)
        event = data["event"]
        obj = data["object"]
        if data.get("type") != "notification" or not isinstance(obj, dict):
            raise ValueError("not a notification")
        if event == REFUNDED:
            return ProviderEvent(REFUNDED, str(obj["payment_id"]),
                                 value_to_kopecks(obj["amount"]["value"]),
                                 refund_id=str(obj["id"]) if obj.get("id") else None)
        if event in (SUCCEEDED, CANCELED):
            amount = obj["amount"]
            if amount.get("currency", "RUB") != "RUB":
                raise ValueError("not roubles")
            return ProviderEvent(event, str(obj["id"]), value_to_kopecks(amount["value"]))
        return ProviderEvent("", str(obj.get("id", "")))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise NotificationRejected(f"unreadable notification: {error}") from None
