"""The profile: data, e-mail and phone changes, devices, password, deletion and the purge."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from peewee import CharField, ForeignKeyField, TextField

from domain import accounts, codes, territories
from domain.accounts import Account, Device
from domain.codes import Code
from domain.db import db, utcnow
from domain.schema import app_models
from tests.conftest import PASSWORD, Auth, csrf_token
from tests.web.test_signup import TWICE, last_to, post

PHONE = "+79990001122"


@pytest.fixture
def me(app, client, auth, make_account):
    """A signed-in account with a phone and an e-mail."""
    with app.test_request_context():
        account = make_account(phone=PHONE, email="roman@example.ru", surname="Федоров",
                               name="Роман", patronymic="Георгиевич")
    auth.login(PHONE)
    return account


def reload(account):
    with db.connection_context():
        return Account.get_by_id(account.id)


def test_profile_shows_the_seed_fields(client, me):
    html = client.get("/profile").get_data(as_text=True)
    for text in ("Федоров Роман Георгиевич", "+7 (999) 000-11-22", "roman@example.ru",
                 "Не заблокирован", "Авторизация", "Зарегистрирован", f"<td>{me.id}</td>",
                 "UTC+03", "Текущее время", "Редактировать", "Удалить аккаунт", "Устройства"):
        assert text in html, text


def test_profile_needs_sign_in(client):
    response = client.get("/profile")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_edit_names_with_back_and_apply(client, me):
    html = client.get("/profile/edit").get_data(as_text=True)
    assert "НАЗАД" in html and "ПРИМЕНИТЬ" in html and "Фамилия" in html and "Отчество" in html
    data = {"surname": "Иванов", "name": "Иван", "patronymic": "", "email": "roman@example.ru"}
    assert post(client, "/profile/edit", data).status_code == 302
    account = reload(me)
    assert (account.surname, account.name, account.patronymic) == ("Иванов", "Иван", "")


def test_the_account_s_language_is_chosen_in_the_profile(app, client, auth, me):
    """Audit (stop 23): English chosen before signing in stayed the browser's; the footer
    offers only the language not shown, so the account (its SMS and letters) stayed
    Russian. The profile sets it."""
    auth.logout()
    client.post("/lang/en", data={"csrf_token": csrf_token(client, "/login")})
    auth.login(PHONE)
    assert reload(me).locale is None
    assert '<html lang="en">' in client.get("/profile").get_data(as_text=True)
    # Never chosen: the language shown is offered, so saving the names keeps it.
    html = client.get("/profile/edit").get_data(as_text=True)
    assert '<option selected value="en">English</option>' in html
    data = {"surname": "Федоров", "name": "Роман", "patronymic": "", "email": "roman@example.ru",
            "locale": "en"}
    assert post(client, "/profile/edit", data).status_code == 302
    assert reload(me).locale == "en"
    assert '<html lang="en">' in client.get("/profile").get_data(as_text=True)
    refused = post(client, "/profile/edit", {**data, "locale": "de"})
    assert refused.status_code == 422 and reload(me).locale == "en"
    assert 'value="Федоров"' in refused.get_data(as_text=True)  # what was typed stays
    assert post(client, "/profile/edit", {**data, "locale": "ru"}).status_code == 302
    assert reload(me).locale == "ru"
    assert '<html lang="ru">' in client.get("/profile").get_data(as_text=True)


def test_email_change_needs_the_link(app, client, me):
    data = {"surname": "Федоров", "name": "Роман", "patronymic": "", "email": "New@Example.ru"}
    post(client, "/profile/edit", data)
    assert reload(me).email == "roman@example.ru"
    link = last_to(app, "new@example.ru")["link"].removeprefix("http://localhost")
    assert client.get(link).status_code == 302
    assert reload(me).email == "new@example.ru"
    assert client.get(link).status_code == 410


def test_bad_email_in_profile_is_kept_with_an_error(client, me):
    data = {"surname": "Федоров", "name": "Роман", "patronymic": "", "email": "oops@"}
    response = post(client, "/profile/edit", data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Неверный e-mail" in html and 'value="oops@"' in html


def test_phone_change_needs_a_code_to_the_new_phone(app, client, me):
    response = post(client, "/profile/phone", {"phone": "9990002233"}, page="/profile/edit")
    assert response.headers["Location"] == "/profile/phone/code"
    sms = last_to(app, "+79990002233", "sms")
    assert sms is not None and last_to(app, PHONE) is None
    response = post(client, "/profile/phone/code", {"code": "12"})
    assert "Необходимо ввести 4 цифры" in response.get_data(as_text=True)
    assert post(client, "/profile/phone/code", {"code": sms["code"]}).status_code == 302
    assert reload(me).phone == "+79990002233"


def test_phone_change_to_a_taken_phone_fails_after_the_code(app, client, me, make_account):
    with app.test_request_context():
        make_account(phone="+79990002233")
    post(client, "/profile/phone", {"phone": "+79990002233"}, page="/profile/edit")
    sms = last_to(app, "+79990002233", "sms")
    response = post(client, "/profile/phone/code", {"code": sms["code"]})
    assert response.status_code == 422
    assert reload(me).phone == PHONE


def test_devices_list_and_signing_another_one_out(app, client, me):
    phone = app.test_client()
    Auth(phone).login(PHONE)
    html = client.get("/profile/devices",
                      headers={"User-Agent": "Mozilla/5.0"}).get_data(as_text=True)
    assert "это устройство" in html
    with db.connection_context():
        ids = [d.id for d in Device.select().order_by(Device.id)]
    assert len(ids) == 2
    token = csrf_token(client, "/profile/devices")
    response = client.post(f"/profile/devices/{ids[1]}/sign-out", data={"csrf_token": token})
    assert response.status_code == 302
    assert "Выйти" not in phone.get("/").get_data(as_text=True)
    assert "Выйти" in client.get("/").get_data(as_text=True)


def test_device_label_comes_from_the_user_agent(app, me):
    ua = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Mobile Safari/537.36")
    other = app.test_client()
    other.post("/login", headers={"User-Agent": ua},
               data={"login": PHONE, "password": PASSWORD, "csrf_token": csrf_token(other)})
    html = other.get("/profile/devices").get_data(as_text=True)
    assert "Chrome Mobile 120" in html and "Android 14" in html


def test_someone_elses_device_is_404(app, client, me, make_account):
    with app.test_request_context():
        make_account(phone="+79990003344")
    stranger = app.test_client()
    Auth(stranger).login("+79990003344")
    with db.connection_context():
        theirs = Device.get(Device.account != me.id).id
    token = csrf_token(client, "/profile/devices")
    response = client.post(f"/profile/devices/{theirs}/sign-out", data={"csrf_token": token})
    assert response.status_code == 404
    assert "Выйти" in stranger.get("/").get_data(as_text=True)


def test_password_change_signs_out_all_other_devices(app, client, me):
    other = app.test_client()
    Auth(other).login(PHONE)
    response = post(client, "/profile/password", {"current": "wrong1pass", **TWICE})
    assert "Неверный текущий пароль" in response.get_data(as_text=True)
    response = post(client, "/profile/password", {"current": PASSWORD, **TWICE})
    assert response.status_code == 302
    assert "Выйти" not in other.get("/").get_data(as_text=True)
    assert "Выйти" in client.get("/").get_data(as_text=True)
    assert accounts.verify_password(reload(me), TWICE["password"])


def test_current_password_guesses_share_the_sign_in_limit(app, client, me):
    """A borrowed session cannot guess the current password faster than the login page."""
    from domain import limits

    for _ in range(limits.LOGIN.tries):
        page = post(client, "/profile/password", {"current": "wrong1pass", **TWICE})
        assert "Неверный текущий пароль" in page.get_data(as_text=True)
    response = post(client, "/profile/password", {"current": PASSWORD, **TWICE})
    assert response.status_code == 422
    assert "Слишком много попыток. Попробуйте через 15 минут" in response.get_data(as_text=True)
    assert accounts.verify_password(reload(me), PASSWORD)
    # The same count holds at the login page.
    other = app.test_client()
    assert "Слишком много попыток входа" in Auth(other).login(PHONE).get_data(as_text=True)


@pytest.mark.parametrize("new", [TWICE, {"password": "short", "confirm": "short"}])
def test_password_change_checks_the_current_password_once(client, me, monkeypatch, new):
    """argon2 runs once a request, whether the new password is accepted or has mistakes."""
    checked = []
    real = accounts._matches
    monkeypatch.setattr(accounts, "_matches",
                        lambda stored, typed: checked.append(typed) or real(stored, typed))
    post(client, "/profile/password", {"current": PASSWORD, **new})
    assert checked == [PASSWORD]


def _schedule_deletion(app, client):
    html = client.get("/profile/delete").get_data(as_text=True)
    assert "Удалить аккаунт и все доступы" in html
    response = post(client, "/profile/delete/consequences", {"access": "y", "passes": "y"})
    assert response.status_code == 422
    assert "Отметьте, что вы это понимаете" in response.get_data(as_text=True)
    assert "обезличенными" in response.get_data(as_text=True)
    ticks = {k: "y" for k in ("access", "passes", "data", "payments", "grace")}
    response = post(client, "/profile/delete/consequences", ticks)
    assert response.headers["Location"] == "/profile/delete/code"
    sms = last_to(app, PHONE, "sms")
    assert post(client, "/profile/delete/code", {"code": sms["code"]}).status_code == 302


def test_deletion_is_scheduled_in_30_days_with_a_banner_and_can_be_cancelled(app, client, me):
    _schedule_deletion(app, client)
    due = reload(me).deletion_due_at
    assert abs(due - (utcnow() + dt.timedelta(days=30))) < dt.timedelta(minutes=1)
    home = client.get("/", follow_redirects=True).get_data(as_text=True)
    date = due.astimezone(dt.timezone(dt.timedelta(hours=3))).strftime("%d.%m.%Y")
    assert "Аккаунт будет удалён" in home and date in home and "Отменить удаление" in home
    page = client.get("/profile/delete/cancel").get_data(as_text=True)
    assert date in page and "Подтвердить" in page
    assert reload(me).deletion_due_at is not None  # a GET changes nothing
    assert post(client, "/profile/delete/cancel", {}).status_code == 302
    assert reload(me).deletion_due_at is None
    assert "Аккаунт будет удалён" not in client.get("/").get_data(as_text=True)


def test_wrong_deletion_code_schedules_nothing(app, client, me):
    ticks = {k: "y" for k in ("access", "passes", "data", "payments", "grace")}
    post(client, "/profile/delete/consequences", ticks)
    sms = last_to(app, PHONE, "sms")
    wrong = f"{(int(sms['code']) + 1) % 10000:04d}"
    assert post(client, "/profile/delete/code", {"code": wrong}).status_code == 422
    assert reload(me).deletion_due_at is None


def _rows_mentioning(account_id: int, needles: list[str]) -> list[str]:
    """Every row of every table that references the account or contains its phone/e-mail."""
    found = []
    for model in app_models():
        for row in model.select():
            for name, field in model._meta.fields.items():
                value = getattr(row, field.column_name if isinstance(field, ForeignKeyField)
                                else name, None)
                if isinstance(field, ForeignKeyField) and field.rel_model is Account:
                    if value == account_id:
                        found.append(f"{model.__name__}.{name}")
                elif isinstance(field, CharField | TextField) and value:
                    if any(n in str(value) for n in needles):
                        found.append(f"{model.__name__}.{name}={value!r}")
    return found


def test_purge_removes_everything_of_the_account_and_nothing_else(app, client, me, make_account):
    with app.test_request_context():
        keeper = make_account(phone="+79990009988", email="keeper@example.ru")
    with app.test_request_context(), db.connection_context():
        mine = territories.create_territory(Account.get_by_id(me.id), name="ЖК", kind="residential")
        theirs = territories.create_territory(keeper, name="Сад", kind="kindergarten")
        territories.JoinRequest.create(account=me.id, territory=theirs, decided_by=keeper)
        territories.JoinRequest.create(account=keeper, territory=mine, decided_by=me.id)
        territories.Membership.create(account=me.id, territory=theirs, role="resident")
        # Billing and passes of the person: a paid app access with a receipt e-mail, a card,
        # a vehicle pass.
        from domain import billing, passes

        paid = billing.Payment.create(
            territory=theirs, account=me.id, kind="app", status="succeeded", method="sbp",
            title="Доступ по приложению", months=3, price_kopecks=8500, expected_kopecks=8500,
            amount_kopecks=8500, provider="sandbox", idempotence_key="purge-test",
            email="roman@example.ru")
        billing.AccessGrant.create(account=me.id, territory=theirs,
                                   paid_until=utcnow() + dt.timedelta(days=90))
        billing.Card.create(territory=theirs, account=me.id, number=8106606)
        passes.VehiclePass.create(territory=theirs, account=me.id, plate="A777AA77",
                                  valid_from=utcnow(), valid_to=utcnow() + dt.timedelta(days=1))
    # A sign-up code by phone alone (sent before any account existed) and other codes.
    client.get("/signup")
    post(app.test_client(), "/signup", {"phone": PHONE, "consent": "y"})
    _schedule_deletion(app, client)
    post(client, "/profile/edit", {"surname": "Ф", "name": "Р", "patronymic": "",
                                   "email": "roman2@example.ru"})
    with db.connection_context():
        assert _rows_mentioning(me.id, [PHONE, "roman@example.ru", "roman2@example.ru"])
        Account.update(deletion_due_at=utcnow() - dt.timedelta(seconds=1)).where(
            Account.id == me.id).execute()
        before = {m.__name__: m.select().count() for m in app_models()}
    result = app.test_cli_runner().invoke(args=["purge-deleted"])
    assert result.exit_code == 0 and "purged 1" in result.output
    with db.connection_context():
        assert _rows_mentioning(me.id, [PHONE, "roman@example.ru", "roman2@example.ru"]) == []
        assert Account.get_or_none(Account.id == me.id) is None
        survivor = Account.get_by_id(keeper.id)
        assert survivor.phone == "+79990009988"
        assert territories.Membership.select().where(
            territories.Membership.account == keeper).count() == 1
        assert territories.Territory.select().count() == before["Territory"] == 2
        # The payment stays as an anonymous accounting record.
        kept = billing.Payment.get_by_id(paid.id)
        assert (kept.account_id, kept.email, kept.amount_kopecks) == (None, "", 8500)
    # The purged person's session is dead too.
    assert "Выйти" not in client.get("/").get_data(as_text=True)


def test_purge_keeps_accounts_whose_grace_has_not_ended(app, me):
    with app.test_request_context(), db.connection_context():
        Account.update(deletion_due_at=utcnow() + dt.timedelta(days=1)).where(
            Account.id == me.id).execute()
        assert accounts.purge_deleted() == 0
        assert Account.get_or_none(Account.id == me.id) is not None


def test_purge_job_runs_the_same_purge_in_its_own_context(app, me):
    from jobs import PurgeJob

    with db.connection_context():
        Account.update(deletion_due_at=utcnow() - dt.timedelta(days=1)).where(
            Account.id == me.id).execute()
    job = PurgeJob(app, every=3600).start()
    try:
        import gevent

        with gevent.Timeout(10):
            while True:
                with db.connection_context():
                    if Account.get_or_none(Account.id == me.id) is None:
                        break
                gevent.sleep(0.05)
    finally:
        job.stop()


def test_codes_and_send_logs_reference_account_with_cascade():
    assert Code.account.on_delete == "CASCADE"
    assert codes.SendLog.key.column_name == "key"


def test_a_person_without_a_name_is_greeted_by_the_phone_as_people_write_it(client, auth,
                                                                             make_account):
    make_account(phone="+79990001122")
    auth.login("+79990001122")
    assert "Здравствуйте, +7 (999) 000-11-22" in client.get("/").get_data(as_text=True)
    assert "<h1>+7 (999) 000-11-22</h1>" in client.get("/profile").get_data(as_text=True)


def test_pages_outside_a_territory_show_times_in_the_one_the_person_is_in(app, client, me):
    """The profile said UTC+03 on a new device while the home page showed a territory in
    Kamchatka (its only one); the deletion banner and the flash above it named two different
    days; the devices and one's own join request were in Moscow time (s24 audit)."""
    import re

    from domain.territories import Membership, create_territory, request_join

    with app.test_request_context():
        create_territory(me, name="Сад", kind="kindergarten", timezone="Asia/Kamchatka")
        elsewhere = create_territory(Account.create(phone="+79990001199"), name="ЖК",
                                     kind="residential", timezone="Asia/Vladivostok")
        request = request_join(me, elsewhere.code, "Дом 1")
        Account.update(deletion_due_at=dt.datetime(2027, 1, 2, 16, 46, tzinfo=dt.UTC)).where(
            Account.id == me.id).execute()
        Device.update(last_seen_at=dt.datetime(2026, 12, 3, 17, 0, tzinfo=dt.UTC),
                      created_at=dt.datetime(2026, 12, 3, 17, 0, tzinfo=dt.UTC)).execute()
        assert Membership.select().where(Membership.account == me).count() == 1
    # Nothing chosen on this device: the only territory is where the person is.
    profile = client.get("/profile").get_data(as_text=True)
    assert "UTC+12" in profile
    home = client.get("/").get_data(as_text=True)
    assert "03.01.2027" in home and "02.01.2027" not in home  # 16:46 UTC is 04:46 there
    devices = client.get("/profile/devices").get_data(as_text=True)
    assert "04.12.2026 05:00" in devices
    # One's own request is shown in its territory's zone, as its managers see it.
    shown = request.created_at.astimezone(ZoneInfo("Asia/Vladivostok")).strftime(
        "%d.%m.%Y %H:%M")
    assert re.search(rf'id="request-{request.id}".*?{re.escape(shown)}', home, re.S)
