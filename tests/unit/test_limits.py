"""Rate limits on guesses hold for tries sent at the same moment, not only one by one."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from domain import accounts, limits
from domain.db import db
from domain.errors import DomainError
from domain.limits import Attempt

PHONE = "+79990001122"


@pytest.fixture
def ctx(app):
    with app.test_request_context(), db.connection_context():
        yield app


def at_once(app, count: int, work):
    """Run `work(n)` in `count` threads released together, each with its own connection."""
    start = threading.Barrier(count)

    def one(n):
        with app.test_request_context(), db.connection_context():
            start.wait()
            return work(n)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_the_eleventh_try_is_refused_and_a_given_back_try_frees_its_place(ctx):
    taken = [limits.take(limits.LOGIN, PHONE) for _ in range(10)]
    assert all(taken)
    assert limits.take(limits.LOGIN, PHONE) is None
    assert Attempt.select().count() == 10  # the refused try is not counted
    limits.give_back(taken[0])
    assert limits.take(limits.LOGIN, PHONE) is not None
    assert limits.take(limits.LOGIN, "+79990001133") is not None  # another subject


def test_thirty_tries_at_once_get_no_more_than_the_limit(ctx):
    got = at_once(ctx, 30, lambda _n: limits.take(limits.LOGIN, PHONE))
    allowed = [t for t in got if t is not None]
    # All of them may be refused (each saw the others' tries before its own was judged):
    # a burst past the limit is an attack. None may get through beyond the limit.
    assert len(allowed) <= limits.LOGIN.tries
    assert Attempt.select().count() == len(allowed)


def test_parallel_wrong_passwords_check_no_more_than_ten(ctx, make_account, monkeypatch):
    # Checking a password waits for a worker thread; while it does, the other tries go on.
    # They used to all see the count from before anyone had failed: thirty were checked.
    make_account(phone=PHONE)
    checked = []
    real = accounts.verify_password

    def slow(account, password):
        checked.append(password)
        time.sleep(0.3)
        return real(account, password)

    monkeypatch.setattr(accounts, "verify_password", slow)

    def guess(n):
        try:
            accounts.authenticate(PHONE, f"wrong-pass{n}", ip=f"10.0.0.{n}")
        except DomainError as error:
            return str(error.message)
        return "signed in"

    answers = at_once(ctx, 30, guess)
    assert len(checked) <= limits.LOGIN.tries
    assert answers.count("Неверный логин или пароль") == len(checked)
    assert answers.count("Слишком много попыток входа. Попробуйте через 15 минут") == \
        30 - len(checked)
