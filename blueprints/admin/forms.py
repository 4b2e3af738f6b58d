"""Forms of the platform admin's console."""

from flask_babel import lazy_gettext as _l
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length

from blueprints.ui import Form


class AttachForm(Form):
    """Put a person into a territory directly: its code, the role and a unit."""

    code = StringField(
        _l("Код территории"),
        validators=[DataRequired(_l("Введите код территории")), Length(max=20)],
        render_kw={"placeholder": "123-456", "inputmode": "numeric"},
    )
    role = SelectField(_l("Роль"), choices=[])
    unit = StringField(
        _l("Идентификатор объекта"),
        validators=[Length(max=200)],
        render_kw={"placeholder": _l("Участок 632 и 633 (дом 148)")},
    )
