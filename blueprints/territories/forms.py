"""Forms of creating, choosing and joining territories."""

from flask_babel import lazy_gettext as _l
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from blueprints.auth.forms import Checked
from blueprints.ui import Form
from domain.territories import DEFAULT_TZ, KINDS, TIMEZONES, parse_code


def kind_choices() -> list[SelectChoice]:
    """Kinds of territory in the reader's language."""
    return [SelectChoice(k, str(label)) for k, label in KINDS.items()]


def timezone_choices() -> list[SelectChoice]:
    """Russia's time zones, west to east."""
    return [SelectChoice(zone, label) for zone, label in TIMEZONES.items()]


class CreateForm(Form):
    """«Создать территорию»: name, kind, address, time zone."""

    name = StringField(
        _l("Название"),
        validators=[DataRequired(_l("Введите название")), Length(max=200)],
        render_kw={"placeholder": _l("ЖК «Северный парк»")},
    )
    kind = SelectField(_l("Тип территории"), choices=[])
    address = StringField(_l("Адрес"), validators=[Length(max=200)])
    timezone = SelectField(
        _l("Часовой пояс"), choices=timezone_choices(), default=DEFAULT_TZ
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.kind.choices = kind_choices()


class JoinForm(Form):
    """«Подключиться к территории»: the code and the person's place in it."""

    code = StringField(
        _l("Код территории"),
        validators=[DataRequired(_l("Введите код территории")), Length(max=20),
                    Checked(parse_code)],
        render_kw={"placeholder": "123-456", "inputmode": "numeric", "autocomplete": "off"},
    )
    unit_label = StringField(
        _l("Идентификатор объекта"),
        validators=[DataRequired(_l("Укажите идентификатор объекта")), Length(max=200)],
        render_kw={"placeholder": _l("Участок 632 и 633 (дом 148)")},
    )


class AddByNumberForm(Form):
    """«+ Добавить объект»: a territory from the list and the account number."""

    territory = SelectField(_l("Объект"), coerce=int, choices=[],
                            validators=[DataRequired(_l("Выберите объект из списка"))])
    number = StringField(
        _l("Номер лицевого счёта"),
        validators=[DataRequired(_l("Введите номер лицевого счёта")), Length(max=40)],
        render_kw={"inputmode": "numeric", "autocomplete": "off"},
    )
