"""YooKassa through its official SDK (PAYMENT_PROVIDER=yookassa).

Credentials come from YOOKASSA_SHOP_ID and YOOKASSA_SECRET_KEY; YOOKASSA_API_URL points the
SDK elsewhere (the tests' local server). The SDK keeps its configuration on a class, that is
per process: one Propusk app per process is what production runs.

A notification is never believed as sent. Its source address must be in YooKassa's
published list (the SDK's SecurityHelper.YOOKASSA_NETWORKS, as on
yookassa.ru/developers/using-api/webhooks), and then the payment is fetched again from the
API, whose status and amount are what we act on.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from yookassa import Configuration, Payment, Refund
from yookassa.domain.common import SecurityHelper
from yookassa.domain.exceptions import ApiError

from domain.billing import kopecks_to_value, value_to_kopecks
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

DEFAULT_API_URL = "https://api.yookassa.ru/v3"
# _UNREACHABLE: on a network failure the SDK (3.13.0) reads `.response` of the requests
# exception, which is None, and raises AttributeError; so besides its ApiError any exception
# from an SDK call means "YooKassa could not be asked", never a reason to crash the page.


def _networks(items: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(item, strict=False) for item in items]


class YooKassaProvider:
    """Payments through api.yookassa.ru."""

    name = "yookassa"

    def __init__(self, shop_id: str, secret_key: str, api_url: str | None = None,
                 trusted_networks: Iterable[str] | None = None) -> None:
        if not shop_id or not secret_key:
            raise ValueError("YOOKASSA_SHOP_ID and YOOKASSA_SECRET_KEY are required")
        Configuration.configure(shop_id, secret_key, api_url=api_url or DEFAULT_API_URL)
        self.trusted = _networks(
            SecurityHelper.YOOKASSA_NETWORKS if trusted_networks is None else trusted_networks
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> YooKassaProvider:
        """Build from the app's config, falling back to the environment."""

        def setting(name: str) -> Any:
            return config.get(name) or os.environ.get(name)

        return cls(
            setting("YOOKASSA_SHOP_ID") or "",
            setting("YOOKASSA_SECRET_KEY") or "",
            setting("YOOKASSA_API_URL"),
            config.get("YOOKASSA_TRUSTED_NETWORKS"),
        )

    def create(self, charge: Charge) -> Checkout:
        """Create the payment; our idempotence key makes a retried request the same payment."""
        confirmation: dict[str, str]
        if charge.method == "sbp":
            confirmation = {"type": "qr", "return_url": charge.return_url}
        else:
            confirmation = {"type": "redirect", "return_url": charge.return_url}
        params = {
            "amount": {"value": kopecks_to_value(charge.amount_kopecks), "currency": "RUB"},
            "capture": True,
            "payment_method_data": {"type": charge.method},
            "confirmation": confirmation,
            "description": charge.description[:128],
            "metadata": dict(charge.metadata),
        }
        try:
            response = Payment.create(params, charge.idempotence_key)
        except Exception as error:  # noqa: BLE001 — see _UNREACHABLE
            raise PaymentError(f"YooKassa did not create the payment: {error!r}") from error
        confirmation_obj = response.confirmation
        url = (getattr(confirmation_obj, "confirmation_data", None)
               or getattr(confirmation_obj, "confirmation_url", None))
        if not response.id or not url:
            raise PaymentError("YooKassa answered without a payment id or confirmation")
        return Checkout(str(response.id), str(url))

    def refund(self, provider_payment_id: str, amount_kopecks: int,
               idempotence_key: str) -> ProviderRefund:
        """Refund `amount_kopecks` of the payment."""
        params = {
            "payment_id": provider_payment_id,
            "amount": {"value": kopecks_to_value(amount_kopecks), "currency": "RUB"},
        }
        try:
            response = Refund.create(params, idempotence_key)
        except Exception as error:  # noqa: BLE001 — see _UNREACHABLE
            raise PaymentError(f"YooKassa did not refund: {error!r}") from error
        return ProviderRefund(str(response.id), str(response.status))

    def cancel(self, provider_payment_id: str, idempotence_key: str) -> str:
        """Cancel the payment if YooKassa lets us; its status there afterwards.

        The API cancels only a payment waiting for capture; a one-stage payment still
        pending is refused, stays payable and is canceled by YooKassa when its time to pay
        runs out (then a payment.canceled notification comes).
        """
        try:
            try:
                status = str(Payment.cancel(provider_payment_id, idempotence_key).status)
            except ApiError:
                status = str(Payment.find_one(provider_payment_id).status)
        except Exception as error:  # noqa: BLE001 — see _UNREACHABLE
            raise PaymentError(f"YooKassa did not cancel: {error!r}") from error
        return {"canceled": "canceled", "succeeded": "succeeded"}.get(status, "pending")

    def is_trusted(self, remote_addr: str) -> bool:
        """Whether the address is one YooKassa sends notifications from."""
        try:
            address = ipaddress.ip_address(remote_addr)
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    def parse_notification(self, body: bytes, headers: dict[str, str],
                           remote_addr: str) -> ProviderEvent:
        """Check the sender's address, then ask the API what really happened."""
        if not self.is_trusted(remote_addr):
            raise NotificationRejected(f"notification from untrusted address {remote_addr}", 403)
        try:
            data = json.loads(body)
            event = str(data["event"])
            object_id = str(data["object"]["id"])
        except (ValueError, KeyError, TypeError) as error:
            raise NotificationRejected(f"unreadable notification: {error}") from None
        try:
            if event.startswith("refund."):
                refund = Refund.find_one(object_id)
                if refund.status != "succeeded":
                    return ProviderEvent("", str(refund.payment_id))
                return ProviderEvent(REFUNDED, str(refund.payment_id),
                                     value_to_kopecks(refund.amount.value),
                                     refund_id=str(refund.id))
            payment = Payment.find_one(object_id)
        except ApiError as error:
            raise NotificationRejected(f"YooKassa does not know {object_id}: {error}") from None
        except Exception as error:  # noqa: BLE001 — see _UNREACHABLE
            # Not the sender's fault: 503 makes YooKassa deliver the notification again later.
            raise NotificationRejected(f"YooKassa API unreachable: {error}", 503) from None
        kopecks = value_to_kopecks(payment.amount.value)
        if payment.amount.currency != "RUB":
            raise NotificationRejected("payment not in roubles")
        if payment.status == "succeeded":
            return ProviderEvent(SUCCEEDED, str(payment.id), kopecks)
        if payment.status == "canceled":
            return ProviderEvent(CANCELED, str(payment.id), kopecks)
        return ProviderEvent("", str(payment.id), kopecks)
