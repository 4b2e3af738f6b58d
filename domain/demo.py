"""Demo data for a first look: territories of every kind, people in every role, an admin."""

from __future__ import annotations

from domain import accounts, billing, territories
from domain.accounts import Account
from domain.db import db
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
            if kind in ("residential", "business"):
                _join(people["operator"], territory, "operator", None)
            if kind == "residential":
                JoinRequest.get_or_create(
                    account=people["applicant"], territory=territory,
                    defaults={"unit_label": "Участок 17 (дом 9)"},
                )
            if kind == "kindergarten":
                billing.seed_demo_tariffs(territory)
    return [
        (role, people[role].phone, ADMIN_PASSWORD if role == "admin" else PASSWORD)
        for role in ("admin", "manager", "resident", "operator")
    ]
