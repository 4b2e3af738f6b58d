"""Territory scope: every territory route is /t/<tid>/…, and only its members get past this."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from flask import abort, g
from flask_login import current_user, login_required

from domain.errors import NotFound
from domain.territories import Membership, Territory, current_choice, membership


def current_membership(tid: int) -> Membership:
    """The signed-in person's membership in territory `tid`; 404 for everyone else.

    A platform admin acts as a manager of any territory: where they are no member, with a
    membership that is not saved (it files no passes, buys nothing); where they are one,
    with their own membership raised to manager for the request, so that the passes and
    payments that are theirs stay theirs (before, an admin who was a resident somewhere had
    only a resident's pages there, audit at stop 23).
    """
    loaded = g.get("loaded_membership")
    if loaded is not None and loaded[:2] == (tid, current_user.get_id()):
        found = loaded[2]  # found with the signed-in device, in one query (sessions._load)
    else:
        try:
            found = membership(current_user, tid)
        except NotFound:
            found = None
    if found is None:
        if not current_user.is_admin:
            abort(404)
        territory = Territory.get_or_none(Territory.id == tid)
        if territory is None:
            abort(404)
        found = Membership(account=current_user, territory=territory, role="manager")
    return as_admin(found)


def chosen() -> Membership | None:
    """The membership of the territory the signed-in person is in now: the page's own, else
    the one chosen (on this device, else by the account, else their only one), raised for
    the admin as on the territory's pages; None for nobody or no choice."""
    if not current_user.is_authenticated:
        return None
    if "membership" in g:
        return g.membership
    if "_chosen" not in g:
        found = current_choice(current_user, current_user.get_id())
        g._chosen = as_admin(found) if found is not None else None
    return g._chosen


def own_role(member: Membership) -> str | None:
    """The role the territory gave the person, which the gate reads: the row's, not the
    admin's copy raised to manager; None for the admin's stand-in, which is no row."""
    if member.id is None:
        return None
    if not getattr(current_user, "is_admin", False):
        return member.role  # never raised
    return Membership.select(Membership.role).where(Membership.id == member.id).scalar()


def as_admin(found: Membership) -> Membership:
    """The signed-in admin's own membership, raised to manager for this request (a copy:
    the row keeps the role the territory gave them, and nothing saves this one)."""
    if current_user.is_admin and found.role != "manager":
        return Membership(id=found.id, account=found.account, territory=found.territory,
                          role="manager", unit=found.unit)
    return found


def territory_route(roles: Iterable[str] | None = None) -> Callable:
    """Decorate a view taking `tid`: signed in, a member, in one of `roles` — else 404.

    Sets g.membership, g.territory and g.timezone (dates show in the territory's zone).
    A member without the role also gets 404: an operator must not learn a manager page exists.

    The plate check's verdict is also answered without this decorator, by
    passes/shortcut.py, which lets through whom `admits` lets through: a rule for who may
    enter a territory route belongs in `admits` (or the device query), not in `inner`.
    """
    allowed = set(roles) if roles else None

    def wrap(view: Callable) -> Callable:
        @functools.wraps(view)
        @login_required
        def inner(tid: int, *args: Any, **kwargs: Any) -> Any:
            member = current_membership(tid)
            if not admits(member, allowed):
                abort(404)
            enter(member)
            return view(tid, *args, **kwargs)

        # Read by passes/shortcut.py, which lets through whom this wrapper would; `inner`
        # names itself so that a decorator stacked above (which copies these) is noticed.
        inner.territory_roles = allowed  # type: ignore[attr-defined]
        inner.territory_route = inner  # type: ignore[attr-defined]
        return inner

    return wrap


def admits(member: Membership | None, roles: set[str] | None) -> bool:
    """Whether a membership opens a territory route for `roles` (None: any member)."""
    return member is not None and (roles is None or member.role in roles)


def enter(member: Membership) -> None:
    """Make `member`'s territory the request's: g.membership, g.territory and g.timezone."""
    g.membership = member
    g.territory = member.territory
    g.timezone = member.territory.timezone
