"""The operator's plate check, answered beside Flask's dispatch.

A guard types a plate and the check form asks for the verdict on every few keystrokes; it
is the busiest signed-in request there is (bench/web.py, issue 8). Served by Flask it pays
for Flask-Login's proxies, the template context processors and the after-request hooks,
about half its time, while what it needs is the session cookie, the device with its
membership, the plate's passes and one template.

`CheckShortcut` wraps the app's WSGI callable. For the check form's own request (GET
/t/<tid>/check, HX-Request, a plate that could be one, no mistake shown) it does just that
work, with the functions Flask's path uses: the app's request class, URL map and host
check, its session interface, sessions._load's query, scope.admits and scope.enter,
routes.verdict_html and security.header_list. Whenever the answer could differ from the
view's it answers nothing and hands the request to Flask unchanged: nobody signed in, a
device signed out, a non-member (the admin's stand-in membership is Flask's), another
role, a remember-me cookie, a host not served, and any error (Flask then answers it, or
shows its error page). So it can refuse nothing Flask would allow and allow nothing Flask
would refuse.

Who gets through is decided as the view's own `territory_route` decides it (`scope.admits`
with the roles read from the view). It serves only while the app's request hooks are the
ones it stands in for (`EXPECTED`); a hook added later switches it off with a warning, and
tests/web/test_check_shortcut.py fails until the new hook is considered here. The same test
compares its answers byte for byte with Flask's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any

from flask import (
    Flask,
    g,
    got_request_exception,
    request_finished,
    request_started,
    request_tearing_down,
)
from flask_login import signals as login_signals
from werkzeug.exceptions import HTTPException

from blueprints.i18n import locale_for
from blueprints.passes.forms import could_be_plate
from blueprints.scope import admits, enter
from blueprints.security import header_list
from blueprints.sessions import SHORTCUT_FAILED
from blueprints.ui import wants_partial
from domain.db import DB_ERRORS, db
from domain.territories import device_with_membership

log = logging.getLogger("propusk.shortcut")

ENDPOINT = "passes.check"

# The hooks Flask runs around the check, by name. The shortcut does their work
# itself: the connection (_connect/_close), nothing for CSRF on a GET, nothing for a
# session without "_remember" (Flask-Login's cookie refresh), the security headers.
EXPECTED = {
    "before_request": {"_bind_connection.<locals>._connect",
                       "CSRFProtect.init_app.<locals>.csrf_protect"},
    "after_request": {"LoginManager._update_remember_cookie",
                      "init_security.<locals>._headers"},
    "teardown_request": {"_bind_connection.<locals>._close"},
    "url_value_preprocessor": set(),
    "signal": set(),
}
# Settings under which Flask's answer would carry a cookie; the shortcut sends none.
REFRESHING = ("SESSION_REFRESH_EACH_REQUEST", "REMEMBER_COOKIE_REFRESH_EACH_REQUEST")
# Request signals of Flask and Flask-Login: the shortcut sends none, so it serves only
# while nobody listens to them.
SIGNALS = (request_started, request_finished, request_tearing_down, got_request_exception,
           login_signals.user_accessed, login_signals.user_loaded_from_cookie,
           login_signals.user_loaded_from_request, login_signals.session_protected,
           login_signals.user_unauthorized)


def hooks(app: Flask, blueprint: str) -> dict[str, set[str]]:
    """The request hooks Flask runs for a view of `blueprint`, by qualified name (the
    module would be "__main__" or "app" for the same hook, as app.py is run or imported)."""

    def names(registry: dict[str | None, Iterable[Callable]]) -> set[str]:
        found = [*registry.get(None, ()), *registry.get(blueprint, ())]
        return {f.__qualname__ for f in found}

    return {
        "before_request": names(app.before_request_funcs),
        "after_request": names(app.after_request_funcs),
        "teardown_request": names(app.teardown_request_funcs),
        "url_value_preprocessor": names(app.url_value_preprocessors),
        "signal": {f"{signal.name}:{getattr(receiver, '__qualname__', receiver)}"
                   for signal in SIGNALS for receiver in signal.receivers.values()},
    }


def settings_changed(app: Flask) -> list[str]:
    """Settings under which Flask's answer to the check would differ from the shortcut's:
    cookies refreshed on every request, Flask-Login's session protection (it can refuse or
    re-sign the session), CSRF checked on GET."""
    changed = [name for name in REFRESHING if app.config.get(name)]
    manager = app.extensions.get("login_manager") or getattr(app, "login_manager", None)
    protection = app.config.get("SESSION_PROTECTION",
                                getattr(manager, "session_protection", None))
    if protection:
        changed.append(f"SESSION_PROTECTION={protection}")
    if "GET" in (app.config.get("WTF_CSRF_METHODS") or ()):
        changed.append("WTF_CSRF_METHODS")
    return changed


class CheckShortcut:
    """WSGI middleware answering the check form's verdict requests, else the app."""

    def __init__(self, app: Flask, inner: Callable) -> None:
        self.app = app
        self.inner = inner
        self._serves: bool | None = None  # decided at the first request: hooks come late
        self._headers: list[tuple[str, str]] = []
        self._roles: set[str] | None = None

    def serves(self) -> bool:
        """Whether the app's hooks are still the ones this shortcut stands in for."""
        if self._serves is None:
            found = hooks(self.app, ENDPOINT.split(".")[0])
            changed = settings_changed(self.app)
            view = self.app.view_functions.get(ENDPOINT)
            # The roles of the view's own territory_route, only when nothing is stacked on it
            # (a decorator above copies the attributes, not the rules it adds): none read,
            # none served.
            own = getattr(view, "territory_route", None) is view
            self._roles = getattr(view, "territory_roles", None) if own else None
            self._serves = found == EXPECTED and not changed and bool(self._roles)
            if not self._serves:
                log.warning("plate check shortcut off: request hooks %s, settings %s, the "
                            "view's roles %s", found, changed, self._roles)
            self._headers = header_list(self.app)
            # Decided once: from here on Flask refuses new hooks, as after its first request.
            self.app._got_first_request = True
        return self._serves

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        if (environ.get("REQUEST_METHOD") == "GET" and "HTTP_HX_REQUEST" in environ
                and environ.get("PATH_INFO", "").endswith("/check")):
            try:
                body = self.verdict(environ)
            except DB_ERRORS as error:
                # Flask answers with its logging and error page, without asking the database
                # again (sessions._load raises this): the wait is not paid twice.
                environ[SHORTCUT_FAILED] = error
                body = None
            except Exception as error:  # Flask answers it again, with its logging and error page
                log.warning("plate check shortcut handed an error to Flask: %r", error)
                body = None
            if body is not None:
                start_response("200 OK", [
                    ("Content-Type", "text/html; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                    ("Vary", "HX-Request, Cookie"),
                    *self._headers,
                    ("Cache-Control", "no-store"),
                ])
                return [body]
        return self.inner(environ, start_response)

    def verdict(self, environ: dict) -> bytes | None:
        """The verdict partial's bytes, or None when Flask is to answer."""
        from blueprints.passes.routes import MISTAKE_SHOWN, verdict_html

        if not self.serves():
            return None
        app = self.app
        request = app.request_class(environ)
        try:
            endpoint, args = app.create_url_adapter(request).match(method="GET")
        except HTTPException:  # a host not served, no such route
            return None
        if endpoint != ENDPOINT or not wants_partial(request):
            return None
        plate = request.args.get("plate", "")
        if not could_be_plate(plate) or request.headers.get(MISTAKE_SHOWN):
            return None
        session = app.session_interface.open_session(app, request)
        token = session.get("_user_id") if session is not None else None
        if not token or "_remember" in session:
            return None
        with app.app_context():
            db.connect(reuse_if_open=True)
            try:
                device, member = device_with_membership(token, args["tid"])
                if device is None or not admits(member, self._roles):
                    return None  # Flask's: 401, 404, or the admin's stand-in membership
                enter(member)
                g._flask_babel = SimpleNamespace(
                    babel_locale=locale_for(session, device.account))
                return verdict_html(plate).encode()
            finally:
                if not db.is_closed():
                    db.close()
