"""Forms of the profile."""

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length, Optional, StopValidation

from blueprints.auth.forms import PHONE_ATTRS, Checked, password_rules
from blueprints.ui import Form
from domain.accounts import Account, check_email_kept, parse_email
from domain.errors import DomainError
from domain.phones import parse_phone


def _email_kept(form: FlaskForm, field: StringField) -> None:
    """Validator: the domain's check_email_kept, stopping the chain (Optional() after it
    would end it quietly for an empty field)."""
    try:
        check_email_kept(form.account, field.data)
    except DomainError as error:
        raise StopValidation(error.message) from None


class ProfileForm(Form):
    """«Личные данные» of `account`: surname, name, patronymic, e-mail, and the account's
    language (its SMS, letters and other devices). The footer's switch changes the
    language of what is shown and offers only the one not shown: someone who chose
    English before signing in had no way to give it to the account (audit, stop 23)."""

    surname = StringField(_l("Фамилия"),
                          validators=[DataRequired(_l("Введите фамилию")), Length(max=100)],
                          render_kw={"autocomplete": "family-name"})
    name = StringField(_l("Имя"), validators=[DataRequired(_l("Введите имя")), Length(max=100)],
                       render_kw={"autocomplete": "given-name"})
    patronymic = StringField(_l("Отчество"), validators=[Length(max=100)],
                             render_kw={"autocomplete": "additional-name"})
    email = StringField(_l("E-mail"),
                        validators=[_email_kept, Optional(), Length(max=254),
                                    Checked(parse_email)],
                        render_kw={"autocomplete": "email", "type": "email"})
    # Each language by its own name, in every language of the page.
    locale = SelectField(_l("Язык"), choices=[SelectChoice("ru", "Русский"),
                                              SelectChoice("en", "English")])

    def __init__(self, account: Account, *args, **kwargs) -> None:
        super().__init__(*args, obj=account, **kwargs)
        self.account = account
        if self.locale.data is None:
            # Never chosen: the language shown. Saving the names must not turn an English
            # reader's account, and page, Russian (review, stop 23).
            self.locale.data = str(get_locale() or "ru")


class PhoneChangeForm(Form):
    """«Номер телефона»: the new phone gets a code."""

    phone = StringField(
        _l("Телефон"),
        validators=[DataRequired(_l("Введите номер телефона")), Length(max=40),
                    Checked(parse_phone)],
        render_kw=PHONE_ATTRS,
    )


class PasswordChangeForm(Form):
    """The current password, the new one twice, for `account` (the current one is checked by
    the domain, once, with the sign-in limits: see profile.password)."""

    current = PasswordField(_l("Текущий пароль"),
                            validators=[DataRequired(_l("Введите пароль")), Length(max=256)],
                            render_kw={"autocomplete": "current-password"})
    password = PasswordField(_l("Новый пароль"),
                             validators=[DataRequired(_l("Введите пароль")), Length(max=256),
                                         password_rules],
                             render_kw={"autocomplete": "new-password"})
    confirm = PasswordField(_l("Пароль повторно"),
                            validators=[DataRequired(_l("Повторите пароль")), Length(max=256),
                                        EqualTo("password", _l("Пароли не совпадают"))],
                            render_kw={"autocomplete": "new-password"})

    def __init__(self, account: Account, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The new password must not be made of them (password_rules).
        self.personal = (account.phone or "", account.email or "")


def _tick(label: str) -> BooleanField:
    return BooleanField(label, validators=[DataRequired(_l("Отметьте, что вы это понимаете"))])


class DeletionConsequencesForm(Form):
    """Every consequence of deletion must be ticked."""

    access = _tick(_l("Я потеряю доступ ко всем территориям, воротам и шлагбаумам"))
    passes = _tick(_l("Мои пропуска, карты и оплаченный доступ будут удалены без возврата"))
    data = _tick(_l("Мои личные данные, устройства и участие в территориях будут удалены"))
    payments = _tick(_l("Записи о платежах останутся только обезличенными: сумма, дата и "
                        "территория, без имени, телефона и e-mail"))
    grace = _tick(_l("Аккаунт будет удалён через 30 дней; до этого удаление можно отменить"))


class SmsCodeForm(Form):
    """The 4-digit code from an SMS."""

    code = StringField(
        _l("Код из SMS"),
        validators=[Length(max=20)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": "4",
                   "pattern": "[0-9]*"},
    )
