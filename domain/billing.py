"""Billing: access cards, tariffs and their periods, promo codes, payments and access grants.

For now it holds the rules for the number printed on the back of an access card.
"""

from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l

from domain.errors import DomainError

# Wiegand 26 carries an 8-bit facility code and a 16-bit card number between two parity
# bits; EM-Marine cards print those two as «facility,number», e.g. 123,45678.
FACILITY_MAX = 0xFF
CARD_NUMBER_MAX = 0xFFFF
WIEGAND_26_LIMIT = 1 << 24
# GATE-CTL carries the card number as a u64 (input registers 26–29).
CARD_VALUE_MAX = (1 << 64) - 1

# ASCII digits only: str.isdigit() also takes «²» and other scripts' digits, which are not
# what is printed on a card and which int() partly rejects.
_PAIR = re.compile(r"([0-9]+)\s*[,/]\s*([0-9]+)|([0-9]+)\s+([0-9]+)")
_DECIMAL = re.compile(r"[0-9]+")
# u64 has 20 decimal digits; longer input is too big whatever it says, and checking the
# length first keeps int() away from huge strings.
_DECIMAL_MAX_DIGITS = len(str(CARD_VALUE_MAX))


def parse_card_number(text: str) -> int:
    """Return the value a reader sends for the number printed on a card.

    Two forms are printed on cards. The EM-Marine pair «facility,number» (also written with
    «/» or a space, with or without leading zeros: 123,45678, 012/00345, 123 45678) is the
    Wiegand 26 payload: an 8-bit facility code (0–255) and a 16-bit card number (0–65535),
    so the value is ``facility * 65536 + number`` (123,45678 → 8106606). A plain decimal
    (8106606, or the ten-digit 0008106606 also printed on EM-Marine cards) is that value
    written out, and may be as large as the u64 the gate protocol carries.
    """
    cleaned = (text or "").strip()
    if not cleaned:
        raise DomainError(_l("Введите номер карты"), field="card_number")
    pair = _PAIR.fullmatch(cleaned)
    if pair:
        facility_text, number_text = (
            (pair[1], pair[2]) if pair[1] is not None else (pair[3], pair[4])
        )
        facility, number = _small_int(facility_text), _small_int(number_text)
        if facility > FACILITY_MAX:
            raise DomainError(
                _l("Код серии (до запятой) — от 0 до %(max)s", max=FACILITY_MAX),
                field="card_number",
            )
        if number > CARD_NUMBER_MAX:
            raise DomainError(
                _l("Номер карты (после запятой) — от 0 до %(max)s", max=CARD_NUMBER_MAX),
                field="card_number",
            )
        value = facility << 16 | number
    elif _DECIMAL.fullmatch(cleaned):
        digits = cleaned.lstrip("0") or "0"
        if len(digits) > _DECIMAL_MAX_DIGITS or int(digits) > CARD_VALUE_MAX:
            raise DomainError(
                _l("Номер карты слишком большой: проверьте цифры"), field="card_number"
            )
        value = int(digits)
    else:
        raise DomainError(
            _l("Номер карты — только цифры, например 123,45678 или 0008106606"),
            field="card_number",
        )
    if value == 0:
        # Readers never send 0 for a card; a zero here is a typo or an empty field's mask.
        raise DomainError(_l("Номер карты не может быть нулевым"), field="card_number")
    return value


def _small_int(digits: str) -> int:
    """Read one half of a facility/number pair, capping absurdly long input before int()."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 6 else CARD_VALUE_MAX


def format_card_number(value: int) -> str:
    """Show a card's value as printed on it: «123,45678» under 2**24, a decimal above.

    The pair is zero-padded to 3 + 5 digits (012,00345) as on EM-Marine cards, so that the
    printed number and the screen can be compared digit by digit.
    """
    if not 0 <= value <= CARD_VALUE_MAX:
        raise ValueError(f"card value out of the u64 range: {value}")
    if value < WIEGAND_26_LIMIT:
        return f"{value >> 16:03d},{value & CARD_NUMBER_MAX:05d}"
    return str(value)
