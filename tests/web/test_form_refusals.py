"""Bad input refused through the pages: empty names in the profile, a plate filed twice,
over-long plates at the check and in the log, two gates of one name, money shown back."""

from __future__ import annotations

import pytest
from flask_babel import force_locale

from blueprints.i18n import format_money
from domain.accounts import Account
from domain.db import db
from domain.gates import Gate
from domain.passes import VehiclePass
from domain.territories import Membership, Territory, Unit, create_territory
from tests.billing_fixtures import kindergarten
from tests.web.territory_kit import person, post, signed_in
from tests.web.test_form_mistakes import field_error, input_value

# --- 1. «Личные данные» -------------------------------------------------------------------


@pytest.fixture
def roman(app):
    """A signed-in person with a phone and an e-mail, and their browser."""
    with app.test_request_context():
        account = person("Федоров", email="roman@example.ru", patronymic="Георгиевич")
    return {"client": signed_in(app, account), "account": account}


def _names(account: Account) -> tuple[str, str, str, str | None]:
    with db.connection_context():
        fresh = Account.get_by_id(account.id)
    return fresh.surname, fresh.name, fresh.patronymic, fresh.email


@pytest.mark.parametrize("blank", ["", "   "])
def test_profile_wants_a_surname_and_a_name_at_their_fields(roman, blank):
    data = {"surname": blank, "name": blank, "patronymic": "Ильич", "email": "roman@example.ru"}
    response = post(roman["client"], "/profile/edit", data)
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "Данные сохранены" not in page
    assert field_error(page, "surname") == "Введите фамилию"
    assert field_error(page, "name") == "Введите имя"
    assert input_value(page, "patronymic") == "Ильич"
    assert _names(roman["account"]) == ("Федоров", "Имя", "Георгиевич", "roman@example.ru")


def test_profile_names_are_saved_without_extra_spaces(roman):
    data = {"surname": "  Иванов ", "name": " Иван  Петрович ", "patronymic": "",
            "email": "roman@example.ru"}
    assert post(roman["client"], "/profile/edit", data).status_code == 302
    assert _names(roman["account"])[:2] == ("Иванов", "Иван Петрович")


def test_clearing_the_e_mail_is_refused_at_its_field(roman):
    data = {"surname": "Иванов", "name": "Иван", "patronymic": "", "email": " "}
    response = post(roman["client"], "/profile/edit", data)
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "Данные сохранены" not in page
    assert field_error(page, "email") == (
        "E-mail нельзя удалить здесь, можно только сменить на другой")
    assert input_value(page, "surname") == "Иванов"
    # Nothing half-saved: the name stays too.
    assert _names(roman["account"]) == ("Федоров", "Имя", "Георгиевич", "roman@example.ru")


def test_an_e_mail_that_is_the_login_says_so(app):
    with app.test_request_context():
        account = person("Почтова", email_only=True)
    client = signed_in(app, account)
    data = {"surname": "Почтова", "name": "Анна", "patronymic": "", "email": ""}
    response = post(client, "/profile/edit", data)
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "email") == (
        "E-mail нельзя удалить: по нему вы входите. Можно сменить его на другой")


def test_no_e_mail_to_clear_is_no_mistake(app):
    with app.test_request_context():
        account = person("Телефонов")
    client = signed_in(app, account)
    data = {"surname": "Телефонов", "name": "Павел", "patronymic": "", "email": ""}
    assert post(client, "/profile/edit", data).status_code == 302
    assert _names(account) == ("Телефонов", "Павел", "", None)


# --- 2, 3. Passes: one plate once at a time; long plates at the check and in the log ------


@pytest.fixture
def yard(app):
    """A residential territory with two residents and an operator, each signed in."""
    with app.test_request_context():
        manager = person("Управляева")
        territory = create_territory(manager, name="ЖК", kind="residential")
        unit = Unit.create(territory=territory, name="Дом 1")
        people = {}
        for role, surname in (("resident", "Федоров"), ("neighbour", "Соседов"),
                              ("operator", "Охранов")):
            account = person(surname)
            Membership.create(account=account, territory=territory,
                              role="operator" if role == "operator" else "resident",
                              unit=None if role == "operator" else unit)
            people[role] = signed_in(app, account)
    return {"t": territory.id, **people}


def _file(client, tid, plate, period="day"):
    return post(client, f"/t/{tid}/passes/new", {"plate": plate, "period": period})


def test_the_same_plate_is_not_filed_twice_for_the_same_time(app, yard):
    assert _file(yard["resident"], yard["t"], "а 777 аа 999").status_code == 302
    again = _file(yard["resident"], yard["t"], "A777AA999")
    page = again.get_data(as_text=True)
    assert again.status_code == 422 and "Заявка добавлена" not in page
    assert field_error(page, "plate").startswith(
        "На этот номер уже есть действующий пропуск до ")
    assert input_value(page, "plate") == "A777AA999"
    # A neighbour may expect the same car (a taxi, a guest of both): their pass is filed.
    assert _file(yard["neighbour"], yard["t"], "А777АА999", period="week").status_code == 302
    with db.connection_context():
        assert VehiclePass.select().count() == 2


LONG = "А" * 1000


def test_the_check_refuses_a_plate_longer_than_the_pass_form_takes(yard):
    client = yard["operator"]
    for headers in ({}, {"HX-Request": "true"}):
        page = client.get(f"/t/{yard['t']}/check", query_string={"plate": LONG},
                          headers=headers).get_data(as_text=True)
        assert "Номер слишком длинный" in page, headers
        assert "<article" not in page and LONG not in page.replace(f'value="{LONG}"', "")
    page = client.get(f"/t/{yard['t']}/check").get_data(as_text=True)
    assert 'maxlength="64"' in page
    with open("static/app.css", encoding="utf-8") as css:
        assert "overflow-wrap: anywhere" in css.read().split(".verdict-plate {")[-1]


def test_the_log_ignores_a_plate_longer_than_the_pass_form_takes(yard):
    response = yard["operator"].get(f"/t/{yard['t']}/events", query_string={"plate": LONG})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert field_error(page, "plate") == "Номер слишком длинный"
    assert 'maxlength="64"' in page
    csv = yard["operator"].get(f"/t/{yard['t']}/events.csv", query_string={"plate": LONG})
    assert csv.status_code == 200


# --- 5. Two gates of one name --------------------------------------------------------------


def test_a_second_gate_of_the_same_name_is_refused_at_its_name(app):
    with app.test_request_context():
        manager = person("Управляева")
        territory = create_territory(manager, name="ЖК", kind="residential")
        gate = Gate.create(territory=territory, name="Въезд", host="10.0.0.4")
    client = signed_in(app, manager)
    form = {"name": "  въезд ", "direction": "entry", "host": "10.0.0.5", "port": "502",
            "unit_id": "1", "poll_ms": "200", "word_order": "big", "enabled": "y"}
    response = post(client, f"/t/{territory.id}/gates/new", form)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert field_error(page, "name") == "Ворота с таким названием уже есть"
    assert input_value(page, "host") == "10.0.0.5"
    with db.connection_context():
        assert Gate.select().where(Gate.territory == territory.id).count() == 1
    # Its own name is no clash.
    same = {**form, "name": "Въезд", "host": "10.0.0.4"}
    assert post(client, f"/t/{territory.id}/gates/{gate.id}/edit", same).status_code == 302


# --- 6. Money shown back as the UI shows it, and read back as shown -------------------------


def _card_price(page: str) -> str:
    return input_value(page, "price")


def test_card_price_keeps_its_thousands_space(app):
    with app.test_request_context():
        manager = person("Заведующая")
        territory = kindergarten(manager)
    client = signed_in(app, manager)
    url = f"/t/{territory.id}/billing/settings"
    data = {"price": "1 380,50", "validity_months": "12"}
    assert post(client, f"{url}/card", data).status_code == 302
    with app.test_request_context():
        shown = format_money(138050).removesuffix("\xa0₽")
    assert _card_price(client.get(url).get_data(as_text=True)) == shown == "1\xa0380,50"
    # What is shown is what is read: saving it again changes nothing.
    assert post(client, f"{url}/card", {**data, "price": shown}).status_code == 302
    for space in ("\u202f", "\xa0"):
        assert post(client, f"{url}/card", {**data, "price": f"1{space}380,50"}).status_code == 302
    with db.connection_context():
        assert Territory.get_by_id(territory.id).card_price_kopecks == 138050
    # English shows and reads 1,380.50.
    post(client, "/lang/en")
    with app.test_request_context(), force_locale("en"):
        english = format_money(138050).removesuffix("\xa0₽")
    assert _card_price(client.get(url).get_data(as_text=True)) == english == "1,380.50"
    assert post(client, f"{url}/card", {**data, "price": english}).status_code == 302
    with db.connection_context():
        assert Territory.get_by_id(territory.id).card_price_kopecks == 138050
