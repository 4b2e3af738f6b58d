"""Payment providers behind one interface: `sandbox` (the embedded bank) and `yookassa`.

`init_app(app)` builds the one chosen by app.config["PAYMENT_PROVIDER"] into
app.extensions["payments"]; `payments()` returns it. Every provider speaks YooKassa's
notification shape, `{"type": "notification", "event": "payment.succeeded", "object": {…}}`,
to the one webhook route, and answers it with a ProviderEvent it has verified.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from flask import current_app

if TYPE_CHECKING:
    from flask import Flask

SUCCEEDED = "payment.succeeded"
CANCELED = "payment.canceled"
REFUNDED = "refund.succeeded"


class PaymentError(RuntimeError):
    """The provider refused a request or could not be reached."""


class NotificationRejected(Exception):
    """A notification that did not come from the provider, or that we cannot read."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Charge:
    """What we ask a provider to collect."""

    amount_kopecks: int
    description: str
    method: str  # sbp | bank_card
    idempotence_key: str
    return_url: str
    email: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Checkout:
    """The provider's answer: its payment id and the URL the payer confirms at.

    For SBP the URL is what the QR code carries (a bank app opens it); for a bank card it
    is the provider's card form the payer is sent to.
    """

    provider_payment_id: str
    confirmation_url: str


@dataclass(frozen=True)
class ProviderEvent:
    """A verified event: what happened to which of the provider's payments."""

    event: str  # SUCCEEDED, CANCELED, REFUNDED, or "" for nothing to do
    provider_payment_id: str
    amount_kopecks: int | None = None  # a refund's: what that refund returned
    refund_id: str | None = None  # REFUNDED: which refund (a payment may have several)


@dataclass(frozen=True)
class ProviderRefund:
    """The provider's answer to a refund request: the refund's id and its status,
    "succeeded" (the money is back), "pending" (it will say later) or "canceled"."""

    refund_id: str
    status: str


@runtime_checkable
class PaymentProvider(Protocol):
    """What the app needs from a payment service."""

    name: str

    def create(self, charge: Charge) -> Checkout:
        """Open a payment with the provider (idempotent per charge.idempotence_key)."""

    def parse_notification(
        self, body: bytes, headers: dict[str, str], remote_addr: str
    ) -> ProviderEvent:
        """Verify a webhook request and say what it reports; NotificationRejected if forged."""

    def refund(self, provider_payment_id: str, amount_kopecks: int,
               idempotence_key: str) -> ProviderRefund:
        """Return `amount_kopecks` of a succeeded payment (idempotent per key)."""

    def cancel(self, provider_payment_id: str, idempotence_key: str) -> str:
        """Cancel a payment nobody has paid; answers its status there afterwards: "canceled"
        (its link takes no money any more), "pending" (the provider cannot cancel it: it stays
        payable until it expires there) or "succeeded" (paid meanwhile)."""


def make_provider(app: Flask) -> PaymentProvider:
    """The provider app.config["PAYMENT_PROVIDER"] names, set up from the config."""
    name = app.config.get("PAYMENT_PROVIDER", "sandbox")
    if name == "sandbox":
        from providers.payments.sandbox import SandboxProvider

        return SandboxProvider(app.config["SECRET_KEY"], app.config.get("SANDBOX_WEBHOOK_URL"))
    if name == "yookassa":
        from providers.payments.yookassa import YooKassaProvider

        return YooKassaProvider.from_config(app.config)
    raise ValueError(f"unknown PAYMENT_PROVIDER {name!r}; known: sandbox, yookassa")


def init_app(app: Flask) -> None:
    """Bind the configured payment provider to the app; bad settings raise here."""
    app.extensions["payments"] = make_provider(app)


def payments() -> PaymentProvider:
    """The current app's payment provider."""
    try:
        return current_app.extensions["payments"]
    except KeyError:
        raise RuntimeError("providers.payments.init_app(app) was not called") from None
