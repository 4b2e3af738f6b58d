"""Error answers in the person's language and in the app's shell, not werkzeug's English
pages; an htmx request gets a fragment the page's banner shows."""

from __future__ import annotations

import pytest

from tests.conftest import csrf_token
from tests.web.territory_kit import person, post, signed_in


def test_a_missing_page_is_ours_in_russian_then_in_english(client):
    response = client.get("/no-such-page")
    html = response.get_data(as_text=True)
    assert response.status_code == 404
    assert "Страница не найдена" in html and "Not Found" not in html
    assert 'id="request-error"' in html and "На главную" in html  # the shell, with a way on
    client.post("/lang/en", data={"csrf_token": csrf_token(client)})
    html = client.get("/no-such-page").get_data(as_text=True)
    assert "Page not found" in html and '<html lang="en">' in html


def test_someone_elses_territory_reads_as_missing(app):
    with app.test_request_context():
        stranger = person("Чужой")
    html = signed_in(app, stranger).get("/t/4242/").get_data(as_text=True)
    assert "Страница не найдена" in html and "нет к ней доступа" in html


def test_a_stale_form_says_to_reload_it(client):
    response = client.post("/login", data={"login": "+79990001122", "password": "x"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Страница устарела" in html and "CSRF token" not in html


def test_an_htmx_request_gets_a_fragment_for_the_banner(client):
    client.get("/login")
    response = client.post("/login", data={}, headers={"HX-Request": "true",
                                                       "X-CSRFToken": "forged"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert html.strip().startswith('<p class="flash flash-error" data-request-error>')
    assert "Форма устарела" in html and "<html" not in html


def test_a_wrong_method_keeps_its_allow_header(client):
    response = client.get("/logout")
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    assert "Неверный запрос" in response.get_data(as_text=True)


def test_a_too_large_upload_says_the_limit(app, client):
    with app.test_request_context():
        manager = person("Управляющий")
    client = signed_in(app, manager)
    response = post(client, "/territories/new", {"name": "x" * (3 * 1024 * 1024)})
    assert response.status_code == 413
    assert "Слишком большой файл" in response.get_data(as_text=True)


@pytest.fixture
def failing(app):
    """A route that fails, with errors handled as in production (not raised to the test)."""

    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app.test_client()


def test_a_failure_is_a_500_page_that_tells_no_internals(failing):
    response = failing.get("/boom")
    html = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Что-то пошло не так" in html and "RuntimeError" not in html and "boom" not in html


def test_when_even_the_shell_fails_the_page_still_answers(failing, monkeypatch):
    import blueprints.errors

    def broken(name, **ctx):
        raise RuntimeError("database is down")

    monkeypatch.setattr(blueprints.errors, "render_template", broken)
    response = failing.get("/boom")
    assert response.status_code == 500
    assert "Что-то пошло не так" in response.get_data(as_text=True)
    # An htmx request renders no template at all: its words reach the banner regardless.
    response = failing.get("/boom", headers={"HX-Request": "true"})
    assert response.status_code == 500 and "data-request-error>Ошибка на сервере" in \
        response.get_data(as_text=True)


def test_a_database_busy_too_long_is_a_wait_not_a_fault(app, monkeypatch):
    """Another process holding SQLite's write lock past the request's patience (a long
    upgrade, a `gen.py` run) used to give the 500 page «Ошибка на сервере»; it is a 503
    that says to send again, with Retry-After, and nothing is half-written."""
    import sqlite3

    from domain.db import db
    from domain.passes import VehiclePass
    from domain.territories import create_territory
    from tests import database

    if database.postgresql():
        pytest.skip("SQLite's file lock")
    app.config["PROPAGATE_EXCEPTIONS"] = False
    with app.test_request_context():
        manager = person("Управляющий")
        tid = create_territory(manager, name="ЖК", kind="residential").id
    client = signed_in(app, manager)
    token = csrf_token(client, f"/t/{tid}/passes/new")
    form = {"csrf_token": token, "plate": "А777АА77", "period": "day"}
    monkeypatch.setattr(db.obj, "busy_wait", 0.3)
    holder = sqlite3.connect(app.config["DATABASE_URL"].removeprefix("sqlite:///"))
    holder.execute("BEGIN IMMEDIATE")
    try:
        response = client.post(f"/t/{tid}/passes/new", data=form)
        assert response.status_code == 503 and response.headers["Retry-After"] == "5"
        html = response.get_data(as_text=True)
        assert "Сервер занят" in html and "отправьте ещё раз" in html
        hx = client.post(f"/t/{tid}/passes/new", data=form, headers={"HX-Request": "true"})
        assert hx.status_code == 503 and "data-request-error>Сервер сейчас занят" in \
            hx.get_data(as_text=True)
    finally:
        holder.rollback()
        holder.close()
    with app.app_context():
        assert VehiclePass.select().count() == 0
    assert client.post(f"/t/{tid}/passes/new", data=form).status_code == 302


def test_a_sign_in_lookup_that_fails_is_not_tried_again_for_the_error_page(app, monkeypatch):
    """Audit: the device's last-seen write met SQLite's lock inside Flask-Login's user
    loader; the error page's language, its shell and the security headers each looked at
    current_user, ran the loader again and waited again: 10 s, then a bare 500. The lookup
    runs once; the answer is the 503 that says to send again."""
    import datetime as dt
    import sqlite3

    from domain import territories
    from domain.accounts import Device
    from domain.db import db, utcnow
    from domain.territories import Membership, create_territory
    from tests import database

    if database.postgresql():
        pytest.skip("SQLite's file lock")
    app.config["PROPAGATE_EXCEPTIONS"] = False
    with app.test_request_context():
        manager = person("Управляющий")
        t = create_territory(manager, name="ЖК", kind="residential")
        guard = person("Охранов")
        Membership.create(account=guard, territory=t, role="operator")
    client = signed_in(app, guard)
    with app.app_context():  # last seen long ago: this request writes it
        Device.update(last_seen_at=utcnow() - dt.timedelta(hours=1)).execute()
    calls = []
    real = territories.device_with_membership

    def counted(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(territories, "device_with_membership", counted)
    monkeypatch.setattr(db.obj, "busy_wait", 0.3)
    holder = sqlite3.connect(app.config["DATABASE_URL"].removeprefix("sqlite:///"))
    holder.execute("BEGIN IMMEDIATE")
    try:
        # The mistake header sends it through Flask, not the check's shortcut.
        response = client.get(f"/t/{t.id}/check?plate=A777AA77",
                              headers={"HX-Request": "true", "X-Plate-Mistake": "shown"})
        assert response.status_code == 503, response.get_data(as_text=True)
        assert "data-request-error>Сервер сейчас занят" in response.get_data(as_text=True)
        assert len(calls) == 1
        full = client.get(f"/t/{t.id}/passes")  # the whole page: the shell, as nobody
        assert full.status_code == 503 and "Сервер занят" in full.get_data(as_text=True)
        assert len(calls) == 2
    finally:
        holder.rollback()
        holder.close()
    assert client.get(f"/t/{t.id}/check?plate=A777AA77",
                      headers={"HX-Request": "true"}).status_code == 200


def test_an_id_no_database_can_hold_is_no_page(app):
    """Audit: /t/<a 20-digit number>/… reached SQLite, which refused it (OverflowError):
    a bare 500. Every `<int:…>` of a route now stops at 2**63 - 1."""
    with app.test_request_context():
        someone = person("Кто-то")
    client = signed_in(app, someone)
    for path in ("/t/99999999999999999999/", "/t/9223372036854775808/check",
                 "/t/1/passes/99999999999999999999/revoke"):
        response = client.get(path)
        assert response.status_code in (404, 405), path
        assert "Страница не найдена" in response.get_data(as_text=True) or \
            response.status_code == 405
    assert client.get("/t/9223372036854775807/").status_code == 404  # the largest: no such
