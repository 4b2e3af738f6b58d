"""The sandbox bank's pages: what a bank app or a card form would show the payer.

Served only when PAYMENT_PROVIDER=sandbox. The payer needs no account here — whoever holds
the link (the QR code) may pay, as with a real bank. Refunds are for the platform admin.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, flash, redirect, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import StringField
from wtforms.validators import DataRequired, Regexp

from blueprints.ui import EmptyForm, Form, page
from providers.payments import PaymentError, payments
from providers.payments.sandbox import SandboxBankPayment, SandboxProvider

bp = Blueprint("sandbox_bank", __name__, url_prefix="/sandbox-bank")


class CardDetailsForm(Form):
    """A test card: any 16 digits, a future-looking MM/YY and three digits (nothing is kept)."""

    number = StringField(_l("Номер карты"), validators=[
        DataRequired(_l("Введите номер карты")),
        Regexp(r"^[0-9 ]{16,23}$", message=_l("16 цифр, например 4111 1111 1111 1111"))],
        render_kw={"inputmode": "numeric", "autocomplete": "off",
                   "placeholder": "4111 1111 1111 1111"})
    expiry = StringField(_l("Срок действия"), validators=[
        DataRequired(_l("Введите срок действия")),
        Regexp(r"^(0[1-9]|1[0-2])/[0-9]{2}$", message=_l("ММ/ГГ, например 12/30"))],
        render_kw={"inputmode": "numeric", "autocomplete": "off", "placeholder": "12/30"})
    cvc = StringField("CVC", validators=[
        DataRequired(_l("Введите CVC")), Regexp(r"^[0-9]{3}$", message=_l("Три цифры"))],
        render_kw={"inputmode": "numeric", "autocomplete": "off", "placeholder": "123"})


def _bank() -> SandboxProvider:
    provider = payments()
    # A development page, like the outbox: never served with DEV_PAGES=0.
    if not isinstance(provider, SandboxProvider) or not current_app.config.get("DEV_PAGES"):
        abort(404)
    return provider


def _payment(payment_id: str) -> SandboxBankPayment:
    found = SandboxBankPayment.get_or_none(SandboxBankPayment.id == payment_id)
    if found is None:
        abort(404)
    return found


def _show(payment: SandboxBankPayment, form: CardDetailsForm | None = None,
          status: int = 200) -> Response:
    return page("billing/bank.html", payment=payment, form=form or CardDetailsForm(),
                status=status)


@bp.get("/<payment_id>")
def pay_page(payment_id: str) -> Response:
    """The bank's page of one payment: amount, what for, «Оплатить» and «Отклонить»."""
    _bank()
    return _show(_payment(payment_id))


@bp.post("/<payment_id>/pay")
def pay(payment_id: str) -> Response:
    """«Оплатить»: the bank takes the money and tells the shop by webhook."""
    bank, payment = _bank(), _payment(payment_id)
    form = CardDetailsForm()
    valid = form.validate_on_submit() if payment.method == "bank_card" else (
        EmptyForm().validate_on_submit())
    if not valid:
        return _show(payment, form, 422)
    try:
        bank.pay(payment)
    except PaymentError:
        flash(_("Магазин не подтвердил платёж, деньги не списаны"), "error")
        return _show(payment, form, 409)
    if payment.method == "bank_card":
        # Back to the shop, as a card form does after 3-D Secure.
        return redirect(payment.return_url)
    return redirect(url_for("sandbox_bank.pay_page", payment_id=payment.id))


@bp.post("/<payment_id>/decline")
def decline(payment_id: str) -> Response:
    """«Отклонить»: the payment is canceled and the shop is told."""
    bank, payment = _bank(), _payment(payment_id)
    if EmptyForm().validate_on_submit():
        try:
            bank.decline(payment)
        except PaymentError:
            flash(_("Платёж уже не ожидает оплаты"), "error")
    if payment.method == "bank_card" and payment.status == "canceled":
        return redirect(payment.return_url)
    return redirect(url_for("sandbox_bank.pay_page", payment_id=payment.id))


@bp.post("/<payment_id>/refund")
def refund(payment_id: str) -> Response:
    """«Вернуть деньги» (platform admin only): a refund, announced to the shop by webhook."""
    bank, payment = _bank(), _payment(payment_id)
    if not (current_user.is_authenticated and current_user.is_admin):
        abort(404)
    if EmptyForm().validate_on_submit():
        try:
            bank.refund(payment.id, payment.amount_kopecks, f"bank-{payment.id}-refund")
        except PaymentError:
            flash(_("Вернуть не удалось: платёж не оплачен или магазин не ответил"), "error")
        else:
            flash(_("Деньги возвращены"), "success")
    return redirect(url_for("sandbox_bank.pay_page", payment_id=payment.id))
