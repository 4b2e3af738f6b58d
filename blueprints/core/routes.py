"""The shell of the app: home, PWA files, offline page, language, help, development outbox."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import force_locale, get_locale
from flask_babel import gettext as _
from flask_login import current_user

import providers
from blueprints.i18n import LANGUAGES
from blueprints.ui import EmptyForm, page
from domain import accounts

bp = Blueprint("core", __name__)

ROOT = Path(__file__).resolve().parents[2]
# What the service worker keeps for offline use: public, unchanging files only.
SHELL = ["core.offline", "static:app.css", "static:app.js", "static:vendor/htmx.min.js",
         "static:icons/icon-192.png", "static:icons/icon.svg"]


# The menu's sections and the pages under each, by endpoint, else by blueprint, else by the
# module of the view: a page under a section marks its menu item, so a manager on
# «Участники» still sees where they are. The manager's billing pages (billing/manage.py)
# live in the billing blueprint, but their tabs are under «Управление».
_SECTION_OF_ENDPOINT = {"core.home": "home", "billing.payments_registry": "payments",
                        "billing.territory_payments": "manage"}
_SECTION_OF_BLUEPRINT = {"manage": "manage", "gates": "manage", "admin": "admin",
                         "profile": "profile"}
_SECTION_OF_MODULE = {"blueprints.billing.manage": "manage"}


@bp.app_template_global("nav_section")
def nav_section() -> str | None:
    """The menu item the page shown belongs to: home, territory, manage, admin, payments,
    profile; None for pages under none (sign-in, help)."""
    endpoint = request.endpoint or ""
    section = _SECTION_OF_ENDPOINT.get(endpoint) or _SECTION_OF_BLUEPRINT.get(
        request.blueprint or "")
    if section is None:
        view = current_app.view_functions.get(endpoint)
        section = _SECTION_OF_MODULE.get(getattr(view, "__module__", ""))
    tid = (request.view_args or {}).get("tid")
    if section is None and tid is not None:
        section = "territory"
    if section in ("territory", "manage"):
        # Those links lead to the territory in the header (here()): a page of another one,
        # or a 404 answered before any membership was found, marks neither.
        member = g.get("membership")
        if member is None or member.territory_id != tid:
            return None
    return section


@bp.get("/")
def home() -> Response:
    """The start page: the signed-in home, or a welcome with sign-in for visitors."""
    return page("core/home.html")


@bp.get("/offline")
def offline() -> Response:
    """Shown by the service worker when the network is gone: in every language, the
    current one first (see the template)."""
    current = str(get_locale() or "ru")
    versions = []
    for code in sorted(LANGUAGES, key=lambda c: c != current):
        with force_locale(code):
            versions.append((code, {
                "title": f'{_("Нет сети")} · {_("Пропуск")}',
                "brand": _("Пропуск"),
                "heading": _("Нет соединения с интернетом"),
                "body": _("Пропуск откроется, как только связь вернётся. Проверьте мобильные "
                          "данные или Wi-Fi."),
                "reload": _("Обновить"),
            }))
    response = page("core/offline.html", versions=versions)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/help/install")
def install_help() -> Response:
    """How to install the app where the browser offers no install button."""
    return page("core/install_help.html")


@bp.get("/manifest.webmanifest")
def manifest() -> Response:
    """The web app manifest, at the root so its scope covers the whole app, in the reader's
    language: the page links it with credentials (base.html), so the language chosen on
    this browser comes along; it was Russian for everyone (audit, stop 23)."""
    data = json.loads((ROOT / "manifest.webmanifest").read_text(encoding="utf-8"))
    data.update(name=_("Пропуск"), short_name=_("Пропуск"), lang=str(get_locale() or "ru"),
                description=_("Пропуска, шлагбаумы и ворота территории — с телефона."))
    body = json.dumps(data, ensure_ascii=False)
    response = Response(body, mimetype="application/manifest+json")
    response.headers["Cache-Control"] = "no-cache"
    response.vary.add("Cookie")
    return response


def _shell_urls() -> list[str]:
    urls = []
    for item in SHELL:
        if item.startswith("static:"):
            urls.append(url_for("static", filename=item.removeprefix("static:")))
        else:
            urls.append(url_for(item))
    return urls


def _shell_version() -> str:
    """Changes whenever a precached file changes, so browsers fetch the new shell."""
    digest = hashlib.sha256()
    static = Path(current_app.static_folder or "")
    for item in SHELL:
        if item.startswith("static:"):
            path = static / item.removeprefix("static:")
            digest.update(path.read_bytes() if path.exists() else b"")
    # The offline page: its template, base.html around it, and its words in every language.
    for path in (ROOT / "templates" / "core" / "offline.html", ROOT / "templates" / "base.html",
                 *sorted((ROOT / "translations").glob("*/LC_MESSAGES/messages.mo"))):
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()[:12]


@bp.get("/sw.js")
def service_worker() -> Response:
    """The service worker, served from the root so it may control every page."""
    body = render_template(
        "core/sw.js",
        version=_shell_version(),
        shell=json.dumps(_shell_urls()),
        offline_url=url_for("core.offline"),
    )
    response = Response(body, mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.post("/lang/<code>")
def set_language(code: str) -> Response:
    """Switch the interface language for this browser and go back where the person was."""
    if code not in LANGUAGES or not EmptyForm().validate_on_submit():
        abort(400)
    session["lang"] = code
    if current_user.is_authenticated:
        accounts.set_locale(current_user, code)
    target = request.referrer or ""
    # Only go back within this site.
    if not target.startswith(request.host_url):
        target = url_for("core.home")
    return redirect(target)


@bp.get("/dev/outbox")
def outbox() -> Response:
    """Development page: every call, SMS and e-mail the outbox providers "sent"."""
    if not current_app.config.get("DEV_PAGES"):
        abort(404)
    return page("core/outbox.html", "core/_outbox.html", entries=providers.outbox().entries())
