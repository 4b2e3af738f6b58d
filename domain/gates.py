"""Gates of a territory (their GATE-CTL controllers) and the events of every decision."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from peewee import (
    JOIN,
    BigIntegerField,
    BooleanField,
    CharField,
    ForeignKeyField,
    IntegerField,
    IntegrityError,
    SmallIntegerField,
)

from domain import versions
from domain.accounts import Account
from domain.db import BaseModel, UtcDateTimeField, db, for_update, utcnow, writing
from domain.errors import DomainError, NotFound
from domain.networks import Network, outside_networks
from domain.prepared import Prepared, Slot
from domain.territories import Membership, Territory, lock_membership, serialised
from domain.text import in_quotes, name_key

DIRECTIONS = {"entry": _l("Въезд"), "exit": _l("Выезд"), "both": _l("Въезд и выезд")}
WORD_ORDERS = ("big", "little")
# Event directions as GATE-CTL carries them (input register 22).
ENTRY, EXIT = 1, 2
EVENT_DIRECTIONS = {ENTRY: _l("Въезд"), EXIT: _l("Выезд")}
EVENT_KINDS = {
    "plate": _l("Номер"),
    "card": _l("Карта"),
    "pin": _l("PIN"),
    "phone": _l("Телефон"),
    "button": _l("Кнопка"),
    "manual": _l("Оператор"),
    "remote": _l("Пульт"),
    "other": _l("Другое"),
}
SOURCES = ("web", "bridge")
# GATE-CTL decision codes (holding register 101).
CODES = {
    1: _l("Разрешено"),
    2: _l("Нет пропуска"),
    3: _l("Срок истёк"),
    4: _l("Неизвестен"),
    5: _l("Заблокирован / не оплачен"),
    6: _l("Не выполнено"),  # "try again" told at the gate; a press that did not open
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
    # The serial printed on the controller (GATE_PROTOCOL IR 2-3), when the manager gives it:
    # the gate then works with that controller only, and outranks every gate without one
    # that reaches it (gatebridge.poller.Poller.claim). Never shown for what a gate reached.
    serial = BigIntegerField(null=True)

    class Meta:
        # One controller, one gate, in the whole installation (gate_problems says why); the
        # database holds it against two saves at once. `host` is stored as normal_host()
        # spells it, so equal columns are the same controller (migration 7).
        indexes = ((("host", "port", "unit_id"), True),)

    @property
    def moved_off_host(self) -> str | None:
        """The address this gate had before migration 7 moved it off a controller another
        gate kept (moved_off); None for any other gate."""
        return moved_off(self.host)

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
    kind = CharField(default="plate")  # plate, card, pin, phone, button, manual, remote, other
    credential = CharField(default="")  # the normalised plate, the card number, …
    direction = SmallIntegerField(default=ENTRY)  # 1 entry, 2 exit
    code = SmallIntegerField()  # GATE-CTL decision code 1..6
    reason = CharField(default="")  # a key of domain.access.REASONS
    account = ForeignKeyField(Account, null=True, on_delete="SET NULL")  # whose pass/card/phone
    actor = ForeignKeyField(Account, null=True, on_delete="SET NULL")  # who pressed «Открыть»
    source = CharField(default="web")  # web, bridge

    class Meta:
        # (territory, id): the feed and its poll; (territory, at): the log's dates, the
        # bridge's duplicate check (bench/README.md has the plans).
        indexes = (
            (("territory", "id"), False),
            (("territory", "at"), False),
        )

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
        """The credential as people read it: plates grouped, in Cyrillic; cards as printed on
        them (123,45678), as the «Карты» page lists them, so a refused swipe can be found."""
        if self.kind == "plate" and self.credential:
            from domain.passes import format_plate

            return format_plate(self.credential)
        if self.kind == "card" and self.credential.isdigit():
            from domain.billing import CARD_VALUE_MAX, format_card_number

            if int(self.credential) <= CARD_VALUE_MAX:
                return format_card_number(int(self.credential))
        return self.credential

    @classmethod
    def feed(cls, territory_id: int):
        """The territory's events, newest first: narrow it, cut a page, then with_people()."""
        return cls.select().where(cls.territory == territory_id).order_by(cls.id.desc())

    @classmethod
    def with_people(cls, page, newest_first: bool = True) -> list[GateEvent]:
        """The events of `page` (a feed query narrowed, ordered and cut), each with its gate,
        owner and actor (what a log line shows of them); newest first, or oldest first for a
        page read upwards.

        The joins come after the cut, in one query: a day of a busy territory holds a thousand
        events, and joining them all before keeping the newest fifty made that page cost ten
        times the first one (bench/README.md).
        """
        owner, actor = Account.alias("owner"), Account.alias("actor")
        # Of the gate and the people, what a log line shows: the name, and who they are.
        shown = [Gate.id, Gate.name] + [
            column for person in (owner, actor)
            for column in (person.id, person.surname, person.name, person.patronymic,
                           person.phone, person.email)
        ]
        query = (
            cls.select(cls, *shown)
            .join(Gate, JOIN.LEFT_OUTER, on=(cls.gate == Gate.id))
            .switch(cls)
            .join(owner, JOIN.LEFT_OUTER, on=(cls.account == owner.id), attr="account")
            .switch(cls)
            .join(actor, JOIN.LEFT_OUTER, on=(cls.actor == actor.id), attr="actor")
            .where(cls.id.in_(page.select(cls.id)))
            .order_by(cls.id.desc() if newest_first else cls.id.asc())
        )
        return list(query)

    @classmethod
    def newest_after(cls, territory_id: int, after: int) -> int | None:
        """The id of the territory's newest event if it is newer than `after`, else None: one
        step down the (territory, id) index."""
        found = _NEWEST_AFTER.first(territory=territory_id, after=after)
        return found.id if found else None


_NEWEST_AFTER = Prepared(lambda: (
    GateEvent.select(GateEvent.id)
    .where((GateEvent.territory == Slot("territory")) & (GateEvent.id > Slot("after")))
    .order_by(GateEvent.id.desc())
    .limit(1)
))


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


def open_by_operator(member: Membership, gate_id: int, now: dt.datetime | None = None):
    """«Открыть» pressed by an operator or manager: a command to the bridge, their name as actor.

    Returns the GateCommand; DomainError at once when the gate is off or not online.
    """
    if member.role not in ("operator", "manager"):
        raise NotFound(_l("Ворота не найдены"))
    gate = territory_gate(member.territory_id, gate_id)
    if member.id is None:  # the admin where they are no member: no row to lose meanwhile
        return request_open(gate, member.account_id, "operator", now)

    def still_there():
        from domain.access import GRANT, Decision, standing_refusal

        return (standing_refusal(member.territory_id, member.account_id)
                or Decision(GRANT, "operator_open"))

    return request_open(gate, member.account_id, "operator", now, member_id=member.id,
                        recheck=still_there)


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


NOT_IN_NETWORKS = _l("Этот адрес не из сети контроллеров, которую разрешил администратор "
                     "установки")


def valid_host(host: str) -> bool:
    """An IP address (v4 or v6) or a host name of letters, digits and hyphens (RFC 1123)
    by its shape alone: nothing is looked up."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or labels[-1].isdigit():
        return False  # «10.0.0.256» is a broken address, not a name
    return all(_HOST_LABEL.fullmatch(label) for label in labels)


def normal_host(host: str) -> str:
    """The one spelling of a controller's address that every other spelling of it shares (an
    IP address in its standard form; a host name in lower case, without the root's dot): the
    form it is stored in, so the unique index on (host, port, unit_id) sees one controller."""
    host = host.strip()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower().removesuffix(".")


# Where migration 7 moved a gate that shared its controller with another gate: «#<gate id>
# <address>». No address has that shape, so its form wants the address entered again.
_MOVED_OFF = re.compile(r"#\d+ (.+)", re.DOTALL)


def moved_off(host: str) -> str | None:
    """The address a gate had before migration 7 moved it off a controller another gate kept,
    or None for any other gate."""
    found = _MOVED_OFF.fullmatch(host or "")
    return found.group(1) if found else None


def _controller_problem(
    territory_id: int, host: str, port: int | None, unit_id: int | None, gate_id: int | None,
) -> str | None:
    """Why this controller cannot be the gate's, if another gate has it."""
    # One controller answers one gate, in the whole installation: two gates would each
    # answer its events, and the first answer wins, so a manager who pointed a gate of
    # theirs at another territory's controller could open that territory's barrier
    # with passes of their own. Another territory's gate is not named.
    # Stored hosts are in normal_host's spelling (migration 7): the unique index finds it.
    twin = (Gate.select(Gate.id, Gate.territory, Gate.name)
            .where((Gate.host == normal_host(host)) & (Gate.port == port)
                   & (Gate.unit_id == unit_id) & (Gate.id != (gate_id or 0)))
            .first())
    if twin is None:
        return None
    if twin.territory_id == territory_id:
        return _l("Этот контроллер (адрес, порт и номер устройства) уже "
                  "у ворот «%(name)s»", name=in_quotes(twin.name))
    return _l("Этот контроллер (адрес, порт и номер устройства) уже "
              "подключён к другим воротам")


def _name_taken(territory_id: int, name: str, gate_id: int | None) -> bool:
    """Another gate of the territory has the name, up to case and spaces (two «Открыть:
    Въезд» buttons could not be told apart)."""
    key = name_key(name)
    query = Gate.select(Gate.name).where(
        (Gate.territory == territory_id) & (Gate.id != (gate_id or 0)))
    return any(name_key(g.name) == key for g in query)


NAME_MAX = 100
SERIAL_MAX = 2**32 - 1  # IR 2-3: an unsigned 32-bit number


SERIAL_RANGE = _l("Серийный номер — число от 0 до %(n)s", n=SERIAL_MAX)


def gate_problems(
    territory_id: int, *, name: str, host: str, port: int | None, unit_id: int | None,
    direction: str, poll_ms: int | None, word_order: str, gate_id: int | None = None,
    networks: Sequence[Network] = (), serial: int | None = None,
) -> dict[str, str]:
    """Everything wrong with a gate's settings, by field (empty when nothing is), so a form
    shows every problem at once. `gate_id` is the gate being changed, if any; `networks`
    the controllers' networks of the installation (GATE_NETWORKS; empty: any address)."""
    problems = {}
    host = (host or "").strip()
    if not (name or "").strip():
        problems["name"] = _l("Введите название")
    elif len(name.strip()) > NAME_MAX:
        # The form stops at it too; the CLI's `gates add` did not, and a longer name made
        # the gate impossible to save in the form again.
        problems["name"] = _l("Название — не длиннее %(n)s символов", n=NAME_MAX)
    elif _name_taken(territory_id, name, gate_id):
        problems["name"] = _l("Ворота с таким названием уже есть")
    if direction not in DIRECTIONS:
        problems["direction"] = _l("Направление: entry, exit или both")
    if word_order not in WORD_ORDERS:
        problems["word_order"] = _l("Порядок слов: big или little")
    shape = _l("Адрес контроллера — IP-адрес или имя хоста, "
               "например 192.168.1.10 или gate-1.local")
    if not host:
        problems["host"] = _l("Укажите адрес контроллера")
    elif (earlier := moved_off(host)) is not None:
        # Still taken: say so, as for anyone choosing it; free again: enter it anew.
        problems["host"] = _controller_problem(
            territory_id, earlier, port, unit_id, gate_id) or shape
    elif not valid_host(host):
        problems["host"] = shape
    elif outside_networks(host, networks):
        problems["host"] = NOT_IN_NETWORKS
    if port is None or not 1 <= port <= 65535:
        problems["port"] = _l("Порт — от 1 до 65535")
    if unit_id is None or not 0 <= unit_id <= 255:
        problems["unit_id"] = _l("Номер устройства Modbus — от 0 до 255")
    if poll_ms is None or not 20 <= poll_ms <= 60000:
        problems["poll_ms"] = _l("Опрос — от 20 до 60000 мс")
    if serial is not None and not 0 <= serial <= SERIAL_MAX:
        problems["serial"] = SERIAL_RANGE
    if "host" not in problems:
        taken = _controller_problem(territory_id, host, port, unit_id, gate_id)
        if taken is not None:
            problems["host"] = taken
    return problems


def saved_host_problem(gate: Gate) -> str | None:
    """Why a gate migration 7 moved off a shared controller cannot have it back yet (the
    other gate still has it), said when its form opens; None once it is free, or for any
    other gate."""
    earlier = moved_off(gate.host)
    if earlier is None:
        return None
    return _controller_problem(gate.territory_id, earlier, gate.port, gate.unit_id, gate.id)


def _check_gate(territory_id: int, gate_id: int | None = None, **values) -> None:
    problems = gate_problems(territory_id, gate_id=gate_id, **values)
    if problems:
        field, message = next(iter(problems.items()))
        raise DomainError(message, field=field)


def _claiming_controller(territory_id: int, gate_id: int | None, host: str, port: int,
                         unit_id: int, write):
    """Run `write` (the check and the row) as one transaction. Two managers saving the same
    controller at once both pass the check; the unique index refuses the second row, and
    they are told what the check tells anyone who comes later, at the same field."""
    try:
        with writing():
            gate = write()
            # The bridge reloads its gates when the version moves, not only every few
            # seconds: a port edited, «Открыть» went to the old controller meanwhile.
            versions.bump(territory_id)
            return gate
    except IntegrityError:
        # Rolled back: the gate that won is committed now, and the check sees it.
        problem = _controller_problem(territory_id, host, port, unit_id, gate_id)
        if problem is None:
            raise
        raise DomainError(problem, field="host") from None


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
    enabled: bool = True,
    networks: Sequence[Network] = (),
    serial: int | None = None,
) -> Gate:
    """Configure a gate and its controller (GATE_PROTOCOL.md «Configuring a gate»)."""

    def write() -> Gate:
        _check_gate(territory.id, name=name, host=host, port=port, unit_id=unit_id,
                    direction=direction, poll_ms=poll_ms, word_order=word_order,
                    networks=networks, serial=serial)
        return Gate.create(
            territory=territory,
            name=name.strip(),
            direction=direction,
            host=normal_host(host),
            port=port,
            unit_id=unit_id,
            poll_ms=poll_ms,
            word_order=word_order,
            enabled=enabled,
            serial=serial,
        )

    return _claiming_controller(territory.id, None, host, port, unit_id, write)


def update_gate(
    territory_id: int,
    gate_id: int,
    *,
    name: str,
    host: str,
    port: int,
    unit_id: int,
    direction: str,
    poll_ms: int,
    word_order: str,
    enabled: bool,
    networks: Sequence[Network] = (),
    serial: int | None = None,
) -> Gate:
    """Change a gate of the territory; the bridge picks the change up within seconds."""

    def write() -> Gate:
        # Held first: a gate deleted meanwhile is not «Сохранено» (concurrency audit, stop 24).
        lock_gate(gate_id)
        gate = territory_gate(territory_id, gate_id)
        _check_gate(territory_id, gate_id, name=name, host=host, port=port, unit_id=unit_id,
                    direction=direction, poll_ms=poll_ms, word_order=word_order,
                    networks=networks, serial=serial)
        before = _device(gate)
        gate.name, gate.host, gate.port = name.strip(), normal_host(host), port
        gate.unit_id, gate.direction, gate.poll_ms = unit_id, direction, poll_ms
        gate.word_order, gate.enabled, gate.serial = word_order, bool(enabled), serial
        gate.save()
        if _device(gate) != before:
            # Pointed elsewhere, the gate has reached nothing there yet; kept, what it had
            # reached before came back with it when it was pointed back, and ranked it
            # first at a controller another territory's gate had served since (bridge
            # audit, stop 24).
            GateStatus.update(reached=None).where(GateStatus.gate == gate.id).execute()
        return gate

    return _claiming_controller(territory_id, gate_id, host, port, unit_id, write)


def delete_gate(territory_id: int, gate_id: int, now: dt.datetime | None = None) -> Gate:
    """«Удалить ворота»: the gate goes, with its state and its commands; its events stay in
    the log («без ворот»), and its controller and name are free for another gate. The bridge
    lets go of the controller at once (the territory's version moves).

    Not while an «Открыть» is on its way (a few seconds at most): its row would go with the
    gate, and the opening the controller then made was logged nowhere (audit, stop 23)."""
    now = now or utcnow()
    with serialised():
        gate = territory_gate(territory_id, gate_id)
        lock_gate(gate.id)  # as a press does: one committing meanwhile is seen here
        if _on_its_way(gate, now).exists():
            raise DomainError(_l("Ворота сейчас открываются — удалите их через несколько секунд"))
        gate.delete_instance()
        versions.bump(territory_id)
    return gate


# ---------------------------------------------------------------------------------------
# What the bridge (possibly another process) tells the web, and what the web asks of it.

ONLINE_WITHIN = dt.timedelta(seconds=3)
# A command not picked up by the bridge within this long is dropped: it never fires later.
COMMAND_MAX_AGE = dt.timedelta(seconds=2)
# The web gives up waiting for a command's result after this long.
COMMAND_GIVE_UP = dt.timedelta(seconds=4)
GATE_STATES = {
    0: _l("неизвестно"),
    1: _l("закрыты"),
    2: _l("открываются"),
    3: _l("открыты"),
    4: _l("закрываются"),
    5: _l("остановлены"),
    6: _l("авария"),
}
STATUSES = {"online": _l("в сети"), "offline": _l("не в сети"), "fault": _l("неисправность")}
# What is wrong with a controller (GateStatus.error_kind, gatebridge.poller.ErrorKind), in
# words a manager understands, chosen when the page is rendered.
CONTROLLER_ERRORS = {
    "unreachable": _l("Нет связи с контроллером"),
    "no_answer": _l("Контроллер не отвечает"),
    "device_error": _l("Контроллер отвечает ошибкой"),
    "decision_refused": _l("Контроллер не принял решение"),
    "stuck": _l("Контроллер завис: пульс не меняется"),
    "gate_fault": _l("Авария ворот, код %(code)s"),
    "controller_taken": _l("Этот контроллер уже обслуживает другие ворота: укажите адрес "
                           "своего контроллера"),
    "unsupported": _l("Контроллер говорит на другой версии протокола: нужна GATE-CTL v1"),
    "address_not_allowed": _l("Адрес не из сети контроллеров, которую разрешил администратор "
                              "установки: мост к нему не подключается"),
    "wrong_serial": _l("По этому адресу отвечает контроллер с другим серийным номером: "
                       "проверьте адрес и серийный номер"),
}


class GateStatus(BaseModel):
    """The controller's state as the bridge last saw it, for the console and «Открыть»."""

    gate = ForeignKeyField(Gate, primary_key=True, backref="status_rows", on_delete="CASCADE")
    status = CharField(default="offline")  # online, offline, fault
    last_seen_at = UtcDateTimeField(null=True)
    heartbeat = IntegerField(null=True)
    gate_state = SmallIntegerField(default=0)
    fault_code = IntegerField(default=0)
    error_kind = CharField(null=True, max_length=40)  # a key of CONTROLLER_ERRORS
    last_error = CharField(null=True, max_length=500)  # its technical detail
    updated_at = UtcDateTimeField(default=utcnow)
    # The controller's identity the bridge reached for the gate, and at which address (JSON,
    # gatebridge.service.reached_json): kept for the next bridge, so that a gate switched off
    # keeps its controller across a restart too.
    reached = CharField(null=True, max_length=400)

    def shown_status(self, now: dt.datetime | None = None) -> str:
        """online/offline/fault, offline also when the bridge stopped reporting."""
        if not self.is_fresh(now):
            return "offline"
        return self.status

    def is_fresh(self, now: dt.datetime | None = None) -> bool:
        """Seen answering within the last 3 s."""
        now = now or utcnow()
        return self.last_seen_at is not None and now - self.last_seen_at <= ONLINE_WITHIN

    def status_label(self, now: dt.datetime | None = None) -> str:
        """The status in the reader's language."""
        return str(STATUSES[self.shown_status(now)])

    @property
    def gate_state_label(self) -> str:
        """The barrier's position in the reader's language."""
        return str(GATE_STATES.get(self.gate_state, self.gate_state))

    @property
    def error_label(self) -> str | None:
        """What is wrong, in the reader's language; None when nothing is."""
        if self.error_kind == "gate_fault":
            return str(CONTROLLER_ERRORS["gate_fault"]) % {"code": self.fault_code}
        if self.error_kind in CONTROLLER_ERRORS:
            return str(CONTROLLER_ERRORS[self.error_kind])
        # A row written before kinds were stored holds the bridge's own text, in no
        # particular language: say that something is wrong, the text goes in the tooltip.
        return str(_l("Ошибка контроллера")) if self.last_error else None


def save_status(
    gate_id: int,
    *,
    status: str,
    last_seen_at: dt.datetime | None,
    heartbeat: int | None,
    gate_state: int,
    fault_code: int,
    last_error: str | None,
    error_kind: str | None = None,
    reached: str | None = None,
) -> None:
    """Store what the bridge sees of a controller (one upsert); `reached` only when given."""
    values = {
        GateStatus.status: status,
        GateStatus.last_seen_at: last_seen_at,
        GateStatus.heartbeat: heartbeat,
        GateStatus.gate_state: int(gate_state),
        GateStatus.fault_code: fault_code,
        GateStatus.error_kind: error_kind,
        GateStatus.last_error: (last_error or None) and last_error[:500],
        GateStatus.updated_at: utcnow(),
    }
    gate = Gate.get_or_none(Gate.id == gate_id)
    if gate is None:
        return  # deleted meanwhile
    if reached is not None and _reached_device(reached) == _device(gate):
        # Only what was reached at the gate's address as it is now: the bridge may still
        # hold the old one for a moment after an edit (see update_gate).
        values[GateStatus.reached] = reached
    (
        GateStatus.insert({GateStatus.gate: gate_id, **values})
        .on_conflict(conflict_target=[GateStatus.gate], update=values)
        .execute()
    )


def _device(gate: Gate) -> list:
    """What names a gate's controller, as the bridge stores it with what it reached
    (gatebridge ControllerConfig.device): address, port, unit, serial."""
    return [gate.host, gate.port, gate.unit_id, gate.serial]


def _reached_device(reached: str) -> list | None:
    try:
        found = json.loads(reached)
        return list(found["device"])
    except (ValueError, KeyError, TypeError):
        return None


def statuses(territory_id: int) -> dict[int, GateStatus]:
    """The stored status of each gate of the territory, by gate id."""
    query = GateStatus.select().join(Gate).where(Gate.territory == territory_id)
    return {row.gate_id: row for row in query}


def gate_online(gate_id: int, now: dt.datetime | None = None) -> bool:
    """Did the bridge see this controller answer within the last 3 s?"""
    row = GateStatus.get_or_none(GateStatus.gate == gate_id)
    return row is not None and row.is_fresh(now) and row.status != "offline"


# Why an «Открыть» press did not open (GateCommand.failure): the poller's CommandResult
# reasons and the web's own, in the reader's words.
COMMAND_FAILURES = {
    "offline": _l("Ворота не в сети — открыть сейчас нельзя"),
    "unknown_gate": _l("Ворота ещё не подключены"),
    # Read by a resident at the gate: what happened and what to do, not the protocol's terms.
    "rejected": _l("Ворота не открылись: контроллер отклонил команду"),
    "not_confirmed": _l("Ворота не подтвердили, что открылись. Проверьте и нажмите ещё раз"),
    "timeout": _l("Ворота не ответили вовремя. Нажмите ещё раз"),
    "stale": _l("Команда не отправлена: прошло слишком много времени. Нажмите ещё раз"),
    "access_ended": _l("Доступ закрыт — ворота не открыты"),
}


class GateCommand(BaseModel):
    """An «Открыть» press on its way to the controller, through the database.

    The web writes it `pending`; the bridge claims it (`sending`), sends it and writes
    `done` or `failed`. One older than COMMAND_MAX_AGE is never sent.
    """

    gate = ForeignKeyField(Gate, backref="commands", on_delete="CASCADE")
    territory = ForeignKeyField(Territory, on_delete="CASCADE")
    account = ForeignKeyField(Account, null=True, on_delete="SET NULL")
    reason = CharField(default="phone")  # phone, operator
    created_at = UtcDateTimeField(default=utcnow)
    status = CharField(default="pending", index=True)  # pending, sending, done, failed
    failure = CharField(null=True, max_length=40)  # a key of COMMAND_FAILURES when failed
    message = CharField(default="", max_length=500)  # the technical detail
    done_at = UtcDateTimeField(null=True)

    @property
    def finished(self) -> bool:
        """done or failed: the widget stops polling."""
        return self.status in ("done", "failed")

    @property
    def failure_label(self) -> str:
        """Why it did not open, in the reader's language."""
        if self.failure in COMMAND_FAILURES:
            return str(COMMAND_FAILURES[self.failure])
        # A row written before failures had keys: its message was meant for people then.
        return self.message or str(_l("Не удалось открыть"))


def _press_event(command: GateCommand, code: int, reason: str) -> GateEvent:
    gate = command.gate
    return record_event(
        command.territory_id,
        code=code,
        reason=reason,
        kind="phone" if command.reason == "phone" else "manual",
        direction=gate.event_direction,
        gate=gate,
        account=command.account_id if command.reason == "phone" else None,
        actor=command.account_id,
        source="web" if code != 1 else "bridge",
    )


def finish_command(command_id: int, ok: bool, message: str = "", failure: str = "") -> bool:
    """Write the outcome of a claimed command and its event; False if someone else finished it.

    `failure` is a key of COMMAND_FAILURES (what the person reads), `message` the detail.
    """
    with db.atomic():
        done = (
            GateCommand.update(
                status="done" if ok else "failed", failure=None if ok else failure or None,
                message=message[:500], done_at=utcnow()
            )
            .where((GateCommand.id == command_id) & GateCommand.status.in_(["pending", "sending"]))
            .execute()
        )
        if not done:
            return False
        command = GateCommand.get_by_id(command_id)
        if ok:
            _press_event(command, 1, _open_reason(command))
        else:
            _press_event(command, 6, "gate_offline" if failure == "offline" else "gate_failed")
    return True


def _open_reason(command: GateCommand) -> str:
    return "member" if command.reason == "phone" else "operator_open"


def _on_its_way(gate: Gate, now: dt.datetime):
    """The gate's commands still waiting for the bridge (not given up on yet)."""
    return GateCommand.select().where(
        (GateCommand.gate == gate) & GateCommand.status.in_(("pending", "sending"))
        & (GateCommand.created_at > now - COMMAND_GIVE_UP))


def lock_gate(gate_id: int) -> None:
    """Inside serialised(): hold the gate's row (FOR UPDATE) on PostgreSQL; on SQLite,
    BEGIN IMMEDIATE already lets one writer at a time in."""
    for_update(Gate.select(Gate.id).where(Gate.id == gate_id)).first()


class PressRefused(DomainError):
    """The person may not open the gate any more: `decision` says why."""

    def __init__(self, decision) -> None:
        super().__init__(decision.reason_label)
        self.decision = decision


def request_open(
    gate: Gate, account_id: int, reason: str, now: dt.datetime | None = None, *,
    member_id: int | None = None, recheck=None,
) -> GateCommand:
    """Ask the bridge to open `gate`; fails at once (DomainError) when it is not online.

    The caller has checked the person may open this gate. Every press is an event: a
    failure here is recorded at once, a success when the bridge reports it.

    `recheck()` decides again (an access.Decision) with the person's membership
    (`member_id`) and account held: a member removed or an account blocked while the press
    was on its way got the gate opened (concurrency audit, stop 24). A removal or a block
    committed first is seen here (PressRefused); one that comes after waits for this press
    and then fails it (drop_presses).
    """
    now = now or utcnow()
    if not gate.enabled:
        raise DomainError(_l("Ворота отключены"))
    online = gate_online(gate.id, now)
    with serialised():
        lock_gate(gate.id)
        if member_id is not None:
            lock_membership(member_id)
            _lock_account(account_id)
        if recheck is not None:
            decision = recheck()
            if not decision.granted:
                raise PressRefused(decision)
        # The same person's press before the last one is answered (a double tap, a slow
        # network) is that press: the controller acts on every command, and two taps
        # opened the barrier twice (audit, stop 23).
        waiting = _on_its_way(gate, now).where(GateCommand.account == account_id).order_by(
            GateCommand.id.desc()).first() if online else None
        if waiting is not None:
            return waiting
        command = GateCommand.create(
            gate=gate, territory=gate.territory_id, account=account_id, reason=reason,
            created_at=now,
        )
        if not online:
            command.status, command.done_at, command.failure = "failed", now, "offline"
            command.save()
            _press_event(command, 6, "gate_offline")
    if not online:
        raise DomainError(COMMAND_FAILURES["offline"])
    return command


def _lock_account(account_id: int) -> None:
    """Inside serialised(): hold the account's row on PostgreSQL (a block waits for it)."""
    for_update(Account.select(Account.id).where(Account.id == account_id)).first()


def drop_presses(account_id: int, reason: str, territory_id: int | None = None) -> int:
    """Fail the account's presses the bridge has not taken yet (of one territory, or all):
    its access has just ended. Each is logged as refused, with `reason`. Returns how many."""
    from domain.access import DENY_BLOCKED

    now = utcnow()
    waiting = GateCommand.select().where((GateCommand.account == account_id)
                                         & (GateCommand.status == "pending"))
    if territory_id is not None:
        waiting = waiting.where(GateCommand.territory == territory_id)
    dropped = 0
    for command in waiting:
        failed = GateCommand.update(status="failed", failure="access_ended", done_at=now).where(
            (GateCommand.id == command.id) & (GateCommand.status == "pending")).execute()
        if failed:
            _press_event(command, DENY_BLOCKED, reason)
            dropped += 1
    return dropped


def command_of(territory_id: int, command_id: int, account_id: int | None = None) -> GateCommand:
    """A command of the territory (and of the account, when given); NotFound otherwise.

    A pending one the bridge has not answered in time is failed here, so the widget
    stops and the bridge never fires it later.
    """
    query = GateCommand.select().where(
        (GateCommand.id == command_id) & (GateCommand.territory == territory_id)
    )
    if account_id is not None:
        query = query.where(GateCommand.account == account_id)
    command = query.first()
    if command is None:
        raise NotFound(_l("Команда не найдена"))
    if not command.finished and utcnow() - command.created_at > COMMAND_GIVE_UP:
        finish_command(command.id, False, "no result from the bridge", failure="timeout")
        command = GateCommand.get_by_id(command.id)
    return command
