"""Demo data for a first look: territories of every kind, people in every role, an admin."""

from __future__ import annotations

import datetime as dt

from domain import accounts, billing, territories
from domain.accounts import Account
from domain.db import db, utcnow
from domain.territories import JoinRequest, Membership, Territory, Unit

# Demo logins are printed by seed-demo on purpose: they exist to be tried.
PASSWORD = "demo2024pass"  # noqa: S105
ADMIN_PASSWORD = "admin2024pass"  # noqa: S105

PEOPLE = [
    # role, phone, e-mail, surname, name, patronymic
    ("admin", "+79990000001", "admin@propusk.demo", "Админов", "Андрей", "Петрович"),
    ("manager", "+79990000002", "manager@propusk.demo", "Управляева", "Мария", "Сергеевна"),
    ("resident", "+79990000003", "resident@propusk.demo", "Федоров", "Роман", "Георгиевич"),
    ("operator", "+79990000004", "guard@propusk.demo", "Охранов", "Олег", "Иванович"),
    ("applicant", "+79990000005", "new@propusk.demo", "Новикова", "Нина", "Олеговна"),
]

TERRITORIES = [
    ("kindergarten", "Детский сад «Солнышко»", "ул. Садовая, 12", ["Группа 1", "Группа 2"]),
    ("residential", "ЖК «Северный парк»", "Северный пр., 48",
     ["Участок 632 и 633 (дом 148)", "Дом 12, кв. 5"]),
    ("business", "Бизнес-центр «Орион»", "Деловая ул., 7", ["Офис 301", "Офис 415"]),
    ("other", "Спортивный комплекс «Волна»", "Набережная, 3", ["Секция плавания"]),
]
# Account numbers («лицевой счёт») for «+ Добавить объект»; the unit is made if missing.
ACCOUNT_NUMBERS = {"ЖК «Северный парк»": [("Дом 12, кв. 7", "100200300")]}


def _account(phone: str, email: str, surname: str, name: str, patronymic: str,
             admin: bool) -> Account:
    found = Account.get_or_none(Account.phone == phone)
    if found:
        return found
    return accounts.create_account(
        phone=phone, email=email, surname=surname, name=name, patronymic=patronymic,
        password=ADMIN_PASSWORD if admin else PASSWORD, is_admin=admin, email_confirmed=True,
    )


def _join(account: Account, territory: Territory, role: str, unit: Unit | None) -> None:
    Membership.get_or_create(
        account=account, territory=territory, defaults={"role": role, "unit": unit}
    )


def seed_demo() -> list[tuple[str, str, str]]:
    """Create the demo data unless present; returns (role, login, password) per demo login."""
    with db.atomic():
        people = {
            role: _account(phone, email, surname, name, patronymic, role == "admin")
            for role, phone, email, surname, name, patronymic in PEOPLE
        }
        manager = people["manager"]
        for kind, name, address, units in TERRITORIES:
            territory = Territory.get_or_none(Territory.name == name)
            if territory is None:
                territory = territories.create_territory(
                    manager, name=name, kind=kind, address=address
                )
            made = [
                Unit.get_or_create(territory=territory, name=unit_name)[0] for unit_name in units
            ]
            if kind in ("kindergarten", "residential"):
                _join(people["resident"], territory, "resident", made[0])
            if kind == "residential":
                # Paid app access, so the demo resident's «Открыть» works at once.
                billing.AccessGrant.get_or_create(
                    account=people["resident"], territory=territory,
                    defaults={"paid_until": utcnow() + dt.timedelta(days=365)},
                )
            if kind in ("residential", "business"):
                _join(people["operator"], territory, "operator", None)
            for unit_name, number in ACCOUNT_NUMBERS.get(name, []):
                Unit.get_or_create(
                    territory=territory, name=unit_name, defaults={"account_number": number}
                )
            if kind == "residential":
                JoinRequest.get_or_create(
                    account=people["applicant"], territory=territory,
                    defaults={"unit_label": "Участок 17 (дом 9)"},
                )
                _passes_and_gate(territory, people)
            if kind == "kindergarten":
                billing.seed_demo_tariffs(territory)
    # Every demo account signs in, so every one is printed: the applicant too (a join
    # request waiting for the manager's answer).
    return [
        (role, people[role].phone, ADMIN_PASSWORD if role == "admin" else PASSWORD)
        for role, *_person in PEOPLE
    ]


# (whose, plate, starts in days, ends in days or None for a permanent pass)
DEMO_PASSES = [
    ("resident", "A777AA77", 0, 7),
    ("resident", "B123OP777", 0, None),
    ("resident", "K456MH50", -3, -1),
    ("manager", "E100TT01", 1, 2),
]


def _passes_and_gate(territory: Territory, people: dict[str, Account]) -> None:
    """A few passes in every state and the demo gate «Въезд» (the simulator's 127.0.0.1:5020)."""
    from domain.db import utcnow
    from domain.gates import Gate
    from domain.passes import VehiclePass

    now = utcnow()
    for role, plate, start, end in DEMO_PASSES:
        owner = people[role]
        if VehiclePass.select().where(
            (VehiclePass.territory == territory) & (VehiclePass.account == owner)
            & (VehiclePass.plate == plate)
        ).exists():
            continue
        member = Membership.get(account=owner, territory=territory)
        VehiclePass.create(
            territory=territory, account=owner, unit=member.unit_id, plate=plate,
            valid_from=now + dt.timedelta(days=start),
            valid_to=None if end is None else now + dt.timedelta(days=end),
            created_by=owner,
        )
    # The simulator's controller (`make run`) is found by its address, not by the gate's name:
    # a manager may have renamed the gate, and one controller takes one gate (migration 7).
    # A territory that has a gate already keeps it as it is: re-pointed at a real controller,
    # it is still the demo's «Въезд», and a second one would take its name.
    if Gate.get_or_none(host="127.0.0.1", port=5020, unit_id=1) is None and not (
            Gate.select().where(Gate.territory == territory).exists()):
        Gate.create(territory=territory, name="Въезд", host="127.0.0.1", port=5020, unit_id=1,
                    direction="both")
