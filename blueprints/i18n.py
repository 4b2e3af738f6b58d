"""Language and formats: Russian by default, English on request; dates, money, phones."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.numbers import format_decimal
from flask import Flask, g, has_request_context, session
from flask_babel import Babel, Domain, get_locale, get_translations, gettext
from flask_login import current_user
from markupsafe import Markup

from domain.phones import format_phone

LANGUAGES = ("ru", "en")
DEFAULT_TZ = "Europe/Moscow"  # UTC+03, the default time zone of a territory


class _RequestDomain(Domain):
    """The message domain, with each request's catalogue looked up once.

    Flask-Babel finds the catalogue anew for every string: the request's Babel context, the
    domain, the locale and that locale's name, ~20 µs, where the lookup in the catalogue
    itself is 1 µs. A page of passes asks for a few dozen strings. The catalogue found is kept
    on the request's Babel context beside the locale it belongs to; force_locale() puts
    another locale there, so a string inside it, and after it, is looked up again.
    """

    def get_translations(self):
        try:
            state = vars(g._flask_babel)
        except (AttributeError, RuntimeError):  # no string asked for yet, or no request
            return super().get_translations()
        kept = state.get("propusk_catalogue")
        if kept is not None and kept[0] is state.get("babel_locale") and kept[1] is self:
            return kept[2]
        found = super().get_translations()
        state["propusk_catalogue"] = (state.get("babel_locale"), self, found)
        return found


class _Babel(Babel):
    @cached_property
    def domain_instance(self) -> Domain:
        return _RequestDomain(domain=self.domain)


def catalogue() -> Any:
    """This request's catalogue, as _RequestDomain keeps it, for the templates' `_()`.

    Flask-Babel's own template callables reach the domain first (get_translations,
    get_domain, the Babel context: three looks at g each). The operator's verdict asks for
    five strings: rendering it took 110-180 us with those, ~70 us with these."""
    try:
        state = vars(g._flask_babel)
    except (AttributeError, RuntimeError):  # no string asked for yet, or no request
        return get_translations()
    kept = state.get("propusk_catalogue")
    if kept is not None and kept[0] is state.get("babel_locale"):
        return kept[2]
    return get_translations()


babel = _Babel()


# Parsed once: Flask-Babel parses what the selector returns on every request, which for a
# code means looking the locale's data file up on disk again.
_LOCALES = {code: Locale.parse(code) for code in LANGUAGES}


def select_locale() -> Locale:
    """The chosen language: this browser's choice, else the account's, else Russian."""
    account = current_user if current_user and current_user.is_authenticated else None
    return locale_for(session, account)


def locale_for(browser: Mapping[str, Any], account: Any | None) -> Locale:
    """The language for a browser's session and its signed-in account (None: nobody)."""
    chosen = browser.get("lang")
    if chosen in LANGUAGES:
        return _LOCALES[chosen]
    if account is not None and account.locale in LANGUAGES:
        return _LOCALES[account.locale]
    return _LOCALES["ru"]


def select_timezone() -> str:
    """Times are shown in the current territory's zone: the page's, else the one the person
    is in now (profile, devices, the deletion banner, the home page agree with it), else
    UTC+03."""
    zone = getattr(g, "timezone", None)
    if zone is None and has_request_context():
        from blueprints.scope import chosen

        member = chosen()
        g.timezone = zone = member.territory.timezone if member is not None else DEFAULT_TZ
    return zone or DEFAULT_TZ


def format_datetime(value: dt.datetime | None, tz: str | None = None) -> str:
    """DD.MM.YYYY HH:MM in the territory's time zone."""
    if value is None:
        return "-"
    zone = ZoneInfo(tz or select_timezone())
    return value.astimezone(zone).strftime("%d.%m.%Y %H:%M")


def format_date(value: dt.date | dt.datetime | None, tz: str | None = None) -> str:
    """DD.MM.YYYY (a datetime is first put into the territory's zone)."""
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        value = value.astimezone(ZoneInfo(tz or select_timezone())).date()
    return value.strftime("%d.%m.%Y")


def format_until(value: dt.datetime | None, tz: str | None = None) -> str:
    """An end as people read it: a day's end (midnight after it) is that day, DD.MM.YYYY («по
    02.12.2030» ends as 03.12 begins); any other moment DD.MM.YYYY HH:MM."""
    if value is None:
        return "-"
    local = value.astimezone(ZoneInfo(tz or select_timezone()))
    if local.time() == dt.time():
        return (local - dt.timedelta(days=1)).strftime("%d.%m.%Y")
    return local.strftime("%d.%m.%Y %H:%M")


def format_ago(value: dt.datetime, now: dt.datetime) -> str:
    """How long before `now` a moment was, as a manager reads it: «2 с назад», «5 мин назад»,
    «3 ч назад»; a day or more ago, the moment itself (DD.MM.YYYY HH:MM)."""
    ago = max(int((now - value).total_seconds()), 0)
    if ago < 60:
        return gettext("%(num)s с назад", num=ago)
    if ago < 3600:
        return gettext("%(num)s мин назад", num=ago // 60)
    if ago < 86400:
        return gettext("%(num)s ч назад", num=ago // 3600)
    return format_datetime(value)


def format_money(kopecks: int | None) -> str:
    """An amount kept in kopecks as 1 380,00 ₽ (1,380.00 ₽ in English)."""
    if kopecks is None:
        return "-"
    amount = Decimal(int(kopecks)) / 100
    # The rouble sign in every language: English readers of a Russian service expect ₽ too.
    number = format_decimal(amount, "#,##0.00", locale=str(get_locale() or "ru"))
    return f"{number}\xa0₽"


def zone_label(zone: str) -> str:
    """A time zone as people know it, in the current language: «UTC+03 Москва»."""
    from domain.territories import TIMEZONES

    return str(TIMEZONES.get(zone, zone))


def init_i18n(app: Flask) -> None:
    """Bind Flask-Babel and the template filters for our formats."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "ru")
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", "UTC")
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: catalogue().ugettext(s),
        ngettext=lambda s, p, n: catalogue().ungettext(s, p, n),
        pgettext=lambda c, s: catalogue().upgettext(c, s),
        npgettext=lambda c, s, p, n: catalogue().unpgettext(c, s, p, n),
        newstyle=True,
    )
    app.jinja_env.filters["dt"] = format_datetime
    app.jinja_env.filters["date"] = format_date
    app.jinja_env.filters["until"] = format_until
    app.jinja_env.filters["ago"] = format_ago
    app.jinja_env.filters["money"] = format_money
    app.jinja_env.filters["phone"] = format_phone
    app.jinja_env.filters["tel"] = lambda e164: Markup.escape(f"tel:{e164 or ''}")
    app.jinja_env.filters["zone"] = zone_label

    @app.context_processor
    def _lang() -> dict:
        return {"current_lang": str(get_locale() or "ru"), "languages": LANGUAGES}

