"""The one place that says yes or no at a gate: `decide(territory, credential, direction, now)`.

The web app (the operator's «Проверить номер», «Открыть» on a phone) and the gatebridge ask
the same function, so a gate and a screen never disagree. Pure reads: the caller records
the event. Codes are GATE-CTL v1 decision codes (GATE_PROTOCOL.md, holding register 101).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from peewee import JOIN

from domain import billing
from domain.accounts import Account
from domain.passes import VehiclePass, normalize_plate
from domain.prepared import Prepared, Slot
from domain.territories import Membership, Territory, Unit

GRANT, DENY_NO_PASS, DENY_EXPIRED, DENY_UNKNOWN, DENY_BLOCKED, TRY_AGAIN = 1, 2, 3, 4, 5, 6
ENTRY, EXIT = 1, 2

REASONS = {
    "pass_valid": _l("Пропуск действует"),
    "exit_free": _l("Выезд свободный"),
    "exit_after_pass": _l("Выезд: пропуск закончился или отозван"),
    "exit_button": _l("Кнопка выхода"),
    "member": _l("Участник территории"),
    "operator_open": _l("Открыто оператором"),
    "no_pass": _l("Нет действующего пропуска"),
    "pass_expired": _l("Срок пропуска истёк"),
    "pass_not_started": _l("Пропуск ещё не начал действовать"),
    "revoked": _l("Пропуск отозван"),
    "unknown_plate": _l("Номер не найден"),
    "unknown_card": _l("Карта не найдена"),
    "pin_unsupported": _l("PIN не поддерживается"),
    # What a controller may report that carries nothing Propusk can check.
    "plate_unreadable": _l("Номер не распознан"),
    "remote_unsupported": _l("Пульты не поддерживаются"),
    "unknown_event": _l("Неизвестный тип события"),
    "card_valid": _l("Карта действует"),
    "card_expired": _l("Срок действия карты истёк"),
    "card_not_approved": _l("Карта ожидает подтверждения управляющего"),
    "account_blocked": _l("Владелец заблокирован"),
    "not_member": _l("Владелец больше не состоит в территории"),
    "owner_operator": _l("Владелец — охранник: пропуска охранников не действуют"),
    "not_paid": _l("Доступ по приложению не оплачен"),
    "passes_off": _l("Пропуска на автомобили на территории выключены"),
    "unknown_territory": _l("Территория не найдена"),
    "unavailable": _l("Система недоступна, повторите"),
    # An «Открыть» press that did not open: the controller was away, or did not do it.
    "gate_offline": _l("Контроллер не на связи"),
    "gate_failed": _l("Контроллер не открыл ворота"),
}


def reason_label(reason: str) -> str:
    """A reason key in the reader's language."""
    label = REASONS.get(reason)
    return str(label) if label is not None else reason


@dataclass(frozen=True)
class Credential:
    """What was presented: a plate (as read or typed), a card number, an account id
    (the phone's «Открыть»), or a PIN typed on a gate's keypad."""

    kind: str  # "plate" | "card" | "account" | "pin"
    value: str


@dataclass(frozen=True)
class Decision:
    """The answer for a gate, with what it rests on.

    `valid_until` is when this answer stops being true by the clock alone (a pass ends or
    starts); None means no time-driven change is known — the answer changes only when data
    does (a pass filed or revoked, an account blocked), which the bridge's cache must learn
    from its own invalidation, not from this field.
    """

    code: int
    reason: str
    account_id: int | None = None
    pass_id: int | None = None
    valid_until: dt.datetime | None = None

    @property
    def granted(self) -> bool:
        """True when the gate opens."""
        return self.code == GRANT

    @property
    def reason_label(self) -> str:
        """The reason in the reader's language."""
        return reason_label(self.reason)


def decide(
    territory_id: int | Territory, credential: Credential, direction: int, now: dt.datetime
) -> Decision:
    """Yes or no for `credential` at a gate of the territory, going `direction` (1 in, 2 out).

    - exit is free when the territory's free_exit is on (default), also after a pass ended;
    - a plate enters with a non-revoked pass of the territory whose period covers `now`,
      owned by a member in good standing (a membership exists, the account is not blocked);
    - an account (the phone's «Открыть») passes when it is a member in good standing whose
      app access is paid (or free in the territory);
    - a card passes when it is bound in the territory, covered by a purchase or approved by the
      manager until a time still ahead, and its holder is a member in good standing;
    - a PIN is refused: GATE-CTL carries one, but nothing in Propusk issues or stores PINs.

    A caller that holds the Territory row already (a web request's scope) may pass it
    instead of the id and save a query on the hot path.
    """
    if isinstance(territory_id, Territory):
        territory = territory_id
    else:
        territory = Territory.get_or_none(Territory.id == territory_id)
    if territory is None:
        return Decision(DENY_UNKNOWN, "unknown_territory")
    if direction == EXIT and territory.free_exit:
        return Decision(GRANT, "exit_free")
    if credential.kind == "plate":
        return _decide_plate(territory, normalize_plate(credential.value), direction, now)[0]
    if credential.kind == "account":
        return _decide_account(territory, credential.value, now)
    if credential.kind == "card":
        return _decide_card(territory, credential.value, now)
    if credential.kind == "pin":
        return Decision(DENY_UNKNOWN, "pin_unsupported")
    return Decision(DENY_UNKNOWN, "unknown_plate")


def _standing(territory: Territory, account_id: int) -> tuple[Membership | None, str | None]:
    """The member's membership and the reason they are not in good standing (None if they are)."""
    member = (
        Membership.select(Membership, Account)
        .join(Account)
        .where((Membership.territory == territory) & (Membership.account == account_id))
        .first()
    )
    if member is None:
        return None, "not_member"
    if member.account.blocked:
        return member, "account_blocked"
    return member, None


def standing_refusal(territory: Territory | int, account_id: int) -> Decision | None:
    """Why the account may not act in the territory now (not a member, blocked), or None."""
    _member, problem = _standing(territory, account_id)
    return None if problem is None else Decision(DENY_BLOCKED, problem, account_id=account_id)


def _decide_account(territory: Territory, value: str, now: dt.datetime) -> Decision:
    try:
        account_id = int(value)
    except (TypeError, ValueError):
        return Decision(DENY_UNKNOWN, "not_member")
    member, problem = _standing(territory, account_id)
    if member is None:
        return Decision(DENY_BLOCKED, "not_member")
    if problem is not None:
        return Decision(DENY_BLOCKED, problem, account_id=account_id)
    # App access («Оплачено до»), or free for every member where the territory says so.
    until = billing.app_access_until(account_id, territory.id, now)
    if until is None:
        return Decision(DENY_BLOCKED, "not_paid", account_id=account_id)
    valid_until = None if until >= billing.FAR_FUTURE else until
    return Decision(GRANT, "member", account_id=account_id, valid_until=valid_until)


def _decide_card(territory: Territory, value: str, now: dt.datetime) -> Decision:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return Decision(DENY_UNKNOWN, "unknown_card")
    found = billing.card_access(territory.id, number, now)
    if found is None:
        card = billing.Card.get_or_none(
            (billing.Card.territory == territory.id) & (billing.Card.number == number)
        )
        if card is None:
            return Decision(DENY_UNKNOWN, "unknown_card")
        if card.valid_until is None:
            # Bound, but no purchase covers it and the manager has not approved it yet.
            return Decision(DENY_NO_PASS, "card_not_approved")
        return Decision(DENY_EXPIRED, "card_expired")
    account_id, valid_until = found
    member, problem = _standing(territory, account_id)
    if member is None:
        return Decision(DENY_BLOCKED, "not_member", account_id=account_id)
    if problem is not None:
        return Decision(DENY_BLOCKED, problem, account_id=account_id)
    return Decision(GRANT, "card_valid", account_id=account_id, valid_until=valid_until)


# When several passes of a plate deny, the one that tells the most wins: an owner problem on
# a pass that would otherwise let the car in, then one about to start, then an ended one.
_DENIAL_RANK = {"account_blocked": 0, "not_member": 1, "owner_operator": 1,
                "pass_not_started": 2, "pass_expired": 3, "revoked": 4}
_DENIAL_CODE = {"account_blocked": DENY_BLOCKED, "not_member": DENY_BLOCKED,
                "owner_operator": DENY_NO_PASS,
                "pass_not_started": DENY_NO_PASS, "pass_expired": DENY_EXPIRED,
                "revoked": DENY_NO_PASS}


# One query, on every plate the bridge or an operator checks: the plate's passes with each
# owner (what the verdict shows of them), unit and membership here (`member`, None once they
# left). Composed once, re-bound (domain/prepared.py).
PLATE_PASSES = Prepared(lambda: (
    VehiclePass.select(VehiclePass, Account.id, Account.surname, Account.name,
                       Account.patronymic, Account.phone, Account.blocked,
                       Unit.id, Unit.name, Membership.id, Membership.role)
    .join(Account, on=(VehiclePass.account == Account.id))
    .switch(VehiclePass)
    .join(Unit, JOIN.LEFT_OUTER, on=(VehiclePass.unit == Unit.id))
    .switch(VehiclePass)
    .join(Membership, JOIN.LEFT_OUTER, attr="member", on=(
        (Membership.account == VehiclePass.account)
        & (Membership.territory == VehiclePass.territory)))
    .where((VehiclePass.territory == Slot("territory")) & (VehiclePass.plate == Slot("plate")))
    .order_by(VehiclePass.id)
))


def check_plate(
    territory: Territory, plate: str, now: dt.datetime
) -> tuple[Decision, VehiclePass | None]:
    """The operator's check: the entry decision for a plate, and the pass it rests on (with
    its owner and unit loaded), in the one query the gate's decision takes."""
    decision, passes = _decide_plate(territory, normalize_plate(plate), ENTRY, now)
    found = next((p for p in passes if p.id == decision.pass_id), None)
    return decision, found


def _decide_plate(
    territory: Territory, plate: str, direction: int, now: dt.datetime
) -> tuple[Decision, list[VehiclePass]]:
    """The decision for a plate and the plate's passes it was taken from."""
    if not territory.passes_enabled:
        return Decision(DENY_NO_PASS, "passes_off"), []
    passes = PLATE_PASSES(territory=territory, plate=plate) if plate else []
    if not passes:
        return Decision(DENY_NO_PASS if direction == EXIT else DENY_UNKNOWN,
                        "no_pass" if direction == EXIT else "unknown_plate"), []
    grants: list[VehiclePass] = []
    denials: list[tuple[str, VehiclePass]] = []
    for p in passes:
        reason = _pass_problem(p, direction, now)
        if reason is None and p.member is None:
            reason = "not_member"
        elif reason is None and p.account.blocked:
            reason = "account_blocked"
        elif reason is None and direction != EXIT and p.member.role == "operator":
            # Operators file no passes and see none: one left from before (made an operator
            # since, or taken back in as one) would let cars in with nobody to see it. Out
            # is another matter: exit is always allowed (SPEC §6).
            reason = "owner_operator"
        if reason is None:
            grants.append(p)
        else:
            denials.append((reason, p))
    if grants:
        # The pass that lasts longest decides how long the grant holds (None = for good).
        # On the way out a pass that would also let in tells the log the truth.
        current = [p for p in grants if _pass_problem(p, ENTRY, now) is None]
        lets_in = bool(current)
        best = max(current or grants,
                   key=lambda p: p.valid_to or dt.datetime.max.replace(tzinfo=dt.UTC))
        return Decision(GRANT, "pass_valid" if lets_in else "exit_after_pass", best.account_id,
                        best.id, best.valid_to if lets_in else None), passes
    reason, worst = min(denials, key=lambda d: (_DENIAL_RANK[d[0]], d[1].valid_from))
    # The refusal holds until the first of the plate's passes still to come starts, whichever
    # reason was shown: a blocked owner's pass refusing now must not hide a neighbour's pass
    # starting in a minute (the bridge's cache keeps a decision until `valid_until`).
    starts = [p.valid_from for _, p in denials if p.revoked_at is None and p.valid_from > now]
    until = min(starts) if starts else None
    return Decision(_DENIAL_CODE[reason], reason, worst.account_id, worst.id, until), passes


def _pass_problem(p: VehiclePass, direction: int, now: dt.datetime) -> str | None:
    """Why this pass does not let the car through `direction` at `now` (None if it does)."""
    if p.valid_from > now:
        return "revoked" if p.revoked_at is not None else "pass_not_started"
    # A pass's period and its revocation limit entry; with exit not free, a car that came in
    # may still leave (SPEC: exit is always allowed, also after the period).
    if direction == EXIT:
        return None
    if p.revoked_at is not None:
        return "revoked"
    if p.valid_to is not None and p.valid_to <= now:
        return "pass_expired"
    return None
