"""Signed-in state: Flask-Login backed by server-side device rows."""

from __future__ import annotations

import copy
import time
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Request, Response, flash, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_babel import lazy_gettext as _l
from flask_login import login_user, logout_user
from itsdangerous import BadSignature, URLSafeTimedSerializer

from blueprints.i18n import LANGUAGES
from domain import accounts, territories
from extensions import login_manager

# How many verified session cookies a process remembers (SessionCookie.open_session).
VERIFIED_KEPT = 4096


class SessionCookie(SecureCookieSessionInterface):
    """Flask's signed session cookie, its serializer built once per set of secrets, and each
    cookie verified once.

    Flask builds a new serializer on every request that reads the cookie; the secrets change
    only with the configuration (a new SECRET_KEY, fallbacks during a rotation). And it
    verifies the signature and decodes the payload on every request: the key derived
    again, two HMACs, base64, JSON, 45-80 µs of the operator's plate check (bench/README.md),
    for the same few cookies a phone sends again and again. A cookie verified with the
    current secrets is remembered with the moment it was signed and what it holds; sent
    again, its age is checked as itsdangerous checks it, and its request gets a copy of what
    it holds. Only cookies that passed verification are kept (VERIFIED_KEPT of them, the
    oldest forgotten first), so nobody can fill the memory with made-up ones, and what a
    cookie gets is what verifying it again would give.
    """

    def __init__(self) -> None:
        self._built: tuple[tuple, URLSafeTimedSerializer | None] | None = None
        # cookie text -> (the secrets, when it was signed (Unix time), what it holds)
        self._verified: dict[str, tuple[tuple, float, dict[str, Any]]] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        secrets = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        if self._built is None or self._built[0] != secrets:
            self._built = (secrets, super().get_signing_serializer(app))
        return self._built[1]

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        serializer = self.get_signing_serializer(app)
        if serializer is None:
            return None
        text = request.cookies.get(self.get_cookie_name(app))
        if not text:
            return self.session_class()
        max_age = int(app.permanent_session_lifetime.total_seconds())
        known = self._verified.get(text)
        if known is not None and known[0] == self._built[0]:
            if 0 <= time.time() - known[1] <= max_age:
                return self.session_class(copy.deepcopy(known[2]))
            del self._verified[text]  # expired since: as itsdangerous would refuse it now
            return self.session_class()
        try:
            data, signed = serializer.loads(text, max_age=max_age, return_timestamp=True)
        except BadSignature:
            return self.session_class()
        while len(self._verified) >= VERIFIED_KEPT:
            del self._verified[next(iter(self._verified))]
        self._verified[text] = (self._built[0], signed.timestamp(), data)
        return self.session_class(copy.deepcopy(data))


def init_sessions(app: Flask) -> None:
    """Bind Flask-Login; the session cookie carries only a device token."""
    app.session_interface = SessionCookie()
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Войдите, чтобы продолжить")
    login_manager.login_message_category = "info"
    # Device rows already bind a session to one browser; "strong" protection would sign
    # phones out each time their address changes between networks.
    login_manager.session_protection = None


@login_manager.unauthorized_handler
def _unauthorized() -> Response:
    """Not signed in (never, or no longer: signed out in another tab, the device signed out
    from the profile): to the login page, and back here afterwards.

    An htmx request (a plate check, a feed's poll) would follow a redirect and paste the
    whole login page into the part it swaps. htmx is told instead to load the login page
    (HX-Redirect), returning afterwards to the page the person was on, not to the partial.
    """
    flash(str(login_manager.login_message), login_manager.login_message_category)
    if request.headers.get("HX-Request"):
        page = urlsplit(request.headers.get("HX-Current-URL", ""))
        here = page.path + (f"?{page.query}" if page.query else "") if page.path else "/"
        response = Response(status=401)
        response.headers["HX-Redirect"] = url_for("auth.login", next=here)
        return response
    here = request.path + (f"?{request.query_string.decode()}" if request.query_string else "")
    return redirect(url_for("auth.login", next=here))


# Where passes/shortcut.py leaves the database error it met on a request it hands to Flask.
SHORTCUT_FAILED = "propusk.shortcut_failed"


@login_manager.user_loader
def _load(token: str) -> accounts.Account | None:
    """The signed-in account; on a territory page (/t/<tid>/…) its membership there comes in
    the same query and waits in g for blueprints/scope.current_membership.

    When the lookup fails (the database busy or gone), the request fails with that error,
    and the rest of it sees nobody signed in. Flask-Login would run the lookup again at the
    next look at current_user: the error page's language, its shell and the security
    headers each waited out the database again (10 s, then a bare 500 instead of 503)."""
    try:
        failed = request.environ.get(SHORTCUT_FAILED)
        if failed is not None:
            raise failed  # met a moment ago by the shortcut, on this very request
        tid = (request.view_args or {}).get("tid")
        if isinstance(tid, int):
            device, member = territories.device_with_membership(token, tid)
            if device is not None:
                g.loaded_membership = (tid, token, member)
        else:
            device = accounts.device_for_token(token)
    except Exception:
        g._login_user = login_manager.anonymous_user()
        raise
    return device.account if device else None


def start_session(account: accounts.Account, *, new_account: bool = False) -> None:
    """Sign the account in on this browser as a new device.

    A language chosen on this browser before signing in stays on this browser
    (session.clear() used to drop it: someone who had chosen English got the Russian home
    page right after signing in). It becomes the account's (its SMS, letters and other
    devices) only for an account made just now; signing in to an existing account leaves its
    language alone, so the English left on a guards' shared phone does not follow every
    guard who signs in there to their other devices. Choosing a language while signed in
    sets the account's.
    """
    label = (request.user_agent.string or "")[:200]
    token = accounts.sign_in(account, device_label(label), request.remote_addr)
    account.device_token = token
    chosen = session.get("lang")
    session.clear()
    session.permanent = True
    if chosen in LANGUAGES:
        session["lang"] = chosen
        if new_account:
            accounts.set_locale(account, chosen)
    login_user(account)


def end_session(account: accounts.Account | None) -> None:
    """Sign this browser out and forget its device for good; its language stays."""
    if account is not None and account.is_authenticated:
        accounts.sign_out(account.get_id())
    logout_user()
    chosen = session.get("lang")
    session.clear()
    if chosen in LANGUAGES:
        session["lang"] = chosen


def device_label(user_agent: str) -> str:
    """A readable name for a device from its user agent ("Chrome 120, Android 14")."""
    from user_agents import parse

    if not user_agent:
        return str(_l("Неизвестное устройство"))
    ua = parse(user_agent)
    browser = f"{ua.browser.family} {ua.browser.version_string}".strip()
    system = f"{ua.os.family} {ua.os.version_string}".strip()
    return ", ".join(p for p in (browser, system) if p and p != "Other")
