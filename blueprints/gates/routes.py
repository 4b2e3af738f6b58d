"""Gates: «Открыть» from the phone, the command's result, and the manager's gate console."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, g, redirect, url_for
from flask_babel import gettext as _
from flask_login import current_user

from blueprints.gates.forms import GateForm
from blueprints.scope import territory_route
from blueprints.ui import EmptyForm, form_error, page, wants_partial
from domain import gates
from domain.access import Credential, Decision, decide
from domain.db import utcnow
from domain.errors import DomainError, NotFound
from domain.gates import Gate
from domain.territories import Membership

bp = Blueprint("gates", __name__)


def usable_gates(membership: Membership) -> list[Gate]:
    """The enabled gates of the territory this member may open from the phone now."""
    decision = decide(
        membership.territory_id, Credential("account", str(membership.account_id)), 1, utcnow()
    )
    if not decision.granted:
        return []
    return list(Gate.of(membership.territory_id).where(Gate.enabled == True))  # noqa: E712


@bp.app_template_global("phone_gates")
def phone_gates(membership: Membership) -> list[Gate]:
    """For the territory home's «Открыть» buttons."""
    return usable_gates(membership)


def _gate_or_404(tid: int, gid: int) -> Gate:
    try:
        return gates.territory_gate(tid, gid)
    except NotFound:
        abort(404)


@bp.post("/t/<int:tid>/gates/<int:gid>/press")
@territory_route()
def press(tid: int, gid: int) -> Response:
    """«Открыть» from the phone: a command to the controller; the widget shows the result."""
    response = _press(tid, gid)
    if wants_partial():
        return response
    # Without htmx: the outcome so far as a message on the territory page.
    flash(_("Команда отправлена") if response.status_code == 200 and b"gate-command-pending"
          in response.get_data() else _("Не открыто"), "info")
    return redirect(url_for("territories.home", tid=tid))


def _press(tid: int, gid: int) -> Response:
    if not EmptyForm().validate_on_submit():
        abort(400)
    gate = _gate_or_404(tid, gid)
    if not gate.enabled:
        abort(404)
    member = g.membership

    def decision() -> Decision:
        return decide(g.territory, Credential("account", str(member.account_id)), 1, utcnow())

    try:
        # Decided under the press's own locks: a removal or a block meanwhile is seen.
        command = gates.request_open(gate, member.account_id, "phone", member_id=member.id,
                                     recheck=decision)
    except gates.PressRefused as press:
        refused = press.decision
        gates.record_event(tid, code=refused.code, reason=refused.reason, kind="phone",
                           direction=gate.event_direction, gate=gate,
                           account=member.account_id, actor=member.account_id)
        return page("gates/_command.html", failure=refused.reason_label, gate=gate)
    except DomainError as error:
        return page("gates/_command.html", failure=error.message, gate=gate)
    return page("gates/_command.html", command=command, gate=gate)


@bp.get("/t/<int:tid>/gates/commands/<int:cid>")
@territory_route()
def command(tid: int, cid: int) -> Response:
    """A command's result; the widget polls it every 300 ms and stops (286) once known."""
    try:
        found = gates.command_of(tid, cid, current_user.id)
    except NotFound:
        abort(404)
    response = page("gates/_command.html", command=found, gate=found.gate)
    if found.finished:
        response.status_code = 286
    return response


# --- The manager's console --------------------------------------------------------------


def _rows(tid: int) -> list[tuple[Gate, gates.GateStatus | None]]:
    known = gates.statuses(tid)
    return [(gate, known.get(gate.id)) for gate in Gate.of(tid)]


@bp.get("/t/<int:tid>/gates")
@territory_route(roles=["manager"])
def index(tid: int) -> Response:
    """The territory's gates and their controllers' state (updates every second)."""
    return page("gates/index.html", rows=_rows(tid), now=utcnow())


@bp.get("/t/<int:tid>/gates/states")
@territory_route(roles=["manager"])
def states(tid: int) -> Response:
    """The state table alone, for its own polling."""
    return page("gates/_states.html", rows=_rows(tid), now=utcnow())


@bp.route("/t/<int:tid>/gates/new", methods=["GET", "POST"])
@territory_route(roles=["manager"])
def new(tid: int) -> Response:
    """Add a gate."""
    form = GateForm(territory_id=tid)
    if form.validate_on_submit():
        try:
            gate = gates.add_gate(g.territory, **form.values())
        except DomainError as error:
            form_error(form, error)
        else:
            flash(_("Ворота «%(name)s» добавлены", name=gate.name), "success")
            return redirect(url_for(".index", tid=tid))
    failed = bool(form.errors or form.form_errors)
    return page("gates/form.html", form=form, gate=None, status=422 if failed else 200)


@bp.route("/t/<int:tid>/gates/<int:gid>/edit", methods=["GET", "POST"])
@territory_route(roles=["manager"])
def edit(tid: int, gid: int) -> Response:
    """Change a gate."""
    gate = _gate_or_404(tid, gid)
    form = GateForm(obj=gate, territory_id=tid, gate_id=gid)
    if form.validate_on_submit():
        try:
            gates.update_gate(tid, gid, **form.values())
        except DomainError as error:
            form_error(form, error)
        else:
            flash(_("Сохранено"), "success")
            return redirect(url_for(".index", tid=tid))
    failed = bool(form.errors or form.form_errors)
    if not form.is_submitted() and gate.moved_off_host is not None:
        # Moved off a shared controller (migration 7): its address as it was, and why it
        # cannot have it back while another gate does.
        form.host.data = gate.moved_off_host
        problem = gates.saved_host_problem(gate)
        form.host.errors = [problem] if problem else []
    return page("gates/form.html", form=form, gate=gate, status=422 if failed else 200)


@bp.post("/t/<int:tid>/gates/<int:gid>/delete")
@territory_route(roles=["manager"])
def delete(tid: int, gid: int) -> Response:
    """«Удалить ворота» (asked to confirm first): the log keeps their events."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        gate = gates.delete_gate(tid, gid)
    except NotFound:
        abort(404)
    except DomainError as error:  # an «Открыть» on its way: a few seconds
        flash(error.message, "error")
        return redirect(url_for(".edit", tid=tid, gid=gid))
    flash(_("Ворота «%(name)s» удалены; их события остались в журнале", name=gate.name),
          "success")
    return redirect(url_for(".index", tid=tid))
