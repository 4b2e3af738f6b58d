"""Bad input refused by the domain, against the real database: names in the profile, one
live pass per plate and resident at a time, unit and gate names unique up to case and spaces."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from domain import accounts
from domain.accounts import Account
from domain.db import db
from domain.errors import DomainError
from domain.gates import Gate, add_gate, gate_problems
from domain.passes import VehiclePass, file_pass
from domain.territories import (
    CsvError,
    Membership,
    Unit,
    add_unit,
    attach,
    create_territory,
    import_units_csv,
    rename_unit,
)

NOW = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)  # 12:00 in Moscow
DAY = dt.timedelta(days=1)
_n = iter(range(1000, 9999))


@pytest.fixture
def ctx(app):
    with app.test_request_context():
        yield


def person(**fields) -> Account:
    fields.setdefault("surname", "Федоров")
    fields.setdefault("name", "Роман")
    return Account.create(phone=f"+7999777{next(_n):04d}", **fields)


# --- 1. update_profile ----------------------------------------------------------------------


@pytest.mark.parametrize(("surname", "name", "field", "message"), [
    ("", "Иван", "surname", "Введите фамилию"),
    ("  ", "Иван", "surname", "Введите фамилию"),
    ("Иванов", " \t", "name", "Введите имя"),
])
def test_update_profile_refuses_an_empty_surname_or_name(ctx, surname, name, field, message):
    me = person()
    with pytest.raises(DomainError) as refused:
        accounts.update_profile(me, surname=surname, name=name, patronymic="")
    assert (refused.value.field, str(refused.value.message)) == (field, message)
    assert (me.surname, me.name) == ("Федоров", "Роман")
    fresh = Account.get_by_id(me.id)
    assert (fresh.surname, fresh.name) == ("Федоров", "Роман")


def test_update_profile_refuses_to_clear_an_e_mail(ctx):
    with_phone = person(email="a@example.ru")
    with pytest.raises(DomainError) as refused:
        accounts.update_profile(with_phone, surname="Иванов", name="Иван", patronymic="",
                                email="")
    assert refused.value.field == "email"
    assert str(refused.value.message) == (
        "E-mail нельзя удалить здесь, можно только сменить на другой")
    only_mail = Account.create(email="b@example.ru", surname="Почтова", name="Анна")
    with pytest.raises(DomainError) as refused:
        accounts.update_profile(only_mail, surname="Почтова", name="Анна", patronymic="",
                                email="  ")
    assert str(refused.value.message) == (
        "E-mail нельзя удалить: по нему вы входите. Можно сменить его на другой")
    assert Account.get_by_id(with_phone.id).surname == "Федоров"
    # Not asked about the e-mail, or none to clear: the names are saved.
    accounts.update_profile(with_phone, surname=" Иванов ", name="Иван", patronymic="")
    accounts.update_profile(person(), surname="Петров", name="Пётр", patronymic="", email="")
    assert Account.get_by_id(with_phone.id).surname == "Иванов"


# --- 2. file_pass: one live pass per plate at a time ----------------------------------------


@pytest.fixture
def yard(ctx):
    manager = person()
    territory = create_territory(manager, name="ЖК", kind="residential")
    territory.max_permanent_passes = 2
    territory.save()
    members = [Membership.create(account=person(surname=f"Житель{i}"), territory=territory,
                                 role="resident") for i in range(2)]
    for member in members:
        member.territory = territory
    return members


def _file(member, plate="А777АА999", start=NOW, end=NOW + DAY, permanent=False):
    return file_pass(member, plate=plate, valid_from=start, valid_to=end, permanent=permanent,
                     now=NOW)


def _refusal(member, **kwargs) -> str:
    with pytest.raises(DomainError) as refused:
        _file(member, **kwargs)
    assert refused.value.field == "plate"
    return str(refused.value.message)


def test_the_same_plate_is_refused_for_an_overlapping_period(yard):
    me, neighbour = yard
    _file(me, plate="а 777 аа 999")
    assert _refusal(me, plate="A777AA999") == (
        "На этот номер уже есть действующий пропуск до 04.12.2026 12:00")
    assert _refusal(me, permanent=True) == (
        "На этот номер уже есть действующий пропуск до 04.12.2026 12:00")
    # A neighbour expecting the same car files their own pass.
    _file(neighbour, start=NOW + DAY / 2, end=NOW + 3 * DAY)
    # Right after mine ends, and another plate, are free.
    _file(me, start=NOW + DAY, end=NOW + 2 * DAY)
    _file(me, plate="В123ВВ77")
    assert VehiclePass.select().count() == 4


def test_a_permanent_pass_overlaps_everything_after_its_start(yard):
    me, neighbour = yard
    _file(me, permanent=True, start=NOW + DAY)
    assert _refusal(me, start=NOW + 300 * DAY, end=NOW + 301 * DAY) == (
        "На этот номер уже есть постоянный пропуск")
    _file(neighbour, permanent=True)  # the neighbour's own pass
    # Before it starts there is room.
    _file(me, start=NOW, end=NOW + DAY)
    assert VehiclePass.select().count() == 3


def test_revoked_and_ended_passes_do_not_count(yard):
    me, _neighbour = yard
    revoked = _file(me)
    revoked.revoked_at = NOW
    revoked.save()
    VehiclePass.create(territory=me.territory, account=me.account_id, plate="A777AA999",
                       valid_from=NOW - 3 * DAY, valid_to=NOW - DAY)
    _file(me)
    assert VehiclePass.select().where(VehiclePass.revoked_at.is_null()).count() == 2


# --- 4. Unit names up to case and spaces ----------------------------------------------------


@pytest.fixture
def place(ctx):
    return create_territory(person(), name="ЖК", kind="residential")


def _unit_refusal(call, *args) -> str:
    with pytest.raises(DomainError) as refused:
        call(*args)
    assert refused.value.field == "name"
    return str(refused.value.message)


def test_unit_names_are_unique_up_to_case_and_spaces(place):
    home = add_unit(place, "Дом 99")
    assert _unit_refusal(add_unit, place, "дом 99") == "Такой объект уже есть"
    assert _unit_refusal(add_unit, place, "  ДОМ   99 ") == "Такой объект уже есть"
    other = add_unit(place, "Дом 98")
    assert _unit_refusal(rename_unit, place, other.id, "дом 99") == "Такой объект уже есть"
    # A unit keeps its own name in another case.
    assert rename_unit(place, home.id, "дом 99").name == "дом 99"
    assert Unit.select().where(Unit.territory == place).count() == 2


def test_a_new_unit_by_name_finds_the_same_unit_in_another_case(place):
    home = add_unit(place, "Дом 99")
    member = attach(person(), place, "resident", "ДОМ 99")
    assert member.unit_id == home.id
    assert Unit.select().where(Unit.territory == place).count() == 1


def test_csv_import_matches_units_up_to_case(place):
    home = add_unit(place, "Дом 99")
    created, updated = import_units_csv(place, "дом 99;123\nДом 100;124\n".encode())
    assert (created, updated) == (1, 1)
    assert Unit.get_by_id(home.id).account_number == "123"
    assert Unit.select().where(Unit.territory == place).count() == 2
    with pytest.raises(CsvError) as refused:
        import_units_csv(place, "Дом 101;1\nдом  101;2\n".encode())
    assert refused.value.lines == ["Строка 2: объект «дом 101» уже был в строке 1"]
    assert Unit.select().where(Unit.territory == place).count() == 2


# --- 5. Gate names up to case and spaces ----------------------------------------------------


def _problems(territory, name, gate_id=None):
    return gate_problems(territory.id, name=name, host="10.0.0.9", port=502, unit_id=1,
                         direction="both", poll_ms=200, word_order="big", gate_id=gate_id)


def test_gate_names_are_unique_in_a_territory(place):
    entry = add_gate(place, name="Въезд", host="10.0.0.5", port=502)
    assert str(_problems(place, " въезд ")["name"]) == "Ворота с таким названием уже есть"
    with pytest.raises(DomainError) as refused:
        add_gate(place, name="ВЪЕЗД", host="10.0.0.6", port=502)
    assert refused.value.field == "name"
    # Its own name, and the same name in another territory, are no clash.
    assert "name" not in _problems(place, "въезд", entry.id)
    elsewhere = create_territory(person(), name="Другой", kind="residential")
    add_gate(elsewhere, name="Въезд", host="10.0.0.7", port=502)
    assert Gate.select().count() == 2


def test_two_filings_of_one_plate_at_once_make_one_pass(app):
    """A resident's form sent twice at the same moment (two taps, two tabs), each on a
    connection of its own: one pass."""
    with app.test_request_context():
        territory = create_territory(person(), name="ЖК", kind="residential")
        member = Membership.create(account=person(), territory=territory, role="resident")
        members = [member, member]
    for _round in range(5):
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def file(member_id: int, barrier=barrier, outcomes=outcomes) -> None:
            with app.test_request_context():
                db.connect(reuse_if_open=True)
                try:
                    member = Membership.get_by_id(member_id)
                    barrier.wait()
                    file_pass(member, plate="А777АА999", valid_from=NOW, valid_to=NOW + DAY,
                              now=NOW)
                    outcomes.append("filed")
                except DomainError as error:
                    outcomes.append(str(error.message))
                finally:
                    db.close()

        threads = [threading.Thread(target=file, args=(m.id,)) for m in members]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == [
            "filed", "На этот номер уже есть действующий пропуск до 04.12.2026 12:00"]
        with app.app_context(), db.connection_context():
            VehiclePass.delete().execute()
