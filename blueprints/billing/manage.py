"""The manager's billing pages: card price and validity, tariffs and periods, promo codes;
the territory's cards, approved or unbound."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import Response, abort, flash, g, redirect, url_for
from flask_babel import gettext as _

from blueprints.billing.forms import (
    ApproveCardForm,
    CardOfferForm,
    PeriodForm,
    PromoForm,
    TariffForm,
)
from blueprints.billing.routes import bp
from blueprints.scope import territory_route
from blueprints.ui import EmptyForm, form_error, page
from domain import billing
from domain.billing import Card, PromoCode, Tariff, TariffPeriod
from domain.db import utcnow
from domain.errors import DomainError, NotFound

MANAGER = ["manager"]


def _settings(status: int = 200, **forms) -> Response:
    """The settings page, with any form that failed kept as typed."""
    territory = g.territory
    card_form = forms.get("card_form") or CardOfferForm(
        formdata=None, price=f"{territory.card_price_kopecks // 100},"
                            f"{territory.card_price_kopecks % 100:02d}",
        validity_months=territory.card_validity_months,
    )
    tariffs = list(Tariff.of(territory.id))
    periods: dict[int, list] = {}
    for period in TariffPeriod.of(territory.id):
        periods.setdefault(period.tariff_id, []).append(period)
    response = page(
        "billing/settings.html",
        card_form=card_form,
        tariff_form=forms.get("tariff_form") or TariffForm(formdata=None),
        period_forms={
            t.id: forms["period_form"] if forms.get("failed_tariff") == t.id
            else PeriodForm(formdata=None, prefix=f"p{t.id}")
            for t in tariffs
        },
        promo_form=forms.get("promo_form") or PromoForm(formdata=None),
        tariffs=tariffs,
        periods=periods,
        promos=list(PromoCode.of(territory.id)),
        status=status,
    )
    if status == 422:
        # A mistake is shown on the page the form lives on, under that page's address: the
        # boosted form would otherwise push the address it posted to.
        response.headers["HX-Replace-Url"] = url_for("billing.settings", tid=territory.id)
    return response


def _back() -> Response:
    return redirect(url_for("billing.settings", tid=g.territory.id))


@bp.get("/t/<int:tid>/billing/settings")
@territory_route(roles=MANAGER)
def settings(tid: int) -> Response:
    """«Тарифы и цены»: everything the territory sells, and its promo codes."""
    return _settings()


# The forms below post to addresses of their own and answer a mistake there; a GET of such
# an address (Enter in the address bar, a reload later) goes to the page the form lives on.
@bp.get("/t/<int:tid>/billing/settings/card")
@bp.get("/t/<int:tid>/billing/tariffs")
@bp.get("/t/<int:tid>/billing/promos")
@territory_route(roles=MANAGER)
def settings_form(tid: int) -> Response:
    """A settings form's own address opened by GET: the settings page."""
    return _back()


@bp.get("/t/<int:tid>/billing/tariffs/<int:tariff_id>/periods")
@territory_route(roles=MANAGER)
def period_form(tid: int, tariff_id: int) -> Response:
    """The period form's address opened by GET: the settings page (another's tariff: 404)."""
    try:
        billing.tariff_of(g.territory, tariff_id)
    except NotFound:
        abort(404)
    return _back()


@bp.post("/t/<int:tid>/billing/settings/card")
@territory_route(roles=MANAGER)
def save_card_offer(tid: int) -> Response:
    """Save the card's price and validity."""
    form = CardOfferForm()
    if form.is_submitted():
        valid = form.validate()
        price, problems = _price(form)
        problems += billing.card_offer_problems(price, form.validity_months.data)
        _show(form, problems)
        if valid and not problems:
            try:
                billing.set_card_offer(g.territory, price, form.validity_months.data)
            except DomainError as error:
                form_error(form, error)
            else:
                flash(_("Стоимость карты сохранена"), "success")
                return _back()
    return _settings(422, card_form=form)


def _price(form: CardOfferForm | PeriodForm) -> tuple[int | None, list[DomainError]]:
    """The form's price in kopecks (None when it cannot be read), and why not."""
    try:
        return billing.parse_rubles(form.price.data or ""), []
    except DomainError as error:
        return None, [error]


def _show(form, problems: list[DomainError]) -> None:
    """Every field's mistake in one answer: the form's own checks first, then the domain's
    for the fields those let through (one mistake a field, the first)."""
    for problem in problems:
        if not getattr(form, problem.field).errors:
            form_error(form, problem)


@bp.post("/t/<int:tid>/billing/tariffs")
@territory_route(roles=MANAGER)
def add_tariff(tid: int) -> Response:
    """Add a tariff."""
    form = TariffForm()
    if form.validate_on_submit():
        try:
            billing.add_tariff(g.territory, form.name.data)
        except DomainError as error:
            form_error(form, error)
        else:
            flash(_("Тариф добавлен"), "success")
            return _back()
    return _settings(422, tariff_form=form)


@bp.post("/t/<int:tid>/billing/tariffs/<int:tariff_id>/periods")
@territory_route(roles=MANAGER)
def add_period(tid: int, tariff_id: int) -> Response:
    """Add a period (months and price) to a tariff."""
    try:
        # First: a tariff deleted meanwhile has no form on the page to show mistakes in.
        billing.tariff_of(g.territory, tariff_id)
    except NotFound:
        abort(404)
    form = PeriodForm(prefix=f"p{tariff_id}")
    if form.is_submitted():
        valid = form.validate()
        price, problems = _price(form)
        problems += billing.period_problems(form.months.data, price)
        _show(form, problems)
        if valid and not problems:
            try:
                billing.add_period(g.territory, tariff_id, form.months.data, price)
            except NotFound:
                abort(404)
            except DomainError as error:
                form_error(form, error)
            else:
                flash(_("Период добавлен"), "success")
                return _back()
    return _settings(422, period_form=form, failed_tariff=tariff_id)


@bp.post("/t/<int:tid>/billing/tariffs/<int:tariff_id>/delete")
@territory_route(roles=MANAGER)
def delete_tariff(tid: int, tariff_id: int) -> Response:
    """Remove a tariff with its periods."""
    return _delete(billing.delete_tariff, tariff_id, _("Тариф удалён"))


@bp.post("/t/<int:tid>/billing/periods/<int:period_id>/delete")
@territory_route(roles=MANAGER)
def delete_period(tid: int, period_id: int) -> Response:
    """Remove a period."""
    return _delete(billing.delete_period, period_id, _("Период удалён"))


@bp.post("/t/<int:tid>/billing/promos/<int:promo_id>/delete")
@territory_route(roles=MANAGER)
def delete_promo(tid: int, promo_id: int) -> Response:
    """Remove a promo code."""
    return _delete(billing.delete_promo, promo_id, _("Промокод удалён"))


def _delete(operation, object_id: int, done: str) -> Response:
    if EmptyForm().validate_on_submit():
        try:
            operation(g.territory, object_id)
        except NotFound:
            abort(404)
        flash(done, "success")
    return _back()


@bp.post("/t/<int:tid>/billing/promos")
@territory_route(roles=MANAGER)
def add_promo(tid: int) -> Response:
    """Add a promo code: percent or roubles off, optional last day and usage limit."""
    form = PromoForm()
    if form.is_submitted():
        # Every field's mistake in one answer: the form's own checks, then the domain's for
        # the fields those let through.
        valid = form.validate()
        problems = []
        try:
            terms = _promo_terms(form)
        except DomainError as error:
            problems.append(error)
            terms = _promo_limits(form)
        problems += billing.promo_problems(g.territory, form.code.data or "", **terms)
        _show(form, problems)
        if valid and not problems:
            try:
                billing.add_promo(g.territory, form.code.data, **terms)
            except DomainError as error:
                form_error(form, error)
            else:
                flash(_("Промокод добавлен"), "success")
                return _back()
    return _settings(422, promo_form=form)


def _promo_limits(form: PromoForm) -> dict:
    """The form's last day and usage limit as the domain takes them."""
    day = form.expires_on.data if not form.expires_on.errors else None
    return {"expires_at": _after(day) if day else None, "usage_limit": form.usage_limit.data}


def _promo_terms(form: PromoForm) -> dict:
    """The form's discount and limits as the domain takes them."""
    terms = _promo_limits(form)
    if form.discount_kind.data == "percent":
        value = (form.value.data or "").strip().rstrip("%").strip()
        if not value.isdecimal() or len(value) > 3:
            raise DomainError(_("Скидка в процентах — целое число от 1 до 99"), field="value")
        terms["percent"] = int(value)
    else:
        terms["fixed_kopecks"] = billing.parse_rubles(form.value.data, field="value")
    return terms


def _after(last_day: dt.date) -> dt.datetime:
    """The end of a last day: «по 31.12» includes all of it, in the territory's zone."""
    next_day = last_day + dt.timedelta(days=1)
    return dt.datetime.combine(next_day, dt.time(), ZoneInfo(g.territory.timezone))


def _kindergarten() -> None:
    if g.territory.kind != "kindergarten":
        abort(404)


@bp.get("/t/<int:tid>/billing/cards")
@territory_route(roles=MANAGER)
def cards(tid: int) -> Response:
    """«Карты»: every card bound here, with its holder and status; approve or unbind."""
    _kindergarten()
    return _cards()


def _cards(failed: dict[int, ApproveCardForm] | None = None) -> Response:
    """The cards page; a card's approval form that failed is kept as typed, with its mistake."""
    now, zone = utcnow(), g.territory.timezone
    cards = list(Card.in_territory(g.territory.id))
    forms = dict(failed or {})
    for card in cards:
        if card.id in forms:
            continue
        # Each card's form proposes what buying a card here gives: the territory's validity,
        # from today or, for a card still valid, from its end (a «Продлить» that extends it).
        start = max(now, card.valid_until) if card.valid_until else now
        end = billing.add_months(start, g.territory.card_validity_months, zone)
        forms[card.id] = ApproveCardForm(formdata=None, card_id=card.id,
                                         until=end.astimezone(ZoneInfo(zone)).date())
    return page("billing/cards.html", cards=cards, forms=forms, now=now,
                status=422 if failed else 200)


@bp.get("/t/<int:tid>/billing/cards/<int:card_id>/approve")
@bp.get("/t/<int:tid>/billing/cards/<int:card_id>/unbind")
@territory_route(roles=MANAGER)
def card_form(tid: int, card_id: int) -> Response:
    """A card action's address opened by GET: the cards page."""
    return _to_cards()


def _to_cards() -> Response:
    return redirect(url_for("billing.cards", tid=g.territory.id))


@bp.post("/t/<int:tid>/billing/cards/<int:card_id>/approve")
@territory_route(roles=MANAGER)
def approve_card(tid: int, card_id: int) -> Response:
    """«Подтвердить»: the card opens the gate up to the chosen day, inclusive."""
    _kindergarten()
    try:
        billing.card_of(g.territory, card_id)  # another territory's card: 404, whatever posted
    except NotFound:
        abort(404)
    form = ApproveCardForm(card_id=card_id)
    if form.validate_on_submit():
        try:
            card = billing.approve_card(g.territory, card_id, _after(form.until.data))
        except NotFound as gone:  # unbound meanwhile: its row, and the form, are gone
            flash(gone.message, "error")
            return _to_cards()
        except DomainError as error:  # a past date, or one sooner than the card's own end
            form_error(form, error)
        else:
            flash(_("Карта %(number)s подтверждена", number=card.printed), "success")
            return _to_cards()
    return _cards(failed={card_id: form})


@bp.post("/t/<int:tid>/billing/cards/<int:card_id>/unbind")
@territory_route(roles=MANAGER)
def unbind_card(tid: int, card_id: int) -> Response:
    """«Отвязать»: the card leaves its holder and can be bound again."""
    _kindergarten()
    if EmptyForm().validate_on_submit():
        try:
            billing.unbind_card(g.territory, card_id)
        except NotFound:
            abort(404)
        flash(_("Карта отвязана"), "success")
    return _to_cards()
