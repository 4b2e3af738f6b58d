"""Territory test helpers: people without argon2, clients signed in directly, CSRF posts."""

from __future__ import annotations

import itertools

from flask import Flask
from flask.testing import FlaskClient

from domain import accounts
from domain.accounts import Account
from tests.conftest import csrf_token

_numbers = itertools.count(1000)


def person(surname: str = "", email_only: bool = False, **fields) -> Account:
    """An account that never types a password (tests sign it in directly)."""
    n = next(_numbers)
    if email_only:
        fields.setdefault("email", f"p{n}@example.ru")
    else:
        fields.setdefault("phone", f"+7999444{n:04d}")
    fields.setdefault("name", "Имя")
    return Account.create(surname=surname or f"Фамилия{n}", **fields)


def signed_in(app: Flask, account: Account) -> FlaskClient:
    """A new browser signed in as the account on a device of its own."""
    client = app.test_client()
    with app.test_request_context():
        token = accounts.sign_in(account, "test", "127.0.0.1")
    with client.session_transaction() as session:
        session["_user_id"] = token
        session["_fresh"] = True
    return client


def post(client: FlaskClient, url: str, data: dict | None = None, **kwargs):
    """POST a form with the client's CSRF token."""
    data = dict(data or {})
    data.setdefault("csrf_token", csrf_token(client, "/"))
    return client.post(url, data=data, **kwargs)
