"""Billing: access cards, tariffs and their periods, promo codes, payments and access grants.

Money is integer kopecks everywhere; a float never holds an amount. Time is aware UTC.

A payment moves pending → succeeded → refunded, or pending → canceled (→ succeeded, when the
bank took the money after we gave up on it); refunds smaller than the amount leave it
succeeded, partly refunded, until they add up to it. Each move is one conditional or locked
UPDATE inside the transaction that also records the provider's event in PaymentEvent, whose
(payment, event) pair is unique: however often and however concurrently a provider announces
a payment, exactly one transaction applies it. An event that changes nothing is not
recorded, so that it cannot stand in for a later one that does.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from peewee import (
    CharField,
    ForeignKeyField,
    IntegerField,
    IntegrityError,
    TextField,
    fn,
)

from domain import versions
from domain.accounts import Account
from domain.db import BaseModel, NewestFirst, UtcDateTimeField, db, for_update, utcnow, writing
from domain.errors import DomainError, NotFound
from domain.territories import Territory

log = logging.getLogger("propusk.billing")

# Wiegand 26 carries an 8-bit facility code and a 16-bit card number between two parity
# bits; EM-Marine cards print those two as «facility,number», e.g. 123,45678.
FACILITY_MAX = 0xFF
CARD_NUMBER_MAX = 0xFFFF
WIEGAND_26_LIMIT = 1 << 24
# GATE-CTL carries the card number as a u64 (input registers 26–29).
CARD_VALUE_MAX = (1 << 64) - 1

# ASCII digits only: str.isdigit() also takes «²» and other scripts' digits, which are not
# what is printed on a card and which int() partly rejects.
# A full stop separates the pair too: a phone's decimal keypad (inputmode="decimal", the one
# that offers a separator at all on iOS) shows «.» instead of «,» in English.
_PAIR = re.compile(r"([0-9]+)\s*[,./]\s*([0-9]+)|([0-9]+)\s+([0-9]+)")
_DECIMAL = re.compile(r"[0-9]+")
# u64 has 20 decimal digits; longer input is too big whatever it says, and checking the
# length first keeps int() away from huge strings.
_DECIMAL_MAX_DIGITS = len(str(CARD_VALUE_MAX))


def parse_card_number(text: str) -> int:
    """Return the value a reader sends for the number printed on a card.

    Two forms are printed on cards. The EM-Marine pair «facility,number» (also written with
    «/», «.» or a space, with or without leading zeros: 123,45678, 012/00345, 123 45678) is the
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


# ---------------------------------------------------------------------------------------------
# Money: integer kopecks
# ---------------------------------------------------------------------------------------------

KOPECKS_MAX = 100_000_000 * 100  # a hundred million roubles: far above any price here
MIN_CHARGE = 100  # 1,00 ₽: providers do not take less
_RUBLES = re.compile(r"([0-9]{1,9})(?:[.,]([0-9]{1,2}))?")


def parse_rubles(text: str, field: str = "price") -> int:
    """Read an amount typed in roubles («85», «85,00», «1 380.5 ₽») as integer kopecks."""
    cleaned = re.sub(r"[\s\u00a0\u202f₽]|руб\.?", "", (text or "").strip().lower())
    match = _RUBLES.fullmatch(cleaned)
    if not match:
        raise DomainError(_l("Сумма в рублях, например 85 или 85,00"), field=field)
    kopecks = int(match[1]) * 100 + int((match[2] or "0").ljust(2, "0"))
    if kopecks <= 0:
        raise DomainError(_l("Сумма должна быть больше нуля"), field=field)
    if kopecks > KOPECKS_MAX:
        raise DomainError(_l("Слишком большая сумма"), field=field)
    return kopecks


def kopecks_to_value(kopecks: int) -> str:
    """Kopecks as the decimal string payment APIs exchange: 8500 → «85.00»."""
    return f"{kopecks // 100}.{kopecks % 100:02d}"


_VALUE = re.compile(r"([0-9]{1,12})(?:\.([0-9]{1,2}))?")


def value_to_kopecks(value: object) -> int:
    """A payment API's amount («85.00», «85.0», «85») as kopecks; ValueError if it is not one."""
    match = _VALUE.fullmatch(str(value).strip())
    if not match:
        raise ValueError(f"not an amount of money: {value!r}")
    return int(match[1]) * 100 + int((match[2] or "0").ljust(2, "0"))


def per_month_kopecks(price_kopecks: int, months: int) -> int:
    """Price per month in whole kopecks, rounded half up: 85,00 ₽ / 3 → 28,33 ₽.

    Integer arithmetic only: round(p / m) half up is floor((2p + m) / 2m) for p, m > 0.
    """
    if months <= 0:
        raise ValueError("months must be positive")
    return (2 * price_kopecks + months) // (2 * months)


def percent_of(kopecks: int, percent: int) -> int:
    """`percent` % of an amount in whole kopecks, rounded half up (integer arithmetic)."""
    return (2 * kopecks * percent + 100) // 200


def add_months(moment: dt.datetime, months: int, tz: str = "UTC") -> dt.datetime:
    """The same wall-clock time `months` later in the territory's zone (31 Jan + 1 → 28/29 Feb)."""
    local = moment.astimezone(ZoneInfo(tz))
    index = local.month - 1 + months
    year, month = local.year + index // 12, index % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day).astimezone(dt.UTC)


def extend_from(current_end: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    """A purchase extends from the later of now and the current end (SPEC §3)."""
    return max(now, current_end) if current_end else now


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


class CardNumberField(CharField):
    """A card's u64 value, stored as its decimal digits.

    GATE-CTL carries card values up to 2**64 − 1; PostgreSQL's BIGINT stops at 2**63 − 1 and
    SQLite turns larger integers into lossy REALs. Digits without leading zeros compare
    exactly on both, so equality look-ups by number stay indexable and exact.
    """

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", 20)
        super().__init__(**kwargs)

    def db_value(self, value):
        return None if value is None else str(int(value))

    def python_value(self, value):
        return None if value is None else int(value)


KINDS = {"app": _l("Приложение"), "card": _l("Карта")}
STATUSES = {
    "pending": _l("Ожидается оплата"),
    "succeeded": _l("Завершен"),
    "canceled": _l("Отменен"),
    "refunded": _l("Возвращен"),
}
METHODS = {"sbp": _l("СБП"), "bank_card": _l("Банковская карта")}
FAR_FUTURE = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)


class Tariff(BaseModel):
    """A named offer of app access in a territory, e.g. «Родители группы 1»."""

    territory = ForeignKeyField(Territory, backref="tariffs", on_delete="CASCADE")
    name = CharField(max_length=120)
    created_at = UtcDateTimeField(default=utcnow)

    class Meta:
        indexes = ((("territory", "name"), True),)

    @classmethod
    def of(cls, territory_id: int):
        """The territory's tariffs by name."""
        return cls.select().where(cls.territory == territory_id).order_by(cls.name, cls.id)


class TariffPeriod(BaseModel):
    """One way to buy a tariff: a number of months for a price."""

    tariff = ForeignKeyField(Tariff, backref="periods", on_delete="CASCADE")
    months = IntegerField()
    price_kopecks = IntegerField()

    class Meta:
        indexes = ((("tariff", "months"), True),)

    @property
    def per_month_kopecks(self) -> int:
        """The price of one month, to the kopeck."""
        return per_month_kopecks(self.price_kopecks, self.months)

    @classmethod
    def of(cls, territory_id: int):
        """Every period of the territory's tariffs, grouped by tariff, shortest first."""
        return (
            cls.select(cls, Tariff)
            .join(Tariff)
            .where(Tariff.territory == territory_id)
            .order_by(Tariff.name, Tariff.id, cls.months)
        )


class PromoCode(BaseModel):
    """A discount in percent or in kopecks, with an optional expiry and usage limit."""

    territory = ForeignKeyField(Territory, backref="promo_codes", on_delete="CASCADE")
    code = CharField(max_length=40)
    percent = IntegerField(null=True)
    fixed_kopecks = IntegerField(null=True)
    expires_at = UtcDateTimeField(null=True)
    usage_limit = IntegerField(null=True)
    used_count = IntegerField(default=0)
    created_at = UtcDateTimeField(default=utcnow)

    class Meta:
        indexes = ((("territory", "code"), True),)

    @property
    def last_day(self) -> dt.datetime | None:
        """The last moment the code works (it expires at the start of the next day)."""
        return self.expires_at - dt.timedelta(seconds=1) if self.expires_at else None

    def discount_for(self, price_kopecks: int) -> int:
        """The discount this code gives off a price, never more than the price."""
        if self.percent is not None:
            return min(price_kopecks, percent_of(price_kopecks, self.percent))
        return min(price_kopecks, self.fixed_kopecks or 0)

    @classmethod
    def of(cls, territory_id: int):
        """The territory's promo codes, newest first."""
        return cls.select().where(cls.territory == territory_id).order_by(cls.created_at.desc())


class Payment(NewestFirst, BaseModel):
    """One attempt to buy a card or app access, as we asked a payment provider for it."""

    territory = ForeignKeyField(Territory, backref="payments", on_delete="CASCADE")
    # An account's deletion keeps the payment (amount, date, territory) for the books.
    account = ForeignKeyField(Account, null=True, backref="payments", on_delete="SET NULL")
    kind = CharField(max_length=8)  # card | app
    status = CharField(max_length=12, default="pending", index=True)
    method = CharField(max_length=12)  # sbp | bank_card
    title = CharField(max_length=200)  # what was bought, as named at the time
    # The language the payer bought in (the title is in it): the receipt is written in it,
    # whoever reports the payment and whatever the account chose since. None before it.
    locale = CharField(max_length=8, null=True)
    # An app purchase's tariff as it was named then (names are the manager's words, never
    # translated): with kind and months, the title is worded in each reader's language.
    tariff_name = CharField(max_length=200, null=True)
    months = IntegerField()
    price_kopecks = IntegerField()  # the list price
    discount_kopecks = IntegerField(default=0)
    expected_kopecks = IntegerField()  # what we asked the provider for
    amount_kopecks = IntegerField(null=True)  # what the provider confirmed
    promo = ForeignKeyField(PromoCode, null=True, backref="payments", on_delete="SET NULL")
    # The code as typed at checkout: the receipt names it after the code is deleted. None
    # before migration 9 (then the code's current text, while it exists).
    promo_code = CharField(max_length=40, null=True)
    provider = CharField(max_length=20)
    provider_payment_id = CharField(max_length=64, null=True, unique=True)
    idempotence_key = CharField(max_length=64, unique=True)
    confirmation_url = TextField(null=True)
    email = CharField(max_length=254)
    period_start = UtcDateTimeField(null=True)
    paid_until = UtcDateTimeField(null=True)
    # A card purchase's binding: the card it went to and that card's end before it (None:
    # the card was new or waited for approval), so that a refund undoes exactly that.
    card_number = CardNumberField(null=True)
    card_until_before = UtcDateTimeField(null=True)
    created_at = UtcDateTimeField(default=utcnow, index=True)
    paid_at = UtcDateTimeField(null=True)
    closed_at = UtcDateTimeField(null=True)  # canceled or refunded
    # What refunds returned so far; the payment is «Возвращен» when they reach amount_kopecks,
    # and stays «Завершен», partly refunded, below it.
    refunded_kopecks = IntegerField(default=0)

    @property
    def status_label(self) -> str:
        """«Ожидается оплата», «Завершен», «Отменен» or «Возвращен»."""
        return str(STATUSES.get(self.status, self.status))

    @property
    def title_label(self) -> str:
        """What was bought, in the current language; `title` as stored for payments made
        before tariff_name."""
        if self.kind == "card":
            return str(CARD_TITLE)
        if self.tariff_name is not None:
            return _app_title(self.tariff_name, self.months)
        return self.title

    @property
    def kind_label(self) -> str:
        """«Приложение» or «Карта»."""
        return str(KINDS.get(self.kind, self.kind))

    @property
    def method_label(self) -> str:
        """«СБП» or «Банковская карта»."""
        return str(METHODS.get(self.method, self.method))

    @property
    def shown_kopecks(self) -> int:
        """The registry's «Сумма оплаты»: what was paid, or what is asked while pending."""
        return self.amount_kopecks if self.amount_kopecks is not None else self.expected_kopecks

    @property
    def promo_label(self) -> str:
        """The promo code the discount came from, as typed at checkout ("" if unknown)."""
        if self.promo_code:
            return self.promo_code
        return self.promo.code if self.promo_id is not None else ""

    @property
    def refundable_kopecks(self) -> int:
        """What a refund can still return: the amount paid less the refunds so far."""
        if self.status != "succeeded" or self.amount_kopecks is None:
            return 0
        return self.amount_kopecks - self.refunded_kopecks

    @property
    def awaits_card(self) -> bool:
        """A paid card purchase whose card number its payer has yet to enter (a deleted
        account's purchase awaits nothing: nobody can enter it)."""
        return (self.kind == "card" and self.status == "succeeded" and self.paid_until is None
                and self.account_id is not None)

    @classmethod
    def registry(cls):
        """Payments with their territory, newest first (compose with a scope and filters)."""
        return (
            cls.select(cls, Territory)
            .join(Territory)
            .order_by(cls.created_at.desc(), cls.id.desc())
        )


class PaymentEvent(BaseModel):
    """An event that changed a payment (the provider's, or ours: a cancel, a promo use given
    back); the unique pair makes it apply once."""

    payment = ForeignKeyField(Payment, backref="events", on_delete="CASCADE")
    # payment.succeeded, payment.canceled…, refund:<the refund's id hashed> (refund.succeeded
    # for one whose id is unknown: the whole payment), promo.released
    event = CharField(max_length=40)
    amount_kopecks = IntegerField(null=True)
    received_at = UtcDateTimeField(default=utcnow)

    class Meta:
        indexes = ((("payment", "event"), True),)


class AccessGrant(BaseModel):
    """Paid app access of one account in one territory («Оплачено до»)."""

    account = ForeignKeyField(Account, backref="access_grants", on_delete="CASCADE")
    territory = ForeignKeyField(Territory, backref="access_grants", on_delete="CASCADE")
    paid_until = UtcDateTimeField()

    class Meta:
        indexes = ((("account", "territory"), True),)


class Card(BaseModel):
    """An access card bound to one account in one territory."""

    territory = ForeignKeyField(Territory, backref="cards", on_delete="CASCADE")
    account = ForeignKeyField(Account, backref="cards", on_delete="CASCADE")
    number = CardNumberField()  # the integer a reader sends
    bound_at = UtcDateTimeField(default=utcnow)
    # Set by a purchase bound to the card or by the manager's approval. None: nothing covers
    # the card yet, it waits for the manager and opens no gate. Cards bound before migration 6
    # with no end (then: valid for good) read the same way and wait for approval too.
    valid_until = UtcDateTimeField(null=True)
    payment = ForeignKeyField(Payment, null=True, backref="cards", on_delete="SET NULL")

    class Meta:
        indexes = ((("territory", "number"), True),)

    @property
    def printed(self) -> str:
        """The number as printed on the card."""
        return format_card_number(self.number)

    def status(self, now: dt.datetime) -> str:
        """«waiting» for the manager, «valid» or «expired» at `now`."""
        if self.valid_until is None:
            return "waiting"
        return "valid" if self.valid_until > now else "expired"

    def status_label(self, now: dt.datetime) -> str:
        """The status in the reader's language."""
        return str(CARD_STATUSES[self.status(now)])

    @classmethod
    def of(cls, account_id: int, territory_id: int):
        """The account's cards in a territory."""
        return (
            cls.select()
            .where((cls.account == account_id) & (cls.territory == territory_id))
            .order_by(cls.bound_at)
        )

    @classmethod
    def in_territory(cls, territory_id: int):
        """Every card bound in a territory with its holder: those waiting first, then newest."""
        return (
            cls.select(cls, Account)
            .join(Account)
            .where(cls.territory == territory_id)
            .order_by(cls.valid_until.is_null(False), cls.bound_at.desc(), cls.id.desc())
        )


CARD_STATUSES = {
    "waiting": _l("Ожидает подтверждения управляющего"),
    "valid": _l("Действует"),
    "expired": _l("Срок действия истёк"),
}


def models() -> list[type[BaseModel]]:
    """The billing tables, in creation order."""
    return [Tariff, TariffPeriod, PromoCode, Payment, PaymentEvent, AccessGrant, Card]


# ---------------------------------------------------------------------------------------------
# What the access decision asks
# ---------------------------------------------------------------------------------------------


def card_access(
    territory_id: int, number: int, now: dt.datetime
) -> tuple[int, dt.datetime] | None:
    """(account id, valid until) of the card a reader sent, if it is bound here and valid now:
    covered by a purchase or approved by the manager, until a known end."""
    card = Card.get_or_none((Card.territory == territory_id) & (Card.number == int(number)))
    if card is None or card.status(now) != "valid":
        return None
    return card.account_id, card.valid_until


def app_access_until(account_id: int, territory_id: int, now: dt.datetime) -> dt.datetime | None:
    """Until when the account's app access in the territory is paid; None if not now.

    A territory that gives app access free answers FAR_FUTURE for everyone it asks about
    (membership is the caller's question).
    """
    territory = Territory.get_or_none(Territory.id == territory_id)
    if territory is None:
        return None
    if territory.app_access_free:
        return FAR_FUTURE
    grant = AccessGrant.get_or_none(
        (AccessGrant.account == account_id) & (AccessGrant.territory == territory_id)
    )
    if grant is None or grant.paid_until <= now:
        return None
    return grant.paid_until


def paid_until(account_id: int, territory_id: int) -> dt.datetime | None:
    """«Оплачено до» of the account's app access in the territory, past or future."""
    grant = AccessGrant.get_or_none(
        (AccessGrant.account == account_id) & (AccessGrant.territory == territory_id)
    )
    return grant.paid_until if grant else None


def cards_awaiting_number(account_id: int, territory_id: int):
    """Paid card purchases of the account here that still wait for a card number."""
    return (
        Payment.select()
        .where(
            (Payment.account == account_id)
            & (Payment.territory == territory_id)
            & (Payment.kind == "card")
            & (Payment.status == "succeeded")
            & Payment.paid_until.is_null()
        )
        .order_by(Payment.paid_at, Payment.id)
    )


# ---------------------------------------------------------------------------------------------
# Manager's settings: card price, tariffs, periods, promo codes
# ---------------------------------------------------------------------------------------------


def card_offer_problems(price_kopecks: int | None,
                        validity_months: int | None) -> list[DomainError]:
    """Everything wrong with a card's price and validity, one problem per field, so that a
    form shows them all at once (None: a value the form could not read, said there)."""
    problems = []
    if validity_months is not None and not 1 <= validity_months <= 120:
        problems.append(DomainError(_l("Срок действия — от 1 до 120 месяцев"),
                                    field="validity_months"))
    if price_kopecks is not None and price_kopecks < MIN_CHARGE:
        problems.append(DomainError(_l("Цена — не меньше 1,00 ₽"), field="price"))
    return problems


def set_card_offer(territory: Territory, price_kopecks: int, validity_months: int) -> None:
    """Set the price and validity of a card bought in the territory."""
    problems = card_offer_problems(price_kopecks, validity_months)
    if problems:
        raise problems[0]
    with db.atomic():
        Territory.update(
            card_price_kopecks=price_kopecks, card_validity_months=validity_months
        ).where(Territory.id == territory.id).execute()


def add_tariff(territory: Territory, name: str) -> Tariff:
    """Create a tariff; names are unique within the territory."""
    name = (name or "").strip()
    if not name:
        raise DomainError(_l("Введите название тарифа"), field="name")
    try:
        with db.atomic():
            return Tariff.create(territory=territory, name=name)
    except IntegrityError:
        raise DomainError(_l("Тариф с таким названием уже есть"), field="name") from None


def delete_tariff(territory: Territory, tariff_id: int) -> None:
    """Remove a tariff and its periods (payments keep their own copy of what was bought)."""
    with db.atomic():
        if not Tariff.delete().where(
            (Tariff.id == tariff_id) & (Tariff.territory == territory)
        ).execute():
            raise NotFound(_l("Тариф не найден"))


def tariff_of(territory: Territory, tariff_id: int) -> Tariff:
    """One of the territory's tariffs; NotFound for any other id."""
    tariff = Tariff.get_or_none((Tariff.id == tariff_id) & (Tariff.territory == territory))
    if tariff is None:
        raise NotFound(_l("Тариф не найден"))
    return tariff


def period_problems(months: int | None, price_kopecks: int | None) -> list[DomainError]:
    """Everything wrong with a new period's terms, one problem per field (None: a value the
    form could not read, said there)."""
    problems = []
    if months is not None and not 1 <= months <= 120:
        problems.append(DomainError(_l("Срок — от 1 до 120 месяцев"), field="months"))
    if price_kopecks is not None and price_kopecks < MIN_CHARGE:
        problems.append(DomainError(_l("Цена — не меньше 1,00 ₽"), field="price"))
    return problems


def add_period(
    territory: Territory, tariff_id: int, months: int, price_kopecks: int
) -> TariffPeriod:
    """Add a period (months, price) to one of the territory's tariffs."""
    tariff = tariff_of(territory, tariff_id)
    problems = period_problems(months, price_kopecks)
    if problems:
        raise problems[0]
    try:
        with db.atomic():
            return TariffPeriod.create(tariff=tariff, months=months, price_kopecks=price_kopecks)
    except IntegrityError:
        raise DomainError(_l("Период с таким сроком уже есть"), field="months") from None


def delete_period(territory: Territory, period_id: int) -> None:
    """Remove one period of the territory's tariffs."""
    with db.atomic():
        period = (
            TariffPeriod.select()
            .join(Tariff)
            .where((TariffPeriod.id == period_id) & (Tariff.territory == territory))
            .first()
        )
        if period is None:
            raise NotFound(_l("Период не найден"))
        period.delete_instance()


def dearest_price(territory: Territory) -> int | None:
    """The highest price of what the territory sells now: its card, its tariffs' periods."""
    prices = []
    if territory.kind == "kindergarten":
        prices.append(territory.card_price_kopecks)
    if not territory.app_access_free:
        highest = (TariffPeriod.select(fn.MAX(TariffPeriod.price_kopecks)).join(Tariff)
                   .where(Tariff.territory == territory).scalar())
        if highest is not None:
            prices.append(highest)
    return max(prices, default=None)


def normalize_promo(code: str) -> str:
    """Promo codes are typed in any case and with stray spaces: «ЛЕТО 10» → «ЛЕТО10»."""
    return re.sub(r"\s+", "", code or "").upper()


def add_promo(territory: Territory, code: str, **terms: Any) -> PromoCode:
    """Create a promo code with exactly one of a percent or a fixed discount; `terms` as
    promo_problems takes them (percent, fixed_kopecks, expires_at, usage_limit, now).

    A code that could never be used is refused: one already expired, or a fixed discount
    that would leave less than MIN_CHARGE to pay even for the dearest thing the territory
    sells (one that fits only the dearer things is fine: checkout refuses it on the rest).
    """
    problems = promo_problems(territory, code, **terms)
    if problems:
        raise problems[0]
    terms.pop("now", None)
    try:
        with db.atomic():
            return PromoCode.create(territory=territory, code=normalize_promo(code), **terms)
    except IntegrityError:
        raise DomainError(_l("Такой промокод уже есть"), field="code") from None


def promo_problems(
    territory: Territory,
    code: str,
    *,
    percent: int | None = None,
    fixed_kopecks: int | None = None,
    expires_at: dt.datetime | None = None,
    usage_limit: int | None = None,
    now: dt.datetime | None = None,
) -> list[DomainError]:
    """Everything wrong with a new promo code's terms, one problem per field, so that a form
    shows them all at once (add_promo refuses the first)."""
    problems = []
    if not re.fullmatch(r"[0-9A-ZА-ЯЁ_-]{3,40}", normalize_promo(code)):
        problems.append(DomainError(_l("Промокод — от 3 до 40 букв и цифр"), field="code"))
    if (percent is None) == (fixed_kopecks is None):
        problems.append(DomainError(
            _l("Укажите скидку в процентах или в рублях — одно из двух"), field="value"))
    elif percent is not None and not 1 <= percent <= 99:
        problems.append(DomainError(_l("Скидка — от 1 до 99 %"), field="value"))
    elif fixed_kopecks is not None:
        # Today's prices: they may change later, and check_promo at checkout stays the last
        # word; this only keeps a code from being useless the day it is made.
        dearest = dearest_price(territory)
        if dearest is not None and dearest - fixed_kopecks < MIN_CHARGE:
            problems.append(DomainError(_l("Скидка слишком большая: с ней даже самое дорогое "
                                           "здесь стоило бы меньше 1,00 ₽"), field="value"))
    if expires_at is not None and expires_at <= (now or utcnow()):
        problems.append(DomainError(_l("Эта дата уже прошла"), field="expires_on"))
    if usage_limit is not None and usage_limit < 1:
        problems.append(DomainError(_l("Лимит использований — не меньше 1"), field="usage_limit"))
    return problems


def delete_promo(territory: Territory, promo_id: int) -> None:
    """Remove a promo code; payments made with it keep their discount."""
    with db.atomic():
        if not PromoCode.delete().where(
            (PromoCode.id == promo_id) & (PromoCode.territory == territory)
        ).execute():
            raise NotFound(_l("Промокод не найден"))


def check_promo(territory: Territory, code: str, price_kopecks: int, now: dt.datetime) -> PromoCode:
    """The territory's promo code, if it applies to this price now; else why not."""
    promo = PromoCode.get_or_none(
        (PromoCode.territory == territory) & (PromoCode.code == normalize_promo(code))
    )
    if promo is None:
        raise DomainError(_l("Такого промокода нет"), field="promo")
    if promo.expires_at is not None and promo.expires_at <= now:
        raise DomainError(_l("Срок действия промокода истёк"), field="promo")
    if promo.usage_limit is not None and promo.used_count >= promo.usage_limit:
        raise DomainError(_l("Промокод больше не действует: все его использования исчерпаны"),
                          field="promo")
    if price_kopecks - promo.discount_for(price_kopecks) < MIN_CHARGE:
        raise DomainError(_l("С этим промокодом сумма меньше 1,00 ₽ — так оплатить нельзя"),
                          field="promo")
    return promo


def _reserve_promo(promo: PromoCode) -> None:
    """Count one use, atomically: the usage limit holds however many buy at once."""
    taken = (
        PromoCode.update(used_count=PromoCode.used_count + 1)
        .where(
            (PromoCode.id == promo.id)
            & (PromoCode.usage_limit.is_null() | (PromoCode.used_count < PromoCode.usage_limit))
        )
        .execute()
    )
    if not taken:
        raise DomainError(_l("Промокод больше не действует: все его использования исчерпаны"),
                          field="promo")


def _release_promo(promo_id: int | None) -> None:
    if promo_id is not None:
        PromoCode.update(used_count=PromoCode.used_count - 1).where(
            (PromoCode.id == promo_id) & (PromoCode.used_count > 0)
        ).execute()


# ---------------------------------------------------------------------------------------------
# Purchases
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """What is being bought: a card, or a period of a tariff."""

    kind: str
    title: str
    months: int
    price_kopecks: int
    tariff_name: str | None = None


def card_offer(territory: Territory) -> Offer:
    """The territory's card at its price and validity."""
    return Offer("card", str(CARD_TITLE), territory.card_validity_months,
                 territory.card_price_kopecks)


def app_offer(territory: Territory, period_id: int) -> Offer:
    """A period of one of the territory's tariffs."""
    period = TariffPeriod.of(territory.id).where(TariffPeriod.id == period_id).first()
    if period is None:
        raise DomainError(_l("Выберите период"), field="period")
    return Offer("app", _app_title(period.tariff.name, period.months), period.months,
                 period.price_kopecks, tariff_name=period.tariff.name)


CARD_TITLE = _l("Карта доступа")


def _app_title(tariff: str, months: int) -> str:
    return str(_l("Доступ по приложению: %(tariff)s, %(months)s мес.", tariff=tariff,
                  months=months))


def start_purchase(
    account: Account,
    territory: Territory,
    offer: Offer,
    *,
    email: str,
    method: str,
    provider: str,
    promo_code: str = "",
    locale: str | None = None,
    now: dt.datetime | None = None,
) -> Payment:
    """Record a pending payment (reserving a promo code's use) before the provider is asked;
    `locale` is the language the offer's title is in."""
    now = now or utcnow()
    if method not in METHODS:
        raise DomainError(_l("Выберите способ оплаты"), field="method")
    if offer.kind == "app" and territory.app_access_free:
        raise DomainError(_l("Доступ по приложению в этой территории бесплатный"))
    if offer.kind == "card" and territory.kind != "kindergarten":
        raise DomainError(_l("Карты в этой территории не продаются"))
    with writing():
        promo = None
        discount = 0
        if promo_code.strip():
            promo = check_promo(territory, promo_code, offer.price_kopecks, now)
            _reserve_promo(promo)
            discount = promo.discount_for(offer.price_kopecks)
        return Payment.create(
            territory=territory, account=account, kind=offer.kind, method=method,
            title=offer.title, months=offer.months, price_kopecks=offer.price_kopecks,
            discount_kopecks=discount, expected_kopecks=offer.price_kopecks - discount,
            promo=promo, promo_code=promo.code if promo else None,
            provider=provider, idempotence_key=str(uuid.uuid4()),
            email=email.strip(), locale=locale, tariff_name=offer.tariff_name,
            created_at=now,
        )


def attach_provider(
    payment: Payment, provider_payment_id: str, confirmation_url: str | None
) -> None:
    """Remember the provider's id for our payment and where the payer confirms it."""
    with db.atomic():
        Payment.update(
            provider_payment_id=provider_payment_id, confirmation_url=confirmation_url
        ).where(Payment.id == payment.id).execute()
    payment.provider_payment_id = provider_payment_id
    payment.confirmation_url = confirmation_url


def abandon(payment: Payment, now: dt.datetime | None = None) -> bool:
    """Cancel a payment the provider never took (it failed to create): frees its promo use."""
    return _cancel(payment.id, "payment.abandoned", now or utcnow(), final=True)


# ---------------------------------------------------------------------------------------------
# Provider events: applied exactly once
# ---------------------------------------------------------------------------------------------


class AmountMismatch(DomainError):
    """A provider reports a different amount than we asked for; nothing is applied."""


class PayerGone(DomainError):
    """Money came in for a payment whose account was deleted: recorded, nothing bought."""


class RefundTooEarly(DomainError):
    """A refund announced for a payment not paid here yet (its success has not reached us):
    nothing is recorded, and the provider, told so, announces the refund again later."""


def payment_by_provider_id(provider_payment_id: str) -> Payment:
    """Our payment for a provider's id; NotFound for an id we never issued."""
    payment = Payment.get_or_none(Payment.provider_payment_id == provider_payment_id)
    if payment is None:
        raise NotFound(_l("Платёж не найден"))
    return payment


def _record(payment_id: int, event: str, amount: int | None, now: dt.datetime) -> bool:
    """Insert the event row; False when it was already recorded (a repeated notification)."""
    try:
        with db.atomic():  # a savepoint: PostgreSQL's failed INSERT must not spoil the rest
            PaymentEvent.create(payment=payment_id, event=event, amount_kopecks=amount,
                                received_at=now)
    except IntegrityError:
        return False
    return True


def apply_success(
    provider_payment_id: str, amount_kopecks: int, now: dt.datetime | None = None
) -> bool:
    """The provider says the payment succeeded: apply it once; True if this call applied it.

    The amount must be what we asked for, else AmountMismatch and nothing changes. The bank
    is the truth about money: a payment we canceled ourselves (the payer's «Отменить», the
    hourly expiry) and then paid after all still succeeds and buys what it was for. One whose
    payer's account is gone is recorded as succeeded but buys nothing: PayerGone is raised
    after the commit, and the caller gives the money back.
    """
    now = now or utcnow()
    payment = payment_by_provider_id(provider_payment_id)
    if amount_kopecks != payment.expected_kopecks:
        raise AmountMismatch(_l("Сумма платежа не совпадает с выставленной"))
    with writing():
        if not _record(payment.id, "payment.succeeded", amount_kopecks, now):
            return False
        # Locked, so a cancel at the same moment goes wholly before or after this.
        payment = for_update(Payment.select().where(Payment.id == payment.id)).get()
        if payment.status not in ("pending", "canceled"):
            return False
        orphan = payment.account_id is None
        if payment.promo_id is not None and not orphan and _promo_released(payment.id):
            _retake_promo(payment)
        Payment.update(
            status="succeeded", paid_at=now, amount_kopecks=amount_kopecks, closed_at=None
        ).where(Payment.id == payment.id).execute()
        payment.paid_at = now
        if payment.kind == "app" and not orphan:
            _extend_app_access(payment, now)
            versions.bump(payment.territory_id)  # a bridge may hold a cached "not paid"
    if orphan:
        raise PayerGone(_l("Аккаунт плательщика удалён: платёж нужно вернуть"))
    return True


def _retake_promo(payment: Payment) -> None:
    """A payment whose promo use went back was paid at the discount after all: the use counts
    again. Only a provider that takes money for a payment it had canceled gets here (the use
    goes back only when nobody can pay any more, see _cancel), so the limit may be full by
    now: the use counts all the same, for the discount was given and the counter is its
    record; the payment stands, for the money is taken; and the excess is logged as an error
    and shown beside the code (settings: «сверх лимита»), never passed over in silence."""
    PaymentEvent.delete().where(
        (PaymentEvent.payment == payment.id) & (PaymentEvent.event == PROMO_RELEASED)
    ).execute()
    try:
        _reserve_promo(PromoCode(id=payment.promo_id))
    except DomainError:
        PromoCode.update(used_count=PromoCode.used_count + 1).where(
            PromoCode.id == payment.promo_id).execute()
        log.error("payment %s was paid at promo code %s's discount beyond its usage limit",
                  payment.id, payment.promo_id)


def _extend_app_access(payment: Payment, now: dt.datetime) -> None:
    AccessGrant.insert(
        account=payment.account_id, territory=payment.territory_id, paid_until=now
    ).on_conflict_ignore().execute()
    grant = for_update(
        AccessGrant.select().where(
            (AccessGrant.account == payment.account_id)
            & (AccessGrant.territory == payment.territory_id)
        )
    ).get()
    start = extend_from(grant.paid_until, now)
    end = add_months(start, payment.months, payment.territory.timezone)
    AccessGrant.update(paid_until=end).where(AccessGrant.id == grant.id).execute()
    Payment.update(period_start=start, paid_until=end).where(Payment.id == payment.id).execute()


def apply_cancel(provider_payment_id: str, now: dt.datetime | None = None) -> bool:
    """The provider says the payment was canceled or declined; True if this call did it."""
    payment = payment_by_provider_id(provider_payment_id)
    return _cancel(payment.id, "payment.canceled", now or utcnow(), final=True)


# Recorded (as a PaymentEvent, so at most once) while a payment's promo use is given back.
PROMO_RELEASED = "promo.released"


def _promo_released(payment_id: int) -> bool:
    return PaymentEvent.select().where(
        (PaymentEvent.payment == payment_id) & (PaymentEvent.event == PROMO_RELEASED)
    ).exists()


def _cancel(payment_id: int, event: str, now: dt.datetime, *, final: bool) -> bool:
    """Cancel a pending payment as `event`; True if this call canceled it.

    `final`: nobody can pay it any more — the provider canceled it (or never opened it), or
    its payer is gone and money paid would go back — so its promo use is given back, once
    however many cancels say so. A cancel on our side only keeps the use while the link can
    still be paid: given back, it could be sold again and the limit broken when the old link
    is paid after all; the provider's own cancel, when it comes, gives it back. Only what
    changes something is recorded.
    """
    with writing():
        payment = for_update(Payment.select().where(Payment.id == payment_id)).get()
        cancels = payment.status == "pending"
        releases = (final and payment.promo_id is not None
                    and payment.status in ("pending", "canceled")
                    and not _promo_released(payment_id))
        if not (cancels or releases) or not _record(payment_id, event, None, now):
            return False
        if cancels:
            Payment.update(status="canceled", closed_at=now).where(
                Payment.id == payment_id).execute()
        if releases:
            _record(payment_id, PROMO_RELEASED, None, now)
            _release_promo(payment.promo_id)
        return cancels


def _cancel_at_provider(payment: Payment) -> str:
    """Ask the provider to cancel the payment too, so that its link stops taking money:
    "canceled" (nobody can pay it now), "succeeded" (paid meanwhile: the success is on its
    way) or "pending" (the provider cannot cancel it, or could not be asked)."""
    from providers.payments import PaymentError, payments

    if not payment.provider_payment_id:
        return "canceled"  # never opened at the provider: the payer has no link to pay
    provider = payments()
    if provider.name != payment.provider:
        return "pending"
    try:
        return provider.cancel(payment.provider_payment_id, f"{payment.idempotence_key}-cancel")
    except PaymentError as error:
        log.warning("payment %s not canceled at the provider: %s", payment.id, error)
        return "pending"


def _cancel_here_and_there(payment: Payment, event: str, now: dt.datetime) -> bool:
    """Cancel at the provider (outside any transaction: it may take a while), then here;
    False when the provider says it is paid, or it no longer waits here."""
    there = _cancel_at_provider(payment)
    if there == "succeeded":
        return False
    return _cancel(payment.id, event, now, final=there == "canceled")


def cancel_by_payer(payment: Payment, now: dt.datetime | None = None) -> bool:
    """«Отменить» on the checkout: the payer gives up; False if it is no longer pending."""
    return _cancel_here_and_there(payment, "payment.canceled_by_payer", now or utcnow())


# An SBP QR code or a card form is used within minutes; an hour later the payer is gone, and
# the promo use the payment holds should go back. A payment paid even later still applies.
PENDING_LIFETIME = dt.timedelta(hours=1)


def expire_pending(now: dt.datetime | None = None) -> int:
    """Cancel the payments pending longer than PENDING_LIFETIME, at the provider too;
    returns how many."""
    now = now or utcnow()
    old = Payment.select().where(
        (Payment.status == "pending") & (Payment.created_at <= now - PENDING_LIFETIME))
    return sum(_cancel_here_and_there(p, "payment.expired", now) for p in list(old))


def cancel_pending_of(account_id: int, now: dt.datetime | None = None) -> int:
    """Cancel an account's pending payments (it is being deleted); returns how many.

    Final at once: paid at the bank after all, such a payment buys nothing and its money goes
    back (apply_success, PayerGone), so its promo use is free again."""
    pending = Payment.select(Payment.id).where(
        (Payment.status == "pending") & (Payment.account == account_id))
    now = now or utcnow()
    return sum(_cancel(p.id, "payment.account_deleted", now, final=True) for p in list(pending))


def _refund_event(refund_id: str | None) -> str:
    """The event a refund is recorded as: one per refund, so that partial refunds add up (a
    provider's id, hashed to fit the column); a refund with no id is the whole payment's."""
    if not refund_id:
        return "refund.succeeded"
    return "refund:" + hashlib.sha256(refund_id.encode()).hexdigest()[:32]


def apply_refund(provider_payment_id: str, amount_kopecks: int | None = None, *,
                 refund_id: str | None = None, now: dt.datetime | None = None) -> bool:
    """The provider returned `amount_kopecks` of a payment (None: all that is left), once per
    refund; True if this call applied it.

    Refunds add up. When they reach the amount paid the payment is refunded and the time it
    bought taken back; less is recorded as partly refunded and changes no access. A refund
    of a payment not succeeded here raises RefundTooEarly and records nothing, so that the
    refund still applies when the provider announces it again after the payment's success.
    """
    now = now or utcnow()
    payment = payment_by_provider_id(provider_payment_id)
    with writing():
        payment = for_update(Payment.select().where(Payment.id == payment.id)).get()
        if payment.status in ("pending", "canceled"):
            raise RefundTooEarly(_l("Платёж ещё не оплачен"))
        left = payment.refundable_kopecks
        amount = left if amount_kopecks is None else min(amount_kopecks, left)
        if amount <= 0 or not _record(payment.id, _refund_event(refund_id), amount, now):
            return False
        refunded = payment.refunded_kopecks + amount
        whole = refunded >= payment.amount_kopecks
        closed = {"status": "refunded", "closed_at": now} if whole else {}
        Payment.update(refunded_kopecks=refunded, **closed).where(
            Payment.id == payment.id).execute()
        if whole and payment.paid_until is not None and payment.period_start is not None:
            if payment.kind == "app" and payment.account_id is not None:
                _take_back_app_time(payment)
            if payment.kind == "card":
                _take_back_card(payment)
            versions.bump(payment.territory_id)
    return True


def _take_back_app_time(payment: Payment) -> None:
    """Undo a refunded app purchase: the purchases made after it, which extended from its
    end, are laid out again from where it started, each for its own calendar months from
    the later of its payment and the end before it (as buying did), so that their «Оплачено
    до» and the access end agree. A fixed span taken off would not: 3 months bought in
    December are 90 days, the 12 after them 366, and the rest would end a day late."""
    grant = for_update(AccessGrant.select().where(
        (AccessGrant.account == payment.account_id)
        & (AccessGrant.territory == payment.territory_id)
    )).first()
    later = Payment.select().where(
        (Payment.account == payment.account_id) & (Payment.territory == payment.territory_id)
        & (Payment.kind == "app") & (Payment.status == "succeeded") & (Payment.id != payment.id)
        & (Payment.period_start >= payment.period_start)
    ).order_by(Payment.period_start, Payment.id)
    end, old_end = payment.period_start, payment.paid_until
    for other in list(later):
        old_end = max(old_end, other.paid_until)
        start = extend_from(end, other.paid_at)
        end = add_months(start, other.months, payment.territory.timezone)
        Payment.update(period_start=start, paid_until=end).where(Payment.id == other.id).execute()
    if grant is not None:
        # The grant ends where the purchases ended, unless something else moved it too
        # (an admin's grant): then it loses the same time.
        until = end if grant.paid_until == old_end else grant.paid_until - (old_end - end)
        AccessGrant.update(paid_until=until).where(AccessGrant.id == grant.id).execute()


def _take_back_card(payment: Payment) -> None:
    """Undo what a refunded purchase did to its card: the end it had before, when nothing
    extended the card since; else the purchase's span off the current end."""
    card = for_update(Card.select().where(
        (Card.territory == payment.territory_id) & (Card.number == payment.card_number)
        & (Card.account == payment.account_id)
    )).first()
    if card is None or card.valid_until is None:
        return  # unbound since (or bound anew, waiting): nothing of this purchase is left
    if card.valid_until == payment.paid_until:
        end = payment.card_until_before
    else:
        end = card.valid_until - (payment.paid_until - payment.period_start)
    Card.update(valid_until=end).where(Card.id == card.id).execute()


# ---------------------------------------------------------------------------------------------
# Cards
# ---------------------------------------------------------------------------------------------


def bind_card(account: Account, territory: Territory, printed: str,
              now: dt.datetime | None = None) -> Card:
    """«У меня есть карта»: bind the card to the account here, applying a paid purchase.

    A card bought and paid in the app becomes valid from its payment for the territory's
    validity; a card bound again by its owner after a new purchase is extended from the
    later of that payment and its current end. A card no purchase covers (bought earlier,
    e.g. at the office) waits for the manager's approval. A number bound to someone else is
    refused: the manager unbinds it if it changed hands.
    """
    from domain import limits

    now = now or utcnow()
    number = parse_card_number(printed)
    if territory.kind != "kindergarten":
        raise DomainError(_l("Карты в этой территории не используются"), field="card_number")
    # Trying numbers would tell which cards are in use (and block their owners from binding
    # them): a number bound to someone else counts as a guess (limits.CARD_NUMBER); every
    # other outcome gives its try back.
    tried = limits.take(limits.CARD_NUMBER, str(account.id))
    if tried is None:
        raise DomainError(_l("Слишком много попыток. Попробуйте через час"), field="card_number")
    try:
        return _bind_card(account, territory, number, now)
    except _TakenCard:
        tried = None  # a guess: it stays counted
        raise DomainError(_l("Эта карта уже привязана к другому аккаунту. Если это ваша карта, "
                             "обратитесь к управляющему."), field="card_number") from None
    finally:
        limits.give_back(tried)


class _TakenCard(Exception):
    """The number is bound to another account (a guess, for the limit)."""


def _bind_card(account: Account, territory: Territory, number: str, now: dt.datetime) -> Card:
    try:
        with writing():
            existing = Card.get_or_none((Card.territory == territory) & (Card.number == number))
            if existing is not None and existing.account_id != account.id:
                raise _TakenCard
            purchase = for_update(cards_awaiting_number(account.id, territory.id)).first()
            if existing is not None and purchase is None:
                raise DomainError(_l("Эта карта уже привязана к вашему аккаунту"),
                                  field="card_number")
            card = existing or Card.create(
                territory=territory, account=account, number=number, bound_at=now
            )
            if purchase is not None:
                before = card.valid_until
                start = max(purchase.paid_at, before or purchase.paid_at)
                end = add_months(start, purchase.months, territory.timezone)
                Card.update(valid_until=end, payment=purchase).where(Card.id == card.id).execute()
                Payment.update(period_start=start, paid_until=end, card_number=number,
                               card_until_before=before).where(
                    Payment.id == purchase.id
                ).execute()
                card.valid_until, card.payment = end, purchase
            versions.bump(territory.id)
            return card
    except IntegrityError:
        # Someone bound the same number in the same instant: another account, or the same
        # person from another tab, whose card it is (it was called someone else's, and the
        # try counted as a guess: concurrency audit, stop 24).
        mine = Card.select().where((Card.territory == territory) & (Card.number == number)
                                   & (Card.account == account)).exists()
        if mine:
            raise DomainError(_l("Эта карта уже привязана к вашему аккаунту"),
                              field="card_number") from None
        raise _TakenCard from None


def card_of(territory: Territory, card_id: int) -> Card:
    """One of the territory's cards; NotFound for any other id."""
    card = Card.get_or_none((Card.id == card_id) & (Card.territory == territory))
    if card is None:
        raise NotFound(_l("Карта не найдена"))
    return card


def approve_card(territory: Territory, card_id: int, until: dt.datetime,
                 now: dt.datetime | None = None) -> Card:
    """The manager's word that a card was paid outside the app: it opens the gate until `until`.

    Never shortens a card: the time a purchase gave it is the payer's.
    """
    now = now or utcnow()
    if until <= now:
        raise DomainError(_l("Эта дата уже прошла"), field="until")
    with writing():
        card = for_update(Card.select().where(
            (Card.id == card_id) & (Card.territory == territory))).first()
        if card is None:
            raise NotFound(_l("Карта не найдена"))
        if card.valid_until is not None and card.valid_until >= until:
            raise DomainError(_l("Карта уже действует дольше: выберите дату позже"),
                              field="until")
        Card.update(valid_until=until).where(Card.id == card.id).execute()
        versions.bump(territory.id)
        card.valid_until = until
        return card


def unbind_card(territory: Territory, card_id: int) -> None:
    """Remove a card from its holder; its number can then be bound again by anyone."""
    with db.atomic():
        if not Card.delete().where((Card.id == card_id) & (Card.territory == territory)).execute():
            raise NotFound(_l("Карта не найдена"))
        versions.bump(territory.id)


DEMO_TARIFFS = {
    "Родители группы 1": [(3, 8500), (12, 30000)],
    "Родители группы 2": [(1, 3500), (3, 9000)],
}


def seed_demo_tariffs(territory: Territory) -> None:
    """Demo tariffs of a kindergarten (seed 000 §3.4); adds only what is missing."""
    for name, periods in DEMO_TARIFFS.items():
        tariff, _created = Tariff.get_or_create(territory=territory, name=name)
        for months, price in periods:
            TariffPeriod.get_or_create(tariff=tariff, months=months,
                                       defaults={"price_kopecks": price})
