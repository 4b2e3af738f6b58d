"""One-time codes (flash call, SMS, e-mail link) and the send limits that guard them.

Everything here lives in the database, never in process memory: several web processes
share the same codes, attempt counters and hourly caps.

A 4-digit code has only 10 000 values, which is weaker than OWASP ASVS asks of an
out-of-band secret. What compensates: a code lives 5 minutes, dies after 3 wrong tries,
a new one can be asked for only after the countdown, and sends are capped per phone,
per client IP and globally per hour (docs/security.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from peewee import CharField, ForeignKeyField, IntegerField, TextField

from domain.accounts import Account
from domain.db import BaseModel, UtcDateTimeField, db, hold, utcnow
from domain.errors import DomainError

CODE_TTL = dt.timedelta(minutes=5)
LINK_TTL = dt.timedelta(hours=24)
# After the code is right, the person has this long to choose a password.
VERIFIED_TTL = dt.timedelta(minutes=15)
RESEND_AFTER = dt.timedelta(seconds=120)
MAX_ATTEMPTS = 3
CODE_DIGITS = 4

# Hourly caps; the global one stops a toll-fraud run from dialling premium numbers all night.
PER_TARGET_HOUR = 5
PER_IP_HOUR = 10
GLOBAL_HOUR = 300
WINDOW = dt.timedelta(hours=1)

# What a code proves, by purpose.
SIGNUP = "signup"  # phone sign-up (also recovery when the phone turns out to be registered)
RECOVERY = "recovery"  # phone recovery
PHONE_CHANGE = "phone_change"
DELETION = "deletion"
EMAIL_SIGNUP = "email_signup"
EMAIL_RECOVERY = "email_recovery"
EMAIL_CHANGE = "email_change"
LINK_PURPOSES = frozenset({EMAIL_SIGNUP, EMAIL_RECOVERY, EMAIL_CHANGE})
# An e-mail sign-up of a registered address is answered with a recovery link, so the two
# share one resend countdown. Apart, asking for recovery and then signing up told who is
# registered: only a registered address was made to wait the second time.
COUNTDOWN_WITH = {EMAIL_SIGNUP: (EMAIL_SIGNUP, EMAIL_RECOVERY),
                  EMAIL_RECOVERY: (EMAIL_SIGNUP, EMAIL_RECOVERY)}


class Code(BaseModel):
    """A one-time secret sent to a phone or e-mail; only its keyed hash is stored."""

    purpose = CharField(index=True)
    target = CharField(index=True)  # E.164 phone or lower-case e-mail
    account = ForeignKeyField(Account, null=True, backref="codes", on_delete="CASCADE")
    channel = CharField()  # call, sms, email
    secret_hash = CharField(index=True)
    payload = TextField(default="")  # JSON: what the code will do once proven
    created_at = UtcDateTimeField(default=utcnow)
    expires_at = UtcDateTimeField()
    attempts = IntegerField(default=0)
    verified_at = UtcDateTimeField(null=True)
    used_at = UtcDateTimeField(null=True)
    # False when nothing was sent (recovery of an unknown phone): looks the same, never matches.
    delivered = IntegerField(default=1)

    @property
    def data(self) -> dict[str, Any]:
        """The payload as a dict."""
        return json.loads(self.payload) if self.payload else {}

    def resend_in(self, now: dt.datetime | None = None) -> int:
        """Seconds until another code may be sent for the same purpose and target."""
        left = self.created_at + RESEND_AFTER - (now or utcnow())
        return max(0, int(left.total_seconds()))


class SendLog(BaseModel):
    """One code sent: counted per target, per IP and globally over the last hour.

    Keys are keyed hashes, so the table holds no phone, e-mail or address in the clear.
    """

    key = CharField(index=True)
    channel = CharField()
    at = UtcDateTimeField(default=utcnow, index=True)


def _pepper() -> bytes:
    return current_app.config["SECRET_KEY"].encode()


def digest(value: str) -> str:
    """HMAC-SHA256 of a secret or key under the app's SECRET_KEY."""
    return hmac.new(_pepper(), value.encode(), hashlib.sha256).hexdigest()


def _key(kind: str, value: str) -> str:
    return digest(f"{kind}:{value}")


def target_key(target: str) -> str:
    """The SendLog key of a phone or e-mail (used by the purge too)."""
    return _key("target", target)


def check_limits(target: str, ip: str | None, channel: str, now: dt.datetime) -> None:
    """Refuse when this target, this IP, or (for calls and SMS) everyone sent too much."""
    since = now - WINDOW
    recent = SendLog.select().where(SendLog.at > since)
    if recent.where(SendLog.key == target_key(target)).count() >= PER_TARGET_HOUR:
        raise DomainError(_l("Слишком много запросов кода на этот адрес. Попробуйте через час."))
    if ip and recent.where(SendLog.key == _key("ip", ip)).count() >= PER_IP_HOUR:
        raise DomainError(_l("Слишком много запросов кода с вашего устройства. Попробуйте позже."))
    if channel != "email":
        voice = recent.where(SendLog.channel != "email", SendLog.key == "global").count()
        if voice >= GLOBAL_HOUR:
            raise DomainError(_l("Сервис отправки кодов перегружен. Попробуйте позже."))


def _log_send(target: str, ip: str | None, channel: str, now: dt.datetime) -> None:
    rows = [{"key": target_key(target), "channel": channel, "at": now},
            {"key": "global", "channel": channel, "at": now}]
    if ip:
        rows.append({"key": _key("ip", ip), "channel": channel, "at": now})
    SendLog.insert_many(rows).execute()


def new_secret(link: bool) -> str:
    """A long token for an e-mail link, else four random digits (call, SMS, e-mailed code)."""
    if link:
        return secrets.token_urlsafe(32)
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def issue(
    purpose: str,
    target: str,
    channel: str,
    *,
    ip: str | None,
    account: Account | None = None,
    payload: dict[str, Any] | None = None,
    deliver: bool = True,
    now: dt.datetime | None = None,
) -> tuple[Code, str]:
    """Create a code after checking resend time and caps; returns the row and the secret.

    Earlier live codes of the same purpose and target die. The caller sends the secret
    (after the transaction commits). `deliver=False` records a code that was not sent
    and can never match, so an unknown phone looks exactly like a known one.
    """
    now = now or utcnow()
    with db.atomic():
        # The checks below read what earlier sends wrote: parallel requests each saw none.
        hold(target_key(target), *([_key("ip", ip)] if ip else []),
             *([] if channel == "email" else ["global"]))
        last = latest(purpose, target)
        if last is not None and last.resend_in(now) > 0:
            wait = last.resend_in(now)
            if purpose in LINK_PURPOSES:  # an e-mail carries a link, not a code
                raise DomainError(_l("Новую ссылку можно запросить через %(s)s с", s=wait))
            raise DomainError(_l("Новый код можно запросить через %(s)s с", s=wait))
        check_limits(target, ip, channel, now)
        _log_send(target, ip, channel, now)
        Code.update(used_at=now).where(
            (Code.purpose == purpose) & (Code.target == target) & Code.used_at.is_null()
        ).execute()
        link = purpose in LINK_PURPOSES
        secret = new_secret(link)
        ttl = LINK_TTL if link else CODE_TTL
        code = Code.create(
            purpose=purpose,
            target=target,
            account=account,
            channel=channel,
            secret_hash=digest(secret) if deliver else digest(secrets.token_hex(16)),
            payload=json.dumps(payload or {}, ensure_ascii=False),
            created_at=now,
            expires_at=now + ttl,
            delivered=1 if deliver else 0,
        )
    return code, secret


def latest(purpose: str, target: str) -> Code | None:
    """The newest code for this target of this purpose, or of one sharing its countdown."""
    return (
        Code.select()
        .where(Code.purpose.in_(COUNTDOWN_WITH.get(purpose, (purpose,)))
               & (Code.target == target))
        .order_by(Code.created_at.desc(), Code.id.desc())
        .first()
    )


def check_shape(typed: str, field: str = "code") -> str:
    """The typed code stripped; «Необходимо ввести 4 цифры» unless it is four digits."""
    typed = (typed or "").strip()
    if len(typed) != CODE_DIGITS or not typed.isascii() or not typed.isdigit():
        raise DomainError(_l("Необходимо ввести 4 цифры"), field)
    return typed


def verify(code_id: int | None, purpose: str, typed: str, field: str = "code") -> Code:
    """Check a typed 4-digit code; marks it verified (not yet used). Wrong tries are counted.

    The try is counted before the code is compared, by one guarded UPDATE, and given back
    when it was right: guesses sent at the same moment each take a place first, so at most
    MAX_ATTEMPTS of them are ever compared (comparing first let forty parallel guesses all
    through a limit of three, as limits.take found for passwords).
    """
    typed = check_shape(typed, field)
    now = utcnow()
    code = Code.get_or_none((Code.id == code_id) & (Code.purpose == purpose))
    if code is None or code.used_at is not None or code.expires_at <= now:
        raise DomainError(_l("Код устарел. Запросите новый."), field)
    with db.atomic():
        taken = Code.update(attempts=Code.attempts + 1).where(
            (Code.id == code.id) & (Code.attempts < MAX_ATTEMPTS)
        ).execute()
    if not taken:
        raise DomainError(_l("Слишком много неверных попыток. Запросите новый код."), field)
    if not hmac.compare_digest(code.secret_hash, digest(typed)):
        used = Code.select(Code.attempts).where(Code.id == code.id).scalar() or MAX_ATTEMPTS
        if used >= MAX_ATTEMPTS:
            raise DomainError(_l("Слишком много неверных попыток. Запросите новый код."), field)
        raise DomainError(_l("Неверный код. Осталось попыток: %(n)s", n=MAX_ATTEMPTS - used),
                          field)
    with db.atomic():
        Code.update(verified_at=now, attempts=Code.attempts - 1).where(
            Code.id == code.id).execute()
    code.verified_at = now
    return code


def verified(code_id: int | None, purpose: str) -> Code:
    """A code proven in the last 15 minutes and not yet used, else a DomainError."""
    now = utcnow()
    code = Code.get_or_none((Code.id == code_id) & (Code.purpose == purpose))
    if (
        code is None
        or code.verified_at is None
        or code.used_at is not None
        or code.verified_at + VERIFIED_TTL <= now
    ):
        raise DomainError(_l("Подтверждение устарело. Начните заново."))
    return code


def consume(code: Code) -> None:
    """Use a code up; a second use fails (checked in the same UPDATE, so races lose)."""
    done = Code.update(used_at=utcnow()).where((Code.id == code.id) & Code.used_at.is_null())
    if done.execute() != 1:
        raise DomainError(_l("Код уже использован. Начните заново."))


def by_link(token: str, purpose: str) -> Code:
    """The live code behind an e-mail link, else a DomainError."""
    if not token or len(token) > 100:
        raise DomainError(_l("Ссылка недействительна или устарела."))
    code = Code.get_or_none((Code.secret_hash == digest(token)) & (Code.purpose == purpose))
    if code is None or code.used_at is not None or code.expires_at <= utcnow():
        raise DomainError(_l("Ссылка недействительна или устарела."))
    return code


def forget(targets: list[str]) -> None:
    """Delete every code and send log of these phones and e-mails (account purge)."""
    targets = [t for t in targets if t]
    if not targets:
        return
    Code.delete().where(Code.target.in_(targets)).execute()
    SendLog.delete().where(SendLog.key.in_([target_key(t) for t in targets])).execute()


def sweep(now: dt.datetime | None = None) -> int:
    """Drop codes and send logs nobody can use or count any more; returns rows removed."""
    now = now or utcnow()
    old = now - dt.timedelta(days=2)
    removed = Code.delete().where(Code.expires_at < old).execute()
    removed += SendLog.delete().where(SendLog.at < old).execute()
    return removed
