"""What only the platform admin does: find anyone, block and unblock accounts."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from domain import accounts, versions
from domain.accounts import Account
from domain.db import db, every_word
from domain.errors import DomainError, NotFound
from domain.phones import phone_fragments


def search_accounts(text: str = ""):
    """Every account, or those whose phone, e-mail or name contains `text`; newest first."""
    query = Account.select().order_by(Account.created_at.desc(), Account.id.desc())
    text = (text or "").strip()
    if text:
        cond = every_word(text[:100], Account.email, Account.surname, Account.name,
                          Account.patronymic)
        for fragment in phone_fragments(text):
            cond |= Account.phone.contains(fragment)
        if text.isascii() and text.isdigit() and len(text) <= 18:  # an id, as int() reads it
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
