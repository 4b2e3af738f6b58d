"""Forms of the manager's console."""

from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from blueprints.territories.forms import timezone_choices
from blueprints.ui import Form
from domain.territories import ROLES


def role_choices(asks: dict[str, str] | None = None) -> list[SelectChoice]:
    """Roles in the reader's language, residents first; a role in `asks` carries the
    question to ask before it is saved (static/app.js asks it)."""
    order = ("resident", "operator", "manager")
    asks = asks or {}
    return [SelectChoice(r, str(ROLES[r]),
                         render_kw={"data-confirm": asks[r]} if r in asks else {})
            for r in order]


def unit_choices(units, empty_label) -> list[SelectChoice]:
    """Units as choices «Участок 5 (3 / 10)», after an empty choice."""
    choices = [SelectChoice(0, str(empty_label))]
    for unit in units:
        choices.append(SelectChoice(unit.id, f"{unit.name} ({unit.members} / 10)"))
    return choices


class AcceptForm(Form):
    """Accept a join request: an existing or a new unit, and the role."""

    unit = SelectField(_l("Объект"), coerce=int, choices=[])
    new_unit = StringField(_l("или новый объект"), validators=[Length(max=200)])
    role = SelectField(_l("Роль"), choices=[])


class RejectForm(Form):
    """Reject a join request, optionally saying why."""

    reason = StringField(_l("Причина (необязательно)"), validators=[Length(max=500)])


class MemberSearchForm(Form):
    """The search over a territory's members (GET, no CSRF)."""

    class Meta:
        csrf = False

    q = StringField(_l("Поиск"), render_kw={"placeholder": _l("ФИО, телефон, почта, объект")})


class UnitSearchForm(Form):
    """The search over a territory's units (GET, no CSRF)."""

    class Meta:
        csrf = False

    q = StringField(_l("Поиск"), render_kw={"placeholder": _l("Объект или лицевой счёт")})


class MemberForm(Form):
    """A member's role and unit."""

    role = SelectField(_l("Роль"), choices=[])
    unit = SelectField(_l("Объект"), coerce=int, choices=[])


class UnitForm(Form):
    """A unit's name and account number."""

    name = StringField(
        _l("Идентификатор объекта"),
        validators=[DataRequired(_l("Введите название")), Length(max=200)],
        render_kw={"placeholder": _l("Участок 632 и 633 (дом 148)")},
    )
    account_number = StringField(_l("Лицевой счёт (необязательно)"), validators=[Length(max=40)])


class ImportForm(Form):
    """A CSV file of units and account numbers."""

    file = FileField(_l("Файл CSV"), validators=[FileRequired(_l("Выберите файл"))])


class SettingsForm(Form):
    """The territory's name, place and switches."""

    name = StringField(
        _l("Название"), validators=[DataRequired(_l("Введите название")), Length(max=200)]
    )
    address = StringField(_l("Адрес"), validators=[Length(max=200)])
    timezone = SelectField(_l("Часовой пояс"), choices=timezone_choices())
    passes_enabled = BooleanField(_l("Пропуска для автомобилей"))
    app_access_free = BooleanField(_l("Доступ по приложению бесплатный для всех участников"))
    free_exit = BooleanField(_l("Свободный выезд"))


