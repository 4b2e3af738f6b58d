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
