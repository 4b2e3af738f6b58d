"""The plate check's shortcut (blueprints/passes/shortcut.py) answers exactly as Flask would,
and leaves to Flask every request it cannot answer the same way."""

from __future__ import annotations

import datetime as dt
import re
import string
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder

from blueprints.passes import shortcut as shortcut_module
from blueprints.passes.shortcut import EXPECTED, CheckShortcut, hooks
from domain import accounts
from domain.db import utcnow
from domain.passes import VehiclePass
from domain.territories import Membership, Territory, Unit, create_territory
from tests.web.territory_kit import person, signed_in

HX = {"HX-Request": "true"}


@pytest.fixture
def world(app):
    """A territory with passes of every kind and its people; another territory; an admin."""
    with app.app_context():
        manager = person("Управляева")
        t = create_territory(manager, name="ЖК", kind="residential")
        unit = Unit.create(territory=t, name="Дом 1, кв. 2")
        resident = person("Жильцов", locale="en")
        blocked = person("Блокова")
        operator = person("Охранов")
        english_operator = person("Guardson", locale="en")
        Membership.create(account=resident, territory=t, role="resident", unit=unit)
        Membership.create(account=blocked, territory=t, role="resident")
        Membership.create(account=operator, territory=t, role="operator")
        Membership.create(account=english_operator, territory=t, role="operator")
        outsider = person("Чужов")
        other = create_territory(outsider, name="Другая", kind="residential")
        Membership.create(account=person("Охранник"), territory=other, role="operator")
        admin = person("Админов", is_admin=True)
        now = utcnow()
        hour = dt.timedelta(hours=1)
        for owner, plate, start, end, revoked in [
            (resident, "A777AA77", -1, 24, False),
            (resident, "B222BB77", -30, -5, False),
            (resident, "C333CC77", -1, 24, True),
            (resident, "E444EE77", 48, 72, False),
            (resident, "K555KK77", -1, None, False),
            (blocked, "M666MM77", -1, 24, False),
            (outsider, "X777XX77", -1, 24, False),
        ]:
            VehiclePass.create(
                territory=other if owner is outsider else t, account=owner, plate=plate,
                unit=unit if owner is resident else None, valid_from=now + start * hour,
                valid_to=None if end is None else now + end * hour,
                revoked_at=now if revoked else None)
        accounts.set_blocked(blocked, True)
        people = dict(manager=manager, resident=resident, operator=operator,
                      english_operator=english_operator, admin=admin, outsider=outsider)
    clients = {name: signed_in(app, who) for name, who in people.items()}
    return SimpleNamespace(t=t.id, other=other.id, clients=clients)


def _environ(client, path: str, headers: dict | None = None, host: str = "localhost") -> dict:
    cookie = client.get_cookie("propusk")
    headers = dict(headers or {})
    if cookie is not None:
        headers["Cookie"] = f"propusk={cookie.value}"
    return EnvironBuilder(path=path, headers=headers, base_url=f"http://{host}").get_environ()


def _call(wsgi, environ: dict) -> tuple[str, list, bytes]:
    seen: dict = {}

    def start_response(status, headers, exc_info=None):
        seen.update(status=status, headers=list(headers))

    body = b"".join(wsgi(dict(environ), start_response))
    return seen["status"], seen["headers"], body


TOKENS = re.compile(r'(propusk=|"X-CSRFToken": "|name="csrf_token" value=")[^";]+')


def _masked(answer: tuple[str, list, bytes]) -> tuple[str, list, str]:
    """An answer with its CSRF tokens and session cookie blanked out."""
    status, headers, body = answer
    return (status, [(name, TOKENS.sub(r"\1…", value)) for name, value in headers],
            TOKENS.sub(r"\1…", body.decode()))


def _shortcut(app) -> CheckShortcut:
    assert isinstance(app.wsgi_app, CheckShortcut)
    return app.wsgi_app


def answers(app, client, path: str, headers: dict | None = None, host: str = "localhost"):
    """(whether the shortcut answered, its answer, Flask's answer) for one request."""
    environ = _environ(client, path, headers, host)
    cut = _shortcut(app)
    served = cut.verdict(dict(environ)) is not None
    return served, _call(cut, environ), _call(cut.inner, environ)


PLATES = ["A777AA77", "а 777 аа 77", "B222BB77", "c333cc77", "Е444ЕЕ77", "K555KK77",
          "M666MM77", "X777XX77", "T000TT00", "", "  ", "WOBZK295"]


@pytest.mark.parametrize("who", ["operator", "english_operator", "manager"])
@pytest.mark.parametrize("plate", PLATES)
def test_the_shortcut_answers_byte_for_byte_as_flask(app, world, who, plate):
    served, ours, flasks = answers(app, world.clients[who], f"/t/{world.t}/check?plate={plate}",
                                   HX)
    assert served
    assert ours == flasks
    assert ours[0] == "200 OK"


def test_the_verdicts_are_the_real_ones(app, world):
    """Not an empty page twice: the answers carry the owner, the reason, the language."""
    client = world.clients["operator"]
    _, (_, _, body), _ = answers(app, client, f"/t/{world.t}/check?plate=а777аа77", HX)
    text = body.decode()
    assert "Въезд разрешён" in text and "Жильцов" in text and "Дом 1, кв. 2" in text
    _, (_, _, body), _ = answers(app, client, f"/t/{world.t}/check?plate=M666MM77", HX)
    assert "Въезд запрещён" in body.decode()
    _, (_, _, body), _ = answers(app, world.clients["english_operator"],
                                 f"/t/{world.t}/check?plate=B222BB77", HX)
    assert "Entry denied" in body.decode()


def test_the_browser_language_wins_as_in_flask(app, world):
    client = world.clients["operator"]
    with client.session_transaction() as session:
        session["lang"] = "en"
    served, ours, flasks = answers(app, client, f"/t/{world.t}/check?plate=A777AA77", HX)
    assert served and ours == flasks and b"Entry allowed" in ours[2]


@pytest.mark.parametrize(
    ("who", "path", "headers", "host"),
    [
        (None, "/t/{t}/check?plate=A777AA77", HX, "localhost"),  # nobody signed in
        ("resident", "/t/{t}/check?plate=A777AA77", HX, "localhost"),  # not a watcher
        ("admin", "/t/{t}/check?plate=A777AA77", HX, "localhost"),  # Flask's stand-in manager
        ("outsider", "/t/{t}/check?plate=A777AA77", HX, "localhost"),  # another territory's
        ("operator", "/t/{other}/check?plate=X777XX77", HX, "localhost"),  # not their territory
        ("operator", "/t/999999/check?plate=A777AA77", HX, "localhost"),  # no such territory
        ("operator", "/t/{t}/check?plate=A777AA77", {}, "localhost"),  # the full page
        ("operator", "/t/{t}/check?plate=A777AA77", {**HX, "HX-Boosted": "true"}, "localhost"),
        ("operator", "/t/{t}/check?plate=A777AA77", {**HX, "X-Plate-Mistake": "1"},
         "localhost"),
        ("operator", "/t/{t}/check?plate=$$$", HX, "localhost"),  # the field's mistake
        ("operator", "/t/{t}/check?plate=" + "7" * 200, HX, "localhost"),  # too long
        ("operator", "/t/{t}/check?plate=A777AA77", HX, "evil.example"),  # a host not served
        ("operator", "/t/{t}/checks?plate=A777AA77", HX, "localhost"),
        ("operator", "/t/{t}/check/suggest?plate=A777", HX, "localhost"),
        ("operator", "/t/99999999999999999999/check?plate=A777AA77", HX, "localhost"),  # 404
    ],
)
def test_what_the_shortcut_leaves_to_flask(app, world, who, path, headers, host):
    client = world.clients[who] if who else app.test_client()
    served, ours, flasks = answers(app, client, path.format(t=world.t, other=world.other),
                                   headers, host)
    assert not served
    # Both from Flask, the shortcut having passed the request on untouched (a page with a
    # form mints a new CSRF token, and so a new cookie, each time).
    assert _masked(ours) == _masked(flasks)


def test_a_signed_out_device_is_left_to_flask(app, world):
    client = world.clients["operator"]
    path = f"/t/{world.t}/check?plate=A777AA77"
    assert answers(app, client, path, HX)[0]
    with app.app_context():
        accounts.sign_out(_token(client))
    served, ours, _ = answers(app, client, path, HX)
    assert not served and ours[0] == "401 UNAUTHORIZED"


def _token(client) -> str:
    with client.session_transaction() as session:
        return session["_user_id"]


def test_a_remember_me_session_is_left_to_flask(app, world):
    client = world.clients["operator"]
    with client.session_transaction() as session:
        session["_remember"] = "set"
    served, ours, flasks = answers(app, client, f"/t/{world.t}/check?plate=A777AA77", HX)
    assert not served and ours == flasks


def test_a_role_taken_away_is_seen_at_once(app, world):
    client = world.clients["operator"]
    path = f"/t/{world.t}/check?plate=A777AA77"
    assert client.get(path, headers=HX).status_code == 200
    with app.app_context():
        Membership.update(role="resident").where(
            Membership.territory == world.t, Membership.role == "operator").execute()
    assert client.get(path, headers=HX).status_code == 404


def test_a_territory_with_passes_off_answers_as_flask(app, world):
    with app.app_context():
        Territory.update(passes_enabled=False).where(Territory.id == world.t).execute()
    served, ours, flasks = answers(app, world.clients["operator"],
                                   f"/t/{world.t}/check?plate=A777AA77", HX)
    assert served and ours == flasks


def test_an_error_inside_is_answered_by_flask(app, world, monkeypatch):
    def broken(*args):
        raise RuntimeError("the shortcut's lookup failed")

    monkeypatch.setattr(shortcut_module, "device_with_membership", broken)
    client = world.clients["operator"]
    response = client.get(f"/t/{world.t}/check?plate=A777AA77", headers=HX)
    assert response.status_code == 200 and "Въезд разрешён" in response.get_data(as_text=True)


def test_it_stands_in_only_for_the_hooks_it_knows(app, world):
    """The app's hooks are the ones the shortcut does the work of; a new one switches it off,
    and the request then meets the hook in Flask."""
    assert hooks(app, "passes") == EXPECTED
    seen = []

    @app.before_request
    def _counted():
        seen.append(1)

    fresh = CheckShortcut(app, _shortcut(app).inner)
    app.wsgi_app = fresh
    client = world.clients["operator"]
    response = client.get(f"/t/{world.t}/check?plate=A777AA77", headers=HX)
    assert response.status_code == 200 and seen == [1]
    assert not fresh.serves()


def test_the_connection_goes_back_after_each_answer(app, world):
    """The shortcut opens the request's database connection and gives it back, answer or
    not, as Flask's teardown does."""
    from domain.db import db

    client = world.clients["operator"]
    environ = _environ(client, f"/t/{world.t}/check?plate=A777AA77", HX)
    assert _shortcut(app).verdict(dict(environ)) is not None
    assert db.is_closed()
    resident = _environ(world.clients["resident"], f"/t/{world.t}/check?plate=A777AA77", HX)
    assert _shortcut(app).verdict(dict(resident)) is None  # left to Flask after the query
    assert db.is_closed()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plate=st.text(alphabet=string.ascii_letters + string.digits + " -.$%&?#+"
                     "АВЕКМНОРСТУХавекмнорстухЖжЁё", max_size=16))
def test_any_typed_plate_gets_flasks_answer(app, world, plate):
    from urllib.parse import quote

    served, ours, flasks = answers(app, world.clients["operator"],
                                   f"/t/{world.t}/check?plate={quote(plate)}", HX)
    assert ours == flasks


def test_it_lets_through_the_roles_of_the_views_own_decorator(app, world):
    from blueprints.passes.routes import check

    assert check.territory_roles == {"operator", "manager"}
    check.territory_roles = {"manager"}
    try:
        fresh = CheckShortcut(app, _shortcut(app).inner)
        environ = _environ(world.clients["operator"], f"/t/{world.t}/check?plate=A777AA77", HX)
        assert fresh.verdict(dict(environ)) is None
        environ = _environ(world.clients["manager"], f"/t/{world.t}/check?plate=A777AA77", HX)
        assert fresh.serves() and fresh.verdict(dict(environ)) is not None
        del check.territory_roles
        assert not CheckShortcut(app, _shortcut(app).inner).serves()
    finally:
        check.territory_roles = {"operator", "manager"}


def test_once_it_has_decided_flask_takes_no_new_hook(app, world):
    """Audit: a hook added after the shortcut's first answer was skipped for good (its
    decision is kept). Flask now refuses it, as after its own first request."""
    assert _shortcut(app).serves()
    with pytest.raises(AssertionError, match="setup method"):
        app.before_request(lambda: None)


def test_a_decorator_stacked_on_the_view_switches_it_off(app, world):
    """Audit: a wrapper above territory_route copied its roles, and the shortcut let through
    whom the wrapper refused."""
    import functools

    from flask import abort

    view = app.view_functions["passes.check"]

    @functools.wraps(view)
    def closed(*args, **kwargs):
        abort(403)

    app.view_functions["passes.check"] = closed
    fresh = CheckShortcut(app, _shortcut(app).inner)
    app.wsgi_app = fresh
    response = world.clients["operator"].get(f"/t/{world.t}/check?plate=A777AA77", headers=HX)
    assert response.status_code == 403 and not fresh.serves()


@pytest.mark.parametrize("change", ["strong", "basic", "csrf_on_get", "listener"])
def test_settings_and_listeners_that_change_flasks_answer_switch_it_off(app, world, change):
    """Audit: Flask-Login's session protection (401, or a re-signed cookie), CSRF on GET (400)
    and a listener to a request signal made Flask's answer differ; the shortcut served on."""
    from flask_login import signals

    def listener(*args, **kwargs):
        pass

    if change in ("strong", "basic"):
        app.config["SESSION_PROTECTION"] = change
    elif change == "csrf_on_get":
        app.config["WTF_CSRF_METHODS"] = ["GET", "POST"]
    else:
        signals.user_accessed.connect(listener, app)
    try:
        assert not CheckShortcut(app, _shortcut(app).inner).serves()
    finally:
        signals.user_accessed.disconnect(listener, app)


def test_a_database_error_is_answered_by_flask_without_a_second_wait(app, world, monkeypatch):
    """Audit: an error in the shortcut's database work made Flask run the whole request
    again, and wait out a busy database a second time. Flask now answers with the error the
    shortcut met (503 for a busy one), asking the database nothing more."""
    import sqlite3

    from peewee import OperationalError

    from domain import territories

    calls = []

    def busy(*args):
        calls.append(args)
        # As peewee raises SQLite's error: wrapped, the driver's kept as `orig`.
        raise OperationalError(sqlite3.OperationalError("database is locked"))

    monkeypatch.setattr(shortcut_module, "device_with_membership", busy)
    monkeypatch.setattr(territories, "device_with_membership", busy)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = world.clients["operator"].get(f"/t/{world.t}/check?plate=A777AA77", headers=HX)
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert "Сервер сейчас занят" in response.get_data(as_text=True)
    assert len(calls) == 1  # the shortcut's; Flask's user loader re-raised it
