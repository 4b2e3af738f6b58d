"""The shell of the app: pages, headers, PWA files, language, partials."""

from __future__ import annotations

import json

from tests.conftest import csrf_token


def test_home_renders_russian_by_default(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<html lang="ru">' in html
    assert "Войти" in html
    assert 'hx-boost="true"' in html
    assert '"X-CSRFToken"' in html


def test_strict_csp_and_security_headers(client):
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP by default
    names = [name.lower() for name in response.headers.keys() if name.lower() != "set-cookie"]
    assert len(names) == len(set(names))  # each header once


def test_https_adds_hsts_and_a_view_s_own_header_is_kept(app, tmp_path):
    from flask import Response

    from app import create_app

    secure = create_app({**app.config, "SESSION_COOKIE_SECURE": True,
                         "INSTANCE_PATH": str(tmp_path / "secure")})

    @secure.get("/framed")
    def framed():
        return Response("ok", headers={"X-Frame-Options": "SAMEORIGIN"})

    response = secure.test_client().get("/framed")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert response.headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")


def test_htmx_is_configured_for_the_csp(client):
    html = client.get("/").get_data(as_text=True)
    start = html.index("name=\"htmx-config\" content='") + len("name=\"htmx-config\" content='")
    config = json.loads(html[start : html.index("'", start)])
    assert config["allowEval"] is False
    assert config["includeIndicatorStyles"] is False
    assert config["historyCacheSize"] == 0
    assert "<script>" not in html  # no inline scripts anywhere in the shell


def test_manifest(client):
    response = client.get("/manifest.webmanifest")
    assert response.status_code == 200
    assert response.mimetype == "application/manifest+json"
    data = response.get_json(force=True)
    assert data["name"] == "Пропуск"
    assert data["display"] == "standalone"
    assert data["start_url"].startswith("/") and data["scope"] == "/"
    sizes = {(i["sizes"], i["purpose"]) for i in data["icons"]}
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= sizes
    for icon in data["icons"]:
        with client.get(icon["src"]) as image:
            assert image.status_code == 200
            assert image.mimetype == "image/png"
    # In the language chosen on this browser (audit, stop 23: Russian for everyone), which
    # the page's link sends its cookie for.
    assert 'rel="manifest" href="/manifest.webmanifest" crossorigin="use-credentials"' in (
        client.get("/login").get_data(as_text=True))
    client.post("/lang/en", data={"csrf_token": csrf_token(client, "/login")})
    english = client.get("/manifest.webmanifest")
    assert english.get_json(force=True)["name"] == "Propusk"
    assert english.get_json(force=True)["lang"] == "en"
    assert "Cookie" in english.headers["Vary"]


def test_service_worker_is_served_from_root(client):
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    body = response.get_data(as_text=True)
    assert "/offline" in body and "/static/app.css" in body
    assert 'request.method !== "GET"' in body and "HX-Request" in body


def test_offline_page_is_public(client):
    response = client.get("/offline")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Нет соединения" in html
    # Shown to everyone from the service worker's cache: no «Войти» for the signed in.
    assert 'class="nav"' not in html and "Войти" not in html


def test_install_help_has_the_android_steps(client):
    html = client.get("/help/install").get_data(as_text=True)
    assert "Добавить на гл. экран" in html and "Установить приложение" in html


def test_partial_or_page_is_decided_by_hx_request(client):
    page = client.get("/dev/outbox")
    assert "<html" in page.get_data(as_text=True)
    assert "HX-Request" in page.headers["Vary"]
    partial = client.get("/dev/outbox", headers={"HX-Request": "true"})
    body = partial.get_data(as_text=True)
    assert "<html" not in body and 'id="outbox"' in body
    assert "HX-Request" in partial.headers["Vary"]
    assert partial.headers["Cache-Control"] == "no-store"
    boosted = client.get("/dev/outbox", headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert "<html" in boosted.get_data(as_text=True)


def test_outbox_page_lists_what_was_sent(app, client):
    import providers

    with app.test_request_context():
        providers.telephony().sms("+79990001122", "Код: 4321", code="4321")
    html = client.get("/dev/outbox").get_data(as_text=True)
    assert "+79990001122" in html and "4321" in html


def test_outbox_page_can_be_switched_off(app, client):
    app.config["DEV_PAGES"] = False
    assert client.get("/dev/outbox").status_code == 404


def test_language_switch_is_remembered(client):
    token = csrf_token(client, "/")
    response = client.post("/lang/en", data={"csrf_token": token}, headers={"Referer": "http://localhost/"})
    assert response.status_code == 302
    html = client.get("/").get_data(as_text=True)
    assert '<html lang="en">' in html
    assert "Sign in" in html
    client.post("/lang/ru", data={"csrf_token": csrf_token(client, "/")})
    assert "Войти" in client.get("/").get_data(as_text=True)


def test_a_page_looks_its_catalogue_up_once(client, monkeypatch):
    """Flask-Babel's lookup of the catalogue costs some twenty lookups of a string in it, and a
    page asks for dozens of strings: blueprints/i18n keeps the request's catalogue."""
    import flask_babel

    lookups = []
    lookup = flask_babel.Domain.get_translations
    monkeypatch.setattr(flask_babel.Domain, "get_translations",
                        lambda self: lookups.append(1) or lookup(self))
    html = client.get("/").get_data(as_text=True)
    assert "Войти" in html and "· Пропуск</title>" in html
    assert len(lookups) == 1
    client.post("/lang/en", data={"csrf_token": csrf_token(client, "/")})
    lookups.clear()
    assert "Sign in" in client.get("/").get_data(as_text=True)
    assert len(lookups) == 1


def test_a_forced_language_and_the_one_after_it_are_each_translated(app):
    from flask_babel import force_locale, gettext

    with app.test_request_context("/"):
        assert gettext("Войти") == "Войти"
        with force_locale("en"):
            assert gettext("Войти") == "Sign in"
        assert gettext("Войти") == "Войти"


def test_language_switch_needs_csrf(client):
    assert client.post("/lang/en").status_code == 400


def test_unknown_language_refused(client):
    token = csrf_token(client, "/")
    assert client.post("/lang/de", data={"csrf_token": token}).status_code == 400


def test_the_language_chosen_before_signing_in_stays_on_this_browser_only(
        app, client, auth, make_account):
    """A guards' shared phone left in English: the guard who signs in there reads English on
    it, and their account (SMS, letters, other devices) keeps its own language."""
    account = make_account(phone="+79990001122")
    client.post("/lang/en", data={"csrf_token": csrf_token(client, "/login")},
                headers={"Referer": "http://localhost/login"})
    auth.login("+79990001122")
    assert '<html lang="en">' in client.get("/").get_data(as_text=True)
    with app.app_context():
        from domain.accounts import Account

        assert Account.get_by_id(account.id).locale is None  # as made: Russian
    # Signing out keeps this browser's language for its login page.
    token = csrf_token(client, "/")
    client.post("/logout", data={"csrf_token": token})
    assert '<html lang="en">' in client.get("/login").get_data(as_text=True)
    # Another browser of the same person: the account's language.
    from tests.conftest import Auth

    other = app.test_client()
    Auth(other).login("+79990001122")
    assert '<html lang="ru">' in other.get("/").get_data(as_text=True)
    # Chosen while signed in, it is the account's: the other browser follows.
    other.post("/lang/en", data={"csrf_token": csrf_token(other, "/")},
               headers={"Referer": "http://localhost/"})
    with app.app_context():
        assert Account.get_by_id(account.id).locale == "en"
    third = app.test_client()
    Auth(third).login("+79990001122")
    assert '<html lang="en">' in third.get("/").get_data(as_text=True)


def test_the_menu_marks_the_page_shown(client, auth, make_account):
    make_account(phone="+79990001122")
    auth.login("+79990001122")
    html = client.get("/profile").get_data(as_text=True)
    assert '<a href="/profile" aria-current="page">Профиль</a>' in html
    assert '<a href="/">Главная</a>' in html
