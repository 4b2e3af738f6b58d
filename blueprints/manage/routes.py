"""The manager's console: join requests, members, units, account numbers, settings."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, g, redirect, url_for
from flask import request as http_request  # `request` names a join request below
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_login import current_user

import providers
from blueprints.manage.forms import (
    AcceptForm,
    ImportForm,
    MemberForm,
    MemberSearchForm,
    RejectForm,
    SettingsForm,
    UnitForm,
    UnitSearchForm,
    role_choices,
    unit_choices,
)
from blueprints.scope import territory_route
from blueprints.ui import EmptyForm, form_error, page, page_number, paged
from domain import territories
from domain.accounts import Account
from domain.errors import DomainError, NotFound
from domain.territories import CsvError, JoinRequest, Membership, Unit
from domain.text import in_quotes

bp = Blueprint("manage", __name__, url_prefix="/t/<int:tid>/manage")
manager_only = territory_route(roles=["manager"])


def tell(account: Account, subject: str, text: str, link: str | None = None) -> None:
    """Tell a person something: by SMS when they have a phone, else by e-mail."""
    if account.phone:
        providers.telephony().sms(account.phone, text)
    elif account.email:
        providers.mailer().send(account.email, subject, text, link=link)


def _tell_decision(request: JoinRequest, member: Membership | None = None) -> None:
    person = request.account
    with force_locale(person.locale or "ru"):
        name = in_quotes(g.territory.name)
        if member is not None:
            subject = _("Запрос принят")
            text = _("Ваш запрос на подключение к территории «%(name)s» принят. Роль: %(role)s.",
                     name=name, role=member.role_label)
            if member.unit is not None:
                text += " " + _("Объект: %(unit)s.", unit=member.unit.name)
            link = url_for("territories.home", tid=g.territory.id, _external=True)
        else:
            subject = _("Запрос отклонён")
            text = _("Ваш запрос на подключение к территории «%(name)s» отклонён.", name=name)
            if request.reason:
                text += " " + _("Причина: %(reason)s", reason=request.reason)
            link = url_for("territories.join", _external=True)
        tell(person, subject, text, link)


def _request_forms(posted: tuple[int, object] | None = None) -> list[tuple]:
    """Each pending request with its accept and reject forms (the posted one kept as typed)."""
    units = Unit.in_order(g.territory)
    rows = []
    for request in JoinRequest.pending_for(g.territory):
        prefix = f"r{request.id}-"
        accept = AcceptForm(prefix=prefix + "a-", formdata=None, new_unit=request.unit_label)
        reject = RejectForm(prefix=prefix + "x-", formdata=None)
        if posted and posted[0] == request.id:
            form = posted[1]
            if isinstance(form, AcceptForm):
                accept = form
            else:
                reject = form
        accept.unit.choices = unit_choices(units, _("— новый объект —"))
        accept.role.choices = role_choices()
        rows.append((request, accept, reject))
    return rows


def _requests_page(posted: tuple[int, object] | None = None, status: int = 200) -> Response:
    return page("manage/requests.html", rows=_request_forms(posted), status=status)


@bp.get("/")
@manager_only
def requests(tid: int) -> Response:
    """Join requests waiting for a decision."""
    return _requests_page()


@bp.get("/requests/<int:rid>/accept")
@bp.get("/requests/<int:rid>/reject")
@manager_only
def decision_form(tid: int, rid: int) -> Response:
    """A decision form's own address opened by GET (a reload after a mistake): the requests.

    Any request of this territory, also one decided meanwhile; another territory's is 404.
    """
    if not JoinRequest.select().where(
        (JoinRequest.id == rid) & (JoinRequest.territory == g.territory)
    ).exists():
        abort(404)
    return redirect(url_for("manage.requests", tid=tid))


def _already_decided(rid: int) -> Response | None:
    """None for a request of this territory still waiting. One another manager (or another
    tab) has decided is said so, with the list as it is now, instead of a 404 over the old
    list; one its author withdrew is gone, as any id not of this territory: 404."""
    found = JoinRequest.get_or_none((JoinRequest.id == rid)
                                    & (JoinRequest.territory == g.territory))
    if found is None:
        abort(404)
    if found.status == "pending":
        return None
    flash(_("Этот запрос уже рассмотрен"), "info")
    return redirect(url_for("manage.requests", tid=g.territory.id))


@bp.post("/requests/<int:rid>/accept")
@manager_only
def accept(tid: int, rid: int) -> Response:
    """Accept a request with a unit (existing or new) and a role; the person is told."""
    decided = _already_decided(rid)
    if decided is not None:
        return decided
    form = AcceptForm(prefix=f"r{rid}-a-")
    form.unit.choices = unit_choices(Unit.in_order(g.territory), "")
    form.role.choices = role_choices()
    if form.validate_on_submit():
        try:
            member = territories.accept_request(
                current_user, g.territory, rid, role=form.role.data,
                unit_id=form.unit.data or None, new_unit=form.new_unit.data,
            )
        except NotFound:
            abort(404)
        except DomainError as error:
            form_error(form, error)
        else:
            request = JoinRequest.get_by_id(rid)
            _tell_decision(request, member)
            flash(_("%(name)s подключён(а) к территории",
                    name=request.account.shown_name), "success")
            return redirect(url_for("manage.requests", tid=tid))
    return _requests_page((rid, form), status=422)


@bp.post("/requests/<int:rid>/reject")
@manager_only
def reject(tid: int, rid: int) -> Response:
    """Reject a request, optionally with a reason; the person is told."""
    decided = _already_decided(rid)
    if decided is not None:
        return decided
    form = RejectForm(prefix=f"r{rid}-x-")
    if not form.validate_on_submit():
        return _requests_page((rid, form), status=422)
    try:
        request = territories.reject_request(current_user, g.territory, rid, form.reason.data)
    except NotFound:
        abort(404)
    _tell_decision(request)
    flash(_("Запрос отклонён"), "info")
    return redirect(url_for("manage.requests", tid=tid))


# A large village has thousands of members: the list is searched and shown a page at a time.
MEMBERS_PER_PAGE = 50


@bp.get("/members")
@manager_only
def members(tid: int) -> Response:
    """Everyone in the territory with their role and unit: search, pages."""
    form = MemberSearchForm(http_request.args)
    text = (form.q.data or "").strip()
    number = page_number()
    query = Membership.search(Membership.of_territory(g.territory), text)
    rows, more = paged(query, number, MEMBERS_PER_PAGE)
    return page("manage/members.html", "manage/_members_table.html", form=form,
                members=rows, more=more, number=number, args={"q": text} if text else {})


def _member_or_404(mid: int) -> Membership:
    found = Membership.of_territory(g.territory).where(Membership.id == mid).first()
    if found is None:
        abort(404)
    return found


@bp.route("/members/<int:mid>", methods=["GET", "POST"])
@manager_only
def member(tid: int, mid: int) -> Response:
    """Change a member's role and unit, or remove them."""
    found = _member_or_404(mid)
    form = MemberForm(obj=None, data={"role": found.role, "unit": found.unit_id or 0})
    form.role.choices = role_choices(_role_questions(found))
    form.unit.choices = unit_choices(Unit.in_order(g.territory), _("— без объекта —"))
    if form.validate_on_submit():
        try:
            territories.update_member(g.territory, mid, role=form.role.data,
                                      unit_id=form.unit.data or None, by=current_user)
        except DomainError as error:
            form_error(form, error)
        else:
            if form.role.data == "operator" and found.role != "operator":
                flash(_("Сохранено. Пропуска охранника отозваны: охранники заявок не "
                        "подают"), "success")
            else:
                flash(_("Сохранено"), "success")
            if found.account_id == current_user.id and form.role.data != "manager":
                # Their own management ended: the console would answer 404 from here on.
                return redirect(url_for("territories.home", tid=tid))
            return redirect(url_for("manage.members", tid=tid))
    return page("manage/member.html", member=found, form=form,
                status=422 if form.errors else 200)


@bp.post("/members/<int:mid>/remove")
@manager_only
def remove(tid: int, mid: int) -> Response:
    """Take a person out of the territory; their access ends at once."""
    found = _member_or_404(mid)
    form = EmptyForm()
    if form.validate_on_submit():
        try:
            territories.remove_member(g.territory, mid, by=current_user)
        except DomainError as error:
            flash(error.message, "error")
            return redirect(url_for("manage.member", tid=tid, mid=mid))
        flash(_("%(name)s больше не участник территории",
                name=found.account.shown_name), "info")
        if found.account_id == current_user.id:
            return redirect(url_for("core.home"))  # nothing of the territory is theirs now
    return redirect(url_for("manage.members", tid=tid))


def _role_questions(member: Membership) -> dict[str, str]:
    """What to ask before a role is saved: a manager giving up their own management, and
    passes a change to operator revokes (neither can be undone from this page)."""
    asks: dict[str, list[str]] = {}
    if member.account_id == current_user.id and member.role == "manager":
        for role in ("resident", "operator"):
            asks.setdefault(role, []).append(_(
                "Вы перестанете управлять территорией «%(name)s»: управление станет вам "
                "недоступно.", name=in_quotes(g.territory.name)))
    if member.role != "operator":
        live = territories.live_pass_count(g.territory, member)
        if live:
            asks.setdefault("operator", []).append(_(
                "Охранники заявок не подают: действующие пропуска (%(num)s) будут отозваны, "
                "и вернуть их будет нельзя.", num=live))
    return {role: " ".join([*said, _("Сохранить?")]) for role, said in asks.items()}


UNITS_PER_PAGE = 50


def _units_page(form: UnitForm, status: int = 200) -> Response:
    search = UnitSearchForm(http_request.args)
    text = (search.q.data or "").strip()
    number = page_number()
    found = Unit.in_order(g.territory, text)
    units = found[(number - 1) * UNITS_PER_PAGE:number * UNITS_PER_PAGE]
    # The search swaps the table in; a posted new unit's mistakes come with the whole page.
    partial = "manage/_units_table.html" if http_request.method == "GET" else None
    return page("manage/units.html", partial, units=units, form=form,
                search=search, number=number, more=len(found) > number * UNITS_PER_PAGE,
                args={"q": text} if text else {}, status=status)


@bp.route("/units", methods=["GET", "POST"])
@manager_only
def units(tid: int) -> Response:
    """Units with how many people each has; add one."""
    form = UnitForm()
    if form.validate_on_submit():
        try:
            unit = territories.add_unit(g.territory, form.name.data, form.account_number.data)
        except DomainError as error:
            form_error(form, error)
        else:
            flash(_("Объект «%(name)s» добавлен", name=in_quotes(unit.name)), "success")
            return redirect(url_for("manage.units", tid=tid))
    return _units_page(form, status=422 if form.errors else 200)


@bp.route("/units/<int:uid>", methods=["GET", "POST"])
@manager_only
def unit(tid: int, uid: int) -> Response:
    """Rename a unit or change its account number."""
    found = Unit.with_counts(g.territory).where(Unit.id == uid).first()
    if found is None:
        abort(404)
    form = UnitForm(data={"name": found.name, "account_number": found.account_number or ""})
    if form.validate_on_submit():
        try:
            territories.rename_unit(g.territory, uid, form.name.data, form.account_number.data)
        except DomainError as error:
            form_error(form, error)
        else:
            flash(_("Сохранено"), "success")
            return redirect(url_for("manage.units", tid=tid))
    people = Membership.of_territory(g.territory).where(Membership.unit == found.id)
    return page("manage/unit.html", unit=found, form=form, people=list(people),
                status=422 if form.errors else 200)


@bp.post("/units/<int:uid>/delete")
@manager_only
def delete_unit(tid: int, uid: int) -> Response:
    """Delete a unit nobody belongs to."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        territories.delete_unit(g.territory, uid)
    except NotFound:
        abort(404)
    except DomainError as error:
        flash(error.message, "error")
        return redirect(url_for("manage.unit", tid=tid, uid=uid))
    flash(_("Объект удалён"), "info")
    return redirect(url_for("manage.units", tid=tid))


@bp.route("/units/import", methods=["GET", "POST"])
@manager_only
def import_units(tid: int) -> Response:
    """Upload units and account numbers as CSV: all of it, or nothing and every bad line."""
    form = ImportForm()
    lines: list[str] = []
    if form.validate_on_submit():
        try:
            created, updated = territories.import_units_csv(g.territory, form.file.data.read())
        except CsvError as error:
            form_error(form, error)
            lines = error.lines
        else:
            flash(_("Загружено: новых объектов %(created)s, обновлено %(updated)s",
                    created=created, updated=updated), "success")
            return redirect(url_for("manage.units", tid=tid))
    return page("manage/import.html", form=form, lines=lines,
                status=422 if form.errors else 200)


@bp.route("/settings", methods=["GET", "POST"])
@manager_only
def settings(tid: int) -> Response:
    """Name, address, time zone, and the switches: passes, free app access, free exit."""
    form = SettingsForm(obj=g.territory)
    if form.validate_on_submit():
        try:
            territories.update_settings(
                g.territory, name=form.name.data, address=form.address.data,
                timezone=form.timezone.data, passes_enabled=form.passes_enabled.data,
                app_access_free=form.app_access_free.data, free_exit=form.free_exit.data,
            )
        except DomainError as error:
            form_error(form, error)
        else:
            flash(_("Настройки сохранены"), "success")
            return redirect(url_for("manage.settings", tid=tid))
    return page("manage/settings.html", form=form, status=422 if form.errors else 200)


@bp.post("/settings/code")
@manager_only
def regenerate_code(tid: int) -> Response:
    """A new territory code; the old one stops working at once."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        territories.regenerate_code(g.territory)
    except DomainError as error:
        flash(error.message, "error")
    else:
        flash(_("Новый код территории: %(code)s", code=g.territory.display_code), "success")
    return redirect(url_for("manage.settings", tid=tid))
