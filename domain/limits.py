"""Rate limits on guesses — logins, territory codes, account numbers — kept in the database.

Counters live in a table, not in a process, so every web process behind the balancer
counts the same tries. Subjects (a login, an IP, an account id) are stored only as HMACs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from peewee import CharField

from domain.codes import digest
from domain.db import BaseModel, UtcDateTimeField, utcnow


class Attempt(BaseModel):
    """One failed try of some kind by some subject."""

    kind = CharField()
    key = CharField()
    at = UtcDateTimeField(default=utcnow)

    class Meta:
        indexes = ((("kind", "key", "at"), False),)


@dataclass(frozen=True)
class Limit:
    """At most `tries` failures of `kind` per subject within `window`."""

    kind: str
    tries: int
    window: dt.timedelta


LOGIN = Limit("login", 10, dt.timedelta(minutes=15))
LOGIN_IP = Limit("login_ip", 50, dt.timedelta(minutes=15))
TERRITORY_CODE = Limit("territory_code", 10, dt.timedelta(hours=1))
ACCOUNT_NUMBER = Limit("account_number", 5, dt.timedelta(minutes=15))


def _key(limit: Limit, subject: str) -> str:
    return digest(f"{limit.kind}:{subject}")


def exhausted(limit: Limit, subject: str | None, now: dt.datetime | None = None) -> bool:
    """True when the subject has used up its failures in the window."""
    if not subject:
        return False
    since = (now or utcnow()) - limit.window
    count = (
        Attempt.select()
        .where(
            (Attempt.kind == limit.kind)
            & (Attempt.key == _key(limit, subject))
            & (Attempt.at > since)
        )
        .count()
    )
    return count >= limit.tries


def fail(limit: Limit, subject: str | None, now: dt.datetime | None = None) -> None:
    """Count one failure (call outside the transaction that is about to roll back)."""
    if subject:
        Attempt.create(kind=limit.kind, key=_key(limit, subject), at=now or utcnow())


def clear(limit: Limit, subject: str | None) -> None:
    """Forget the subject's failures (after a success)."""
    if subject:
        Attempt.delete().where(
            (Attempt.kind == limit.kind) & (Attempt.key == _key(limit, subject))
        ).execute()


def sweep(now: dt.datetime | None = None, keep: dt.timedelta = dt.timedelta(days=1)) -> int:
    """Delete tries older than any window; returns how many."""
    return Attempt.delete().where(Attempt.at < (now or utcnow()) - keep).execute()
