"""Access versions: how a gatebridge in another process learns that a decision may have changed.

Every domain operation that can change what `domain.access.decide` answers (passes filed or
revoked, members admitted, moved or removed, accounts blocked, territory settings) calls
`bump(territory_id)` inside its own transaction, so the new version becomes visible exactly
when the change does — never before it (a bridge reloading early would cache the old answer)
and never lost (a change without a bump would leave the old answer cached until its TTL).

The bridge polls the rows changed in the last few seconds (an indexed range on changed_at,
cheap however many territories there are), reads the whole table now and then as a safety
net, and forgets the cached decisions of every territory whose version moved.
"""

from __future__ import annotations

import datetime as dt

from peewee import IntegerField

from domain.db import BaseModel, UtcDateTimeField, utcnow


class TerritoryVersion(BaseModel):
    """A counter per territory, raised in the same transaction as any change to its access."""

    # No foreign key: every domain module bumps it, and it must not import them all.
    territory_id = IntegerField(primary_key=True)
    version = IntegerField(default=1)
    changed_at = UtcDateTimeField(default=utcnow, index=True)


def bump(territory_id: int) -> None:
    """Raise the territory's version; call inside the transaction that makes the change."""
    (
        TerritoryVersion.insert(territory_id=territory_id, version=1, changed_at=utcnow())
        .on_conflict(
            conflict_target=[TerritoryVersion.territory_id],
            update={
                TerritoryVersion.version: TerritoryVersion.version + 1,
                TerritoryVersion.changed_at: utcnow(),
            },
        )
        .execute()
    )


def bump_account(account_id: int) -> None:
    """Raise the version of every territory the account belongs to (blocked, unblocked)."""
    from domain.territories import Membership

    ids = [
        m.territory_id
        for m in Membership.select(Membership.territory).where(Membership.account == account_id)
    ]
    for territory_id in sorted(set(ids)):
        bump(territory_id)


def versions(since: dt.datetime | None = None) -> dict[int, int]:
    """Territories' current versions: all of them, or those changed after `since`."""
    query = TerritoryVersion.select(TerritoryVersion.territory_id, TerritoryVersion.version)
    if since is not None:
        query = query.where(TerritoryVersion.changed_at > since)
    return {row.territory_id: row.version for row in query}
