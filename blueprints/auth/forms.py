"""Forms of signing up, in and out, and of recovering a password."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

PHONE_ATTRS = {
    "autocomplete": "tel",
    "inputmode": "tel",
    "type": "tel",
    "placeholder": "+7 (999) 888-77-66",
}
PASSWORD_HINT = _l("Не менее 8 символов, буквы и цифры")


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


def consent_field() -> BooleanField:
    """The consent to personal data processing, the agreement and the privacy policy."""
    return BooleanField(
        _l("Я согласен на обработку персональных данных и принимаю условия "
           "Пользовательского соглашения и Политики конфиденциальности"),
        validators=[DataRequired(_l("Нужно ваше согласие"))],
    )


class PhoneForm(FlaskForm):
    """«Телефон» (+ consent on sign-up) → «Далее»."""

    phone = StringField(
        _l("Телефон"),
        validators=[DataRequired(_l("Введите номер телефона")), Length(max=40)],
        render_kw=PHONE_ATTRS,
    )
    consent = consent_field()


class RecoverPhoneForm(FlaskForm):
    """«Восстановление пароля»: «Телефон» → «Далее»."""

    phone = StringField(
        _l("Телефон"),
        validators=[DataRequired(_l("Введите номер телефона")), Length(max=40)],
        render_kw=PHONE_ATTRS,
    )


class RecoverEmailForm(FlaskForm):
    """Recovery by e-mail link."""

    email = StringField(
        _l("E-mail"),
        validators=[DataRequired(_l("Введите e-mail")), Length(max=254)],
        render_kw={"autocomplete": "email", "type": "email", "inputmode": "email"},
    )


class CodeForm(FlaskForm):
    """«4 цифры входящего номера»."""

    code = StringField(
        _l("4 цифры входящего номера"),
        validators=[Length(max=20)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": "4",
                   "pattern": "[0-9]*"},
    )


class ResendForm(FlaskForm):
    """Ask for a new code by call or by SMS."""

    channel = HiddenField()


class NewPasswordForm(FlaskForm):
    """«Новый пароль» / «Пароль повторно» → «Готово»."""

    password = PasswordField(
        _l("Новый пароль"),
        validators=[DataRequired(_l("Введите пароль")), Length(max=256)],
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        _l("Пароль повторно"),
        validators=[DataRequired(_l("Повторите пароль")), Length(max=256),
                    EqualTo("password", _l("Пароли не совпадают"))],
        render_kw={"autocomplete": "new-password"},
    )


class EmailSignupForm(FlaskForm):
    """Sign-up by e-mail (seed 004 §1.2)."""

    full_name = StringField(
        _l("Имя"),
        validators=[DataRequired(_l("Введите фамилию и имя")), Length(max=200)],
        render_kw={"autocomplete": "name", "placeholder": _l("Фамилия и имя")},
    )
    phone = StringField(
        _l("Телефон"),
        validators=[DataRequired(_l("Введите номер телефона")), Length(max=40)],
        render_kw=PHONE_ATTRS,
    )
    email = StringField(
        _l("Почта"),
        validators=[DataRequired(_l("Введите e-mail")), Length(max=254)],
        render_kw={"autocomplete": "email", "type": "email", "inputmode": "email"},
    )
    password = PasswordField(
        _l("Пароль"),
        validators=[DataRequired(_l("Введите пароль")), Length(max=256)],
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        _l("Подтвердите пароль"),
        validators=[DataRequired(_l("Повторите пароль")), Length(max=256),
                    EqualTo("password", _l("Пароли не совпадают"))],
        render_kw={"autocomplete": "new-password"},
    )
    consent = consent_field()
