"""The platform admin's console: every territory and account, search, block, attach."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from blueprints.admin.forms import AttachForm
from blueprints.manage.forms import role_choices
from blueprints.ui import EmptyForm, form_error, page, page_number, paged
from domain import admin, territories
from domain.errors import DomainError, NotFound
from domain.territories import Membership, Territory
from domain.text import in_quotes

bp = Blueprint("admin", __name__, url_prefix="/admin")
PAGE = 100


@bp.before_request
@login_required
def _admins_only() -> None:
    """Anyone but a platform admin gets 404: the console does not exist for them."""
    if not current_user.is_admin:
        abort(404)


@bp.get("/")
def territories_list() -> Response:
    """All territories, searchable by name, address or code."""
    q = request.args.get("q", "").strip()[:100]
    number = page_number()
    found, more = paged(territories.Territory.search(q), number, PAGE)
    return page("admin/territories.html", territories=found, q=q, number=number, more=more)


@bp.get("/accounts")
def accounts() -> Response:
    """All accounts, searchable by phone, e-mail, name or ID."""
    q = request.args.get("q", "").strip()[:100]
    number = page_number()
    found, more = paged(admin.search_accounts(q), number, PAGE)
    return page("admin/accounts.html", accounts=found, q=q, number=number, more=more)


def _account_page(account_id: int, form: AttachForm | None = None, status: int = 200):
    try:
        account = admin.get_account(account_id)
    except NotFound:
        abort(404)
    if form is None:
        form = AttachForm(formdata=None)
    form.role.choices = role_choices()
    memberships = list(Membership.of_account(account))
    return page("admin/account.html", account=account, form=form,
                memberships=memberships, status=status)


@bp.get("/accounts/<int:aid>")
def account(aid: int) -> Response:
    """One account: status, territories, block/unblock, attach to a territory."""
    return _account_page(aid)


@bp.post("/accounts/<int:aid>/block")
def block(aid: int) -> Response:
    """Block an account; every device of it is signed out at once."""
    return _set_blocked(aid, True)


@bp.post("/accounts/<int:aid>/unblock")
def unblock(aid: int) -> Response:
    """Let a blocked account sign in again."""
    return _set_blocked(aid, False)


def _set_blocked(aid: int, blocked: bool) -> Response:
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        admin.set_blocked(current_user, aid, blocked)
    except NotFound:
        abort(404)
    except DomainError as error:
        flash(error.message, "error")
    else:
        flash(_("Аккаунт заблокирован") if blocked else _("Аккаунт разблокирован"), "info")
    return redirect(url_for("admin.account", aid=aid))


@bp.get("/accounts/<int:aid>/attach")
def attach_form(aid: int) -> Response:
    """The attach form's own address opened by GET (a reload after a mistake): the account."""
    try:
        admin.get_account(aid)
    except NotFound:
        abort(404)
    return redirect(url_for("admin.account", aid=aid))


@bp.post("/accounts/<int:aid>/attach")
def attach(aid: int) -> Response:
    """Put the person into a territory directly (seed 000 §3)."""
    form = AttachForm()
    form.role.choices = role_choices()
    if form.validate_on_submit():
        try:
            person = admin.get_account(aid)
            code = territories.parse_code(form.code.data)
            territory = Territory.get_or_none(Territory.code == code)
            if territory is None:
                raise DomainError(_("Территория с таким кодом не найдена"), "code")
            territories.attach(person, territory, form.role.data, form.unit.data)
        except NotFound:
            abort(404)
        except DomainError as error:
            form_error(form, error)
        else:
            flash(_("Добавлен(а) в «%(name)s»", name=in_quotes(territory.name)), "success")
            return redirect(url_for("admin.account", aid=aid))
    return _account_page(aid, form, status=422)
