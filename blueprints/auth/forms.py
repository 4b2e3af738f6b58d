"""Forms of signing in and out."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    """Phone or e-mail and password."""

    login = StringField(
        _l("Телефон или e-mail"),
        validators=[DataRequired(_l("Введите телефон или e-mail")), Length(max=254)],
        render_kw={"autocomplete": "username", "placeholder": "+7 (999) 888-77-66"},
    )
    password = PasswordField(
        _l("Пароль"),
        validators=[DataRequired(_l("Введите пароль")), Length(max=256)],
        render_kw={"autocomplete": "current-password"},
    )
