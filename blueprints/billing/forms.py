"""Forms of billing: binding and buying cards, buying access, the manager's prices, filters."""

from __future__ import annotations

import re

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, RadioField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    AnyOf,
    DataRequired,
    Email,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    StopValidation,
)

from blueprints.i18n import format_money
from blueprints.ui import Form, not_too_far
from domain.billing import KINDS, METHODS, STATUSES, parse_rubles
from domain.errors import DomainError

# 1,380.50: an amount grouped as English shows it (format_money), read back in English.
_EN_GROUPED = re.compile(r"\s*[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]{1,2})?\s*₽?\s*")


class MoneyField(StringField):
    """An amount in roubles, typed as text; parse_rubles reads it.

    A stored price is shown as the rest of the UI shows money (format_money: «1 380,50»,
    «1,380.50» in English) without the ₽ sign, and what it shows reads back to the same
    amount; what was typed is shown back as typed.
    """

    def process_formdata(self, valuelist: list) -> None:
        super().process_formdata(valuelist)
        # parse_rubles takes «,» for the decimal mark, as Russian writes it.
        if self.data and str(get_locale() or "ru") == "en" and _EN_GROUPED.fullmatch(self.data):
            self.data = self.data.replace(",", "")

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        if isinstance(self.data, int):
            return format_money(self.data).removesuffix("\xa0₽")
        try:
            return format_money(parse_rubles(self.data or "")).removesuffix("\xa0₽")
        except DomainError:
            return self.data or ""


class WholeNumberField(IntegerField):
    """An integer field whose text that is not a whole number («abc», «1,5») says so, and only
    that: the range after it would tell someone who typed letters to type 1 to 120."""

    def process_formdata(self, valuelist: list) -> None:
        if not valuelist or not str(valuelist[0]).strip():
            # Nothing typed (spaces are nothing): the field's Optional or InputRequired
            # says what that means.
            self.data, self.raw_data = None, []
            return
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError(str(_l("Введите целое число"))) from None

    def pre_validate(self, form: FlaskForm) -> None:
        if self.process_errors:
            raise StopValidation()


def _choices(labels: dict) -> list[SelectChoice]:
    return [SelectChoice("", _l("Все"))] + [SelectChoice(k, v) for k, v in labels.items()]


class BindCardForm(Form):
    """«У меня есть карта»: the number printed on the back."""

    card_number = StringField(
        _l("Номер карты"),
        validators=[DataRequired(_l("Введите номер карты")), Length(max=40)],
        render_kw={"placeholder": "123,45678", "inputmode": "decimal", "autocomplete": "off"},
    )


class PurchaseForm(Form):
    """What every purchase asks: a promo code, the receipt's e-mail, the way to pay."""

    promo = StringField(
        _l("Промокод"), validators=[Optional(), Length(max=40)],
        render_kw={"placeholder": _l("Введите промокод"), "autocomplete": "off"},
    )
    email = StringField(
        _l("E-mail для отправки чека"),
        validators=[DataRequired(_l("Введите e-mail")), Email(_l("Проверьте e-mail")),
                    Length(max=254)],
        render_kw={"placeholder": "E-mail", "type": "email", "autocomplete": "email"},
    )
    # Set by the button pressed: «СБП» or the card systems' button.
    method = StringField(validators=[AnyOf(list(METHODS), _l("Выберите способ оплаты"))])


class BuyCardForm(PurchaseForm):
    """«Купить карту»."""


class BuyAccessForm(PurchaseForm):
    """«Купить доступ» / «Активировать доступ»: a period of one of the tariffs."""

    period = RadioField(_l("Выберите период"), coerce=int,
                        validators=[InputRequired(_l("Выберите период"))])


class CardOfferForm(Form):
    """The territory's card: price and validity."""

    price = MoneyField(_l("Стоимость карты, ₽"), validators=[DataRequired(_l("Введите цену"))],
                       render_kw={"inputmode": "decimal"})
    validity_months = WholeNumberField(
        _l("Срок действия, мес."),
        validators=[InputRequired(_l("Введите срок")), NumberRange(1, 120, _l("От 1 до 120"))],
    )


class ApproveCardForm(Form):
    """The manager approves a card paid outside the app, up to a last day."""

    until = DateField(_l("Действует по (включительно)"),
                      validators=[InputRequired(_l("Укажите дату")), not_too_far])

    def __init__(self, *args, card_id: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # One form a row of «Карты»: the field keeps its name, its id names the card (the
        # label, the mistake and aria-describedby follow it).
        self.until.id = self.until.label.field_id = f"until-{card_id}"


class TariffForm(Form):
    """A new tariff."""

    name = StringField(_l("Название тарифа"),
                       validators=[DataRequired(_l("Введите название тарифа")), Length(max=120)],
                       render_kw={"placeholder": _l("Родители группы 1")})


class PeriodForm(Form):
    """A new period of a tariff."""

    months = WholeNumberField(_l("Срок, мес."), validators=[
        InputRequired(_l("Введите срок")), NumberRange(1, 120, _l("От 1 до 120"))])
    price = MoneyField(_l("Цена, ₽"), validators=[DataRequired(_l("Введите цену"))],
                       render_kw={"inputmode": "decimal", "placeholder": "85,00"})


class PromoForm(Form):
    """A new promo code."""

    code = StringField(_l("Промокод"), validators=[DataRequired(_l("Введите промокод")),
                                                   Length(max=40)])
    discount_kind = RadioField(
        _l("Скидка"),
        choices=[SelectChoice("percent", _l("в процентах")),
                 SelectChoice("fixed", _l("в рублях"))],
        default="percent", validators=[InputRequired(_l("Выберите вид скидки"))],
    )
    value = MoneyField(_l("Размер скидки"),
                       validators=[DataRequired(_l("Введите размер скидки"))],
                       render_kw={"inputmode": "decimal", "placeholder": "10"})
    expires_on = DateField(_l("Действует по (включительно)"),
                           validators=[Optional(), not_too_far])
    usage_limit = WholeNumberField(
        _l("Лимит использований"),
        validators=[Optional(), NumberRange(1, 1_000_000, _l("Не меньше 1"))],
    )


class RegistryFilterForm(Form):
    """Filters of the registry, sent by GET (nothing changes, so no CSRF token)."""

    class Meta:
        csrf = False

    status = SelectField(_l("Статус платежа"), default="",
                         choices=_choices(STATUSES))
    kind = SelectField(_l("Тип доступа"), default="",
                       choices=_choices(KINDS))
