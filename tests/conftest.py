"""Shared fixtures: a fresh app and database per test, a client, sign-in and factories."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from domain import accounts
from domain.db import db
from domain.schema import upgrade
from tests import database

# The suite creates and signs in hundreds of people: argon2's cheapest parameters, not the
# standard ~0.15 s a hash (tests/unit/test_codes.py checks the standard ones). Servers the
# tests start inherit it.
os.environ.setdefault("PASSWORD_HASHING", "cheapest-for-tests")

PASSWORD = "secret2024pass"
CSRF_RE = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def pytest_report_header(config) -> str:
    return f"database: {database.BACKEND} (PROPUSK_TEST_DB)"


@pytest.fixture(scope="session", autouse=True)
def _postgresql_cluster() -> Iterator[None]:
    """The PostgreSQL pass's cluster lives as long as the session and goes with it."""
    yield
    database.stop_cluster()


@pytest.fixture
def database_url(tmp_path) -> str:
    """A new database of the pass's backend, with the current schema (empty on SQLite)."""
    return database.fresh_url(tmp_path, "extra.db")


@pytest.fixture
def app(tmp_path) -> Iterator[Flask]:
    """A Propusk app on an empty database of its own and its own instance folder."""
    if database.postgresql():
        url = database.clean_shared_url()
    else:
        url = f"sqlite:///{tmp_path / 'propusk.db'}"
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "DATABASE_URL": url,
        }
    )
    # No app context is held across the test: each request must get its own `g`,
    # as in production (Flask reuses an outer app context, and with it `g`).
    with app.app_context():
        upgrade()
    yield app
    db.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A browser-like test client."""
    return app.test_client()


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token a page gives this client (forms carry it in a hidden input)."""
    html = client.get(path).get_data(as_text=True)
    match = CSRF_RE.search(html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


@pytest.fixture
def make_account() -> Callable[..., accounts.Account]:
    """Factory: an account with a phone (unique per call) and the test password."""
    counter = iter(range(1000, 10000))

    def make(**fields) -> accounts.Account:
        fields.setdefault("phone", f"+7999555{next(counter):04d}")
        fields.setdefault("password", PASSWORD)
        return accounts.create_account(**fields)

    return make


class Auth:
    """Signs a test client in and out through the real pages."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def login(self, login: str, password: str = PASSWORD, follow: bool = False):
        token = csrf_token(self.client)
        return self.client.post(
            "/login",
            data={"login": login, "password": password, "csrf_token": token},
            follow_redirects=follow,
        )

    def logout(self):
        token = csrf_token(self.client, "/")
        return self.client.post("/logout", data={"csrf_token": token})


@pytest.fixture
def auth(client: FlaskClient) -> Auth:
    """Sign-in helper bound to the test client."""
    return Auth(client)
