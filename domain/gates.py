"""Gates of a territory (their GATE-CTL controllers) and the events of every decision."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from peewee import (
    JOIN,
    BooleanField,
    CharField,
    ForeignKeyField,
    IntegerField,
    SmallIntegerField,
)

from domain.accounts import Account
from domain.db import BaseModel, UtcDateTimeField, db, utcnow
from domain.errors import DomainError, NotFound
from domain.territories import Membership, Territory

DIRECTIONS = {"entry": _l("Въезд"), "exit": _l("Выезд"), "both": _l("Въезд и выезд")}
WORD_ORDERS = ("big", "little")
# Event directions as GATE-CTL carries them (input register 22).
ENTRY, EXIT = 1, 2
EVENT_DIRECTIONS = {ENTRY: _l("Въезд"), EXIT: _l("Выезд")}
EVENT_KINDS = {
    "plate": _l("Номер"),
    "card": _l("Карта"),
    "phone": _l("Телефон"),
    "button": _l("Кнопка"),
    "manual": _l("Оператор"),
}
SOURCES = ("web", "bridge")
# GATE-CTL decision codes (holding register 101).
CODES = {
    1: _l("Разрешено"),
    2: _l("Нет пропуска"),
    3: _l("Срок истёк"),
    4: _l("Неизвестен"),
    5: _l("Заблокирован / не оплачен"),
    6: _l("Повторите"),
}


class Gate(BaseModel):
    """A gate, barrier, door or turnstile of a territory and its Modbus TCP controller."""

    territory = ForeignKeyField(Territory, backref="gates", on_delete="CASCADE")
    name = CharField()
    direction = CharField(default="both")  # entry, exit, both
    host = CharField()
    port = IntegerField(default=502)
    unit_id = IntegerField(default=1)
    poll_ms = IntegerField(default=200)
    word_order = CharField(default="big")  # big, little (multi-register integers)
    enabled = BooleanField(default=True)
    created_at = UtcDateTimeField(default=utcnow)

    @property
    def direction_label(self) -> str:
        """The direction in the reader's language."""
        return str(DIRECTIONS.get(self.direction, self.direction))

    @property
    def event_direction(self) -> int:
        """The direction an «Открыть» press on this gate is recorded with."""
        return EXIT if self.direction == "exit" else ENTRY

    @classmethod
    def of(cls, territory_id: int):
        """The territory's gates, by name."""
        return cls.select().where(cls.territory == territory_id).order_by(cls.name, cls.id)


class GateEvent(BaseModel):
    """One decision at a gate: who or what was presented, and the answer given."""

    territory = ForeignKeyField(Territory, backref="gate_events", on_delete="CASCADE")
    gate = ForeignKeyField(Gate, null=True, backref="events", on_delete="SET NULL")
    at = UtcDateTimeField(default=utcnow)
    kind = CharField(default="plate")  # plate, card, phone, button, manual
    credential = CharField(default="")  # the normalised plate, the card number, …
    direction = SmallIntegerField(default=ENTRY)  # 1 entry, 2 exit
    code = SmallIntegerField()  # GATE-CTL decision code 1..6
    reason = CharField(default="")  # a key of domain.access.REASONS
    account = ForeignKeyField(Account, null=True, on_delete="SET NULL")  # whose pass/card/phone
    actor = ForeignKeyField(Account, null=True, on_delete="SET NULL")  # who pressed «Открыть»
    source = CharField(default="web")  # web, bridge

    class Meta:
        indexes = ((("territory", "id"), False),)

    @property
    def granted(self) -> bool:
        """True when the gate was told to open."""
        return self.code == 1

    @property
    def code_label(self) -> str:
        """The decision in the reader's language."""
        return str(CODES.get(self.code, self.code))

    @property
    def kind_label(self) -> str:
        """What was presented, in the reader's language."""
        return str(EVENT_KINDS.get(self.kind, self.kind))

    @property
    def direction_label(self) -> str:
        """Entry or exit, in the reader's language."""
        return str(EVENT_DIRECTIONS.get(self.direction, self.direction))

    @property
    def reason_label(self) -> str:
        """The reason in the reader's language."""
        from domain.access import reason_label

        return reason_label(self.reason)

    @property
    def shown_credential(self) -> str:
        """The credential as people read it (plates grouped, in Cyrillic)."""
        if self.kind == "plate" and self.credential:
            from domain.passes import format_plate

            return format_plate(self.credential)
        return self.credential

    @classmethod
    def feed(cls, territory_id: int):
        """The territory's events with gate and people, newest first."""
        owner = Account.alias("owner")
        actor = Account.alias("actor")
        return (
            cls.select(cls, Gate, owner, actor)
            .join(Gate, JOIN.LEFT_OUTER, on=(cls.gate == Gate.id))
            .switch(cls)
            .join(owner, JOIN.LEFT_OUTER, on=(cls.account == owner.id), attr="account")
            .switch(cls)
            .join(actor, JOIN.LEFT_OUTER, on=(cls.actor == actor.id), attr="actor")
            .where(cls.territory == territory_id)
            .order_by(cls.id.desc())
        )


@dataclass(frozen=True)
class EventFilter:
    """What the log is narrowed to; every part optional."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    gate_id: int | None = None
    code: int | None = None  # a decision code; 0 = every denial
    plate: str = ""

    def apply(self, query):
        """Narrow a GateEvent query."""
        from domain.passes import normalize_plate

        if self.since is not None:
            query = query.where(GateEvent.at >= self.since)
        if self.until is not None:
            query = query.where(GateEvent.at < self.until)
        if self.gate_id:
            query = query.where(GateEvent.gate == self.gate_id)
        if self.code == 0:
            query = query.where(GateEvent.code != 1)
        elif self.code:
            query = query.where(GateEvent.code == self.code)
        plate = normalize_plate(self.plate)
        if plate:
            query = query.where(GateEvent.credential.contains(plate))
        return query


def record_event(
    territory_id: int,
    *,
    code: int,
    reason: str,
    kind: str,
    direction: int = ENTRY,
    credential: str = "",
    gate: Gate | int | None = None,
    account: Account | int | None = None,
    actor: Account | int | None = None,
    source: str = "web",
    at: dt.datetime | None = None,
) -> GateEvent:
    """Write one decision to the event log (the feed shows it within a second)."""
    if code not in CODES or kind not in EVENT_KINDS or direction not in EVENT_DIRECTIONS:
        raise ValueError(f"bad event: code={code} kind={kind} direction={direction}")
    with db.atomic():
        return GateEvent.create(
            territory=territory_id,
            gate=gate,
            at=at or utcnow(),
            kind=kind,
            credential=credential,
            direction=direction,
            code=code,
            reason=reason,
            account=account,
            actor=actor,
            source=source,
        )


def territory_gate(territory_id: int, gate_id: int) -> Gate:
    """A gate of this territory; NotFound for any other."""
    gate = Gate.get_or_none((Gate.id == gate_id) & (Gate.territory == territory_id))
    if gate is None:
        raise NotFound(_l("Ворота не найдены"))
    return gate


def open_by_operator(member: Membership, gate_id: int, now: dt.datetime | None = None) -> GateEvent:
    """«Открыть» pressed by an operator or manager: recorded with their name as the actor.

    The gatebridge (issue 7) turns the recorded press into a GATE-CTL command; until it
    is in, the press is only recorded.
    """
    if member.role not in ("operator", "manager"):
        raise NotFound(_l("Ворота не найдены"))
    gate = territory_gate(member.territory_id, gate_id)
    if not gate.enabled:
        raise DomainError(_l("Ворота отключены"))
    return record_event(
        member.territory_id,
        code=1,
        reason="operator_open",
        kind="manual",
        direction=gate.event_direction,
        gate=gate,
        actor=member.account_id,
        at=now,
    )


def add_gate(
    territory: Territory,
    *,
    name: str,
    host: str,
    port: int,
    unit_id: int = 1,
    direction: str = "both",
    poll_ms: int = 200,
    word_order: str = "big",
) -> Gate:
    """Configure a gate and its controller (GATE_PROTOCOL.md «Configuring a gate»)."""
    if not name.strip():
        raise DomainError(_l("Введите название"), field="name")
    if direction not in DIRECTIONS:
        raise DomainError(_l("Направление: entry, exit или both"), field="direction")
    if word_order not in WORD_ORDERS:
        raise DomainError(_l("Порядок слов: big или little"), field="word_order")
    if not host.strip():
        raise DomainError(_l("Укажите адрес контроллера"), field="host")
    if not 1 <= port <= 65535:
        raise DomainError(_l("Порт — от 1 до 65535"), field="port")
    if not 0 <= unit_id <= 255:
        raise DomainError(_l("Номер устройства Modbus — от 0 до 255"), field="unit_id")
    if not 20 <= poll_ms <= 60000:
        raise DomainError(_l("Опрос — от 20 до 60000 мс"), field="poll_ms")
    with db.atomic():
        return Gate.create(
            territory=territory,
            name=name.strip(),
            direction=direction,
            host=host.strip(),
            port=port,
            unit_id=unit_id,
            poll_ms=poll_ms,
            word_order=word_order,
        )
