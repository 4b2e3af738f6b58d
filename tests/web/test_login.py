"""Signing in and out on server-side device sessions."""

from __future__ import annotations

import time

import pytest
from itsdangerous import URLSafeTimedSerializer

from domain.accounts import Device
from tests.conftest import PASSWORD, csrf_token


def test_login_with_phone_in_any_shape(client, auth, make_account):
    make_account(phone="+79990001122")
    response = auth.login("8 (999) 000-11-22")
    assert response.status_code == 302
    assert Device.select().count() == 1
    page = client.get("/")
    assert "Выйти" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"


def test_login_with_email(client, auth, make_account):
    make_account(email="Ivan@Example.ru")
    assert auth.login("ivan@example.ru").status_code == 302


def test_wrong_password_keeps_the_login_and_says_so(client, auth, make_account):
    make_account(phone="+79990001122")
    response = auth.login("+79990001122", "wrong-pass1")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Неверный логин или пароль" in html
    assert 'value="+79990001122"' in html
    assert Device.select().count() == 0


def test_unknown_account_gets_the_same_answer(client, auth):
    html = auth.login("+79990009999", "whatever1").get_data(as_text=True)
    assert "Неверный логин или пароль" in html


def test_login_requires_csrf(client, make_account):
    make_account(phone="+79990001122")
    response = client.post("/login", data={"login": "+79990001122", "password": PASSWORD})
    assert response.status_code == 400


def test_logout_kills_the_device_so_a_copied_cookie_is_dead(app, client, auth, make_account):
    make_account(phone="+79990001122")
    auth.login("+79990001122")
    copied = client.get_cookie("propusk").value
    auth.logout()
    assert Device.select().count() == 0
    thief = app.test_client()
    thief.set_cookie("propusk", copied)
    assert "Выйти" not in thief.get("/").get_data(as_text=True)


@pytest.mark.parametrize("target", [
    "//evil.example/", "/%09/evil.example/x", "/%5Cevil.example", "/%0A/evil.example",
    "https://evil.example/", "/\\evil.example",
])
def test_next_parameter_only_goes_to_this_site(client, make_account, target):
    make_account(phone="+79990001122")
    token = csrf_token(client)
    response = client.post(
        f"/login?next={target}",
        data={"login": "+79990001122", "password": PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/"


def test_next_parameter_leads_back_to_the_page_asked_for(client, make_account):
    make_account(phone="+79990001122")
    token = csrf_token(client)
    response = client.post(
        "/login?next=/t/1/passes%3Fpage%3D2",
        data={"login": "+79990001122", "password": PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/t/1/passes?page=2"


def test_ten_wrong_passwords_pause_that_login(client, auth, make_account):
    make_account(phone="+79990001122")
    make_account(phone="+79990001133")
    for _ in range(10):
        assert auth.login("+79990001122", "wrong-pass1").status_code == 422
    paused = auth.login("+79990001122")  # even the right password waits now
    assert paused.status_code == 422
    assert "Слишком много попыток входа" in paused.get_data(as_text=True)
    assert Device.select().count() == 0
    assert auth.login("+7 999 000-11-33").status_code == 302  # another login is not affected


def test_a_success_clears_the_failures(client, auth, make_account):
    make_account(phone="+79990001122")
    for _ in range(9):
        auth.login("+79990001122", "wrong-pass1")
    assert auth.login("+79990001122").status_code == 302
    auth.logout()
    for _ in range(9):
        auth.login("+79990001122", "wrong-pass1")
    assert auth.login("+79990001122").status_code == 302


def test_one_address_trying_many_logins_is_paused(app, make_account):
    make_account(phone="+79990001122")
    app.config["PROXY_HOPS"] = 0
    client = app.test_client()
    from tests.conftest import Auth

    auth = Auth(client)
    for n in range(50):
        auth.login(f"+7999000{n:04d}", "wrong-pass1")
    assert "Слишком много попыток входа" in auth.login("+79990001122").get_data(as_text=True)


def test_a_new_secret_key_ends_old_cookies_unless_kept_as_a_fallback(app, client, auth,
                                                                      make_account):
    # The cookie's serializer is built once per set of secrets (blueprints/sessions.py):
    # rotating the key must still be seen by the very next request.
    make_account(phone="+79990001122")
    auth.login("+79990001122")
    assert "Выйти" in client.get("/").get_data(as_text=True)
    app.secret_key = "rotated-secret"
    assert "Выйти" not in client.get("/").get_data(as_text=True)
    auth.login("+79990001122")
    app.config["SECRET_KEY_FALLBACKS"] = ["rotated-secret"]
    app.secret_key = "rotated-again"
    assert "Выйти" in client.get("/").get_data(as_text=True)


def test_an_htmx_request_without_a_session_sends_the_whole_page_to_the_login(client):
    # A plate check (or a feed's poll) after signing out in another tab: htmx would follow
    # a redirect and paste the login page into the verdict. It is told to load it instead,
    # coming back to the page the person was on, not to the partial.
    response = client.get("/t/1/check?plate=A777AA77", headers={
        "HX-Request": "true", "HX-Current-URL": "http://localhost/t/1/check?plate=B123BB77"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login?next=/t/1/check?plate%3DB123BB77"
    assert "<form" not in response.get_data(as_text=True)
    page = client.get(response.headers["HX-Redirect"]).get_data(as_text=True)
    assert "Войдите, чтобы продолжить" in page


def test_a_page_without_a_session_redirects_to_the_login_and_back(client):
    response = client.get("/t/1/passes?page=2")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/t/1/passes?page%3D2"


def test_a_cookie_verified_once_is_still_checked_as_itsdangerous_checks_it(
    app, client, auth, make_account, monkeypatch
):
    """The session interface remembers cookies it verified (blueprints/sessions.py): one
    sent again must still expire, give each request its own session to change, and a
    forged or altered one must never be remembered."""
    import blueprints.sessions as sessions

    make_account(phone="+79990001122")
    auth.login("+79990001122")
    assert "Выйти" in client.get("/").get_data(as_text=True)
    assert "Выйти" in client.get("/").get_data(as_text=True)  # the remembered cookie
    interface = app.session_interface
    cookie = client.get_cookie("propusk").value
    assert cookie in interface._verified

    def opened(text):
        with app.test_request_context(headers={"Cookie": f"propusk={text}"}) as context:
            return interface.open_session(app, context.request)

    first = opened(cookie)
    first["_user_id"] = "someone-else"
    assert opened(cookie)["_user_id"] != "someone-else"
    # Flask's flash() appends to the list the cookie brought: in place.
    flashed = interface.get_signing_serializer(app).dumps({"_flashes": [("info", "раз")]})
    opened(flashed)["_flashes"].append(("info", "только этому запросу"))
    assert opened(flashed)["_flashes"] == [("info", "раз")]
    # Altered by one character, or signed with another key: refused, and not remembered.
    kept = len(interface._verified)
    altered = cookie[:-2] + ("A" if cookie[-2] != "A" else "B") + cookie[-1]
    assert "_user_id" not in opened(altered)
    assert "_user_id" not in opened(URLSafeTimedSerializer("guessed").dumps({"_user_id": "x"}))
    assert len(interface._verified) == kept
    # A year and a day later (PERMANENT_SESSION_LIFETIME is a year) it has expired.
    later = time.time() + 366 * 86400
    monkeypatch.setattr(sessions.time, "time", lambda: later)
    assert "Выйти" not in client.get("/").get_data(as_text=True)
    assert cookie not in interface._verified


def test_the_remembered_cookies_are_bounded(app, monkeypatch):
    import blueprints.sessions as sessions

    monkeypatch.setattr(sessions, "VERIFIED_KEPT", 3)
    interface = app.session_interface
    serializer = interface.get_signing_serializer(app)
    cookies = [serializer.dumps({"n": n}) for n in range(5)]
    for n, cookie in enumerate(cookies):
        with app.test_request_context(headers={"Cookie": f"propusk={cookie}"}) as context:
            assert interface.open_session(app, context.request)["n"] == n
    assert list(interface._verified) == cookies[2:]  # the oldest forgotten first
