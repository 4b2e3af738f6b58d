"""Bad input answered at its field, all at once, with the input kept; no dead-end addresses."""

from __future__ import annotations

import datetime as dt
import html
import re
from zoneinfo import ZoneInfo

import pytest

from domain import accounts, billing
from domain.accounts import Account
from domain.billing import PromoCode, Tariff, TariffPeriod
from domain.db import db, utcnow
from domain.gates import Gate, record_event
from domain.territories import (
    JoinRequest,
    Membership,
    Territory,
    add_unit,
    create_territory,
    request_join,
)
from tests.billing_fixtures import join, kindergarten
from tests.conftest import PASSWORD
from tests.web.territory_kit import person, post, signed_in
from tests.web.test_signup import last_to, outbox
from tests.web.test_signup import post as post_from


def field_error(page: str, name: str) -> str | None:
    """The message shown under a field (render_field), or None."""
    found = re.search(rf'<p class="error" id="{re.escape(name)}-error">([^<]*)</p>', page)
    return html.unescape(found.group(1)) if found else None


def input_value(page: str, name: str) -> str | None:
    found = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*value="([^"]*)"', page)
    return html.unescape(found.group(1)) if found else None


# --- 1. Promo codes that could never work ---------------------------------------------------


@pytest.fixture
def garden(app):
    """A kindergarten (card 150,00 ₽; periods 85,00 and 300,00 ₽), its manager signed in."""
    with app.test_request_context():
        manager = person("Заведующая")
        territory = kindergarten(manager)
    return {"client": signed_in(app, manager), "t": territory, "manager": manager}


def _promo(client, tid, **fields):
    data = {"code": "LETO", "discount_kind": "percent", "value": "10", **fields}
    return post(client, f"/t/{tid}/billing/promos", data)


def test_expired_promo_is_refused_at_its_date(garden):
    response = _promo(garden["client"], garden["t"].id, expires_on="2020-01-01",
                      usage_limit="5")
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "Промокод добавлен" not in page
    assert field_error(page, "expires_on") == "Эта дата уже прошла"
    assert input_value(page, "expires_on") == "2020-01-01"
    assert input_value(page, "code") == "LETO" and input_value(page, "usage_limit") == "5"
    assert PromoCode.select().count() == 0
    # Today is still good: a code works to the end of its last day.
    today = utcnow().astimezone(ZoneInfo(garden["t"].timezone)).date().isoformat()
    assert _promo(garden["client"], garden["t"].id, expires_on=today).status_code == 302


def test_fixed_discount_must_leave_the_minimum_of_the_dearest_price(garden):
    # The dearest thing sold here is the 1-year access, 300,00 ₽.
    client, tid = garden["client"], garden["t"].id
    for too_much in ("99 999", "300", "299,01"):
        response = _promo(client, tid, discount_kind="fixed", value=too_much)
        page = response.get_data(as_text=True)
        assert response.status_code == 422, too_much
        assert field_error(page, "value").startswith("Скидка слишком большая"), too_much
        assert input_value(page, "value") == too_much
    assert PromoCode.select().count() == 0
    # Larger than the 3-month price (85,00 ₽) is fine: it fits the year's.
    assert _promo(client, tid, discount_kind="fixed", value="299").status_code == 302
    assert PromoCode.get().fixed_kopecks == 29900


def test_the_dearest_price_is_the_card_when_it_is_dearer(garden):
    with db.connection_context():
        billing.set_card_offer(garden["t"], 50000, 48)
    response = _promo(garden["client"], garden["t"].id, discount_kind="fixed", value="450")
    assert response.status_code == 302


@pytest.mark.parametrize("value", ["0", "100", "150", "-5", "12,5"])
def test_percent_outside_1_to_99_is_refused_at_its_field(garden, value):
    response = _promo(garden["client"], garden["t"].id, value=value)
    assert response.status_code == 422
    assert "от 1 до 99" in field_error(response.get_data(as_text=True), "value")
    assert PromoCode.select().count() == 0


# --- 2. «+ Добавить объект» for a territory one is already in -------------------------------


@pytest.fixture
def numbered(app):
    """A residential territory with an account number, and a resident already in it."""
    with app.test_request_context():
        manager = person("Управляева")
        territory = create_territory(manager, name="ЖК «Парк»", kind="residential")
        add_unit(territory, "Дом 12, кв. 5", "100200300")
        other = create_territory(manager, name="ЖК «Сад»", kind="residential")
        add_unit(other, "Дом 1", "555")
        resident = person("Жителева")
        Membership.create(account=resident, territory=territory, role="resident")
    return {"app": app, "t": territory, "other": other, "resident": resident}


def test_adding_a_territory_one_is_in_says_so_at_the_territory(numbered):
    client = signed_in(numbered["app"], numbered["resident"])
    form = client.get("/territories/add").get_data(as_text=True)
    mine = re.search(rf'<option[^>]*value="{numbered["t"].id}"[^>]*>([^<]*)<', form)
    assert "disabled" in mine.group(0) and "вы уже подключены" in html.unescape(mine.group(1))
    other = re.search(rf'<option[^>]*value="{numbered["other"].id}"[^>]*>', form).group(0)
    assert "disabled" not in other

    response = post(client, "/territories/add", {"territory": numbered["t"].id,
                                                 "number": "100200300"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert field_error(page, "territory") == "Вы уже подключены к этой территории"
    assert "Этот человек" not in page and input_value(page, "number") == "100200300"
    assert Membership.select().where(Membership.account == numbered["resident"]).count() == 1
    # The other territory is still added as before.
    assert post(client, "/territories/add", {"territory": numbered["other"].id,
                                             "number": "555"}).status_code == 302


# --- 3. The event log's dates in the wrong order --------------------------------------------


def test_event_log_dates_in_the_wrong_order_are_said_at_po(app):
    with app.test_request_context():
        manager = person("Управляева")
        territory = create_territory(manager, name="ЖК", kind="residential")
        gate = Gate.create(territory=territory, name="Въезд", host="127.0.0.1", port=5020)
        record_event(territory.id, code=1, reason="pass_valid", kind="plate",
                     credential="A777AA77", gate=gate.id)
    client = signed_in(app, manager)
    today = utcnow().astimezone(ZoneInfo(territory.timezone)).date()
    earlier = (today - dt.timedelta(days=9)).isoformat()
    query = f"date_from={today.isoformat()}&date_to={earlier}"
    response = client.get(f"/t/{territory.id}/events?{query}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert field_error(page, "date_to") == "Дата окончания раньше начала"
    assert field_error(page, "date_from") is None
    assert input_value(page, "date_from") == today.isoformat()
    assert input_value(page, "date_to") == earlier
    # The wrong «По» filters nothing, as any bad value: today's event is there.
    assert 'class="event ' in page
    csv = client.get(f"/t/{territory.id}/events.csv?{query}").get_data(as_text=True)
    assert csv.count("\r\n") == 2  # the header and today's event
    # The right order still filters.
    later = (today + dt.timedelta(days=1)).isoformat()
    page = client.get(f"/t/{territory.id}/events?date_from={later}&date_to={later}")
    assert 'class="event ' not in page.get_data(as_text=True)


def test_event_log_dates_the_calendar_allows_but_no_log_has_are_said_at_the_field(app):
    """31.12.9999 in «По» (the date picker allows it) answered 500: the day after it does
    not exist; 01.01.0001 in «С» has no UTC before it (s24 audit)."""
    with app.test_request_context():
        manager = person("Управляева")
        territory = create_territory(manager, name="ЖК", kind="residential")
        record_event(territory.id, code=1, reason="pass_valid", kind="plate",
                     credential="A777AA77")
    client = signed_in(app, manager)
    for query, field, said in (("date_to=9999-12-31", "date_to", "Не позже 31.12.2099"),
                               ("date_from=0001-01-01", "date_from", "Не раньше 01.01.2000")):
        response = client.get(f"/t/{territory.id}/events?{query}")
        page = response.get_data(as_text=True)
        assert response.status_code == 200, query
        assert field_error(page, field) == said
        assert 'class="event ' in page  # the bad date filters nothing
        csv = client.get(f"/t/{territory.id}/events.csv?{query}")
        assert csv.status_code == 200 and csv.get_data(as_text=True).count("\r\n") == 2


# --- 4. Every field's mistake in one answer -------------------------------------------------


def test_email_signup_shows_every_mistake_at_once(app, client):
    data = {"full_name": "Федоров Роман", "phone": "12", "email": "notanemail",
            "password": "short", "confirm": "short2", "consent": "y"}
    response = post_from(client, "/signup/email", data)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert field_error(page, "phone") == "Неверный номер телефона"
    assert field_error(page, "email") == "Неверный e-mail"
    assert field_error(page, "password") == "Пароль должен быть не короче 8 символов"
    assert field_error(page, "confirm") == "Пароли не совпадают"
    assert input_value(page, "full_name") == "Федоров Роман"
    assert input_value(page, "phone") == "12" and input_value(page, "email") == "notanemail"
    assert outbox(app) == []


def test_email_signup_password_made_of_the_phone_shows_with_the_consent(app, client):
    data = {"full_name": "Роман", "phone": "+7 999 000-11-22", "email": "roman@example.ru",
            "password": "Zebra0001122", "confirm": "Zebra0001122"}
    page = post_from(client, "/signup/email", data).get_data(as_text=True)
    assert field_error(page, "password") == "Этот пароль слишком простой: его легко угадать"
    assert field_error(page, "consent") == "Нужно ваше согласие"
    assert outbox(app) == []


def test_phone_signup_shows_the_phone_and_the_consent_at_once(client):
    page = post_from(client, "/signup", {"phone": "12"}).get_data(as_text=True)
    assert field_error(page, "phone") == "Неверный номер телефона"
    assert field_error(page, "consent") == "Нужно ваше согласие"


def test_new_password_after_the_call_shows_both_mistakes(app, client):
    post_from(client, "/signup", {"phone": "9990001122", "consent": "y"})
    post_from(client, "/signup/code", {"code": last_to(app, "+79990001122")["code"]})
    response = post_from(client, "/signup/password", {"password": "short", "confirm": "other"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert field_error(page, "password") == "Пароль должен быть не короче 8 символов"
    assert field_error(page, "confirm") == "Пароли не совпадают"
    # The phone it is for counts as the person's own: too easy to guess.
    easy = {"password": "Zebra0001122", "confirm": "Zebra0001122"}
    page = post_from(client, "/signup/password", easy).get_data(as_text=True)
    assert field_error(page, "password") == "Этот пароль слишком простой: его легко угадать"
    with db.connection_context():
        assert Account.select().count() == 0


def test_password_change_shows_every_mistake_at_once(app, make_account):
    with app.test_request_context():
        me = make_account(email="roman@example.ru")
    client = signed_in(app, me)
    response = post(client, "/profile/password",
                    {"current": "wrong1pass", "password": "short", "confirm": "short2"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert field_error(page, "current") == "Неверный текущий пароль"
    assert field_error(page, "password") == "Пароль должен быть не короче 8 символов"
    assert field_error(page, "confirm") == "Пароли не совпадают"
    easy = {"current": PASSWORD, "password": "roman2024x", "confirm": "roman2024x"}
    page = post(client, "/profile/password", easy).get_data(as_text=True)
    assert field_error(page, "password") == "Этот пароль слишком простой: его легко угадать"
    with db.connection_context():
        assert accounts.verify_password(Account.get_by_id(me.id), PASSWORD)


def test_add_by_number_shows_both_missing_fields(numbered):
    client = signed_in(numbered["app"], person("Новикова"))
    response = post(client, "/territories/add", {"territory": "0", "number": ""})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert field_error(page, "territory") == "Выберите объект из списка"
    assert field_error(page, "number") == "Введите номер лицевого счёта"


def test_join_shows_a_bad_code_and_a_missing_unit_at_once(numbered):
    client = signed_in(numbered["app"], person("Новикова"))
    page = post(client, "/territories/join", {"code": "12", "unit_label": ""}).get_data(
        as_text=True)
    assert field_error(page, "code") == "Код территории — шесть цифр, например 123-456"
    assert field_error(page, "unit_label") == "Укажите идентификатор объекта"


# --- 5. A form's own address opened by GET --------------------------------------------------


def test_get_of_profile_phone_goes_to_its_page_and_changes_nothing(app):
    with app.test_request_context():
        me = person("Федоров")
    client = signed_in(app, me)
    failed = post(client, "/profile/phone", {"phone": "12"})
    assert failed.status_code == 422
    response = client.get("/profile/phone")
    assert response.status_code == 302 and response.headers["Location"] == "/profile/edit"
    with db.connection_context():
        assert Account.get_by_id(me.id).phone == me.phone
    assert outbox(app) == []


def test_get_of_billing_forms_goes_to_the_settings_within_the_territory(app, garden):
    client, tid = garden["client"], garden["t"].id
    tariff = Tariff.get(Tariff.territory == tid)
    settings = f"/t/{tid}/billing/settings"
    for path in (f"{settings}/card", f"/t/{tid}/billing/tariffs", f"/t/{tid}/billing/promos",
                 f"/t/{tid}/billing/tariffs/{tariff.id}/periods"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"] == settings, path
    assert (Tariff.select().count(), TariffPeriod.select().count()) == (1, 2)
    assert PromoCode.select().count() == 0

    with app.test_request_context():
        stranger = person("Чужая")
        theirs = kindergarten(stranger, name="Чужой сад")
        resident = person("Родитель")
        join(resident, garden["t"])
    their_tariff = Tariff.get(Tariff.territory == theirs.id)
    assert client.get(f"/t/{theirs.id}/billing/promos").status_code == 404
    assert client.get(f"/t/{tid}/billing/tariffs/{their_tariff.id}/periods").status_code == 404
    assert signed_in(app, resident).get(f"/t/{tid}/billing/promos").status_code == 404


def test_get_of_a_decision_goes_to_the_requests_within_the_territory(app):
    with app.test_request_context():
        manager = person("Управляева")
        territory = create_territory(manager, name="ЖК", kind="residential")
        other = create_territory(person("Чужой"), name="Другой", kind="residential")
        asking = person("Новикова")
        mine = request_join(asking, territory.code, "Дом 1")
        theirs = request_join(asking, other.code, "Дом 2")
    client = signed_in(app, manager)
    for action in ("accept", "reject"):
        path = f"/t/{territory.id}/manage/requests/{mine.id}/{action}"
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"] == f"/t/{territory.id}/manage/"
        assert client.get(f"/t/{territory.id}/manage/requests/{theirs.id}/{action}"
                          ).status_code == 404
    assert JoinRequest.get_by_id(mine.id).status == "pending"
    assert Membership.select().where(Membership.account == asking).count() == 0


def test_get_of_admin_attach_goes_to_the_account(app):
    with app.test_request_context():
        admin = person("Админова", is_admin=True)
        someone = person("Кто-то")
    client = signed_in(app, admin)
    response = client.get(f"/admin/accounts/{someone.id}/attach")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/admin/accounts/{someone.id}"
    assert client.get("/admin/accounts/999999/attach").status_code == 404
    assert signed_in(app, someone).get(f"/admin/accounts/{someone.id}/attach").status_code == 404
    assert Territory.select().count() == 0


def test_a_promo_code_s_mistakes_come_all_at_once(garden):
    response = _promo(garden["client"], garden["t"].id, code="Л", value="сто",
                      expires_on="2020-01-01", usage_limit="0")
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert field_error(page, "code") == "Промокод — от 3 до 40 букв и цифр"
    assert "целое число от 1 до 99" in field_error(page, "value")
    assert field_error(page, "expires_on") == "Эта дата уже прошла"
    assert field_error(page, "usage_limit")
    assert input_value(page, "value") == "сто" and input_value(page, "code") == "Л"
    assert PromoCode.select().count() == 0


def test_deleting_a_period_or_a_promo_code_asks_first(garden):
    client, tid = garden["client"], garden["t"].id
    assert _promo(client, tid, code="LETO10").status_code == 302
    page = client.get(f"/t/{tid}/billing/settings").get_data(as_text=True)
    assert 'data-confirm="Удалить промокод LETO10?"' in page
    assert 'data-confirm="Удалить период 3 мес.?"' in page


def test_a_last_day_far_in_the_future_is_a_mistake_not_a_server_error(garden):
    # 31.12.9999 ended in a 500: the day after it does not exist.
    response = _promo(garden["client"], garden["t"].id, expires_on="9999-12-31")
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "expires_on") == "Не позже 31.12.2099"
