"""Territories, their units, the people who belong to them, and requests to join."""

from __future__ import annotations

import secrets

from flask_babel import lazy_gettext as _l
from peewee import BooleanField, CharField, ForeignKeyField, IntegerField, IntegrityError, TextField

from domain.accounts import Account
from domain.db import BaseModel, UtcDateTimeField, db, utcnow
from domain.errors import DomainError, NotFound

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
    def of(cls, account: Account):
        """Territories the account belongs to, by name."""
        return (
            cls.select()
            .join(Membership)
            .where(Membership.account == account)
            .order_by(cls.name, cls.id)
        )


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


def parse_code(text: str) -> str:
    """A territory code typed with or without the dash (123-456, 123456) → 123456."""
    digits = "".join(ch for ch in (text or "") if ch.isdigit())
    if len(digits) != 6 or len(text.strip()) > 8:
        raise DomainError(_l("Код территории — шесть цифр, например 123-456"), "code")
    return digits


def _random_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def create_territory(
    creator: Account, *, name: str, kind: str, address: str = "", timezone: str = DEFAULT_TZ
) -> Territory:
    """Create a territory with a fresh random code; its creator becomes its manager."""
    if kind not in KINDS:
        raise DomainError(_l("Выберите тип территории"), "kind")
    if not name.strip():
        raise DomainError(_l("Введите название"), "name")
    for _attempt in range(20):
        try:
            with db.atomic():
                territory = Territory.create(
                    name=name.strip(),
                    kind=kind,
                    address=address.strip(),
                    timezone=timezone,
                    code=_random_code(),
                    passes_enabled=kind != "kindergarten",
                )
                Membership.create(account=creator, territory=territory, role="manager")
                return territory
        except IntegrityError:
            continue  # the random code was taken: draw again
    raise DomainError(_l("Не удалось выдать код территории, попробуйте ещё раз"))


def membership(account: Account, territory_id: int) -> Membership:
    """The account's membership in a territory; NotFound when they do not belong there."""
    found = (
        Membership.select(Membership, Territory)
        .join(Territory)
        .where((Membership.account == account) & (Membership.territory == territory_id))
        .first()
    )
    if found is None:
        raise NotFound(_l("Территория не найдена"))
    return found
