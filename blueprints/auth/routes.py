"""Signing up (phone or e-mail), in and out, and recovering a password."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from blueprints.auth.forms import (
    CodeForm,
    EmailSignupForm,
    LoginForm,
    NewPasswordForm,
    PhoneForm,
    RecoverEmailForm,
    RecoverPhoneForm,
    ResendForm,
)
from blueprints.sessions import end_session, start_session
from blueprints.ui import EmptyForm, form_error, page
from domain import accounts, codes
from domain.errors import DomainError
from domain.phones import parse_phone

bp = Blueprint("auth", __name__)

# The two phone flows share their three screens; only words and the purpose differ.
FLOWS = {
    "signup": {"purpose": codes.SIGNUP, "start": "auth.signup"},
    "recover": {"purpose": codes.RECOVERY, "start": "auth.recover"},
}
LINKS = {
    codes.EMAIL_SIGNUP: "auth.confirm_email_signup",
    codes.EMAIL_RECOVERY: "auth.recover_by_link",
    codes.EMAIL_CHANGE: "profile.confirm_email",
}
LEGAL = ("personal-data", "terms", "privacy")


def link_for(purpose: str, token: str) -> str:
    """The absolute URL an e-mail link of this purpose opens."""
    return url_for(LINKS[purpose], token=token, _external=True)


def _safe_next() -> str:
    target = request.args.get("next", "")
    # Only a path on this site: never an absolute URL or a scheme-relative one, however
    # spelled. Browsers drop tabs and newlines from a URL and read a backslash as a slash,
    # so "/\t/evil.example" and "/\\evil.example" would lead off the site.
    if (target.startswith("/") and not target.startswith("//")
            and not any(c < " " or c in "\\\x7f" for c in target)):
        return target
    return url_for("core.home")


def _status(form) -> int:
    return 422 if form.errors or form.form_errors else 200


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response:
    """«Войти»: phone or e-mail and password."""
    if current_user.is_authenticated:
        return redirect(url_for("core.home"))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            account = accounts.authenticate(
                form.login.data, form.password.data, request.remote_addr
            )
        except DomainError as error:
            form_error(form, error)
        else:
            start_session(account)
            return redirect(_safe_next())
    return page("auth/login.html", form=form, status=_status(form))


@bp.post("/logout")
@login_required
def logout() -> Response:
    """Sign this device out; its session can never be used again."""
    if EmptyForm().validate_on_submit():
        end_session(current_user._get_current_object())
        flash(_("Вы вышли из аккаунта"), "info")
    return redirect(url_for("auth.login"))


@bp.get("/legal/<name>")
def legal(name: str) -> Response:
    """The personal-data consent, the user agreement and the privacy policy."""
    if name not in LEGAL:
        abort(404)
    return page(f"legal/{name}.html")


# --- phone: «Регистрация» / «Восстановление пароля» → code → new password -------------


def _start_phone(flow: str, form) -> Response | None:
    """Place the call for a valid phone form and go to the code screen."""
    try:
        phone = parse_phone(form.phone.data)
        code = accounts.start_phone_verification(FLOWS[flow]["purpose"], phone, request.remote_addr)
    except DomainError as error:
        form_error(form, error)
        return None
    session["verify"] = {"flow": flow, "code_id": code.id, "phone": phone}
    return redirect(url_for("auth.code", flow=flow))


@bp.route("/signup", methods=["GET", "POST"])
def signup() -> Response:
    """«Регистрация»: «Телефон» and consent → «Далее» places a flash call."""
    form = PhoneForm()
    if form.validate_on_submit() and (done := _start_phone("signup", form)):
        return done
    return page("auth/signup.html", form=form, status=_status(form))


@bp.route("/recover", methods=["GET", "POST"])
def recover() -> Response:
    """«Восстановление пароля»: «Телефон» → «Далее» places a flash call."""
    form = RecoverPhoneForm()
    if form.validate_on_submit() and (done := _start_phone("recover", form)):
        return done
    return page("auth/recover.html", form=form, status=_status(form))


def _flow_state(flow: str) -> dict:
    state = session.get("verify") or {}
    if flow not in FLOWS or state.get("flow") != flow:
        abort(redirect(url_for(FLOWS.get(flow, FLOWS["signup"])["start"])))
    return state


def _code_page(flow: str, form, status: int = 200) -> Response:
    state = _flow_state(flow)
    code = codes.Code.get_or_none(codes.Code.id == state["code_id"])
    if code is None:
        abort(redirect(url_for(FLOWS[flow]["start"])))
    if code.channel == "sms":
        form.code.label.text = _("Код из SMS")  # not «4 цифры входящего номера»
    return page("auth/code.html", flow=flow, form=form, code=code, phone=state["phone"],
                resend_form=ResendForm(), status=status)


@bp.route("/<any(signup, recover):flow>/code", methods=["GET", "POST"])
def code(flow: str) -> Response:
    """«4 цифры входящего номера» with a live countdown to «Повторить звонок»."""
    state = _flow_state(flow)
    form = CodeForm()
    if form.validate_on_submit():
        try:
            codes.verify(state["code_id"], FLOWS[flow]["purpose"], form.code.data)
        except DomainError as error:
            form_error(form, error)
        else:
            return redirect(url_for("auth.password", flow=flow))
    return _code_page(flow, form, _status(form))


@bp.post("/<any(signup, recover):flow>/resend")
def resend(flow: str) -> Response:
    """A new code by call or, after the first attempt, by SMS."""
    state = _flow_state(flow)
    form = ResendForm()
    if form.validate_on_submit():
        try:
            code = accounts.resend_code(FLOWS[flow]["purpose"], state["code_id"],
                                        form.channel.data, request.remote_addr)
        except DomainError as error:
            flash(error.message, "error")
        else:
            session["verify"] = {**state, "code_id": code.id}
    return redirect(url_for("auth.code", flow=flow))


@bp.route("/<any(signup, recover):flow>/password", methods=["GET", "POST"])
def password(flow: str) -> Response:
    """«Новый пароль» / «Пароль повторно» → «Готово»: signed in on this device."""
    state = _flow_state(flow)
    form = NewPasswordForm(personal=(state["phone"],))
    if form.validate_on_submit():
        # «Регистрация» of a registered phone resets that account's password: not new.
        new = flow == "signup" and accounts.find_by_phone(state["phone"]) is None
        try:
            account = accounts.set_password_by_code(
                FLOWS[flow]["purpose"], state["code_id"], form.password.data
            )
        except DomainError as error:
            form_error(form, error)
        else:
            session.pop("verify", None)
            start_session(account, new_account=new)
            flash(_("Пароль задан. Вы вошли."), "success")
            return redirect(url_for("core.home"))
    return page("auth/password.html", flow=flow, form=form, status=_status(form),
                action=url_for("auth.password", flow=flow))


# --- e-mail: sign-up by link, recovery by link --------------------------------------


@bp.route("/signup/email", methods=["GET", "POST"])
def signup_email() -> Response:
    """Sign-up by e-mail: name, phone, e-mail, password twice, consent → a link by mail."""
    form = EmailSignupForm()
    if form.validate_on_submit():
        try:
            accounts.start_email_signup(
                full_name=form.full_name.data,
                phone=parse_phone(form.phone.data),
                email=accounts.parse_email(form.email.data),
                password=form.password.data,
                ip=request.remote_addr,
                link_for=link_for,
                locale=session.get("lang"),
            )
        except DomainError as error:
            form_error(form, error)
        else:
            return page("auth/check_mail.html", email=form.email.data.strip())
    return page("auth/signup_email.html", form=form, status=_status(form))


@bp.get("/signup/email/<token>")
def confirm_email_signup(token: str) -> Response:
    """The link from the sign-up letter: the account is made and signed in."""
    try:
        account, phone = accounts.confirm_email_signup(token)
    except DomainError as error:
        return page("auth/link_error.html", message=error.message, status=410)
    start_session(account, new_account=True)
    if phone:
        # The phone given at sign-up is the account's once its code comes back.
        try:
            code = accounts.start_phone_change(account, phone, request.remote_addr)
        except DomainError:
            pass  # a limit on codes: the profile offers the phone again
        else:
            session["phone_change"] = code.id
            flash(_("E-mail подтверждён. Осталось подтвердить телефон: мы отправили "
                    "код в SMS."), "success")
            return redirect(url_for("profile.phone_code"))
    flash(_("E-mail подтверждён. Добро пожаловать! Телефон можно добавить в профиле."),
          "success")
    return redirect(url_for("core.home"))


@bp.route("/recover/email", methods=["GET", "POST"])
def recover_email() -> Response:
    """Recovery by e-mail: a link to set a new password (the same answer for any address)."""
    form = RecoverEmailForm()
    if form.validate_on_submit():
        try:
            email = accounts.parse_email(form.email.data)
            accounts.start_email_recovery(email, request.remote_addr, link_for)
        except DomainError as error:
            form_error(form, error)
        else:
            return page("auth/check_mail.html", email=email, recovery=True)
    return page("auth/recover_email.html", form=form, status=_status(form))


@bp.route("/recover/email/<token>", methods=["GET", "POST"])
def recover_by_link(token: str) -> Response:
    """The link from the recovery letter: «Новый пароль» / «Пароль повторно» → «Готово»."""
    try:
        accounts.check_recovery_link(token)
    except DomainError as error:
        return page("auth/link_error.html", message=error.message, status=410)
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            account = accounts.set_password_by_link(token, form.password.data)
        except DomainError as error:
            form_error(form, error)
        else:
            start_session(account)
            flash(_("Пароль задан. Вы вошли."), "success")
            return redirect(url_for("core.home"))
    return page("auth/password.html", flow="recover", form=form, status=_status(form),
                action=url_for("auth.recover_by_link", token=token))
