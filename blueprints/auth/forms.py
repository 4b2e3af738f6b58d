"""Forms of signing up, in and out, and of recovering a password."""

from collections.abc import Callable

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from blueprints.ui import Form
from domain.accounts import check_password_rules, parse_email
from domain.errors import DomainError
from domain.phones import parse_phone

PHONE_ATTRS = {
    "autocomplete": "tel",
    "inputmode": "tel",
    "type": "tel",
    "placeholder": "+7 (999) 888-77-66",
}
PASSWORD_HINT = _l("Не менее 8 символов, буквы и цифры")


def _as_field_error(check: Callable[..., object], *args, **kwargs) -> None:
    try:
        check(*args, **kwargs)
    except DomainError as error:
        raise ValidationError(error.message) from None


class Checked:
    """Run the domain's check of a value as a field validator.

    A form then shows every field's mistake in one answer, where the domain, raising one
    DomainError at a time, would show them one submit after another. The domain checks
    again when it acts: it keeps the last word.
    """

    def __init__(self, check: Callable[[str], object]) -> None:
        self.check = check

    def __call__(self, form: FlaskForm, field) -> None:
        _as_field_error(self.check, field.data)


def password_rules(form: FlaskForm, field) -> None:
    """Validator: the domain's password rules, with the phone and e-mail the form knows of
    (`form.personal`: a password made of them is too easy to guess)."""
    _as_field_error(check_password_rules, field.data, personal=getattr(form, "personal", ()))


def _or_empty(parse: Callable[[str], str], text: str) -> str:
    """The parsed value, or "" when it does not parse (its own field says why)."""
    try:
        return parse(text)
    except DomainError:
        return ""


class LoginForm(Form):
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


class PhoneForm(Form):
    """«Телефон» (+ consent on sign-up) → «Далее»."""

    phone = StringField(
        _l("Телефон"),
        validators=[DataRequired(_l("Введите номер телефона")), Length(max=40),
                    Checked(parse_phone)],
        render_kw=PHONE_ATTRS,
    )
    consent = consent_field()


class RecoverPhoneForm(Form):
    """«Восстановление пароля»: «Телефон» → «Далее»."""

    phone = StringField(
        _l("Телефон"),
        validators=[DataRequired(_l("Введите номер телефона")), Length(max=40),
                    Checked(parse_phone)],
        render_kw=PHONE_ATTRS,
    )


class RecoverEmailForm(Form):
    """Recovery by e-mail link."""

    email = StringField(
        _l("E-mail"),
        validators=[DataRequired(_l("Введите e-mail")), Length(max=254), Checked(parse_email)],
        render_kw={"autocomplete": "email", "type": "email", "inputmode": "email"},
    )


class CodeForm(Form):
    """«4 цифры входящего номера»."""

    code = StringField(
        _l("4 цифры входящего номера"),
        validators=[Length(max=20)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": "4",
                   "pattern": "[0-9]*"},
    )


class ResendForm(Form):
    """Ask for a new code by call or by SMS."""

    channel = HiddenField()


class NewPasswordForm(Form):
    """«Новый пароль» / «Пароль повторно» → «Готово»; `personal`: the phone or e-mail it is for."""

    password = PasswordField(
        _l("Новый пароль"),
        validators=[DataRequired(_l("Введите пароль")), Length(max=256), password_rules],
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        _l("Пароль повторно"),
        validators=[DataRequired(_l("Повторите пароль")), Length(max=256),
                    EqualTo("password", _l("Пароли не совпадают"))],
        render_kw={"autocomplete": "new-password"},
    )

    def __init__(self, *args, personal: tuple[str, ...] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.personal = personal


class EmailSignupForm(Form):
    """Sign-up by e-mail (seed 004 §1.2)."""

    # One field for both, surname first (split_full_name): labelled «Имя», it read «First
    # name» in English, and «John Smith» became surname John (audit, stop 23).
    full_name = StringField(
        _l("Фамилия и имя"),
        validators=[DataRequired(_l("Введите фамилию и имя")), Length(max=200)],
        render_kw={"autocomplete": "name"},
    )
    phone = StringField(
        _l("Телефон"),
        validators=[DataRequired(_l("Введите номер телефона")), Length(max=40),
                    Checked(parse_phone)],
        render_kw=PHONE_ATTRS,
    )
    email = StringField(
        _l("Почта"),
        validators=[DataRequired(_l("Введите e-mail")), Length(max=254), Checked(parse_email)],
        render_kw={"autocomplete": "email", "type": "email", "inputmode": "email"},
    )
    password = PasswordField(
        _l("Пароль"),
        validators=[DataRequired(_l("Введите пароль")), Length(max=256), password_rules],
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        _l("Подтвердите пароль"),
        validators=[DataRequired(_l("Повторите пароль")), Length(max=256),
                    EqualTo("password", _l("Пароли не совпадают"))],
        render_kw={"autocomplete": "new-password"},
    )
    consent = consent_field()

    @property
    def personal(self) -> tuple[str, ...]:
        """The phone and e-mail typed here, which the password must not be made of."""
        return _or_empty(parse_phone, self.phone.data), _or_empty(parse_email, self.email.data)
