"""What only the platform admin does: find anyone, block and unblock accounts."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from domain import accounts, versions
from domain.accounts import Account
from domain.db import contains_text, db
from domain.errors import DomainError, NotFound


def search_accounts(text: str = ""):
    """Every account, or those whose phone, e-mail or name contains `text`; newest first."""
    query = Account.select().order_by(Account.created_at.desc(), Account.id.desc())
    text = (text or "").strip()
    if text:
        cond = (
            Account.email.contains(text.lower())
            | contains_text(Account.surname, text)
            | contains_text(Account.name, text)
            | contains_text(Account.patronymic, text)
        )
        digits = "".join(ch for ch in text if ch.isdigit())
        if len(digits) >= 3:
            # Phones are stored as +7…; a typed 8 999… still finds them by the rest.
            cond |= Account.phone.contains(digits[1:] if digits[0] == "8" else digits)
        if text.isdigit():
            cond |= Account.id == int(text)
        query = query.where(cond)
    return query


def get_account(account_id: int) -> Account:
    """The account by id; NotFound otherwise."""
    found = Account.get_or_none(Account.id == account_id)
    if found is None:
        raise NotFound(_l("Аккаунт не найден"))
    return found


def set_blocked(admin: Account, account_id: int, blocked: bool) -> Account:
    """Block (and sign out everywhere) or unblock an account; nobody blocks themselves."""
    account = get_account(account_id)
    if account.id == admin.id and blocked:
        raise DomainError(_l("Нельзя заблокировать самого себя"))
    with db.atomic():
        Account.update(blocked=blocked).where(Account.id == account.id).execute()
        versions.bump_account(account.id)
        if blocked:
            accounts.sign_out_others(account, None)
    account.blocked = blocked
    return account
