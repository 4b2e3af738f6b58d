"""Forms of vehicle passes, the operator's check and the event log."""

from __future__ import annotations

import datetime as dt

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from blueprints.ui import Form, not_too_early, not_too_far
from domain.passes import QUICK_PERIODS, local_moment, normalize_plate, quick_period

LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
# Enough for any plate with the separators people type; the domain says what is wrong.
PLATE_INPUT_MAX = 64
PLATE_INPUT = {
    "autocomplete": "off",
    "autocapitalize": "characters",
    "spellcheck": "false",
    "placeholder": "А 777 АА 77",
}


class PassForm(Form):
    """«Добавить новую заявку»: the plate and the period."""

    plate = StringField(
        _l("Номер автомобиля"),
        validators=[
            DataRequired(_l("Введите номер автомобиля")),
            Length(max=PLATE_INPUT_MAX, message=_l("Номер слишком длинный")),
        ],
        render_kw=PLATE_INPUT,
    )
    foreign = BooleanField(_l("Иностранный номер"))
    period = RadioField(_l("Период"), default="day")
    valid_from = DateTimeLocalField(
        _l("Начало"), format=LOCAL_FORMAT, validators=[Optional()]
    )
    valid_to = DateTimeLocalField(
        _l("Окончание"), format=LOCAL_FORMAT, validators=[Optional()]
    )

    def __init__(self, permanent_allowed: bool, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        choices = [SelectChoice(key, label) for key, label in QUICK_PERIODS.items()]
        choices.append(SelectChoice("dates", _l("Указать даты")))
        if permanent_allowed:
            choices.append(SelectChoice("permanent", _l("Постоянный (своя машина)")))
        self.period.choices = choices

    def period_args(self, timezone: str, now: dt.datetime) -> dict:
        """valid_from / valid_to / permanent for the domain, from the choice made."""
        choice = self.period.data
        if choice == "permanent":
            return {"permanent": True}
        if choice == "dates":
            start = self.valid_from.data
            end = self.valid_to.data
            return {
                "valid_from": local_moment(start, timezone) if start else now,
                "valid_to": local_moment(end, timezone) if end else None,
            }
        start, end = quick_period(choice, now, timezone)
        return {"valid_from": start, "valid_to": end}


class LimitForm(Form):
    """The manager's setting: permanent passes per person."""

    limit = IntegerField(
        _l("Постоянных пропусков на человека"),
        validators=[
            InputRequired(_l("Введите число")),
            NumberRange(min=0, max=20, message=_l("От 0 до 20")),
        ],
    )


class PassFilterForm(Form):
    """Search and filters of the manager's list of passes (GET, no CSRF)."""

    class Meta:
        csrf = False

    q = StringField(_l("Поиск"), render_kw={"placeholder": _l("Номер, фамилия, телефон, объект")})
    status = SelectField(
        _l("Состояние"),
        choices=[
            SelectChoice("", _l("Все")),
            SelectChoice("active", _l("Действуют")),
            SelectChoice("upcoming", _l("Ещё не начались")),
            SelectChoice("expired", _l("Закончились")),
            SelectChoice("revoked", _l("Отозваны")),
        ],
        default="",
    )


def could_be_plate(text: str) -> bool:
    """False for what no plate is made of («$$$», «---»); True for empty input.

    Cheap on purpose: the check calls it before its query. Any letter passes: a plate with a
    letter no plate has is still the operator's plate, answered «Номер не найден». Text
    longer than any typed plate is not one either.
    """
    if not text or text.isspace():
        return True
    if len(text) > PLATE_INPUT_MAX:  # the form says so at its field (CheckForm)
        return False
    norm = normalize_plate(text)
    return bool(norm) and all(ch.isalpha() or "0" <= ch <= "9" for ch in norm)


def plate_like(form: FlaskForm, field: StringField) -> None:
    """Validator: letters and digits (with the separators people type), or nothing."""
    if field.errors:  # too long: said already
        return
    if not could_be_plate(field.data or ""):
        raise ValidationError(
            _l("Это не номер автомобиля: в номере только буквы и цифры (например: А777АА999)"))


class CheckForm(Form):
    """«Проверить номер» (GET, no CSRF: it changes nothing)."""

    class Meta:
        csrf = False

    plate = StringField(
        _l("Номер автомобиля"),
        validators=[Length(max=PLATE_INPUT_MAX, message=_l("Номер слишком длинный")), plate_like],
        render_kw=PLATE_INPUT,
    )


DECISION_FILTERS = [
    SelectChoice("", _l("Все решения")),
    SelectChoice("granted", _l("Разрешено")),
    SelectChoice("denied", _l("Запрещено")),
    SelectChoice("2", _l("Нет пропуска")),
    SelectChoice("3", _l("Срок истёк")),
    SelectChoice("4", _l("Неизвестен")),
    SelectChoice("5", _l("Заблокирован / не оплачен")),
    SelectChoice("6", _l("Не выполнено")),
]


class EventFilterForm(Form):
    """Filters of the event log (GET, no CSRF)."""

    class Meta:
        csrf = False

    date_from = DateField(_l("С"), validators=[Optional(), not_too_early, not_too_far])
    date_to = DateField(_l("По"), validators=[Optional(), not_too_early, not_too_far])
    gate = SelectField(_l("Ворота"), coerce=int, default=0, validators=[Optional()])
    decision = SelectField(_l("Решение"), choices=DECISION_FILTERS, default="")
    plate = StringField(
        _l("Номер"),
        validators=[Length(max=PLATE_INPUT_MAX, message=_l("Номер слишком длинный"))],
        render_kw={**PLATE_INPUT, "placeholder": ""},
    )

    def validate(self, extra_validators: dict | None = None) -> bool:
        """The filters' checks; a plate too long to be one filters nothing, and its field
        says why."""
        valid = super().validate(extra_validators)
        if self.plate.errors:
            self.plate.data = ""
            self.plate.raw_data = None
        return valid

    def validate_date_to(self, field: DateField) -> None:
        """«По» before «С» would show an empty log as if nothing had happened."""
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError(_l("Дата окончания раньше начала"))
