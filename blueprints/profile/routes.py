"""The profile (seed 000 §5), devices, password, e-mail and phone changes, deletion (§6)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, flash, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user

from blueprints.auth.forms import ResendForm
from blueprints.auth.routes import link_for
from blueprints.i18n import select_timezone
from blueprints.profile.forms import (
    DeletionConsequencesForm,
    PasswordChangeForm,
    PhoneChangeForm,
    ProfileForm,
    SmsCodeForm,
)
from blueprints.sessions import end_session
from blueprints.ui import EmptyForm, form_error, page
from domain import accounts, codes
from domain.db import utcnow
from domain.errors import DomainError
from domain.phones import parse_phone

bp = Blueprint("profile", __name__, url_prefix="/profile")


@bp.app_template_global()
def deletion_held_by(account: accounts.Account | None = None) -> str:
    """The territories that hold the deletion of `account` (the signed-in person's by
    default; the admin's account page names one) back, «named», or "": it alone manages
    them while others are members (accounts.purge_deleted waits for another manager)."""
    if account is None:
        if not current_user.is_authenticated:
            return ""
        account = current_user._get_current_object()
    if account.deletion_due_at is None:
        return ""
    from domain.territories import left_without_manager
    from domain.text import in_quotes

    return ", ".join(f"«{in_quotes(t.name)}»" for t in left_without_manager(account))


@bp.before_request
def _signed_in() -> Response | None:
    # Every page here is the signed-in person's own; only the e-mail link works without it.
    if request.endpoint != "profile.confirm_email" and not current_user.is_authenticated:
        from extensions import login_manager

        return login_manager.unauthorized()
    return None


def _me() -> accounts.Account:
    return current_user._get_current_object()


def _device() -> accounts.Device | None:
    return accounts.device_for_token(current_user.get_id())


def _status(form) -> int:
    return 422 if form.errors or form.form_errors else 200


@bp.get("")
def index() -> Response:
    """«Профиль»: name, phone, e-mail, status, ID, time zone and current time."""
    now = utcnow().astimezone(ZoneInfo(select_timezone()))
    return page("profile/index.html", account=_me(), now=now)


@bp.route("/edit", methods=["GET", "POST"])
def edit() -> Response:
    """«Редактировать»: «Личные данные» → «ПРИМЕНИТЬ»; a new e-mail needs its link."""
    me = _me()
    form = ProfileForm(me)
    if form.validate_on_submit():
        try:
            email = accounts.parse_email(form.email.data) if form.email.data else None
            accounts.update_profile(me, surname=form.surname.data, name=form.name.data,
                                    patronymic=form.patronymic.data, email=form.email.data or "")
            accounts.set_locale(me, form.locale.data)
            session["lang"] = form.locale.data  # this browser shows it too
            if email and accounts.start_email_change(me, email, request.remote_addr, link_for):
                flash(_("На %(email)s отправлена ссылка: e-mail сменится, когда вы её откроете.",
                        email=email), "info")
        except DomainError as error:
            form_error(form, error)
        else:
            flash(_("Данные сохранены"), "success")
            return redirect(url_for("profile.index"))
    return page("profile/edit.html", form=form, phone_form=PhoneChangeForm(formdata=None),
                status=_status(form))


@bp.get("/email/<token>")
def confirm_email(token: str) -> Response:
    """The link sent to a new e-mail: the account takes the address."""
    try:
        accounts.confirm_email_change(token)
    except DomainError as error:
        return page("auth/link_error.html", message=error.message, status=410)
    flash(_("E-mail подтверждён и сохранён"), "success")
    return redirect(url_for("profile.index" if current_user.is_authenticated else "auth.login"))


@bp.get("/phone")
def phone_form() -> Response:
    """The phone form's own address opened by GET (a reload after a mistake): its page."""
    return redirect(url_for("profile.edit"))


@bp.post("/phone")
def phone() -> Response:
    """«Номер телефона» → «ПРИМЕНИТЬ»: an SMS code goes to the new phone."""
    form = PhoneChangeForm()
    if form.validate_on_submit():
        try:
            new = parse_phone(form.phone.data)
            code = accounts.start_phone_change(_me(), new, request.remote_addr)
        except DomainError as error:
            form_error(form, error)
        else:
            session["phone_change"] = code.id
            return redirect(url_for("profile.phone_code"))
    return page("profile/edit.html", form=ProfileForm(_me(), formdata=None),
                phone_form=form, status=_status(form))


def _pending(key: str, purpose: str) -> codes.Code:
    code = codes.Code.get_or_none(
        (codes.Code.id == session.get(key)) & (codes.Code.purpose == purpose)
        & (codes.Code.account == _me())
    )
    if code is None:
        abort(redirect(url_for("profile.index")))
    return code


@bp.route("/phone/code", methods=["GET", "POST"])
def phone_code() -> Response:
    """The code sent to the new phone → the phone changes."""
    code = _pending("phone_change", codes.PHONE_CHANGE)
    form = SmsCodeForm()
    if form.validate_on_submit():
        first = _me().phone is None
        try:
            accounts.confirm_phone_change(_me(), code.id, form.code.data)
        except DomainError as error:
            form_error(form, error)
        else:
            session.pop("phone_change", None)
            flash(_("Телефон подтверждён") if first else _("Телефон изменён"), "success")
            return redirect(url_for("profile.index"))
    return page("profile/code.html", form=form, code=code, title=_("Номер телефона"),
                action=url_for("profile.phone_code"), submit=_("ПРИМЕНИТЬ"),
                resend_url=url_for("profile.resend", what="phone"), resend_form=ResendForm(),
                status=_status(form))


@bp.post("/<any(phone, delete):what>/resend")
def resend(what: str) -> Response:
    """A new code once the countdown has run out."""
    key, purpose, back = {
        "phone": ("phone_change", codes.PHONE_CHANGE, "profile.phone_code"),
        "delete": ("deletion", codes.DELETION, "profile.delete_code"),
    }[what]
    code = _pending(key, purpose)
    form = ResendForm()
    if form.validate_on_submit():
        try:
            if purpose == codes.DELETION and code.channel == "email":
                new = accounts.start_deletion(_me(), request.remote_addr)
            else:
                new = accounts.resend_code(purpose, code.id, "sms", request.remote_addr)
        except DomainError as error:
            flash(error.message, "error")
        else:
            session[key] = new.id
    return redirect(url_for(back))


@bp.get("/devices")
def devices() -> Response:
    """«Устройства»: where the account is signed in; any of them can be signed out."""
    me = _me()
    current = _device()
    return page("profile/devices.html", devices=list(accounts.Device.of(me)),
                current_id=current.id if current else None, form=EmptyForm())


@bp.post("/devices/<int:device_id>/sign-out")
def sign_out_device(device_id: int) -> Response:
    """Sign one of the person's devices out (this one too, which ends this session)."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    me = _me()
    current = _device()
    if not accounts.sign_out_device(me, device_id):
        abort(404)
    if current is not None and current.id == device_id:
        end_session(None)
        return redirect(url_for("auth.login"))
    flash(_("Устройство отключено"), "success")
    return redirect(url_for("profile.devices"))


@bp.post("/devices/sign-out-others")
def sign_out_others() -> Response:
    """Sign out every device but this one."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    count = accounts.sign_out_others(_me(), current_user.get_id())
    flash(_("Отключено устройств: %(n)s", n=count), "success")
    return redirect(url_for("profile.devices"))


@bp.route("/password", methods=["GET", "POST"])
def password() -> Response:
    """Change the password; every other device is signed out."""
    me = _me()
    form = PasswordChangeForm(me)
    if form.validate_on_submit():
        try:
            count = accounts.change_password(me, form.current.data, form.password.data,
                                             current_user.get_id())
        except DomainError as error:
            form_error(form, error)
        else:
            flash(_("Пароль изменён. Отключено других устройств: %(n)s", n=count), "success")
            return redirect(url_for("profile.index"))
    elif form.is_submitted() and form.current.data and not form.current.errors \
            and "csrf_token" not in form.errors:
        # The new password has mistakes: say too whether the current one is right, so that
        # every mistake shows at once. argon2 runs once a request either way.
        try:
            accounts.check_current_password(me, form.current.data)
        except DomainError as error:
            form_error(form, error)
    return page("profile/password.html", form=form, status=_status(form))


# --- deletion (seed 000 §6) ------------------------------------------------------------


@bp.get("/delete")
def delete() -> Response:
    """«Удалить аккаунт»: confirm the intent first."""
    if _me().deletion_due_at is not None:
        return redirect(url_for("profile.cancel_delete"))
    return page("profile/delete.html")


@bp.route("/delete/consequences", methods=["GET", "POST"])
def delete_consequences() -> Response:
    """Every consequence ticked → «Удалить аккаунт и все доступы» sends the code."""
    form = DeletionConsequencesForm()
    if form.validate_on_submit():
        try:
            code = accounts.start_deletion(_me(), request.remote_addr)
        except DomainError as error:
            form_error(form, error)
        else:
            session["deletion"] = code.id
            return redirect(url_for("profile.delete_code"))
    return page("profile/delete_consequences.html", form=form, status=_status(form))


@bp.route("/delete/code", methods=["GET", "POST"])
def delete_code() -> Response:
    """The code from the SMS → «Подтвердить»: deletion in 30 days."""
    code = _pending("deletion", codes.DELETION)
    form = SmsCodeForm()
    if code.channel == "email":
        form.code.label.text = _("Код из письма")
    if form.validate_on_submit():
        try:
            due = accounts.confirm_deletion(_me(), code.id, form.code.data)
        except DomainError as error:
            form_error(form, error)
        else:
            session.pop("deletion", None)
            from blueprints.i18n import format_date

            flash(_("Аккаунт будет удалён через 30 дней, %(date)s. До этого удаление можно "
                    "отменить.", date=format_date(due)), "info")
            return redirect(url_for("core.home"))
    return page("profile/code.html", form=form, code=code, title=_("Удаление аккаунта"),
                action=url_for("profile.delete_code"), submit=_("Подтвердить"),
                resend_url=url_for("profile.resend", what="delete"), resend_form=ResendForm(),
                status=_status(form))


@bp.route("/delete/cancel", methods=["GET", "POST"])
def cancel_delete() -> Response:
    """«Отменить удаление» with the date, then «Подтвердить»."""
    me = _me()
    if me.deletion_due_at is None:
        return redirect(url_for("profile.index"))
    form = EmptyForm()
    if form.validate_on_submit():
        accounts.cancel_deletion(me)
        flash(_("Удаление аккаунта отменено"), "success")
        return redirect(url_for("profile.index"))
    return page("profile/cancel_delete.html", account=me, form=form)
