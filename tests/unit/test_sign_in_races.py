"""A sign-in and a change to the same account at the same instant (concurrency audit, stop 24):
a sign-in with the old password racing «Сменить пароль» kept its session for a year, and
sign-ins at once pushed each other out while under the limit of ten devices. sign_in now
holds the account's row and reads it again; each test holds the other side's transaction
open on another connection (tests/gate_race) while sign_in runs."""

from __future__ import annotations

import secrets

import pytest

from domain import accounts
from domain.accounts import Account, Device
from domain.db import db, utcnow
from domain.errors import DomainError
from tests import database as test_database
from tests.gate_race import race


@pytest.fixture
def person(app, make_account):
    with app.app_context():
        return make_account(phone="+79997770031")


def _sign_in(app, account):
    def run():
        with app.test_request_context():
            try:
                return accounts.sign_in(account, "test", "127.0.0.1") and "signed in"
            except DomainError as error:
                return str(error.message)
            finally:
                db.close()
    return run


def test_a_sign_in_checked_before_a_password_change_committed_signs_nobody_in(app, person):
    def change(database) -> None:
        database.execute(Account.update(password_hash="new-hash").where(
            Account.id == person.id))

    outcome = race(app, change, _sign_in(app, person))  # `person` holds the old hash
    assert outcome.get("result") == "Неверный логин или пароль", outcome
    with app.app_context():
        assert Device.select().where(Device.account == person.id).count() == 0


def test_sign_ins_at_once_keep_each_other_under_the_limit(app, person):
    def other_sign_in(database) -> None:
        if test_database.postgresql():
            database.execute_sql("SELECT id FROM account WHERE id = %s FOR UPDATE",
                                 (person.id,))
        now = utcnow()
        database.execute(Device.insert(account=person.id, label="other", created_at=now,
                                       token_hash=secrets.token_hex(16), last_seen_at=now,
                                       expires_at=now + accounts.SESSION_LIFETIME))

    outcome = race(app, other_sign_in, _sign_in(app, person))
    assert outcome.get("result") == "signed in", outcome
    with app.app_context():
        assert Device.select().where(Device.account == person.id).count() == 2


def test_an_address_claimed_by_two_accounts_at_once_is_refused_not_a_500(app, person):
    """A stranger's e-mail sign-up link and an account's new-e-mail link, opened at once:
    the second answered 500 from the unique index."""
    from domain import codes
    from domain.db import lock_key

    email = "shared@example.ru"
    with app.test_request_context():
        _code, token = codes.issue(codes.EMAIL_CHANGE, email, "email", ip=None,
                                   account=person)

    def stranger_signs_up(database) -> None:
        if test_database.postgresql():
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)",
                                 (lock_key("login:" + email),))
        database.execute(Account.insert(email=email, email_confirmed=True))

    def confirm():
        with app.test_request_context():
            try:
                accounts.confirm_email_change(token)
                return "confirmed"
            except DomainError as error:
                return str(error.message)
            finally:
                db.close()

    outcome = race(app, stranger_signs_up, confirm)
    assert outcome.get("result") == "Этот e-mail уже зарегистрирован", outcome
    with app.app_context():
        assert Account.get_by_id(person.id).email != email
