"""Telephony: flash calls and SMS behind one small interface."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from providers.outbox import Outbox


@runtime_checkable
class Telephony(Protocol):
    """What the app needs from a telephony operator."""

    def flash_call(self, phone: str, code: str) -> None:
        """Ring `phone` from a number whose last four digits are `code`."""

    def sms(self, phone: str, text: str, code: str | None = None) -> None:
        """Send `text` to `phone`; `code` is the one-time code inside it, if any."""


def caller_number(code: str) -> str:
    """Return a plausible Russian caller number that ends in the 4-digit `code`."""
    if len(code) != 4 or not code.isascii() or not code.isdigit():
        raise ValueError(f"a flash-call code is 4 digits, got {code!r}")
    return f"+7 (900) 000-{code[:2]}-{code[2:]}"


class OutboxTelephony:
    """Telephony that writes to the outbox instead of calling anyone (TELEPHONY=outbox)."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def flash_call(self, phone: str, code: str) -> None:
        """Record a flash call whose caller number ends in `code`."""
        text = f"Звонок с номера {caller_number(code)}: последние 4 цифры — код"
        self.outbox.append("call", phone, text=text, code=code)

    def sms(self, phone: str, text: str, code: str | None = None) -> None:
        """Record an SMS."""
        self.outbox.append("sms", phone, text=text, code=code)


def make_telephony(setting: str, outbox: Outbox) -> Telephony:
    """Build the telephony named by the TELEPHONY setting; unknown names raise ValueError."""
    if setting == "outbox":
        return OutboxTelephony(outbox)
    raise ValueError(f"TELEPHONY={setting!r} is not supported; expected 'outbox'")
