"""Accounts, their signed-in devices (server-side sessions) and passwords."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets

import gevent
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask_babel import lazy_gettext as _l
from peewee import BooleanField, CharField, ForeignKeyField, IntegerField

from domain.db import BaseModel, UtcDateTimeField, db, utcnow
from domain.errors import DomainError

MAX_DEVICES = 10
SESSION_LIFETIME = dt.timedelta(days=365)
# last_seen is a hint for "least recently used", not an audit log: write it at most this often.
TOUCH_EVERY = dt.timedelta(minutes=1)
MIN_PASSWORD = 8

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


class Account(BaseModel):
    """A person who signed up, by phone or by e-mail."""

    phone = CharField(null=True, unique=True)
    email = CharField(null=True, unique=True)
    surname = CharField(default="")
    name = CharField(default="")
    patronymic = CharField(default="")
    password_hash = CharField(null=True)
    is_admin = BooleanField(default=False)
    blocked = BooleanField(default=False)
    email_confirmed = BooleanField(default=False)
    created_at = UtcDateTimeField(default=utcnow)
    deletion_due_at = UtcDateTimeField(null=True)
    locale = CharField(null=True)

    # Flask-Login's protocol; the session id is the device token, never the account id,
    # so signing a device out makes a copied cookie worthless.
    device_token: str | None = None
    is_active = True
    is_anonymous = False
    is_authenticated = True

    def get_id(self) -> str | None:
        """The token of the device this account object was loaded through."""
        return self.device_token

    @property
    def full_name(self) -> str:
        """Surname, name and patronymic as one line."""
        return " ".join(p for p in (self.surname, self.name, self.patronymic) if p)

    @property
    def login(self) -> str:
        """What the person signs in with: the phone, else the e-mail."""
        return self.phone or self.email or ""


class Device(BaseModel):
    """One signed-in browser or phone; the session cookie only carries its token."""

    account = ForeignKeyField(Account, backref="devices", on_delete="CASCADE")
    token_hash = CharField(unique=True)
    label = CharField(default="")
    ip = CharField(null=True)
    created_at = UtcDateTimeField(default=utcnow)
    last_seen_at = UtcDateTimeField(default=utcnow, index=True)
    expires_at = UtcDateTimeField()
    # The territory chosen on this device («Выбрать территорию»); checked against the
    # memberships on every use, so a stale id grants nothing.
    territory_id = IntegerField(null=True)

    @classmethod
    def of(cls, account: Account):
        """The account's live devices, most recently used first."""
        return (
            cls.select()
            .where((cls.account == account) & (cls.expires_at > utcnow()))
            .order_by(cls.last_seen_at.desc())
        )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    """argon2id hash, computed in gevent's thread pool so the event loop keeps serving."""
    return gevent.get_hub().threadpool.apply(_hasher.hash, (password,))


def verify_password(account: Account | None, password: str) -> bool:
    """True when the password matches; spends the same effort when the account is unknown."""
    stored = account.password_hash if account is not None else None
    # Hash against a dummy when there is nothing to check, so timing does not tell.
    target = stored or _dummy_hash()
    try:
        ok = gevent.get_hub().threadpool.apply(_hasher.verify, (target, password))
    except (VerificationError, InvalidHashError):
        return False
    return bool(ok and stored)


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_hex(8))


def check_password_rules(password: str, field: str = "password") -> None:
    """At least 8 characters with letters and digits (the rule shown on every password form)."""
    if len(password) < MIN_PASSWORD:
        raise DomainError(_l("Пароль должен быть не короче 8 символов"), field)
    if not any(c.isalpha() for c in password) or not any(c.isdigit() for c in password):
        raise DomainError(_l("Пароль должен содержать буквы и цифры"), field)


def create_account(
    *,
    password: str,
    phone: str | None = None,
    email: str | None = None,
    surname: str = "",
    name: str = "",
    patronymic: str = "",
    is_admin: bool = False,
    email_confirmed: bool = False,
) -> Account:
    """Create an account with a checked, hashed password."""
    check_password_rules(password)
    password_hash = hash_password(password)
    email = email.strip().lower() if email else None
    with db.atomic():
        if phone and Account.select().where(Account.phone == phone).exists():
            raise DomainError(_l("Этот телефон уже зарегистрирован"), "phone")
        if email and Account.select().where(Account.email == email).exists():
            raise DomainError(_l("Этот e-mail уже зарегистрирован"), "email")
        return Account.create(
            phone=phone,
            email=email,
            surname=surname,
            name=name,
            patronymic=patronymic,
            password_hash=password_hash,
            is_admin=is_admin,
            email_confirmed=email_confirmed,
        )


def find_by_login(login: str) -> Account | None:
    """The account whose phone (E.164) or e-mail is `login`."""
    login = login.strip()
    if "@" in login:
        return Account.get_or_none(Account.email == login.lower())
    return Account.get_or_none(Account.phone == login)


def sign_in(account: Account, label: str, ip: str | None) -> str:
    """Open a device session and return its token; the 11th device pushes out the least used."""
    if account.blocked:
        raise DomainError(_l("Аккаунт заблокирован"))
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with db.atomic():
        Device.delete().where((Device.account == account) & (Device.expires_at <= now)).execute()
        Device.create(
            account=account,
            token_hash=_digest(token),
            label=label[:200],
            ip=ip,
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
        keep = Device.select(Device.id).where(Device.account == account)
        keep = keep.order_by(Device.last_seen_at.desc(), Device.id.desc()).limit(MAX_DEVICES)
        Device.delete().where(
            (Device.account == account) & Device.id.not_in([d.id for d in keep])
        ).execute()
    return token


def device_for_token(token: str | None) -> Device | None:
    """The live device behind a session token, with its account; None when signed out."""
    if not token:
        return None
    now = utcnow()
    device = (
        Device.select(Device, Account)
        .join(Account)
        .where((Device.token_hash == _digest(token)) & (Device.expires_at > now))
        .first()
    )
    if device is None or device.account.blocked:
        return None
    if now - device.last_seen_at > TOUCH_EVERY:
        Device.update(last_seen_at=now).where(Device.id == device.id).execute()
        device.last_seen_at = now
    device.account.device_token = token
    return device


def sign_out(token: str | None) -> None:
    """End the session of this token for good."""
    if token:
        Device.delete().where(Device.token_hash == _digest(token)).execute()


def sign_out_device(account: Account, device_id: int) -> bool:
    """Sign out one of the account's own devices; False when it is not theirs."""
    query = Device.delete().where((Device.id == device_id) & (Device.account == account))
    return query.execute() > 0


def sign_out_others(account: Account, keep_token: str | None) -> int:
    """Sign out every device of the account but the current one; returns how many."""
    query = Device.delete().where(Device.account == account)
    if keep_token:
        query = query.where(Device.token_hash != _digest(keep_token))
    return query.execute()


def authenticate(login: str, password: str) -> Account:
    """The account a phone-or-e-mail and password belong to; one vague error otherwise."""
    from domain.phones import parse_phone

    login = (login or "").strip()
    key = login
    if "@" not in login:
        try:
            key = parse_phone(login)
        except DomainError:
            key = ""
    account = find_by_login(key) if key else None
    # Never say which half was wrong: that would tell who is registered.
    if not verify_password(account, password or ""):
        raise DomainError(_l("Неверный логин или пароль"))
    if account.blocked:
        raise DomainError(_l("Аккаунт заблокирован"))
    return account
