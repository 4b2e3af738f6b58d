"""Phone numbers: parsing what people type and showing them the Russian way."""

from __future__ import annotations

import phonenumbers
from flask_babel import lazy_gettext as _l

from domain.errors import DomainError


def parse_phone(text: str, field: str = "phone") -> str:
    """Normalise a typed phone (9990001122, 89990001122, +7 999 000-11-22) to E.164."""
    raw = (text or "").strip()
    if not raw:
        raise DomainError(_l("Введите номер телефона"), field)
    digits = "".join(ch for ch in raw if ch.isdigit())
    # Russians type the ten digits after +7, or the trunk prefix 8; both mean +7.
    if not raw.startswith("+"):
        if len(digits) == 10:
            raw = "+7" + digits
        elif len(digits) == 11 and digits[0] in "78":
            raw = "+7" + digits[1:]
    try:
        number = phonenumbers.parse(raw, "RU")
    except phonenumbers.NumberParseException:
        raise DomainError(_l("Неверный номер телефона"), field) from None
    if not phonenumbers.is_valid_number(number):
        raise DomainError(_l("Неверный номер телефона"), field)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def format_phone(e164: str | None) -> str:
    """Show an E.164 phone as +7 (999) 888-77-66 (other countries in international form)."""
    if not e164:
        return ""
    if e164.startswith("+7") and len(e164) == 12:
        d = e164[2:]
        return f"+7 ({d[:3]}) {d[3:6]}-{d[6:8]}-{d[8:]}"
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def phone_fragments(text: str) -> list[str]:
    """What to look for in stored phones (+7…) when someone searches by a phone typed any
    way, whole or in part: «+7 (999) 000-00-03» as the lists show it, 8 999…, digits; none
    when `text` is not a phone (three digits at least, nothing but phone characters).

    A beginning typed with 8 or +7 is the country's: «8 999 100» looks for +7999100 at the
    start (and for 8999100 anywhere, in case the 8 was the number's own)."""
    digits = "".join(ch for ch in text if ch.isdigit())
    typed = text.strip()
    if len(digits) < 3 or typed.strip("+0123456789 ()-\u00a0"):
        return []
    if len(digits) == 11 and digits[0] in "78":
        return [digits[1:]]  # a whole Russian number, stored as +7…
    if typed.startswith("+7"):
        return ["+" + digits]
    if typed.startswith("8"):
        return ["+7" + digits[1:], digits]
    return [digits]
