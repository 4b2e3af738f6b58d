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
# The same guesses from one client address, whichever accounts it signs in with.
TERRITORY_CODE_IP = Limit("territory_code_ip", 30, dt.timedelta(hours=1))
ACCOUNT_NUMBER_IP = Limit("account_number_ip", 15, dt.timedelta(minutes=15))
# «У меня есть карта»: numbers already bound to someone else, per account.
CARD_NUMBER = Limit("card_number", 5, dt.timedelta(hours=1))


def _key(limit: Limit, subject: str) -> str:
    return digest(f"{limit.kind}:{subject}")


def _count(limit: Limit, subject: str, now: dt.datetime) -> int:
    since = now - limit.window
    return (
        Attempt.select()
        .where(
            (Attempt.kind == limit.kind)
            & (Attempt.key == _key(limit, subject))
            & (Attempt.at > since)
        )
        .count()
    )


def take(limit: Limit, subject: str | None, now: dt.datetime | None = None) -> int | None:
    """Count one try before it is judged; None, with nothing counted, when the subject has
    used up its tries in the window. Returns the try's id for `give_back`.

    Counting first is what holds the limit against tries sent at the same moment: checking
    a password waits for a worker thread, and a check-then-count let thirty parallel
    guesses through a limit of ten (each saw the count before the others added theirs).
    Here the n-th try to be written sees at least n, so at most `limit.tries` get through
    (tries past the limit in the same instant may all be refused: that is a burst of guesses).
    Call it outside a transaction that may roll back, or the try is not counted.
    """
    if not subject:
        return 0
    now = now or utcnow()
    attempt = Attempt.create(kind=limit.kind, key=_key(limit, subject), at=now)
    if _count(limit, subject, now) > limit.tries:
        give_back(attempt.id)
        return None
    return attempt.id


def give_back(attempt_id: int | None) -> None:
    """Uncount a try that `take` counted and that turned out right."""
    if attempt_id:
        Attempt.delete_by_id(attempt_id)


def clear(limit: Limit, subject: str | None) -> None:
    """Forget the subject's failures (after a success)."""
    if subject:
        Attempt.delete().where(
            (Attempt.kind == limit.kind) & (Attempt.key == _key(limit, subject))
        ).execute()


def sweep(now: dt.datetime | None = None, keep: dt.timedelta = dt.timedelta(days=1)) -> int:
    """Delete tries older than any window; returns how many."""
    return Attempt.delete().where(Attempt.at < (now or utcnow()) - keep).execute()
