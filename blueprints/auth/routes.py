"""Signing in and out."""

from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from blueprints.auth.forms import LoginForm
from blueprints.sessions import end_session, start_session
from blueprints.ui import EmptyForm, form_error, page
from domain import accounts
from domain.errors import DomainError

bp = Blueprint("auth", __name__)


def _safe_next() -> str:
    target = request.args.get("next", "")
    # Only a path on this site: never an absolute URL or a scheme-relative one.
    if target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("core.home")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response:
    """«Войти»: phone or e-mail and password."""
    if current_user.is_authenticated:
        return redirect(url_for("core.home"))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            account = accounts.authenticate(form.login.data, form.password.data)
        except DomainError as error:
            form_error(form, error)
        else:
            start_session(account)
            return redirect(_safe_next())
    return page("auth/login.html", form=form, status=422 if form.errors else 200)


@bp.post("/logout")
@login_required
def logout() -> Response:
    """Sign this device out; its session can never be used again."""
    if EmptyForm().validate_on_submit():
        end_session(current_user._get_current_object())
        flash(_("Вы вышли из аккаунта"), "info")
    return redirect(url_for("auth.login"))
