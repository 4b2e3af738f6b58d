"""Signed-in state: Flask-Login backed by server-side device rows."""

from __future__ import annotations

from flask import Flask, request, session
from flask_babel import lazy_gettext as _l
from flask_login import login_user, logout_user

from domain import accounts
from extensions import login_manager


def init_sessions(app: Flask) -> None:
    """Bind Flask-Login; the session cookie carries only a device token."""
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Войдите, чтобы продолжить")
    login_manager.login_message_category = "info"
    # Device rows already bind a session to one browser; "strong" protection would sign
    # phones out each time their address changes between networks.
    login_manager.session_protection = None


@login_manager.user_loader
def _load(token: str) -> accounts.Account | None:
    device = accounts.device_for_token(token)
    return device.account if device else None


def start_session(account: accounts.Account) -> None:
    """Sign the account in on this browser as a new device."""
    label = (request.user_agent.string or "")[:200]
    token = accounts.sign_in(account, device_label(label), request.remote_addr)
    account.device_token = token
    session.clear()
    session.permanent = True
    login_user(account)


def end_session(account: accounts.Account | None) -> None:
    """Sign this browser out and forget its device for good."""
    if account is not None and account.is_authenticated:
        accounts.sign_out(account.get_id())
    logout_user()
    session.clear()


def device_label(user_agent: str) -> str:
    """A readable name for a device from its user agent ("Chrome 120, Android 14")."""
    from user_agents import parse

    if not user_agent:
        return str(_l("Неизвестное устройство"))
    ua = parse(user_agent)
    browser = f"{ua.browser.family} {ua.browser.version_string}".strip()
    system = f"{ua.os.family} {ua.os.version_string}".strip()
    return ", ".join(p for p in (browser, system) if p and p != "Other")
