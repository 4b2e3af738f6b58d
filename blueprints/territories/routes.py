"""Territories for everyone: create, choose, join by code or account number, the home of each."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, g, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from wtforms.fields.choices import SelectChoice

from blueprints.scope import chosen, territory_route
from blueprints.territories.forms import AddByNumberForm, CreateForm, JoinForm
from blueprints.ui import EmptyForm, form_error, page
from domain import territories
from domain.errors import DomainError, NotFound
from domain.territories import JoinRequest, Membership, Territory

bp = Blueprint("territories", __name__)


@bp.app_context_processor
def _here() -> dict:
    """`here()`: the membership of the territory the person is in now (header, nav, home)."""


    def my_memberships() -> list[Membership]:
        if not current_user.is_authenticated:
            return []
        if "_mine" not in g:
            g._mine = territories.memberships_of(current_user)
        return g._mine

    def my_requests() -> list[JoinRequest]:
        """Requests still waiting, and refusals (so the person learns why)."""
        if not current_user.is_authenticated:
            return []
        query = JoinRequest.of_account(current_user).where(JoinRequest.status != "accepted")
        return list(query.limit(20))

    return {"here": chosen, "my_memberships": my_memberships, "my_requests": my_requests}


@bp.route("/territories/new", methods=["GET", "POST"])
@login_required
def create() -> Response:
    """«Создать территорию»: the creator becomes its manager."""
    form = CreateForm()
    if form.validate_on_submit():
        try:
            territory = territories.create_territory(
                current_user, name=form.name.data, kind=form.kind.data,
                address=form.address.data, timezone=form.timezone.data,
            )
        except DomainError as error:
            form_error(form, error)
        else:
            flash(_("Территория создана. Её код: %(code)s — сообщите его жителям",
                    code=territory.display_code), "success")
            return redirect(url_for("territories.home", tid=territory.id))
    return page("territories/create.html", form=form, status=422 if form.errors else 200)


@bp.get("/territories/choose")
@login_required
def choose() -> Response:
    """«Выбрать территорию»: every territory the person belongs to, one tap each."""
    return page("territories/choose.html", memberships=list(Membership.of_account(current_user)))


@bp.route("/territories/join", methods=["GET", "POST"])
@login_required
def join() -> Response:
    """«Подключиться к территории»: code and «Идентификатор объекта» → a request to the manager."""
    form = JoinForm()
    if form.validate_on_submit():
        try:
            territories.request_join(current_user, form.code.data, form.unit_label.data,
                                     request.remote_addr)
        except DomainError as error:
            form_error(form, error)
        else:
            flash(_("Запрос отправлен. Управляющий рассмотрит его, и вы получите уведомление"),
                  "success")
            return redirect(url_for("territories.join"))
    requests = list(JoinRequest.of_account(current_user).limit(20))
    return page("territories/join.html", form=form, requests=requests,
                status=422 if form.errors else 200)


@bp.get("/territories/requests/<int:rid>")
@login_required
def request_status(rid: int) -> Response:
    """The state of one's own request; polls itself while it waits (stops with 286)."""
    found = JoinRequest.of_account(current_user).where(JoinRequest.id == rid).first()
    if found is None:
        abort(404)
    response = page("territories/_request.html", "territories/_request.html", request_=found)
    if found.status != "pending":
        response.status_code = 286
    return response


@bp.post("/territories/requests/<int:rid>/cancel")
@login_required
def cancel_request(rid: int) -> Response:
    """Withdraw one's own pending request."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        territories.cancel_request(current_user, rid)
    except NotFound:
        abort(404)
    flash(_("Запрос отозван"), "info")
    return redirect(url_for("territories.join"))


@bp.route("/territories/add", methods=["GET", "POST"])
@login_required
def add_by_number() -> Response:
    """«+ Добавить объект»: pick the territory, enter the account number → joined at once."""
    form = AddByNumberForm()
    mine = {m.territory_id for m in territories.memberships_of(current_user)}
    form.territory.choices = [SelectChoice(0, _("Выберите объект"))] + [
        _number_choice(t, joined=t.id in mine) for t in Territory.with_account_numbers()
    ]
    if form.validate_on_submit():
        try:
            member = territories.join_by_account_number(
                current_user, form.territory.data, form.number.data, request.remote_addr
            )
        except DomainError as error:
            form_error(form, error)
        else:
            flash(_("Объект добавлен: %(name)s", name=member.unit.name), "success")
            return redirect(url_for("territories.home", tid=member.territory_id))
    return page("territories/add.html", form=form, status=422 if form.errors else 200)


def _number_choice(territory: Territory, joined: bool) -> SelectChoice:
    """A territory of the list; one the person is in already is shown so, and not chosen."""
    label = f"{territory.name}, {territory.address}" if territory.address else territory.name
    if not joined:
        return SelectChoice(territory.id, label)
    return SelectChoice(territory.id, _("%(name)s — вы уже подключены", name=label),
                        render_kw={"disabled": True})


@bp.get("/t/<int:tid>/")
@territory_route()
def home(tid: int) -> Response:
    """The territory's home: what its kind offers, and passes where they are on."""
    territories.remember_choice(current_user.get_id(), tid)
    return page("territories/home.html", territory=g.territory, membership=g.membership)
