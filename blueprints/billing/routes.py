"""A member's billing: cards, app access, checkout and its live status, the registry, webhook."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, flash, g, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from peewee import JOIN
from wtforms.fields.choices import SelectChoice

from blueprints.billing import flows
from blueprints.billing.forms import BindCardForm, BuyAccessForm, BuyCardForm, RegistryFilterForm
from blueprints.scope import own_role, territory_route
from blueprints.ui import EmptyForm, form_error, keyset_page, page
from domain import billing
from domain.accounts import Account
from domain.billing import Card, Payment, TariffPeriod
from domain.db import utcnow
from domain.errors import DomainError, NotFound
from domain.territories import Membership, Unit
from extensions import csrf
from providers.payments import (
    CANCELED,
    REFUNDED,
    SUCCEEDED,
    NotificationRejected,
    payments,
)

bp = Blueprint("billing", __name__)
log = logging.getLogger("propusk.billing")
REGISTRY_PER_PAGE = 50
# Who binds and buys (SPEC §1: residents; a manager opens gates from the phone as well).
BUYERS = ["resident", "manager"]


def _kindergarten() -> None:
    if g.territory.kind != "kindergarten":
        abort(404)


def _buyer() -> None:
    """Only a member who buys gets past: not the platform admin where they are no member
    (a membership not saved: the gate lets no card or access of theirs through), nor one
    who is a guard there (their membership is raised to manager for the request; the
    stored role is what the gate reads). Before, the pages only hid the way in
    (billing/_home_actions.html), and the admin and guards bound cards and paid for access
    the gate then refused (audit, stop 23)."""
    if own_role(g.membership) not in BUYERS:
        abort(404)


@bp.app_template_global("billing_summary")
def billing_summary(account_id: int, territory_id: int) -> dict:
    """What the home screen shows about the person's access in a territory."""
    return {
        "paid_until": billing.paid_until(account_id, territory_id),
        "cards": list(Card.of(account_id, territory_id)),
        "awaiting_card": billing.cards_awaiting_number(account_id, territory_id).count(),
        "now": utcnow(),
    }


@bp.app_template_filter("term")
def term(months: int) -> str:
    """A period as the seed writes it: «3 мес.», «1 год», «2 года», «5 лет»."""
    if months % 12:
        return _("%(num)s мес.", num=months)
    years = months // 12
    if years % 10 == 1 and years % 100 != 11:
        return _("%(num)s год", num=years)
    if years % 10 in (2, 3, 4) and years % 100 not in (12, 13, 14):
        return _("%(num)s года", num=years)
    return _("%(num)s лет", num=years)


@bp.get("/t/<int:tid>/billing/")
@territory_route()
def home(tid: int) -> Response:
    """«Доступ»: what the person can bind or buy here, and until when it is paid."""
    return page("billing/home.html", territory=g.territory, membership=g.membership)


@bp.route("/t/<int:tid>/billing/card", methods=["GET", "POST"])
@territory_route(roles=BUYERS)
def bind_card(tid: int) -> Response:
    """«У меня есть карта»: «Номер карты» → «Подтвердить»."""
    _buyer()
    _kindergarten()
    form = BindCardForm()
    if form.validate_on_submit():
        try:
            card = billing.bind_card(current_user, g.territory, form.card_number.data)
        except DomainError as error:
            form_error(form, error)
        else:
            if card.valid_until is None:
                flash(_("Карта %(number)s привязана и ожидает подтверждения управляющего",
                        number=card.printed), "success")
            else:
                flash(_("Карта %(number)s привязана", number=card.printed), "success")
            return redirect(url_for("billing.home", tid=tid))
    return page("billing/bind_card.html", form=form, status=422 if form.errors else 200)


def _prefill(form: BuyCardForm | BuyAccessForm) -> None:
    if not form.is_submitted() and not form.email.data:
        form.email.data = current_user.email or ""


def _start(form: BuyCardForm | BuyAccessForm, offer_of) -> Response | None:
    """Validate, open the checkout, and send the payer on; None when the form has errors."""
    if not form.validate_on_submit():
        return None
    try:
        payment = flows.open_checkout(
            current_user, g.territory, offer_of(), email=form.email.data,
            method=form.method.data, promo_code=form.promo.data or "",
        )
    except DomainError as error:
        form_error(form, error)
        return None
    if payment.method == "bank_card" and request.htmx:
        # Straight to the provider's card form; a navigation, not a form redirect (CSP form-action).
        response = Response(status=204)
        response.headers["HX-Redirect"] = payment.confirmation_url
        return response
    return redirect(url_for("billing.checkout", tid=g.territory.id, pid=payment.id))


@bp.route("/t/<int:tid>/billing/card/buy", methods=["GET", "POST"])
@territory_route(roles=BUYERS)
def buy_card(tid: int) -> Response:
    """«Купить карту»: price, validity, promo code, e-mail for the receipt, way to pay."""
    _buyer()
    _kindergarten()
    form = BuyCardForm()
    _prefill(form)
    done = _start(form, lambda: billing.card_offer(g.territory))
    if done is not None:
        return done
    return page("billing/buy_card.html", form=form, offer=billing.card_offer(g.territory),
                status=422 if form.errors else 200)


@bp.route("/t/<int:tid>/billing/access", methods=["GET", "POST"])
@territory_route(roles=BUYERS)
def buy_access(tid: int) -> Response:
    """«Купить доступ» / «Активировать доступ»: a tariff's period, promo, e-mail, way to pay."""
    _buyer()
    periods = list(TariffPeriod.of(tid))
    form = BuyAccessForm()
    form.period.choices = [SelectChoice(p.id, str(p.id)) for p in periods]
    _prefill(form)
    if not g.territory.app_access_free:
        done = _start(form, lambda: billing.app_offer(g.territory, form.period.data))
        if done is not None:
            return done
    return page("billing/buy_access.html", form=form, periods=periods,
                paid_until=billing.paid_until(current_user.id, tid),
                status=422 if form.errors else 200)


def _own_payment(tid: int, pid: int) -> Payment:
    payment = Payment.get_or_none(
        (Payment.id == pid) & (Payment.territory == tid) & (Payment.account == current_user.id)
    )
    if payment is None:
        abort(404)
    return payment


@bp.get("/t/<int:tid>/billing/payments/<int:pid>")
@territory_route()
def checkout(tid: int, pid: int) -> Response:
    """The checkout: the QR code for SBP or the way to the card form, «Итого», live status."""
    payment = _own_payment(tid, pid)
    qr = flows.qr_svg(payment.confirmation_url) if (
        payment.method == "sbp" and payment.status == "pending" and payment.confirmation_url
    ) else None
    return page("billing/checkout.html", payment=payment, qr=qr)


@bp.post("/t/<int:tid>/billing/payments/<int:pid>/cancel")
@territory_route()
def cancel_payment(tid: int, pid: int) -> Response:
    """«Отменить»: the payer gives up a pending payment, canceled at the provider too; its
    promo code's use comes back once its link takes no money."""
    payment = _own_payment(tid, pid)
    if EmptyForm().validate_on_submit() and not billing.cancel_by_payer(payment):
        flash(_("Платёж уже не ожидает оплаты"), "error")
    return redirect(url_for("billing.checkout", tid=tid, pid=pid))


@bp.get("/t/<int:tid>/billing/payments/<int:pid>/status")
@territory_route()
def payment_status(tid: int, pid: int) -> Response:
    """«Статус оплаты»: polled every second; 286 stops the polling once it is settled."""
    payment = _own_payment(tid, pid)
    # Settled, the answer also empties the checkout's way to pay (the QR code, the bank's
    # link) out of band: it lies outside this widget and must not invite paying any more.
    response = page("billing/_status.html", payment=payment, settle_checkout=True)
    if payment.status != "pending":
        response.status_code = 286
    return response


def _with_payers(query):
    """The registry with each payer and their unit in the payment's territory, in one query
    (no account after its deletion; no unit for someone who has none or left)."""
    here = (Membership.account == Payment.account) & (Membership.territory == Payment.territory)
    return (
        query.select_extend(Account, Membership, Unit)
        .switch(Payment).join(Account, JOIN.LEFT_OUTER)
        .switch(Payment).join(Membership, JOIN.LEFT_OUTER, on=here, attr="payer_membership")
        .join(Unit, JOIN.LEFT_OUTER)
    )


def _registry(scope: str, query, form: RegistryFilterForm, show_payer: bool,
              endpoint: str, **values) -> Response:
    """One page of the registry (or its rows for a filter's swap), by keyset as the manager's
    pass list: ?after=<id> of the last row shown for the next page, ?before=<id> of the first
    for the previous one; the filters ride along in every link."""
    filters = {k: v for k, v in (("status", form.status.data), ("kind", form.kind.data)) if v}
    shown = _with_payers(_filtered(query, form))
    rows, more, number = keyset_page(Payment, shown, query, REGISTRY_PER_PAGE)
    return page("billing/payments.html", "billing/_payments.html", form=form,
                payments=rows, more=more, number=number, scope=scope,
                show_payer=show_payer, filtered=bool(filters), endpoint=endpoint,
                args={**values, **filters}, action=url_for(endpoint, **values))


def _filtered(query, form: RegistryFilterForm):
    if form.status.data:
        query = query.where(Payment.status == form.status.data)
    if form.kind.data:
        query = query.where(Payment.kind == form.kind.data)
    return query


@bp.get("/t/<int:tid>/billing/payments")
@territory_route()
def territory_payments(tid: int) -> Response:
    """«Платежи» of a territory: all of them for its manager, one's own for everyone else."""
    form = RegistryFilterForm(request.args)
    query = Payment.registry().where(Payment.territory == tid)
    manager = g.membership.role == "manager"
    if not manager:
        query = query.where(Payment.account == current_user.id)
    return _registry("territory", query, form, manager, "billing.territory_payments", tid=tid)


@bp.get("/payments")
@login_required
def payments_registry() -> Response:
    """«Платежи»: one's own in every territory; the platform admin sees all, with refunds."""
    form = RegistryFilterForm(request.args)
    query = Payment.registry()
    if not current_user.is_admin:
        query = query.where(Payment.account == current_user.id)
    return _registry("all", query, form, current_user.is_admin, "billing.payments_registry")


@bp.post("/payments/<int:pid>/refund")
@login_required
def refund(pid: int) -> Response:
    """«Вернуть»: the admin returns a payment's money and the access it bought."""
    payment = Payment.get_or_none(Payment.id == pid)
    if not current_user.is_admin or payment is None:
        abort(404)
    if EmptyForm().validate_on_submit():
        payer = payment.account.shown_name if payment.account else _("Аккаунт удалён")
        try:
            done = flows.refund(payment)
        except DomainError as error:
            flash(error.message, "error")
        else:
            if done:
                flash(_("Платёж № %(id)s (%(payer)s) возвращён", id=pid, payer=payer),
                      "success")
            else:
                flash(_("Возврат по платежу № %(id)s (%(payer)s) запрошен и ждёт подтверждения "
                        "платёжного сервиса; доступ будет отозван, когда деньги вернутся",
                        id=pid, payer=payer), "info")
    return redirect(request.referrer if (request.referrer or "").startswith(request.host_url)
                    else url_for("billing.payments_registry"))


@bp.post("/billing/webhook")
@csrf.exempt
def webhook() -> Response:
    """Notifications from the payment provider: verified, then applied exactly once."""
    try:
        event = payments().parse_notification(
            request.get_data(), dict(request.headers), request.remote_addr or ""
        )
    except NotificationRejected as rejected:
        log.warning("webhook rejected: %s", rejected)
        return Response(status=rejected.status)
    try:
        if event.event == SUCCEEDED:
            flows.settle_success(event.provider_payment_id, event.amount_kopecks)
        elif event.event == CANCELED:
            billing.apply_cancel(event.provider_payment_id)
        elif event.event == REFUNDED:
            billing.apply_refund(event.provider_payment_id, event.amount_kopecks,
                                 refund_id=event.refund_id)
    except billing.RefundTooEarly:
        # Not a «no»: the payment's success has not reached us yet. A non-2xx answer makes
        # the provider announce the refund again later, when it applies.
        log.warning("refund of payment %s announced before its success: asked again later",
                    event.provider_payment_id)
        return Response(status=409)
    except billing.AmountMismatch:
        log.error("payment %s: the provider reports %s kopecks, not what we asked",
                  event.provider_payment_id, event.amount_kopecks)
        return Response(status=409)
    except NotFound:
        log.warning("webhook for unknown payment %s", event.provider_payment_id)
        return Response(status=404)
    return Response(status=200)

