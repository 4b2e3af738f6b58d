"""Forms of the gates area."""

from flask import current_app
from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from blueprints.ui import Form
from domain.gates import DIRECTIONS, SERIAL_MAX, SERIAL_RANGE, gate_problems


class GateForm(Form):
    """A gate and how to reach its GATE-CTL controller, for a territory's gate `gate_id`
    (None for a new one)."""

    name = StringField(_l("Название"), validators=[InputRequired(_l("Введите название")),
                                                   Length(max=100)])
    direction = SelectField(_l("Направление"), choices=[])
    host = StringField(_l("Адрес контроллера"),
                       validators=[InputRequired(_l("Укажите адрес контроллера")),
                                   Length(max=255)])
    port = IntegerField(_l("Порт"), default=502,
                        validators=[InputRequired(_l("Порт — от 1 до 65535")),
                                    NumberRange(1, 65535, _l("Порт — от 1 до 65535"))])
    unit_id = IntegerField(_l("Номер устройства Modbus"), default=1,
                           validators=[InputRequired(_l("Номер устройства Modbus — от 0 до 255")),
                                       NumberRange(0, 255,
                                                   _l("Номер устройства Modbus — от 0 до 255"))])
    poll_ms = IntegerField(_l("Опрос, мс"), default=200,
                           validators=[InputRequired(_l("Опрос — от 20 до 60000 мс")),
                                       NumberRange(20, 60000, _l("Опрос — от 20 до 60000 мс"))])
    word_order = SelectField(_l("Порядок слов"), default="big", choices=[
        SelectChoice("big", _l("старшее слово первым (big)")),
        SelectChoice("little", _l("младшее слово первым (little)")),
    ])
    serial = IntegerField(_l("Серийный номер контроллера"),
                          validators=[Optional(), NumberRange(0, SERIAL_MAX, SERIAL_RANGE)])
    enabled = BooleanField(_l("Включены"), default=True)

    def __init__(self, *args, territory_id: int, gate_id: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.territory_id, self.gate_id = territory_id, gate_id
        self.direction.choices = [SelectChoice(k, str(v)) for k, v in DIRECTIONS.items()]

    def validate(self, extra_validators: dict | None = None) -> bool:
        """The fields' own checks and the domain's rules (an address's shape, a controller
        already in use), so one submit shows every error."""
        valid = super().validate(extra_validators)
        values = self.values()
        del values["enabled"]
        for name, message in gate_problems(self.territory_id, gate_id=self.gate_id,
                                           **values).items():
            field = getattr(self, name)
            if not field.errors:  # a field's own message says it already
                field.errors.append(message)
                valid = False
        return valid

    def values(self) -> dict:
        """What the domain operations take."""
        return {
            "name": self.name.data or "",
            "direction": self.direction.data,
            "host": self.host.data or "",
            "port": self.port.data,
            "unit_id": self.unit_id.data,
            "poll_ms": self.poll_ms.data,
            "word_order": self.word_order.data,
            "serial": self.serial.data,
            "enabled": bool(self.enabled.data),
            "networks": current_app.config.get("GATE_NETWORKS", ()),
        }
