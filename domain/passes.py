"""Vehicle passes and the rules for the plates they are filed for.

A plate is stored and compared in the form GATE-CTL controllers send it: upper case,
no separators, the twelve Cyrillic plate letters АВЕКМНОРСТУХ written as their Latin
look-alikes ABEKMHOPCTYX (GATE_PROTOCOL.md). People see it grouped and in Cyrillic.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from peewee import JOIN, BooleanField, CharField, ForeignKeyField

from domain import versions
from domain.accounts import Account
from domain.db import BaseModel, NewestFirst, UtcDateTimeField, db, every_word, utcnow
from domain.errors import DomainError, NotFound
from domain.phones import phone_fragments
from domain.prepared import Prepared, Slot
from domain.territories import Membership, Territory, Unit, lock_membership, serialised

# The protocol carries a plate in 16 ASCII characters (input registers 30–37).
PLATE_MAX_LENGTH = 16
FOREIGN_MIN_LENGTH = 2

# GOST R 50577 allows only the Cyrillic letters that have a Latin twin, so a plate reads
# the same to a Russian camera and a foreign one; each maps to the twin the gate sends.
PLATE_LETTERS_CYRILLIC = "АВЕКМНОРСТУХ"
PLATE_LETTERS_LATIN = "ABEKMHOPCTYX"

_TO_LATIN = str.maketrans(PLATE_LETTERS_CYRILLIC, PLATE_LETTERS_LATIN)
_TO_CYRILLIC = str.maketrans(PLATE_LETTERS_LATIN, PLATE_LETTERS_CYRILLIC)

# What people type between groups, copied from documents or printed on stickers.
_SEPARATORS = frozenset("-.|_\u2010\u2011\u2012\u2013\u2014\u2015\u2212")


class PlateKind(StrEnum):
    """The Russian plate combinations of GOST R 50577 that a plate's text can tell apart."""

    PRIVATE = "private"  # тип 1 (and 1А, the same combination on a 290×170 plate)
    TAXI = "taxi"  # тип 1Б: taxis and route transport, yellow
    TRAILER = "trailer"  # тип 2: trailers and semi-trailers
    TRANSIT = "transit"  # тип 15: «ТРАНЗИТ», temporary
    # тип 3 (tractors), 4 (motorcycles) and 5/7/8 (military, black) share one combination,
    # so the text alone cannot say which of them it is.
    MOTO_OR_MILITARY = "moto_or_military"
    POLICE = "police"  # тип 20: police cars, blue
    DIPLOMATIC = "diplomatic"  # тип 9 (heads of mission, CD) and 10 (D, T), red


# Combinations in GOST notation (М = a plate letter, 0 = a digit, 55 = region code),
# written as templates: {L} a plate letter, {N3}/{N4} the serial number, {R} the region.
# The serial number is never all zeros; a region code is 01–99 or three digits that do not
# start with 0 (1xx and 7xx are issued today; other first digits are left open for new ones).
_TEMPLATES: tuple[tuple[PlateKind, str], ...] = (
    (PlateKind.PRIVATE, "{L}{N3}{L}{L}{R}"),  # тип 1/1А: М 000 ММ 55(5)
    (PlateKind.TAXI, "{L}{L}{N3}{R}"),  # тип 1Б: ММ 000 55(5)
    (PlateKind.TRAILER, "{L}{L}{N4}{R}"),  # тип 2: ММ 0000 55(5)
    (PlateKind.TRANSIT, "{L}{L}{N3}{L}{R}"),  # тип 15: ММ 000 М 55(5)
    (PlateKind.MOTO_OR_MILITARY, "{N4}{L}{L}{R}"),  # тип 3, 4, 5, 7, 8: 0000 ММ 55(5)
    (PlateKind.POLICE, "{L}{N4}{R}"),  # тип 20: М 0000 55(5)
    # тип 9: 000 CD 0 55, тип 10: 000 D 000 55 and 000 T 000 55 — the first three digits
    # are the mission's country code; D and CD are Latin, the only non-plate letters.
    (PlateKind.DIPLOMATIC, "(?!000)[0-9]{{3}}(?:CD[0-9]|[DT][0-9]{{3}}){R}"),
)

_LETTER = f"[{PLATE_LETTERS_LATIN}]"
_SERIAL_3 = "(?!000)[0-9]{3}"
_SERIAL_4 = "(?!0000)[0-9]{4}"
_REGION = "(?:0[1-9]|[1-9][0-9]|[1-9][0-9]{2})"
_ANY_3, _ANY_4, _ANY_REGION = "[0-9]{3}", "[0-9]{4}", "[0-9]{2,3}"

_Patterns = tuple[tuple[PlateKind, re.Pattern[str]], ...]


def _compile(serial_3: str, serial_4: str, region: str) -> _Patterns:
    """Build the full-match patterns, with strict or loose serial numbers and regions."""
    return tuple(
        (kind, re.compile(template.format(L=_LETTER, N3=serial_3, N4=serial_4, R=region)))
        for kind, template in _TEMPLATES
    )


_PATTERNS = _compile(_SERIAL_3, _SERIAL_4, _REGION)
# Looser twins let parse_plate say *why* an otherwise well-shaped plate is refused.
_PATTERNS_ANY_SERIAL = _compile(_ANY_3, _ANY_4, _REGION)
_PATTERNS_ANY_REGION = _compile(_SERIAL_3, _SERIAL_4, _ANY_REGION)

# Two letters and six digits is both тип 1Б with a three-digit region (ТХ 123 777) and
# тип 2 with a two-digit one (АВ 1234 77). Three-digit regions in wide use start with 1 or 7,
# so those read as a taxi and the rest as a trailer; it only changes how the plate is shown.
_TAXI_OR_TRAILER = re.compile(f"{_LETTER}{{2}}[0-9]{{6}}")
_THREE_DIGIT_REGION_FIRST = frozenset("17")


def normalize_plate(text: str) -> str:
    """Return the plate as a gate controller sends it: upper case, no separators, Latin."""
    kept = (ch for ch in text.upper() if not ch.isspace() and ch not in _SEPARATORS)
    return "".join(kept).translate(_TO_LATIN)


def classify_plate(norm: str) -> PlateKind | None:
    """Return which Russian plate combination the plate has, or None if it has none."""
    norm = normalize_plate(norm)
    if _TAXI_OR_TRAILER.fullmatch(norm):
        looks_taxi = norm[-3] in _THREE_DIGIT_REGION_FIRST
        kind = PlateKind.TAXI if looks_taxi else PlateKind.TRAILER
        if dict(_PATTERNS)[kind].fullmatch(norm):
            return kind
    return next((kind for kind, pattern in _PATTERNS if pattern.fullmatch(norm)), None)


def _shown(ch: str) -> str:
    """Name a character in a message, also when it is invisible."""
    return ch if ch.isprintable() else f"U+{ord(ch):04X}"


def parse_plate(text: str, foreign: bool = False) -> str:
    """Normalise a typed plate and check it is a Russian (or, if `foreign`, any) plate."""
    norm = normalize_plate(text or "")
    if not norm:
        raise DomainError(_l("Введите номер автомобиля"), field="plate")
    if len(norm) > PLATE_MAX_LENGTH:
        raise DomainError(
            _l("Номер слишком длинный: не больше %(max)s символов", max=PLATE_MAX_LENGTH),
            field="plate",
        )
    for ch in norm:
        if ("A" <= ch <= "Z") or ("0" <= ch <= "9"):
            continue
        if not ch.isalpha():
            raise DomainError(
                _l(
                    "Недопустимый символ «%(char)s»: в номере только буквы и цифры", char=_shown(ch)
                ),
                field="plate",
            )
        if foreign:
            raise DomainError(
                _l(
                    "Буква «%(letter)s» не подходит: в иностранном номере только латинские "
                    "буквы и цифры",
                    letter=_shown(ch),
                ),
                field="plate",
            )
        raise DomainError(
            _l(
                "Буквы «%(letter)s» нет на российских номерах: бывают только "
                "А, В, Е, К, М, Н, О, Р, С, Т, У, Х",
                letter=_shown(ch),
            ),
            field="plate",
        )
    if classify_plate(norm) is None:
        # A Russian plate typed with a slip is that plate. Under «иностранный номер», which
        # the hint below suggested for «… RUS», only that suffix goes: a foreign plate of
        # digits is kept as typed (12340056 became the motorcycle 1234 ОО 56, review stop 24).
        meant = _russian_meant(norm, swaps=not foreign)
        if meant is not None:
            return meant
    if foreign:
        if len(norm) < FOREIGN_MIN_LENGTH:
            raise DomainError(_l("Номер слишком короткий"), field="plate")
        return norm
    if classify_plate(norm) is None:
        raise _not_russian(norm)
    return norm


# Letters O and digits 0 looked at for a slip; a plate has at most nine characters.
_SLIPS_MAX = 8


def _russian_meant(norm: str, swaps: bool = True) -> str | None:
    """The Russian plate a typed one was meant to be: «RUS», printed after the region,
    copied with it, or (`swaps`) the letter О and the digit 0 taken for each other
    («А ОО1 АА 77»). Only when exactly one reading is a Russian plate; None otherwise."""
    bases = [norm, norm[:-3]] if norm.endswith("RUS") else [norm]
    found = set()
    for base in bases:
        spots = [i for i, ch in enumerate(base) if ch in "O0"] if swaps else []
        if len(spots) > _SLIPS_MAX:
            continue
        for choice in range(1 << len(spots)):
            chars = list(base)
            for bit, i in enumerate(spots):
                chars[i] = "0" if choice >> bit & 1 else "O"
            reading = "".join(chars)
            if classify_plate(reading) is not None:
                found.add(reading)
    return found.pop() if len(found) == 1 else None


def _not_russian(norm: str) -> DomainError:
    """Build the most helpful error for a plate that fits no Russian combination."""
    for ch in norm:
        if ch.isalpha() and ch not in PLATE_LETTERS_LATIN:
            return DomainError(
                _l(
                    "Буквы «%(letter)s» нет на российских номерах. Если номер иностранный, "
                    "отметьте «иностранный номер»",
                    letter=ch,
                ),
                field="plate",
            )
    if any(p.fullmatch(norm) for _, p in _PATTERNS_ANY_SERIAL):
        return DomainError(_l("Номер из одних нулей не выдаётся: проверьте цифры"), field="plate")
    if any(p.fullmatch(norm) for _, p in _PATTERNS_ANY_REGION):
        return DomainError(
            _l("Такого кода региона нет: проверьте последние цифры номера"), field="plate"
        )
    return DomainError(
        _l(
            "Номер не похож на российский (например, А 777 АА 77). Если номер иностранный, "
            "отметьте «иностранный номер»"
        ),
        field="plate",
    )


# How each combination is grouped on the plate itself: lengths of the groups, left to right,
# the region taking whatever is left.
_GROUPS: dict[PlateKind, tuple[int, ...]] = {
    PlateKind.PRIVATE: (1, 3, 2),
    PlateKind.TAXI: (2, 3),
    PlateKind.TRAILER: (2, 4),
    PlateKind.TRANSIT: (2, 3, 1),
    PlateKind.MOTO_OR_MILITARY: (4, 2),
    PlateKind.POLICE: (1, 4),
}


# A pure function a list of passes calls once a row (~10 µs of regular expressions each).
@lru_cache(maxsize=4096)
def format_plate(norm: str) -> str:
    """Return the plate as people read it: grouped, plate letters in Cyrillic (А 777 АА 77).

    Russian plates are shown in Cyrillic because that is what is written on them and what
    people type; the Latin D/CD/T of diplomatic plates stay Latin, as on the plate. A plate
    of no Russian combination (a foreign one) is shown as stored.
    """
    norm = normalize_plate(norm)
    kind = classify_plate(norm)
    if kind is None:
        return norm
    if kind is PlateKind.DIPLOMATIC:
        # тип 9 has one digit between CD and the region, тип 10 three after D or T.
        letters = "CD" if norm[3:5] == "CD" else norm[3]
        serial_len = 1 if letters == "CD" else 3
        rest = norm[3 + len(letters) :]
        return " ".join((norm[:3], letters, rest[:serial_len], rest[serial_len:]))
    parts, pos = [], 0
    for size in _GROUPS[kind]:
        parts.append(norm[pos : pos + size])
        pos += size
    parts.append(norm[pos:])
    return " ".join(parts).translate(_TO_CYRILLIC)


# ---------------------------------------------------------------------------------------
# Vehicle passes («заявки на пропуск»)

# A dated pass covers at most a year; longer needs are what permanent passes are for.
MAX_PERIOD = dt.timedelta(days=366)
# «Мои заявки» shows this many of the person's ended and revoked passes, newest first.
ENDED_SHOWN = 30
# Quick period choices of the form, in the order they are offered.
QUICK_PERIODS = {
    "today": _l("Сегодня"),
    "day": _l("Сутки"),
    "week": _l("Неделя"),
    "month": _l("Месяц"),
}
STATUSES = {
    "active": _l("Действует"),
    "upcoming": _l("Ещё не начался"),
    "expired": _l("Закончился"),
    "revoked": _l("Отозван"),
}


class VehiclePass(NewestFirst, BaseModel):
    """Permission for one plate to enter one territory within a period (or for good).

    The plate is stored normalised (as the gate sends it), so a lookup is one equality.
    `valid_to` null means a permanent pass; those are limited per resident by
    Territory.max_permanent_passes. A revoked pass stays for the record.
    """

    territory = ForeignKeyField(Territory, backref="passes", on_delete="CASCADE")
    account = ForeignKeyField(Account, backref="passes", on_delete="CASCADE")
    unit = ForeignKeyField(Unit, null=True, backref="passes", on_delete="SET NULL")
    plate = CharField(max_length=PLATE_MAX_LENGTH)
    foreign = BooleanField(default=False)
    valid_from = UtcDateTimeField()
    valid_to = UtcDateTimeField(null=True)
    revoked_at = UtcDateTimeField(null=True)
    revoked_by = ForeignKeyField(Account, null=True, on_delete="SET NULL")
    created_at = UtcDateTimeField(default=utcnow)
    created_by = ForeignKeyField(Account, null=True, on_delete="SET NULL")

    class Meta:
        # Chosen from EXPLAIN at a million passes (bench/README.md): the gate's and the
        # operator's lookup, a resident's list, and the manager's list in its own order.
        indexes = (
            (("territory", "plate"), False),
            (("territory", "account"), False),
            (("territory", "created_at", "id"), False),
        )

    @property
    def permanent(self) -> bool:
        """True for a pass without an end."""
        return self.valid_to is None

    @property
    def shown_plate(self) -> str:
        """The plate as people read it (А 777 АА 77)."""
        return self.plate if self.foreign else format_plate(self.plate)

    def status(self, now: dt.datetime | None = None) -> str:
        """active, upcoming, expired or revoked at `now`."""
        now = now or utcnow()
        if self.revoked_at is not None:
            return "revoked"
        if self.valid_from > now:
            return "upcoming"
        if self.valid_to is not None and self.valid_to <= now:
            return "expired"
        return "active"

    def status_label(self, now: dt.datetime | None = None) -> str:
        """The status in the reader's language."""
        return str(STATUSES[self.status(now)])

    @classmethod
    def of_territory(cls, territory_id: int):
        """Every pass of a territory with its owner and unit, newest first."""
        return (
            cls.select(cls, Account, Unit)
            .join(Account, on=(cls.account == Account.id))
            .switch(cls)
            .join(Unit, JOIN.LEFT_OUTER, on=(cls.unit == Unit.id))
            .where(cls.territory == territory_id)
            .order_by(cls.created_at.desc(), cls.id.desc())
        )

    @classmethod
    def with_status(cls, query, status: str, now: dt.datetime):
        """Narrow a query of passes to one status at `now`."""
        live = cls.revoked_at.is_null()
        if status == "revoked":
            return query.where(cls.revoked_at.is_null(False))
        if status == "upcoming":
            return query.where(live & (cls.valid_from > now))
        if status == "expired":
            return query.where(live & cls.valid_to.is_null(False) & (cls.valid_to <= now))
        if status == "active":
            return query.where(
                live
                & (cls.valid_from <= now)
                & (cls.valid_to.is_null() | (cls.valid_to > now))
            )
        return query

    @classmethod
    def search(cls, query, text: str):
        """Narrow a query of passes to a plate fragment, an owner's name or phone, or a unit."""
        text = (text or "").strip()
        if not text:
            return query
        plate = normalize_plate(text)
        words = every_word(text, Account.surname, Account.name, Account.patronymic, Unit.name)
        for fragment in phone_fragments(text):
            words |= Account.phone.contains(fragment)
        return query.where(cls.plate.contains(plate) | words) if plate else query.where(words)


def quick_period(
    choice: str, now: dt.datetime, timezone: str
) -> tuple[dt.datetime, dt.datetime]:
    """The period of a quick choice: today (to midnight in the territory), a day, week, month."""
    if choice == "today":
        local = now.astimezone(ZoneInfo(timezone))
        midnight = dt.datetime.combine(
            local.date() + dt.timedelta(days=1), dt.time(), tzinfo=local.tzinfo
        )
        return now, midnight.astimezone(dt.UTC)
    spans = {"day": 1, "week": 7, "month": 30}
    if choice not in spans:
        raise DomainError(_l("Выберите период"), field="period")
    return now, now + dt.timedelta(days=spans[choice])


def local_moment(value: dt.datetime, timezone: str) -> dt.datetime:
    """A datetime typed in the territory's time zone (naive) as an aware one."""
    if value.tzinfo is not None:
        return value
    return value.replace(tzinfo=ZoneInfo(timezone))


def _check_period(
    valid_from: dt.datetime, valid_to: dt.datetime | None, now: dt.datetime
) -> None:
    if valid_from - now > MAX_PERIOD:
        # A pass for 31.12.9999 would sit in «Ещё не начались» for good.
        raise DomainError(_l("Начало — не позже чем через год"), field="valid_from")
    if valid_to is None:
        return
    if valid_to <= valid_from:
        raise DomainError(_l("Окончание должно быть позже начала"), field="valid_to")
    if valid_to <= now:
        raise DomainError(_l("Этот период уже закончился"), field="valid_to")
    if valid_to - valid_from > MAX_PERIOD:
        raise DomainError(
            _l("Период — не больше года; для своей машины оформите постоянный пропуск"),
            field="valid_to",
        )


def _refuse_overlap(
    member: Membership, norm: str, valid_from: dt.datetime, valid_to: dt.datetime | None,
    now: dt.datetime,
) -> None:
    """Inside serialised(): refuse the member a second live pass for the plate over the same
    time — a pass filed again by someone unsure the first went through.

    A live pass (not revoked, not ended) overlaps when it starts before the new one ends (a
    permanent one never ends) and ends after it starts. Only the member's own passes count:
    another resident may well expect the same taxi or guest, and their pass is theirs to
    revoke. On PostgreSQL the member's row is locked first, so two filings sent at once
    queue and the second sees the first.
    """
    lock_membership(member.id)
    query = VehiclePass.select(VehiclePass.valid_from, VehiclePass.valid_to).where(
        (VehiclePass.territory == member.territory_id)
        & (VehiclePass.plate == norm)
        & (VehiclePass.account == member.account_id)
        & VehiclePass.revoked_at.is_null()
        & (VehiclePass.valid_to.is_null() | (VehiclePass.valid_to > max(now, valid_from)))
    )
    if valid_to is not None:
        query = query.where(VehiclePass.valid_from < valid_to)
    own = list(query)
    if not own:
        return
    if any(p.valid_to is None for p in own):
        raise DomainError(_l("На этот номер уже есть постоянный пропуск"), field="plate")
    last = max(own, key=lambda p: p.valid_to)
    zone = ZoneInfo(member.territory.timezone)
    until = last.valid_to.astimezone(zone).strftime("%d.%m.%Y %H:%M")
    raise DomainError(
        _l("На этот номер уже есть действующий пропуск до %(until)s", until=until)
        if last.valid_from <= now
        else _l("На этот номер уже есть пропуск на это время, до %(until)s", until=until),
        field="plate",
    )


def file_pass(
    member: Membership,
    *,
    plate: str,
    foreign: bool = False,
    valid_from: dt.datetime | None = None,
    valid_to: dt.datetime | None = None,
    permanent: bool = False,
    created_by: Account | None = None,
    now: dt.datetime | None = None,
) -> VehiclePass:
    """«Добавить»: file a pass for the member's car; it is at the gate at once.

    A dated pass needs `valid_to`; `permanent` files one without an end, within the
    territory's limit of permanent passes per person.
    """
    now = now or utcnow()
    territory = member.territory
    if not territory.passes_enabled:
        raise DomainError(_l("На этой территории пропуска на автомобили выключены"))
    if member.role not in ("resident", "manager") or member.id is None:
        # The platform's admin acts as a manager of a territory it is no member of: a pass
        # of theirs would have no member behind it, and the gate refuses such passes.
        raise DomainError(_l("Заявки подают резиденты и управляющие"))
    norm = parse_plate(plate, foreign)
    valid_from = valid_from or now
    if permanent:
        valid_to = None
    elif valid_to is None:
        raise DomainError(_l("Укажите окончание периода"), field="valid_to")
    _check_period(valid_from, valid_to, now)
    # Serialised like a unit's seats: two permanent passes filed at once must not both
    # slip under the limit (BEGIN IMMEDIATE on SQLite, the member's row locked on PostgreSQL).
    with serialised():
        _refuse_overlap(member, norm, valid_from, valid_to, now)  # also locks the member
        # The role as stored, read under that lock: the platform admin's membership is
        # raised to manager for their requests (blueprints/scope.py), and one who is a
        # guard there filed passes the gate then refused (review, stop 23); a member made
        # an operator this very moment files none either.
        stored = Membership.select(Membership.role).where(Membership.id == member.id).scalar()
        if stored not in ("resident", "manager"):
            raise DomainError(_l("Заявки подают резиденты и управляющие"))
        if permanent:
            limit = territory.max_permanent_passes
            held = (
                VehiclePass.select()
                .where(
                    (VehiclePass.territory == territory)
                    & (VehiclePass.account == member.account_id)
                    & VehiclePass.valid_to.is_null()
                    & VehiclePass.revoked_at.is_null()
                )
                .count()
            )
            if held >= limit:
                raise DomainError(
                    _l(
                        "Постоянных пропусков может быть не больше %(n)s: отзовите ненужный",
                        n=limit,
                    )
                    if limit
                    else _l("На этой территории постоянные пропуска не выдаются"),
                    field="period",
                )
        versions.bump(territory.id)
        return VehiclePass.create(
            territory=territory,
            account=member.account_id,
            unit=member.unit_id,
            plate=norm,
            foreign=foreign and classify_plate(norm) is None,
            valid_from=valid_from,
            valid_to=valid_to,
            created_at=now,
            created_by=created_by or member.account_id,
        )


# «Мои заявки» asks these on every visit: composed once, re-bound (domain/prepared.py).
def _own(live: bool):
    """A person's passes in a territory, newest first: the live ones, or the ended ones.
    Their owner and unit are the person's own, so only the pass's columns are read."""
    if live:
        when = VehiclePass.revoked_at.is_null() & (
            VehiclePass.valid_to.is_null() | (VehiclePass.valid_to > Slot("now")))
    else:
        when = VehiclePass.revoked_at.is_null(False) | (
            VehiclePass.valid_to.is_null(False) & (VehiclePass.valid_to <= Slot("now")))
    query = (
        VehiclePass.select()
        .where((VehiclePass.territory == Slot("territory"))
               & (VehiclePass.account == Slot("account")) & when)
        .order_by(VehiclePass.created_at.desc(), VehiclePass.id.desc())
    )
    return query if live else query.limit(ENDED_SHOWN)


OWN_LIVE = Prepared(lambda: _own(live=True))
OWN_ENDED = Prepared(lambda: _own(live=False))


def own_passes(territory_id: int, account_id: int, now: dt.datetime) -> dict[str, list]:
    """One person's passes in a territory by group: active, upcoming and the latest ended."""
    groups: dict[str, list] = {"active": [], "upcoming": []}
    for found in OWN_LIVE(territory=territory_id, account=account_id, now=now):
        groups["upcoming" if found.valid_from > now else "active"].append(found)
    groups["ended"] = list(OWN_ENDED(territory=territory_id, account=account_id, now=now))
    return groups


def visible_pass(member: Membership, pass_id: int) -> VehiclePass:
    """A pass the member may see: any of the territory for managers, own for others."""
    query = VehiclePass.select().where(
        (VehiclePass.id == pass_id) & (VehiclePass.territory == member.territory_id)
    )
    if member.role != "manager":
        query = query.where(VehiclePass.account == member.account_id)
    found = query.first()
    if found is None:
        raise NotFound(_l("Пропуск не найден"))
    return found


def revoke_pass(
    member: Membership, pass_id: int, now: dt.datetime | None = None
) -> VehiclePass:
    """Revoke a pass: the owner their own, a manager any of the territory; takes effect at once."""
    with db.atomic():
        found = visible_pass(member, pass_id)
        if found.revoked_at is None:
            found.revoked_at = now or utcnow()
            found.revoked_by = member.account_id
            found.save(only=["revoked_at", "revoked_by"])
            versions.bump(found.territory_id)
        return found


def set_permanent_limit(territory: Territory, limit: int) -> None:
    """The manager's setting: how many permanent passes one person may keep."""
    if not 0 <= limit <= 20:
        raise DomainError(_l("От 0 до 20"), field="limit")
    with db.atomic():
        territory.max_permanent_passes = limit
        territory.save(only=["max_permanent_passes"])
