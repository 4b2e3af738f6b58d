"""One-time codes and send caps: every rule, against the database."""

from __future__ import annotations

import datetime as dt
import os
import threading

import gevent
import pytest
from argon2 import PasswordHasher

from domain import accounts, codes
from domain.codes import Code, SendLog
from domain.db import db, utcnow
from domain.errors import DomainError
from tests.conftest import PASSWORD

PHONE = "+79990001122"


@pytest.fixture
def ctx(app):
    """An app context with an open connection, for calling the domain directly."""
    with app.test_request_context(), db.connection_context():
        yield app


def issue(target=PHONE, ip="10.0.0.1", purpose=codes.SIGNUP, channel="call", now=None):
    return codes.issue(purpose, target, channel, ip=ip, now=now)


def test_code_is_four_digits_and_stored_only_as_a_keyed_hash(ctx):
    code, secret = issue()
    assert len(secret) == 4 and secret.isdigit()
    row = Code.get_by_id(code.id)
    # (Not "secret not in hash": four digits turn up inside a random hex digest about once
    # in a thousand runs.)
    assert row.secret_hash != secret and len(row.secret_hash) == 64
    assert row.secret_hash == codes.digest(secret)
    # Keyed with SECRET_KEY: a plain sha256 of the code is not what is stored.
    import hashlib

    assert row.secret_hash != hashlib.sha256(secret.encode()).hexdigest()


def test_right_code_verifies_once_then_is_used_up(ctx):
    code, secret = issue()
    assert codes.verify(code.id, codes.SIGNUP, secret).verified_at is not None
    proven = codes.verified(code.id, codes.SIGNUP)
    codes.consume(proven)
    with pytest.raises(DomainError):
        codes.consume(proven)
    with pytest.raises(DomainError, match="устарел"):
        codes.verify(code.id, codes.SIGNUP, secret)


@pytest.mark.parametrize("typed", ["", "12", "12345", "abcd", "１２３４", "12 3"])
def test_wrong_shape_says_four_digits_and_costs_no_attempt(ctx, typed):
    code, _ = issue()
    with pytest.raises(DomainError, match="Необходимо ввести 4 цифры"):
        codes.verify(code.id, codes.SIGNUP, typed)
    assert Code.get_by_id(code.id).attempts == 0


def test_three_wrong_tries_kill_the_code_even_for_the_right_one_after(ctx):
    code, secret = issue()
    wrong = f"{(int(secret) + 1) % 10000:04d}"
    for left in (2, 1):
        with pytest.raises(DomainError, match=f"Осталось попыток: {left}"):
            codes.verify(code.id, codes.SIGNUP, wrong)
    with pytest.raises(DomainError, match="Слишком много"):
        codes.verify(code.id, codes.SIGNUP, wrong)
    with pytest.raises(DomainError, match="Слишком много"):
        codes.verify(code.id, codes.SIGNUP, secret)
    assert Code.get_by_id(code.id).attempts == 3


def test_forty_guesses_at_once_are_compared_no_more_than_three_times(ctx, monkeypatch):
    """Each guess takes its place before it is compared: parallel guesses cannot go past the
    limit, so the right code sent among them is not found by a burst."""
    from tests.unit.test_limits import at_once

    code, secret = issue()
    wrong = []  # a right guess gives its place back, so only the wrong ones are bounded
    real = codes.hmac.compare_digest
    monkeypatch.setattr(codes.hmac, "compare_digest",
                        lambda a, b: real(a, b) or wrong.append(1))
    guesses = [f"{n:04d}" for n in range(40) if f"{n:04d}" != secret][:39] + [secret]

    def guess(n):
        try:
            return codes.verify(code.id, codes.SIGNUP, guesses[n]) is not None
        except DomainError:
            return False

    got = at_once(ctx, 40, guess)
    assert len(wrong) <= codes.MAX_ATTEMPTS
    assert Code.get_by_id(code.id).attempts <= codes.MAX_ATTEMPTS
    assert sum(got) <= 1


def test_a_right_code_gives_its_try_back(ctx):
    code, secret = issue()
    wrong = f"{(int(secret) + 1) % 10000:04d}"
    with pytest.raises(DomainError, match="Осталось попыток: 2"):
        codes.verify(code.id, codes.SIGNUP, wrong)
    codes.verify(code.id, codes.SIGNUP, secret)
    assert Code.get_by_id(code.id).attempts == 1


def test_code_expires_after_five_minutes(ctx):
    code, secret = issue()
    assert code.expires_at - code.created_at == dt.timedelta(minutes=5)
    Code.update(expires_at=utcnow() - dt.timedelta(seconds=1)).where(Code.id == code.id).execute()
    with pytest.raises(DomainError, match="устарел"):
        codes.verify(code.id, codes.SIGNUP, secret)


def test_code_of_another_purpose_does_not_count(ctx):
    code, secret = issue(purpose=codes.RECOVERY)
    with pytest.raises(DomainError):
        codes.verify(code.id, codes.SIGNUP, secret)


def test_resend_only_after_the_countdown_and_the_old_code_dies(ctx):
    start = utcnow()
    first, first_secret = issue(now=start)
    assert first.resend_in(start) == 120
    with pytest.raises(DomainError, match="Новый код можно запросить"):
        issue(now=start + dt.timedelta(seconds=100))
    second, _ = issue(now=start + dt.timedelta(seconds=121))
    assert second.id != first.id
    with pytest.raises(DomainError, match="устарел"):
        codes.verify(first.id, codes.SIGNUP, first_secret)


def _spread(n, **kw):
    start = utcnow() - dt.timedelta(minutes=50)
    for i in range(n):
        issue(now=start + dt.timedelta(minutes=2.5 * i), **kw)


def test_per_phone_cap_per_hour(ctx):
    _spread(codes.PER_TARGET_HOUR)
    with pytest.raises(DomainError, match="на этот адрес"):
        issue()
    # Another phone from the same address still gets its code.
    issue(target="+79990002233")


def test_per_ip_cap_per_hour(ctx):
    start = utcnow() - dt.timedelta(minutes=30)
    for i in range(codes.PER_IP_HOUR):
        issue(target=f"+7999000{i:04d}", now=start + dt.timedelta(seconds=i))
    with pytest.raises(DomainError, match="с вашего устройства"):
        issue(target="+79997776655")
    issue(target="+79997776655", ip="10.0.0.2")


def test_global_cap_on_calls_and_sms_stops_toll_fraud(ctx, monkeypatch):
    monkeypatch.setattr(codes, "GLOBAL_HOUR", 4)
    for i in range(4):
        issue(target=f"+7999000{i:04d}", ip=f"10.1.0.{i}")
    with pytest.raises(DomainError, match="перегружен"):
        issue(target="+79997776655", ip="10.9.9.9")
    # E-mail costs nothing per message: not under the telephony cap.
    codes.issue(codes.EMAIL_RECOVERY, "a@b.ru", "email", ip="10.9.9.9")


def test_counters_are_rows_and_hold_no_phone_or_ip_in_clear(ctx):
    issue(ip="203.0.113.7")
    keys = [row.key for row in SendLog.select()]
    assert len(keys) == 3
    assert not any(PHONE in k or "203.0.113.7" in k for k in keys)


def test_old_sends_fall_out_of_the_hour(ctx):
    _spread(codes.PER_TARGET_HOUR)
    for row in SendLog.select():
        SendLog.update(at=row.at - dt.timedelta(hours=1)).where(SendLog.id == row.id).execute()
    issue()


def test_links_are_long_and_live_a_day(ctx):
    code, token = codes.issue(codes.EMAIL_SIGNUP, "a@b.ru", "email", ip=None)
    assert len(token) >= 40
    assert code.expires_at - code.created_at == dt.timedelta(hours=24)
    assert codes.by_link(token, codes.EMAIL_SIGNUP).id == code.id
    with pytest.raises(DomainError):
        codes.by_link(token, codes.EMAIL_RECOVERY)
    with pytest.raises(DomainError):
        codes.by_link(token[:-1] + "x", codes.EMAIL_SIGNUP)


# --- passwords ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    ["Password2024", "qwerty123", "Qwerty12345", "1q2w3e4r5t", "1qaz2wsx", "aaaa1111",
     "12345678a", "Пароль2024", "admin12345", "iloveyou99", "abcd1234"],
)
def test_common_passwords_are_refused(password):
    with pytest.raises(DomainError, match="слишком простой"):
        accounts.check_password_rules(password)


@pytest.mark.parametrize("password", ["Zebra7track", "kot-v-sapogah-42", "Lun4park!xyz"])
def test_good_passwords_pass(password):
    accounts.check_password_rules(password)


def test_short_or_letterless_passwords_say_the_rule():
    with pytest.raises(DomainError, match="не короче 8"):
        accounts.check_password_rules("ab12")
    with pytest.raises(DomainError, match="буквы и цифры"):
        accounts.check_password_rules("abcdefghij")


def test_password_made_of_own_phone_or_email_is_refused():
    with pytest.raises(DomainError, match="слишком простой"):
        accounts.check_password_rules("ab9990001122", personal=("+79990001122",))
    with pytest.raises(DomainError, match="слишком простой"):
        accounts.check_password_rules("ivanov1990", personal=("ivanov@mail.ru",))


def test_argon2_runs_in_a_pool_thread_while_other_greenlets_go_on(monkeypatch):
    threads = []
    # The standard parameters, whatever the suite's PASSWORD_HASHING: tens of ms a hash.
    real = PasswordHasher.from_parameters(accounts.HASHING["standard"]).hash

    class Spy:
        def hash(self, password):
            threads.append(threading.current_thread())
            return real(password)

    monkeypatch.setattr(accounts, "_hasher", Spy())
    ticks = []

    def ticker():
        while True:
            ticks.append(1)
            gevent.sleep(0.001)

    other = gevent.spawn(ticker)
    try:
        hashed = gevent.spawn(accounts.hash_password, "Zebra7track").get(timeout=30)
    finally:
        other.kill()
    assert hashed.startswith("$argon2id$")
    assert threads and threads[0] is not threading.main_thread()
    # The loop served the other greenlet while argon2 worked (tens of ms of hashing).
    assert len(ticks) >= 5


STANDARD = "$argon2id$v=19$m=65536,t=3,p=4$"
CHEAPEST = "$argon2id$v=19$m=8,t=1,p=1$"


@pytest.fixture
def suite_hashing():
    """Whatever a test sets, the suite's own PASSWORD_HASHING comes back after it."""
    suite = os.environ.get("PASSWORD_HASHING", "standard")
    yield
    accounts.use_hashing(suite)


def test_without_a_setting_passwords_get_the_standard_parameters(monkeypatch, tmp_path,
                                                                 suite_hashing):
    from app import create_app

    monkeypatch.delenv("PASSWORD_HASHING", raising=False)
    create_app({"TESTING": True, "SECRET_KEY": "t", "INSTANCE_PATH": str(tmp_path / "i"),
                "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}"})
    assert accounts.hash_password("Zebra7track").startswith(STANDARD)


def test_an_unknown_hashing_setting_stops_the_start(monkeypatch, tmp_path, suite_hashing):
    from app import create_app

    monkeypatch.setenv("PASSWORD_HASHING", "md5")
    with pytest.raises(ValueError, match="PASSWORD_HASHING must be one of standard"):
        create_app({"TESTING": True, "SECRET_KEY": "t", "INSTANCE_PATH": str(tmp_path / "i")})


def test_a_weak_hash_is_made_standard_at_the_next_sign_in(ctx, make_account, suite_hashing):
    accounts.use_hashing("cheapest-for-tests")
    account = make_account()
    assert account.password_hash.startswith(CHEAPEST)
    accounts.use_hashing("standard")
    with pytest.raises(DomainError):
        accounts.authenticate(account.phone, "not-the-password")
    assert accounts.Account.get_by_id(account.id).password_hash.startswith(CHEAPEST)
    accounts.authenticate(account.phone, PASSWORD)
    upgraded = accounts.Account.get_by_id(account.id).password_hash
    assert upgraded.startswith(STANDARD)
    # The new hash is of the same password, and stays as it is from then on.
    assert accounts.authenticate(account.phone, PASSWORD).id == account.id
    assert accounts.Account.get_by_id(account.id).password_hash == upgraded
