"""Territories, their units, the people who belong to them, and requests to join."""

from __future__ import annotations

import codecs
import csv
import io
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from flask_babel import lazy_gettext as _l
from peewee import (
    JOIN,
    BooleanField,
    CharField,
    Expression,
    ForeignKeyField,
    IntegerField,
    IntegrityError,
    TextField,
    fn,
)

from domain import accounts, limits, versions
from domain.accounts import Account, Device
from domain.db import (
    BaseModel,
    UtcDateTimeField,
    db,
    every_word,
    folded_field,
    for_update,
    utcnow,
    writing,
)
from domain.errors import DomainError, NotFound
from domain.phones import phone_fragments
from domain.prepared import Prepared, Slot
from domain.text import in_quotes, name_key, natural_key

KINDS = {
    "kindergarten": _l("Детский сад"),
    "residential": _l("Жилой комплекс или посёлок"),
    "business": _l("Бизнес-центр"),
    "other": _l("Другое"),
}
ROLES = {
    "manager": _l("Управляющий"),
    "resident": _l("Резидент"),
    "operator": _l("Оператор"),
}
DEFAULT_TZ = "Europe/Moscow"
MAX_PER_UNIT = 10
# Russia's zones, west to east; a territory shows times in its own.
TIMEZONES = {
    "Europe/Kaliningrad": _l("UTC+02 Калининград"),
    "Europe/Moscow": _l("UTC+03 Москва"),
    "Europe/Samara": _l("UTC+04 Самара"),
    "Asia/Yekaterinburg": _l("UTC+05 Екатеринбург"),
    "Asia/Omsk": _l("UTC+06 Омск"),
    "Asia/Krasnoyarsk": _l("UTC+07 Красноярск"),
    "Asia/Irkutsk": _l("UTC+08 Иркутск"),
    "Asia/Yakutsk": _l("UTC+09 Якутск"),
    "Asia/Vladivostok": _l("UTC+10 Владивосток"),
    "Asia/Magadan": _l("UTC+11 Магадан"),
    "Asia/Kamchatka": _l("UTC+12 Камчатка"),
}
MAX_NAME = 200
# Account numbers as printed on bills: digits, letters, dashes and slashes.
ACCOUNT_NUMBER_RE = re.compile(r"^[0-9A-Za-zА-Яа-яЁё/-]{1,32}$")
# Guessing account numbers would let a stranger in: a few wrong tries, then a pause.
MAX_CSV_ROWS = 5000


class Territory(BaseModel):
    """A gated place: a kindergarten, a residential complex, a business park…"""

    name = CharField()
    kind = CharField(default="residential")
    address = CharField(default="")
    timezone = CharField(default=DEFAULT_TZ)
    # Six random digits, shown as XXX-XXX; random so that one code tells nothing of others.
    code = CharField(unique=True, max_length=6)
    passes_enabled = BooleanField(default=True)
    app_access_free = BooleanField(default=False)
    free_exit = BooleanField(default=True)
    max_permanent_passes = IntegerField(default=2)  # per resident (domain/passes.py)
    card_price_kopecks = IntegerField(default=15000)  # «Купить карту»: 150,00 ₽
    card_validity_months = IntegerField(default=48)
    created_at = UtcDateTimeField(default=utcnow)

    @property
    def display_code(self) -> str:
        """The code as people type it: 123-456."""
        return f"{self.code[:3]}-{self.code[3:]}"

    @property
    def kind_label(self) -> str:
        """The kind in the reader's language."""
        return str(KINDS.get(self.kind, self.kind))

    @classmethod
    def with_account_numbers(cls):
        """Territories whose manager uploaded account numbers («+ Добавить объект»)."""
        has_numbers = Unit.select(Unit.territory).where(Unit.account_number.is_null(False))
        return cls.select().where(cls.id.in_(has_numbers)).order_by(cls.name, cls.id)

    @classmethod
    def search(cls, text: str = ""):
        """Every territory, or those whose name, address or code contains `text`."""
        query = cls.select().order_by(cls.name, cls.id)
        text = (text or "").strip()
        if text:
            digits = "".join(ch for ch in text if ch.isdigit())
            cond = every_word(text, cls.name, cls.address)
            if len(digits) >= 3:
                cond |= cls.code.contains(digits)
            query = query.where(cond)
        return query


class Unit(BaseModel):
    """A house, plot, flat or office of a territory («идентификатор объекта»)."""

    territory = ForeignKeyField(Territory, backref="units", on_delete="CASCADE")
    name = CharField()
    account_number = CharField(null=True)
    created_at = UtcDateTimeField(default=utcnow)

    class Meta:
        indexes = (
            (("territory", "name"), True),
            (("territory", "account_number"), True),
        )

    @classmethod
    def in_order(cls, territory: Territory, text: str = "") -> list[Unit]:
        """The territory's units as people read a list of them (text.natural_key), each with
        `members`; with `text`, those whose name or account number has every word of it."""
        query = cls.with_counts(territory)
        text = (text or "").strip()[:100]
        if text:
            query = query.where(every_word(text, cls.name, cls.account_number))
        return sorted(query, key=lambda unit: (natural_key(unit.name), unit.id))

    @classmethod
    def with_counts(cls, territory: Territory):
        """The territory's units by name, each with `members`: how many accounts it has."""
        return (
            cls.select(cls, fn.COUNT(Membership.id).alias("members"))
            .join(Membership, JOIN.LEFT_OUTER, on=(Membership.unit == cls.id))
            .where(cls.territory == territory)
            .group_by(cls.id)
            .order_by(cls.name, cls.id)
        )


class Membership(BaseModel):
    """A person's role in one territory."""

    account = ForeignKeyField(Account, backref="memberships", on_delete="CASCADE")
    territory = ForeignKeyField(Territory, backref="memberships", on_delete="CASCADE")
    role = CharField(default="resident")
    unit = ForeignKeyField(Unit, null=True, backref="memberships", on_delete="SET NULL")
    created_at = UtcDateTimeField(default=utcnow)

    class Meta:
        indexes = ((("account", "territory"), True),)

    @property
    def role_label(self) -> str:
        """The role in the reader's language."""
        return str(ROLES.get(self.role, self.role))

    @classmethod
    def of_territory(cls, territory: Territory):
        """The territory's members with their accounts and units, by surname."""
        return (
            cls.select(cls, Account, Unit)
            .join(Account)
            .switch(cls)
            .join(Unit, JOIN.LEFT_OUTER)
            .where(cls.territory == territory)
            .order_by(folded_field(Account.surname), folded_field(Account.name), cls.id)
        )

    @staticmethod
    def search(query, text: str):
        """Narrow an of_territory() query to members whose name, phone, e-mail or unit
        contains `text` (a phone as typed: +7 999…, 8 999…, digits only)."""
        text = (text or "").strip()[:100]
        if not text:
            return query
        match = every_word(text, Account.surname, Account.name, Account.patronymic,
                           Account.email, Unit.name)
        for fragment in phone_fragments(text):
            match |= Account.phone.contains(fragment)
        return query.where(match)

    @classmethod
    def of_account(cls, account: Account):
        """The account's memberships with their territories and units, by territory name."""
        return (
            cls.select(cls, Territory, Unit)
            .join(Territory)
            .switch(cls)
            .join(Unit, JOIN.LEFT_OUTER)
            .where(cls.account == account)
            .order_by(Territory.name, Territory.id)
        )


class JoinRequest(BaseModel):
    """A request to join a territory by its code, waiting for a manager."""

    account = ForeignKeyField(Account, backref="join_requests", on_delete="CASCADE")
    territory = ForeignKeyField(Territory, backref="join_requests", on_delete="CASCADE")
    unit_label = CharField(default="")
    status = CharField(default="pending", index=True)  # pending, accepted, rejected
    reason = TextField(default="")
    created_at = UtcDateTimeField(default=utcnow)
    decided_at = UtcDateTimeField(null=True)
    decided_by = ForeignKeyField(Account, null=True, on_delete="SET NULL")

    STATUSES = {
        "pending": _l("Ожидает решения управляющего"),
        "accepted": _l("Принята"),
        "rejected": _l("Отклонена"),
    }

    @property
    def status_label(self) -> str:
        """The state in the reader's language."""
        return str(self.STATUSES.get(self.status, self.status))

    @classmethod
    def pending_for(cls, territory: Territory):
        """Requests waiting for the territory's managers, oldest first."""
        return (
            cls.select(cls, Account)
            .join(Account, on=(cls.account == Account.id))
            .where((cls.territory == territory) & (cls.status == "pending"))
            .order_by(cls.created_at, cls.id)
        )

    @classmethod
    def of_account(cls, account: Account):
        """The account's requests with their territories: pending first, then newest."""
        return (
            cls.select(cls, Territory)
            .join(Territory)
            .where(cls.account == account)
            .order_by((cls.status != "pending"), cls.created_at.desc(), cls.id.desc())
        )


class CsvError(DomainError):
    """An account-number file with mistakes; `lines` says what is wrong, line by line."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(_l("Файл не загружен: исправьте ошибки и загрузите его снова"), "file")
        self.lines = lines


def parse_code(text: str) -> str:
    """A territory code typed with or without the dash (123-456, 123456) → 123456."""
    digits = "".join(ch for ch in (text or "") if ch.isdigit())
    if len(digits) != 6 or len(text.strip()) > 8:
        raise DomainError(_l("Код территории — шесть цифр, например 123-456"), "code")
    return digits


def _random_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def _clean_name(text: str, field: str = "name") -> str:
    name = " ".join((text or "").split())
    if not name:
        raise DomainError(_l("Введите название"), field)
    if len(name) > MAX_NAME:
        raise DomainError(_l("Не длиннее 200 символов"), field)
    return name


def _check_place(kind: str, timezone: str) -> None:
    if kind not in KINDS:
        raise DomainError(_l("Выберите тип территории"), "kind")
    if timezone not in TIMEZONES:
        raise DomainError(_l("Выберите часовой пояс"), "timezone")


def create_territory(
    creator: Account, *, name: str, kind: str, address: str = "", timezone: str = DEFAULT_TZ
) -> Territory:
    """Create a territory with a fresh random code; its creator becomes its manager."""
    _check_place(kind, timezone)
    name = _clean_name(name)
    for _attempt in range(20):
        try:
            with db.atomic():
                territory = Territory.create(
                    name=name,
                    kind=kind,
                    address=(address or "").strip()[:MAX_NAME],
                    timezone=timezone,
                    code=_random_code(),
                    passes_enabled=kind != "kindergarten",
                )
                Membership.create(account=creator, territory=territory, role="manager")
                return territory
        except IntegrityError:
            continue  # the random code was taken: draw again
    raise DomainError(_l("Не удалось выдать код территории, попробуйте ещё раз"))


def regenerate_code(territory: Territory) -> str:
    """Give the territory a new random code; the old one stops working at once."""
    for _attempt in range(20):
        code = _random_code()
        if code == territory.code:
            continue
        try:
            with db.atomic():
                Territory.update(code=code).where(Territory.id == territory.id).execute()
        except IntegrityError:
            continue
        territory.code = code
        return code
    raise DomainError(_l("Не удалось выдать код территории, попробуйте ещё раз"))


def update_settings(
    territory: Territory,
    *,
    name: str,
    address: str,
    timezone: str,
    passes_enabled: bool,
    app_access_free: bool,
    free_exit: bool,
) -> Territory:
    """Change what the manager's settings page holds."""
    _check_place(territory.kind, timezone)
    territory.name = _clean_name(name)
    territory.address = (address or "").strip()[:MAX_NAME]
    territory.timezone = timezone
    territory.passes_enabled = bool(passes_enabled)
    territory.app_access_free = bool(app_access_free)
    territory.free_exit = bool(free_exit)
    with db.atomic():
        territory.save()
        versions.bump(territory.id)
    return territory


# Every page asks these (blueprints/scope.py, the territory switcher): composed once,
# re-bound (domain/prepared.py).
_MEMBERSHIP = Prepared(lambda: (
    Membership.select(Membership, Territory)
    .join(Territory)
    .where((Membership.account == Slot("account")) & (Membership.territory == Slot("territory")))
    .limit(1)
))
_OF_ACCOUNT = Prepared(lambda: Membership.of_account(Slot("account")))


def memberships_of(account: Account) -> list[Membership]:
    """The account's memberships (Membership.of_account), for the switcher on every page."""
    return list(_OF_ACCOUNT(account=account))


# Every territory page needs who is signed in and their membership there: one query for
# both (Flask-Login's user loader asks it on those pages, blueprints/sessions.py), where
# the device and the membership took a round trip to the database each.
_DEVICE_IN = Prepared(lambda: (
    Device.select(Device.id, Device.last_seen_at, Device.territory_id, Account, Membership,
                  Territory)
    .join(Account)
    .join(Membership, JOIN.LEFT_OUTER, attr="member", on=(
        (Membership.account == Account.id) & (Membership.territory == Slot("territory"))))
    .join(Territory, JOIN.LEFT_OUTER, on=(Membership.territory == Territory.id))
    .where((Device.token_hash == Slot("token_hash")) & (Device.expires_at > Slot("now")))
    .limit(1)
))


def device_with_membership(
    token: str | None, territory_id: int
) -> tuple[Device | None, Membership | None]:
    """The live device behind a session token (as accounts.device_for_token) and its
    account's membership in the territory (as membership(), None for a non-member)."""
    if not token:
        return None, None
    now = utcnow()
    found = _DEVICE_IN.first(token_hash=accounts.token_digest(token), now=now,
                             territory=territory_id)
    device = accounts.live_device(found, token, now)
    if device is None:
        return None, None
    member = device.account.member
    if member is not None:
        member.account = device.account
    return device, member


def membership(account: Account, territory_id: int) -> Membership:
    """The account's membership in a territory; NotFound when they do not belong there."""
    found = _MEMBERSHIP.first(account=account, territory=territory_id)
    if found is None:
        raise NotFound(_l("Территория не найдена"))
    return found


# ---------------------------------------------------------------------------------------
# Admission: every way into a territory ends in _admit, under one serialising transaction.


@contextmanager
def serialised(territory: Territory | int | None = None) -> Iterator[None]:
    """A transaction in which counting a unit's members and adding one cannot interleave.

    SQLite: BEGIN IMMEDIATE takes the database's write lock before the count, so a
    second writer waits (busy_timeout) and then counts what the first wrote. PostgreSQL:
    an ordinary transaction, and `_locked_unit` takes the unit's row with FOR UPDATE.

    Given a `territory`, its row is held first (FOR UPDATE on PostgreSQL), for checks that
    span the territory's rows rather than one: the last manager, a unit's name, a unit
    still empty, a person's one pending request. Read committed let two managers demote
    each other at once and leave the territory with none (concurrency audit, stop 24).
    The territory is always the first row such a transaction holds.
    """
    with writing():
        if territory is not None:
            tid = territory if isinstance(territory, int) else territory.id
            for_update(Territory.select(Territory.id).where(Territory.id == tid)).first()
        yield


def lock_membership(membership_id: int) -> None:
    """Inside serialised(): hold the membership's row (FOR UPDATE) on PostgreSQL."""
    for_update(Membership.select(Membership.id).where(Membership.id == membership_id)).first()


def _locked_unit(territory: Territory, unit_id: int) -> Unit:
    unit = for_update(Unit.select().where((Unit.id == unit_id)
                                          & (Unit.territory == territory))).first()
    if unit is None:
        raise DomainError(_l("Такого объекта нет на этой территории"), "unit")
    return unit


def _unit_for(territory: Territory, unit_id: int | None, new_name: str = "") -> Unit | None:
    """An existing unit of the territory (locked), a new one by name, or none."""
    if unit_id:
        return _locked_unit(territory, unit_id)
    name = " ".join((new_name or "").split())
    if not name:
        return None
    if len(name) > MAX_NAME:
        raise DomainError(_l("Не длиннее 200 символов"), "new_unit")
    found = _unit_named(territory, name)
    if found is not None:
        return _locked_unit(territory, found.id)
    return Unit.create(territory=territory, name=name)


def _check_room(unit: Unit | None, field: str = "unit", leaving: Membership | None = None) -> None:
    if unit is None:
        return
    query = Membership.select().where(Membership.unit == unit)
    if leaving is not None:
        query = query.where(Membership.id != leaving.id)
    if query.count() >= MAX_PER_UNIT:
        raise DomainError(
            _l("К объекту «%(name)s» уже подключено 10 человек — больше нельзя",
               name=in_quotes(unit.name)),
            field,
        )


def _admit(account: Account, territory: Territory, role: str, unit: Unit | None) -> Membership:
    """Make the account a member; call inside serialised() after locking the unit."""
    if role not in ROLES:
        raise DomainError(_l("Выберите роль"), "role")
    if role == "resident" and unit is None:
        raise DomainError(_l("Резиденту нужен объект: выберите его или введите новый"), "unit")
    if Membership.select().where(
        (Membership.account == account) & (Membership.territory == territory)
    ).exists():
        raise DomainError(_l("Этот человек уже подключён к территории"))
    _check_room(unit)
    try:
        member = Membership.create(account=account, territory=territory, role=role, unit=unit)
    except IntegrityError:
        # Joined some other way at this very moment; the caller's transaction rolls back.
        raise DomainError(_l("Этот человек уже подключён к территории")) from None
    versions.bump(territory.id)
    return member


def request_join(account: Account, code_text: str, unit_label: str,
                 ip: str | None = None) -> JoinRequest:
    """«Подключиться к территории»: a request by code that waits for a manager. Wrong codes
    are counted per account and per client address (`ip`: many accounts, one guesser)."""
    code = parse_code(code_text)
    label = " ".join((unit_label or "").split())
    if not label:
        raise DomainError(
            _l("Укажите идентификатор объекта, например «Участок 632 и 633 (дом 148)»"),
            "unit_label",
        )
    if len(label) > MAX_NAME:
        raise DomainError(_l("Не длиннее 200 символов"), "unit_label")
    # Codes are six digits: without a cap, trying them would list every territory's name.
    tried = _take_both(limits.TERRITORY_CODE, limits.TERRITORY_CODE_IP, account, ip)
    if tried is None:
        raise DomainError(_l("Слишком много попыток ввести код. Попробуйте через час"), "code")
    territory = Territory.get_or_none(Territory.code == code)
    if territory is None:
        raise DomainError(_l("Территория с таким кодом не найдена"), "code")
    _give_back(tried)  # a right code is not a guess
    with serialised(territory):  # two tabs sent two requests at once (stop 24)
        if Membership.select().where(
            (Membership.account == account) & (Membership.territory == territory)
        ).exists():
            raise DomainError(_l("Вы уже подключены к этой территории"), "code")
        if JoinRequest.select().where(
            (JoinRequest.account == account)
            & (JoinRequest.territory == territory)
            & (JoinRequest.status == "pending")
        ).exists():
            raise DomainError(_l("Запрос уже отправлен — дождитесь решения управляющего"), "code")
        return JoinRequest.create(account=account, territory=territory, unit_label=label)


def cancel_request(account: Account, request_id: int) -> None:
    """The person withdraws their own pending request."""
    with db.atomic():
        gone = JoinRequest.delete().where(
            (JoinRequest.id == request_id)
            & (JoinRequest.account == account)
            & (JoinRequest.status == "pending")
        ).execute()
    if not gone:
        raise NotFound(_l("Запрос не найден"))


def _pending(territory: Territory, request_id: int) -> JoinRequest:
    found = (
        JoinRequest.select(JoinRequest, Account)
        .join(Account, on=(JoinRequest.account == Account.id))
        .where(
            (JoinRequest.id == request_id)
            & (JoinRequest.territory == territory)
            & (JoinRequest.status == "pending")
        )
        .first()
    )
    if found is None:
        raise NotFound(_l("Запрос не найден или уже рассмотрен"))
    return found


def _decide(request: JoinRequest, manager: Account, status: str, reason: str = "") -> None:
    # Conditional on "pending", so two managers deciding at once decide only once.
    done = (
        JoinRequest.update(status=status, reason=reason, decided_at=utcnow(), decided_by=manager)
        .where((JoinRequest.id == request.id) & (JoinRequest.status == "pending"))
        .execute()
    )
    if not done:
        raise NotFound(_l("Запрос не найден или уже рассмотрен"))
    request.status, request.reason = status, reason


def accept_request(
    manager: Account,
    territory: Territory,
    request_id: int,
    *,
    role: str,
    unit_id: int | None = None,
    new_unit: str = "",
) -> Membership:
    """Accept a request: the person joins with a role and an existing or new unit.

    At most 10 accounts per unit, however many managers accept at the same moment.
    """
    with serialised(territory):
        request = _pending(territory, request_id)
        unit = _unit_for(territory, unit_id, new_unit)
        # Claim the request first: a second manager's claim waits on this row, then finds
        # it decided (PostgreSQL re-checks the WHERE after the lock), and admits nobody.
        _decide(request, manager, "accepted")
        member = _admit(request.account, territory, role, unit)
        _requests_answered(request.account, territory)  # any other of theirs, sent twice
    return member


def reject_request(
    manager: Account, territory: Territory, request_id: int, reason: str = ""
) -> JoinRequest:
    """Reject a request, with an optional reason the person is told."""
    with db.atomic():
        request = _pending(territory, request_id)
        _decide(request, manager, "rejected", (reason or "").strip()[:500])
    return request


def _take_both(per_account: limits.Limit, per_address: limits.Limit, account: Account,
               ip: str | None) -> tuple[int | None, int | None] | None:
    """One try counted against the account and against its client address; None, with
    nothing counted, when either has used up its tries."""
    by_account = limits.take(per_account, str(account.id))
    if by_account is None:
        return None
    by_address = limits.take(per_address, ip)
    if by_address is None:
        limits.give_back(by_account)
        return None
    return by_account, by_address


def _give_back(tried: tuple[int | None, int | None]) -> None:
    for attempt in tried:
        limits.give_back(attempt)


def join_by_account_number(account: Account, territory_id: int, number: str,
                           ip: str | None = None) -> Membership:
    """«+ Добавить объект»: a known account number makes the person a resident of its unit.
    Wrong numbers are counted per account and per client address (`ip`)."""
    number = "".join((number or "").split())
    if not number:
        raise DomainError(_l("Введите номер лицевого счёта"), "number")
    territory = Territory.with_account_numbers().where(Territory.id == territory_id).first()
    if territory is None:
        raise DomainError(_l("Выберите объект из списка"), "territory")
    # Before the attempt is counted: it is about the person, and reveals no account number.
    if Membership.select().where(
        (Membership.account == account) & (Membership.territory == territory)
    ).exists():
        raise DomainError(_l("Вы уже подключены к этой территории"), "territory")
    # Counted before the lookup, outside the transaction below so that it is not rolled
    # back (limits.take); given back when the number was right.
    tried = _take_both(limits.ACCOUNT_NUMBER, limits.ACCOUNT_NUMBER_IP, account, ip)
    if tried is None:
        raise DomainError(_l("Слишком много неверных попыток. Попробуйте через 15 минут"),
                          "number")
    try:
        with serialised(territory):
            unit = Unit.get_or_none(
                (Unit.territory == territory) & (Unit.account_number == number))
            member = None
            if Membership.select().where((Membership.account == account)
                                         & (Membership.territory == territory)).exists():
                # Accepted by a manager meanwhile: in the person's words, not the manager's.
                raise DomainError(_l("Вы уже подключены к этой территории"), "territory")
            if unit is not None:
                member = _admit(account, territory, "resident", _locked_unit(territory, unit.id))
                _requests_answered(account, territory)
    except DomainError:
        _give_back(tried)  # a right number the unit could not take (full, a member)
        raise
    if member is None:
        raise DomainError(
            _l("Лицевой счёт не найден. Проверьте номер или обратитесь к управляющему"), "number"
        )
    _give_back(tried)
    return member


def attach(account: Account, territory: Territory, role: str, unit_name: str = "") -> Membership:
    """Platform admin: put a person into a territory directly, with a role and unit."""
    with serialised(territory):
        unit = _unit_for(territory, None, unit_name)
        member = _admit(account, territory, role, unit)
        _requests_answered(account, territory)
    return member


def _requests_answered(account: Account, territory: Territory) -> None:
    """A person who became a member another way has what they asked for: their pending
    requests to the territory are accepted, and leave the managers' queue (before, one
    joined by account number stayed there, and accepting it failed)."""
    JoinRequest.update(status="accepted", decided_at=utcnow()).where(
        (JoinRequest.account == account)
        & (JoinRequest.territory == territory)
        & (JoinRequest.status == "pending")
    ).execute()


# ---------------------------------------------------------------------------------------
# Members and units, as the manager keeps them.


def _member(territory: Territory, member_id: int) -> Membership:
    found = (
        Membership.select(Membership, Account)
        .join(Account)
        .where((Membership.id == member_id) & (Membership.territory == territory))
        .first()
    )
    if found is None:
        raise NotFound(_l("Участник не найден"))
    return found


def _staying_managers(territory: Territory):
    """The territory's managers whose accounts are not on their way out (deletion asked
    for): one leaving in a month is no manager to leave the territory to."""
    return (Membership.select().join(Account)
            .where((Membership.territory == territory) & (Membership.role == "manager")
                   & Account.deletion_due_at.is_null()))


def _other_managers(territory: Territory, member: Membership) -> int:
    return _staying_managers(territory).where(Membership.id != member.id).count()


def update_member(
    territory: Territory, member_id: int, *, role: str, unit_id: int | None,
    by: Account | None = None,
) -> Membership:
    """Change a member's role and unit; the last manager stays a manager.

    A member made an operator loses their passes in the territory: operators file none
    and see no «Мои заявки», so a pass left would open the gate with nobody able to see or
    revoke it but a manager. A member moved to another unit takes their live passes along.
    """
    if role not in ROLES:
        raise DomainError(_l("Выберите роль"), "role")
    with serialised(territory):
        member = _member(territory, member_id)
        if member.role == "manager" and role != "manager" and not _other_managers(
            territory, member
        ):
            raise DomainError(
                _l("Это последний управляющий территории — назначьте сначала другого"), "role"
            )
        unit = _unit_for(territory, unit_id) if unit_id else None
        if role == "resident" and unit is None:
            raise DomainError(_l("Резиденту нужен объект: выберите его"), "unit")
        if unit is not None and unit.id != member.unit_id:
            _check_room(unit, leaving=member)
        from domain.passes import VehiclePass

        now = utcnow()
        live = _live_passes(territory, member, now)
        if role == "operator" and member.role != "operator":
            VehiclePass.update(revoked_at=now, revoked_by=by).where(live).execute()
        elif (unit.id if unit else None) != member.unit_id:
            # A pass names where the car goes: the guard's check shows it. Passes still to
            # be used go with their owner; ended ones keep the unit they were for.
            VehiclePass.update(unit=unit).where(live).execute()
        member.role, member.unit = role, unit
        member.save()
        versions.bump(territory.id)
    return member


def left_without_manager(account: Account) -> list[Territory]:
    """Territories the account alone manages while other people are members: without it
    nobody would decide their requests and members (only the platform's admin)."""
    managed = (Territory.select().join(Membership)
               .where((Membership.account == account) & (Membership.role == "manager")))
    left = []
    for territory in managed:
        others = Membership.select().where(
            (Membership.territory == territory) & (Membership.account != account))
        if others.count() and not _staying_managers(territory).where(
                Membership.account != account).count():
            left.append(territory)
    return left


def live_pass_count(territory: Territory, member: Membership) -> int:
    """How many of the member's passes here would a change of role to operator revoke."""
    from domain.passes import VehiclePass

    return VehiclePass.select().where(_live_passes(territory, member, utcnow())).count()


def _live_passes(territory: Territory, member: Membership, now: datetime) -> Expression:
    """Where-clause of the member's passes in the territory not revoked nor ended."""
    from domain.passes import VehiclePass

    return ((VehiclePass.territory == territory)
            & (VehiclePass.account == member.account_id)
            & VehiclePass.revoked_at.is_null()
            & (VehiclePass.valid_to.is_null() | (VehiclePass.valid_to > now)))


def remove_member(territory: Territory, member_id: int, by: Account | None = None) -> Membership:
    """Take a person out of the territory; they lose access at once.

    Their passes there are revoked (by `by`), as when a member is made an operator. Kept,
    they were listed as «Действует» in «Все пропуска» with nobody behind them, and opened
    the gate again if the person was taken back in, naming the unit of the old membership
    (audit, stop 23). Bound cards stay: they were bought, and a card opens nothing for
    someone who is not a member.
    """
    with serialised(territory):
        member = _member(territory, member_id)
        lock_membership(member.id)  # as filing a pass does: one filed meanwhile is revoked too
        if member.role == "manager" and not _other_managers(territory, member):
            raise DomainError(_l("Это последний управляющий территории — его нельзя удалить"))
        from domain.passes import VehiclePass

        now = utcnow()
        VehiclePass.update(revoked_at=now, revoked_by=by).where(
            _live_passes(territory, member, now)).execute()
        member.delete_instance()
        # A press of theirs the bridge has not taken yet opens nothing (gates.request_open).
        from domain.gates import drop_presses

        drop_presses(member.account_id, "not_member", territory.id)
        versions.bump(territory.id)
    return member


def _clean_number(text: str | None, field: str = "account_number") -> str | None:
    number = "".join((text or "").split())
    if not number:
        return None
    if not ACCOUNT_NUMBER_RE.match(number):
        raise DomainError(_l("Лицевой счёт — до 32 цифр и букв"), field)
    return number


def _unit_named(territory: Territory, name: str, unit_id: int = 0) -> Unit | None:
    """The territory's unit (other than `unit_id`) whose name is `name` up to case and spaces."""
    key = name_key(name)
    query = Unit.select(Unit.id, Unit.name).where(
        (Unit.territory == territory) & (Unit.id != unit_id))
    return next((u for u in query if name_key(u.name) == key), None)


def _check_unit_unique(territory: Territory, name: str, number: str | None, unit_id: int = 0):
    others = Unit.select().where((Unit.territory == territory) & (Unit.id != unit_id))
    if _unit_named(territory, name, unit_id) is not None:
        raise DomainError(_l("Такой объект уже есть"), "name")
    if number and others.where(Unit.account_number == number).exists():
        raise DomainError(_l("Этот лицевой счёт уже у другого объекта"), "account_number")


def add_unit(territory: Territory, name: str, account_number: str | None = None) -> Unit:
    """A new unit («+ Добавить объект» of the manager), optionally with its account number."""
    name = _clean_name(name)
    number = _clean_number(account_number)
    with serialised(territory):
        _check_unit_unique(territory, name, number)
        return Unit.create(territory=territory, name=name, account_number=number)


def _unit(territory: Territory, unit_id: int) -> Unit:
    found = Unit.get_or_none((Unit.id == unit_id) & (Unit.territory == territory))
    if found is None:
        raise NotFound(_l("Объект не найден"))
    return found


def rename_unit(
    territory: Territory, unit_id: int, name: str, account_number: str | None = None
) -> Unit:
    """Change a unit's name and account number."""
    name = _clean_name(name)
    number = _clean_number(account_number)
    with serialised(territory):
        unit = _unit(territory, unit_id)
        _check_unit_unique(territory, name, number, unit.id)
        unit.name, unit.account_number = name, number
        unit.save()
    return unit


def delete_unit(territory: Territory, unit_id: int) -> None:
    """Delete a unit nobody belongs to any more (checked under the territory's lock: a
    person accepted into it meanwhile was left a resident with no unit, stop 24)."""
    with serialised(territory):
        unit = _unit(territory, unit_id)
        if Membership.select().where(Membership.unit == unit).exists():
            raise DomainError(_l("К объекту подключены люди — сначала переведите их в другой"))
        unit.delete_instance()


# Control characters a text file has no business holding (a tab and line ends it may).
_BINARY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _unreadable() -> CsvError:
    return CsvError([str(_l("Файл не читается: сохраните его как CSV в UTF-8"))])


def _decode(data: bytes) -> str:
    """The file's text: UTF-8, UTF-16 with its byte-order mark (Excel's «Текст в Юникоде»),
    else Windows-1251. cp1251 takes almost any bytes, so a binary file or UTF-16 read that
    way became units named with NUL bytes (audit, stop 23): text with control characters
    is refused instead."""
    utf16 = data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    for encoding in ("utf-16",) if utf16 else ("utf-8-sig", "cp1251"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _BINARY.search(text):
            break
        return text
    raise _unreadable()


def _is_header(row: list[str]) -> bool:
    text = " ".join(row).lower()
    return any(word in text for word in ("лицев", "счёт", "счет", "account", "объект"))


def _line_error(line: int, message) -> tuple[int, str]:
    return line, str(_l("Строка %(n)s: %(error)s", n=line, error=message))


def _parse_units_csv(data: bytes) -> tuple[list[tuple[int, str, str | None]], list]:
    text = _decode(data)
    first = text.split("\n", 1)[0]
    delimiter = ";" if ";" in first else ("\t" if "\t" in first else ",")
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error:  # a stray line end inside a cell, a NUL: not a table we can read
        raise _unreadable() from None
    errors: list[tuple[int, str]] = []
    parsed: list[tuple[int, str, str | None]] = []
    names: dict[str, int] = {}
    numbers: dict[str, int] = {}
    for line, row in enumerate(rows, start=1):
        row = [cell.strip() for cell in row]
        if not any(row) or (line == 1 and _is_header(row)):
            continue
        if len(row) > 2:
            errors.append(_line_error(line, _l("ожидается два столбца — объект и лицевой счёт")))
            continue
        try:
            name = _clean_name(row[0])
            number = _clean_number(row[1] if len(row) > 1 else "")
        except DomainError as error:
            errors.append(_line_error(line, error.message))
            continue
        if name_key(name) in names:
            errors.append(_line_error(line, _l("объект «%(name)s» уже был в строке %(first)s",
                                               name=in_quotes(name),
                                               first=names[name_key(name)])))
            continue
        if number and number in numbers:
            errors.append(_line_error(line, _l("лицевой счёт %(number)s уже был в строке %(first)s",
                                               number=number, first=numbers[number])))
            continue
        names[name_key(name)] = line
        if number:
            numbers[number] = line
        parsed.append((line, name, number))
    if len(parsed) > MAX_CSV_ROWS:
        errors.append((0, str(_l("Не больше 5000 строк в одном файле"))))
    if not parsed and not errors:
        errors.append((0, str(_l("В файле нет ни одной строки с объектом"))))
    return parsed, errors


def parse_units_csv(data: bytes) -> list[tuple[int, str, str | None]]:
    """Rows of «объект;лицевой счёт» as (line, name, number); CsvError lists every bad line."""
    parsed, errors = _parse_units_csv(data)
    if errors:
        raise CsvError([message for _line, message in errors])
    return parsed


def import_units_csv(territory: Territory, data: bytes) -> tuple[int, int]:
    """Load units and account numbers: all or nothing; returns (created, updated)."""
    rows, errors = _parse_units_csv(data)
    created = updated = 0
    with serialised(territory):
        # A row names an existing unit up to case and spaces («дом 99» is «Дом 99»).
        existing = {name_key(u.name): u for u in Unit.select().where(Unit.territory == territory)}
        taken = {u.account_number: u for u in existing.values() if u.account_number}
        in_file = {name_key(name): number for _line, name, number in rows}
        for line, name, number in rows:
            owner = taken.get(number) if number else None
            # Taken by a unit the file does not give another number: a clash, not a move.
            if (owner is not None and name_key(owner.name) != name_key(name)
                    and not in_file.get(name_key(owner.name))):
                errors.append(_line_error(line, _l(
                    "лицевой счёт %(number)s уже у объекта «%(name)s»", number=number,
                    name=in_quotes(owner.name)
                )))
        if errors:
            raise CsvError([message for _line, message in sorted(errors)])
        # Clear the numbers being moved first, so swapping two units' numbers obeys the index.
        moving = [existing[name_key(name)].id for _line, name, number in rows
                  if number and name_key(name) in existing]
        if moving:
            Unit.update(account_number=None).where(Unit.id.in_(moving)).execute()
        for _line, name, number in rows:
            unit = existing.get(name_key(name))
            if unit is None:
                Unit.create(territory=territory, name=name, account_number=number)
                created += 1
            elif number:
                Unit.update(account_number=number).where(Unit.id == unit.id).execute()
                updated += 1
    return created, updated


# ---------------------------------------------------------------------------------------
# The territory chosen on a device («Выбрать территорию»).


def remember_choice(token: str | None, territory_id: int) -> None:
    """Remember the territory the person is in, on this device and on the account (where
    their next sign-in, on this phone after signing out or on a new one, starts)."""
    device = accounts.device_for_token(token)
    if device is None:
        return
    if device.territory_id != territory_id:
        Device.update(territory_id=territory_id).where(Device.id == device.id).execute()
    if device.account.territory_id != territory_id:
        Account.update(territory_id=territory_id).where(
            Account.id == device.account.id).execute()


def current_choice(account: Account, token: str | None) -> Membership | None:
    """The membership the device last chose, else the one the account last chose, else the
    only one; None when there is no choice."""
    device = accounts.device_for_token(token)
    for chosen in (device.territory_id if device is not None else None, account.territory_id):
        if chosen:
            try:
                return membership(account, chosen)
            except NotFound:
                pass  # left or removed since: fall back below
    mine = list(Membership.of_account(account).limit(2))
    return mine[0] if len(mine) == 1 else None
