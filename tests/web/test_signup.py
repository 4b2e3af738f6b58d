"""Sign-up by phone and by e-mail, recovery, and the rules that keep strangers guessing."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from app import create_app
from domain import accounts, codes
from domain.accounts import Account, Device
from domain.codes import Code
from domain.db import db
from domain.schema import upgrade
from tests.conftest import PASSWORD, csrf_token

PHONE = "+79990001122"
NEW_PASSWORD = "Zebra7track"
TWICE = {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}


def outbox(app) -> list[dict]:
    path = Path(app.instance_path) / "outbox.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def last_to(app, to, channel=None) -> dict | None:
    found = [e for e in outbox(app)
             if e["to"] == to and (channel is None or e["channel"] == channel)]
    return found[-1] if found else None


def post(client, path, data, page=None, **kw):
    data = {**data, "csrf_token": csrf_token(client, page or path)}
    return client.post(path, data=data, **kw)


def start_signup(client, phone="9990001122", flow="signup"):
    data = {"phone": phone, "consent": "y"} if flow == "signup" else {"phone": phone}
    return post(client, f"/{flow}", data)


def age_codes(seconds=130):
    """Pretend the codes were sent `seconds` ago (countdowns over)."""
    with db.connection_context():
        for code in Code.select():
            Code.update(created_at=code.created_at - dt.timedelta(seconds=seconds)).where(
                Code.id == code.id
            ).execute()


def test_phone_signup_end_to_end(app, client):
    response = start_signup(client, "8 (999) 000-11-22")
    assert response.headers["Location"] == "/signup/code"
    call = last_to(app, PHONE, "call")
    assert call and len(call["code"]) == 4
    page = client.get("/signup/code").get_data(as_text=True)
    assert "4 цифры входящего номера" in page and "Изменить номер" in page
    assert "Повторить звонок через" in page
    assert re.search(r'data-countdown="1(19|20)">0(1:59|2:00)<', page)
    response = post(client, "/signup/code", {"code": call["code"]})
    assert response.headers["Location"] == "/signup/password"
    page = client.get("/signup/password").get_data(as_text=True)
    assert "Новый пароль" in page and "Пароль повторно" in page and "Готово" in page
    response = post(client, "/signup/password", TWICE)
    assert response.status_code == 302
    with db.connection_context():
        account = Account.get(Account.phone == PHONE)
        assert accounts.verify_password(account, NEW_PASSWORD)
        assert Device.select().count() == 1
    assert "Профиль" in client.get("/").get_data(as_text=True)


def test_a_phone_signup_in_english_makes_an_english_account_recovery_keeps_it(
        app, client, make_account):
    client.post("/lang/en", data={"csrf_token": csrf_token(client, "/signup")})
    start_signup(client)
    post(client, "/signup/code", {"code": last_to(app, PHONE, "call")["code"]})
    assert post(client, "/signup/password", TWICE).status_code == 302
    with db.connection_context():
        assert Account.get(Account.phone == PHONE).locale == "en"
    # «Регистрация» of a registered Russian phone on a browser left in English resets its
    # password; the account stays Russian.
    with app.test_request_context():
        make_account(phone="+79990005566")
    third = app.test_client()
    third.post("/lang/en", data={"csrf_token": csrf_token(third, "/signup")})
    start_signup(third, "9990005566")
    post(third, "/signup/code", {"code": last_to(app, "+79990005566", "call")["code"]})
    assert post(third, "/signup/password", TWICE).status_code == 302
    with db.connection_context():
        assert Account.get(Account.phone == "+79990005566").locale is None
    # Recovering a Russian account on a browser left in English: the account stays Russian.
    with app.test_request_context():
        make_account(phone="+79990003344")
    other = app.test_client()
    other.post("/lang/en", data={"csrf_token": csrf_token(other, "/recover")})
    start_signup(other, "9990003344", flow="recover")
    post(other, "/recover/code", {"code": last_to(app, "+79990003344")["code"]})
    assert post(other, "/recover/password", TWICE).status_code == 302
    assert '<html lang="en">' in other.get("/").get_data(as_text=True)
    with db.connection_context():
        assert Account.get(Account.phone == "+79990003344").locale is None  # as made: Russian


def test_consent_is_required_and_the_phone_is_kept(client):
    response = post(client, "/signup", {"phone": "9990001122"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Нужно ваше согласие" in html and 'value="9990001122"' in html
    assert 'href="/legal/privacy"' in html and 'href="/legal/terms"' in html


def test_bad_phone_is_an_error_at_the_field(client):
    response = post(client, "/signup", {"phone": "12345", "consent": "y"})
    assert response.status_code == 422
    assert "Неверный номер телефона" in response.get_data(as_text=True)


def test_wrong_shape_code_says_four_digits(client):
    start_signup(client)
    response = post(client, "/signup/code", {"code": "12a"})
    assert response.status_code == 422
    assert "Необходимо ввести 4 цифры" in response.get_data(as_text=True)


def test_password_step_needs_a_proven_code(client):
    start_signup(client)
    response = post(client, "/signup/password", TWICE,
                    page="/signup/code")
    assert response.status_code == 422
    assert "Подтверждение устарело" in response.get_data(as_text=True)
    with db.connection_context():
        assert Account.select().count() == 0


def test_passwords_must_match_and_be_strong(app, client):
    start_signup(client)
    post(client, "/signup/code", {"code": last_to(app, PHONE)["code"]})
    response = post(client, "/signup/password", {"password": NEW_PASSWORD, "confirm": "Zebra7trac"})
    assert "Пароли не совпадают" in response.get_data(as_text=True)
    response = post(client, "/signup/password", {"password": "qwerty123", "confirm": "qwerty123"})
    assert response.status_code == 422
    assert "слишком простой" in response.get_data(as_text=True)


def test_resend_waits_for_the_countdown_then_offers_sms(app, client):
    start_signup(client)
    response = post(client, "/signup/resend", {"channel": "sms"}, page="/signup/code",
                    follow_redirects=True)
    assert "Новый код можно запросить" in response.get_data(as_text=True)
    assert last_to(app, PHONE, "sms") is None
    age_codes()
    page = client.get("/signup/code").get_data(as_text=True)
    assert "Получить код по SMS" in page
    post(client, "/signup/resend", {"channel": "sms"}, page="/signup/code")
    sms = last_to(app, PHONE, "sms")
    assert sms and sms["code"] in sms["text"]
    page = client.get("/signup/code").get_data(as_text=True)
    assert '<label for="code">Код из SMS</label>' in page
    assert "4 цифры входящего номера" not in page
    response = post(client, "/signup/code", {"code": sms["code"]})
    assert response.headers["Location"] == "/signup/password"


def test_signup_of_a_registered_phone_looks_the_same_and_resets_after_the_code(
    app, client, make_account
):
    with app.test_request_context():
        make_account(phone=PHONE)
    other = app.test_client()
    from tests.conftest import Auth

    Auth(other).login(PHONE)
    fresh = start_signup(client)
    assert fresh.status_code == 302 and fresh.headers["Location"] == "/signup/code"
    post(client, "/signup/code", {"code": last_to(app, PHONE)["code"]})
    post(client, "/signup/password", TWICE)
    with db.connection_context():
        account = Account.get(Account.phone == PHONE)
        assert accounts.verify_password(account, NEW_PASSWORD)
        # The other device, signed in with the old password, is out.
        assert Device.select().count() == 1
        assert Account.select().count() == 1


def test_recovery_answers_the_same_for_unknown_phones_and_calls_only_known_ones(
    app, client, make_account
):
    with app.test_request_context():
        make_account(phone=PHONE)
    known = start_signup(client, PHONE, flow="recover")
    known_page = client.get("/recover/code").get_data(as_text=True)
    stranger = app.test_client()
    unknown = start_signup(stranger, "+79990009999", flow="recover")
    unknown_page = stranger.get("/recover/code").get_data(as_text=True)
    assert known.status_code == unknown.status_code == 302
    assert known.headers["Location"] == unknown.headers["Location"]
    pattern = (r'value="[^"]+"|"X-CSRFToken": "[^"]+"|\(999\) 000-\d\d-\d\d'
               r'|data-countdown="\d+">[\d:]+')

    def strip(html):
        return re.sub(pattern, "", html)

    assert strip(known_page) == strip(unknown_page)
    assert last_to(app, PHONE, "call") is not None
    assert last_to(app, "+79990009999") is None
    # Whatever the stranger types, no account appears.
    response = post(stranger, "/recover/code", {"code": "0000"})
    assert response.status_code == 422


def test_phone_recovery_sets_a_new_password_and_signs_out_everywhere(app, client, make_account):
    with app.test_request_context():
        make_account(phone=PHONE)
    from tests.conftest import Auth

    thief = app.test_client()
    Auth(thief).login(PHONE)
    start_signup(client, PHONE, flow="recover")
    page = post(client, "/recover/code", {"code": "1"}).get_data(as_text=True)
    assert "Подтвердить" in page and "Восстановление пароля" in page
    post(client, "/recover/code", {"code": last_to(app, PHONE)["code"]})
    response = post(client, "/recover/password", TWICE)
    assert response.status_code == 302
    assert "Выйти" not in thief.get("/").get_data(as_text=True)
    assert "Выйти" in client.get("/").get_data(as_text=True)


def test_email_signup_works_only_after_the_link(app, client):
    data = {"full_name": "Федоров Роман", "phone": "9990001122", "email": "Roman@Example.ru",
            "password": NEW_PASSWORD, "confirm": NEW_PASSWORD, "consent": "y"}
    response = post(client, "/signup/email", data)
    assert response.status_code == 200
    assert "Проверьте почту" in response.get_data(as_text=True)
    with db.connection_context():
        assert Account.select().count() == 0
    mail = last_to(app, "roman@example.ru", "email")
    assert mail["link"].startswith("http://localhost/signup/email/")
    assert client.post("/login", data={"login": "roman@example.ru", "password": NEW_PASSWORD,
                                       "csrf_token": csrf_token(client)}).status_code == 422
    response = client.get(mail["link"].removeprefix("http://localhost"))
    assert response.headers["Location"] == "/profile/phone/code"
    with db.connection_context():
        account = Account.get(Account.email == "roman@example.ru")
        # The phone is the account's once its code comes back, not on the e-mail's word.
        assert (account.surname, account.name, account.phone) == ("Федоров", "Роман", None)
        assert account.email_confirmed
    page = client.get("/profile/phone/code").get_data(as_text=True)
    assert "Осталось подтвердить телефон" in page
    sms = last_to(app, PHONE, "sms")
    response = post(client, "/profile/phone/code", {"code": sms["code"]})
    assert response.headers["Location"] == "/profile"
    assert "Телефон подтверждён" in client.get("/profile").get_data(as_text=True)
    with db.connection_context():
        assert Account.get(Account.email == "roman@example.ru").phone == PHONE
    # The link is single use.
    assert client.get(mail["link"].removeprefix("http://localhost")).status_code == 410
    other = app.test_client()
    assert other.post("/login", data={"login": "roman@example.ru", "password": NEW_PASSWORD,
                                      "csrf_token": csrf_token(other)}).status_code == 302


def test_a_phone_given_at_email_signup_is_not_a_way_into_its_owner_s_future_account(
        app, client):
    """A stranger signs up by e-mail with someone else's phone and never proves it: the
    phone's owner, signing up by phone, gets an account of their own, which the stranger's
    e-mail recovery cannot reach; the stranger cannot sign in with the phone."""
    data = {"full_name": "Чужой", "phone": "9990001122", "email": "stranger@example.ru",
            **TWICE, "consent": "y"}
    post(client, "/signup/email", data)
    client.get(last_to(app, "stranger@example.ru", "email")["link"].removeprefix(
        "http://localhost"))
    owner = app.test_client()
    start_signup(owner)
    post(owner, "/signup/code", {"code": last_to(app, PHONE, "call")["code"]})
    assert post(owner, "/signup/password", {"password": "Own3r-pass-77",
                                            "confirm": "Own3r-pass-77"}).status_code == 302
    with db.connection_context():
        stranger = Account.get(Account.email == "stranger@example.ru")
        mine = Account.get(Account.phone == PHONE)
        assert stranger.id != mine.id and stranger.phone is None and mine.email is None
    # The stranger's sign-in by the phone meets the owner's password, not theirs.
    other = app.test_client()
    assert other.post("/login", data={"login": PHONE, "password": NEW_PASSWORD,
                                      "csrf_token": csrf_token(other)}).status_code == 422
    # Nor does proving the phone later move it: it is taken.
    post(client, "/profile/phone/code", {"code": last_to(app, PHONE, "sms")["code"]})
    with db.connection_context():
        assert Account.get(Account.email == "stranger@example.ru").phone is None


def test_email_signup_of_a_registered_address_looks_the_same(app, client, make_account):
    with app.test_request_context():
        make_account(email="taken@example.ru")
    data = {"full_name": "Кто-то", "phone": "9990002233", "email": "taken@example.ru",
            "password": NEW_PASSWORD, "confirm": NEW_PASSWORD, "consent": "y"}
    response = post(client, "/signup/email", data)
    assert response.status_code == 200 and "Проверьте почту" in response.get_data(as_text=True)
    mail = last_to(app, "taken@example.ru")
    assert "/recover/email/" in mail["link"]


def test_the_already_registered_note_speaks_the_owner_s_language(app, client, make_account):
    """Someone signs up in Russian with the address of an English-speaking account: the
    note goes to the owner, in English."""
    with app.test_request_context():
        owner = make_account(email="taken@example.ru")
    with db.connection_context():
        Account.update(locale="en").where(Account.id == owner.id).execute()
    data = {"full_name": "Кто-то", "phone": "9990002233", "email": "taken@example.ru",
            "password": NEW_PASSWORD, "confirm": NEW_PASSWORD, "consent": "y"}
    assert "Проверьте почту" in post(client, "/signup/email", data).get_data(as_text=True)
    mail = last_to(app, "taken@example.ru")
    assert "Someone (possibly you)" in mail["text"] and "Кто-то" not in mail["text"]


def test_an_email_signup_in_english_makes_an_english_account(app, client):
    client.post("/lang/en", data={"csrf_token": csrf_token(client, "/signup/email")})
    # The one field takes surname and name, and says so (it read «First name»).
    form = client.get("/signup/email").get_data(as_text=True)
    assert '<label for="full_name">Surname and first name</label>' in form
    data = {"full_name": "Roman", "phone": "9990001122", "email": "roman@example.ru",
            **TWICE, "consent": "y"}
    assert post(client, "/signup/email", data).status_code == 200
    link = last_to(app, "roman@example.ru", "email")["link"].removeprefix("http://localhost")
    mail_app = app.test_client()  # the link opens in another browser: no choice there
    assert mail_app.get(link).status_code == 302
    assert '<html lang="en">' in mail_app.get("/").get_data(as_text=True)
    with db.connection_context():
        assert Account.get(Account.email == "roman@example.ru").locale == "en"


@pytest.mark.parametrize("first, second", [("/recover/email", "/signup/email"),
                                           ("/signup/email", "/recover/email")])
def test_email_signup_and_recovery_wait_alike_for_known_and_unknown_addresses(
        app, client, make_account, first, second):
    # One countdown for both: apart, the second request waited only for a registered address.
    with db.connection_context():
        make_account(email="taken@example.ru")
    answers = {}
    for email in ("taken@example.ru", "nobody@example.ru"):
        forms = {"/recover/email": {"email": email},
                 "/signup/email": {"full_name": "Кто-то", "phone": "9990002233", "email": email,
                                   **TWICE, "consent": "y"}}
        assert post(client, first, forms[first]).status_code in (200, 302)
        response = post(client, second, forms[second])
        answers[email] = response.status_code, "Новую ссылку можно запросить" in response.get_data(
            as_text=True)
    assert answers["taken@example.ru"] == answers["nobody@example.ru"] == (422, True)


@pytest.fixture
def mail_down(tmp_path, database_url):
    """The app with MAIL=smtp://… where no mail server listens."""
    from tests.server import free_port

    app = create_app({
        "TESTING": True, "SECRET_KEY": "test-secret", "MAIL": f"smtp://127.0.0.1:{free_port()}",
        "INSTANCE_PATH": str(tmp_path / "instance"), "DATABASE_URL": database_url,
    })
    with app.app_context():
        upgrade()
    yield app
    db.close()


@pytest.mark.parametrize("path", ["/signup/email", "/recover/email"])
def test_a_letter_the_mail_server_did_not_take_is_reported_and_can_be_asked_again(
        mail_down, path):
    client = mail_down.test_client()
    with db.connection_context():
        Account.create(email="ivan@example.ru", password_hash="x")
    data = {"email": "ivan@example.ru"}
    if path == "/signup/email":
        data = {"full_name": "Иван", "phone": "9990001122", **data, **TWICE, "consent": "y"}
    for _ in range(2):  # the second try is not held back by the first one's countdown
        response = post(client, path, data)
        html = response.get_data(as_text=True)
        assert response.status_code == 422
        assert "Не удалось отправить письмо" in html and 'value="ivan@example.ru"' in html
    with db.connection_context():
        assert Code.select().count() == 0


def test_email_signup_keeps_fields_on_error(client):
    data = {"full_name": "Иван", "phone": "9990001122", "email": "not-an-email",
            "password": NEW_PASSWORD, "confirm": NEW_PASSWORD, "consent": "y"}
    response = post(client, "/signup/email", data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Неверный e-mail" in html and 'value="not-an-email"' in html and 'value="Иван"' in html


def test_email_recovery_link_sets_the_password(app, client, make_account):
    with app.test_request_context():
        make_account(email="ivan@example.ru")
    response = post(client, "/recover/email", {"email": "Ivan@example.ru"})
    assert "Если адрес" in response.get_data(as_text=True)
    link = last_to(app, "ivan@example.ru")["link"].removeprefix("http://localhost")
    page = client.get(link).get_data(as_text=True)
    assert "Новый пароль" in page
    data = {**TWICE, "csrf_token": csrf_token(client, link)}
    assert client.post(link, data=data).status_code == 302
    with db.connection_context():
        account = Account.get(Account.email == "ivan@example.ru")
        assert accounts.verify_password(account, NEW_PASSWORD)
    assert client.get(link).status_code == 410


def test_email_recovery_of_unknown_address_sends_nothing_and_says_the_same(app, client):
    response = post(client, "/recover/email", {"email": "nobody@example.ru"})
    assert response.status_code == 200 and "Если адрес" in response.get_data(as_text=True)
    assert last_to(app, "nobody@example.ru") is None


def test_blocked_account_cannot_sign_in_and_loses_sessions(app, client, auth, make_account):
    with app.test_request_context():
        account = make_account(phone=PHONE)
    auth.login(PHONE)
    assert "Выйти" in client.get("/").get_data(as_text=True)
    with app.test_request_context(), db.connection_context():
        accounts.set_blocked(Account.get_by_id(account.id), True)
        assert Device.select().count() == 0
    assert "Выйти" not in client.get("/").get_data(as_text=True)
    response = auth.login(PHONE)
    assert response.status_code == 422
    assert "заблокирован" in response.get_data(as_text=True)


@pytest.fixture
def proxied(tmp_path, database_url):
    """The app as deployed behind one reverse proxy (PROXY_HOPS=1)."""
    app = create_app({
        "TESTING": True, "SECRET_KEY": "test-secret", "PROXY_HOPS": 1,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": database_url,
    })
    with app.app_context():
        upgrade()
    yield app
    db.close()


def test_ip_cap_uses_the_client_address_behind_the_proxy_not_a_spoofed_one(proxied):
    client = proxied.test_client()
    for i in range(codes.PER_IP_HOUR):
        # The client forges a first hop; the proxy appends the real address last.
        headers = {"X-Forwarded-For": f"6.6.6.{i}, 198.51.100.7"}
        data = {"phone": f"+7999000{i:04d}", "consent": "y",
                "csrf_token": csrf_token(client, "/signup")}
        assert client.post("/signup", data=data, headers=headers).status_code == 302
    data = {"phone": "+79997776655", "consent": "y", "csrf_token": csrf_token(client, "/signup")}
    response = client.post("/signup", data=data,
                           headers={"X-Forwarded-For": "6.6.6.99, 198.51.100.7"})
    assert response.status_code == 422
    assert "с вашего устройства" in response.get_data(as_text=True)
    # Another real client behind the same proxy is not affected.
    response = client.post("/signup", data=data, headers={"X-Forwarded-For": "198.51.100.8"})
    assert response.status_code == 302


def test_legal_pages_exist(client):
    for name in ("personal-data", "terms", "privacy"):
        assert client.get(f"/legal/{name}").status_code == 200
    assert client.get("/legal/nope").status_code == 404


def test_login_page_links_to_signup_and_recovery(client):
    html = client.get("/login").get_data(as_text=True)
    assert 'href="/signup"' in html and 'href="/recover"' in html and 'href="/signup/email"' in html
    assert PASSWORD  # the shared test password stays the one the factory uses
