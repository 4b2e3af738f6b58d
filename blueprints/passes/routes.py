"""Vehicle passes, the operator's check, «Открыть», the live event feed and the log."""

from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    request,
    url_for,
)
from flask_babel import gettext as _
from wtforms import SelectChoice

from blueprints.passes.forms import (
    CheckForm,
    EventFilterForm,
    LimitForm,
    PassFilterForm,
    PassForm,
    could_be_plate,
)
from blueprints.scope import own_role, territory_route
from blueprints.ui import (
    EmptyForm,
    form_error,
    keyset_page,
    page,
    page_number,
    paged,
    wants_partial,
    whole_arg,
)
from domain import gates, passes
from domain.access import check_plate
from domain.accounts import Account
from domain.db import utcnow
from domain.errors import DomainError, NotFound
from domain.gates import EventFilter, Gate, GateEvent
from domain.passes import VehiclePass, format_plate, normalize_plate

bp = Blueprint("passes", __name__)

PER_PAGE = 25
EVENTS_PER_PAGE = 50
# More than this many new events in one poll wait for the next poll (oldest first).
FEED_BATCH = 100
CSV_LIMIT = 100_000
FEED_ON_CHECK = 10
FILERS = ["resident", "manager"]
WATCHERS = ["operator", "manager"]
# Sent by the check form while its field shows a mistake (passes/_check_form.html), so that
# the next answer takes the mistake away.
MISTAKE_SHOWN = "X-Plate-Mistake"


# The home's pass links (passes/_home_actions.html) are offered as _filer() lets them in.
bp.add_app_template_global(own_role, "own_role")


@bp.app_template_filter("plate")
def plate_filter(norm: str) -> str:
    """A stored plate as people read it (А 777 АА 77)."""
    return format_plate(norm or "")


def _back(default: str) -> str:
    """Where the person came from on this site, else `default`."""
    target = request.referrer or ""
    return target if target.startswith(request.host_url) else default


# --- Passes ---------------------------------------------------------------------------


def _filer() -> None:
    """Only who may file passes here gets the pages: the admin where they are no member,
    or where the territory made them a guard, got a form the filing then refused."""
    if not g.territory.passes_enabled or own_role(g.membership) not in FILERS:
        abort(404)


@bp.route("/t/<int:tid>/passes/new", methods=["GET", "POST"])
@territory_route(roles=FILERS)
def new(tid: int) -> Response:
    """«Добавить новую заявку»: plate and period; the pass is at the gate at once."""
    _filer()
    form = PassForm(permanent_allowed=g.territory.max_permanent_passes > 0)
    if form.validate_on_submit():
        try:
            filed = passes.file_pass(
                g.membership, plate=form.plate.data, foreign=form.foreign.data,
                **form.period_args(g.timezone, utcnow()),
            )
        except DomainError as error:
            form_error(form, error)
        else:
            flash(_("Заявка добавлена: %(plate)s", plate=filed.shown_plate), "success")
            return redirect(url_for(".mine", tid=tid))
    failed = bool(form.errors or form.form_errors)
    return page("passes/new.html", form=form, status=422 if failed else 200)


@bp.get("/t/<int:tid>/passes")
@territory_route(roles=FILERS)
def mine(tid: int) -> Response:
    """«Мои заявки»: the person's own passes — active, upcoming, ended."""
    if own_role(g.membership) not in FILERS:
        abort(404)
    now = utcnow()
    groups = passes.own_passes(tid, g.membership.account_id, now)
    return page("passes/mine.html", groups=groups, now=now, form=EmptyForm())


@bp.get("/t/<int:tid>/passes/all")
@territory_route(roles=["manager"])
def all_passes(tid: int) -> Response:
    """The manager's list of every pass of the territory: search, filters, pages."""
    return _all_passes_page(LimitForm(limit=g.territory.max_permanent_passes))


def _all_passes_page(limit_form: LimitForm, status: int = 200) -> Response:
    now = utcnow()
    tid = g.territory.id
    filters = PassFilterForm(request.args)
    query = VehiclePass.search(VehiclePass.of_territory(tid), filters.q.data or "")
    if filters.status.data in ("active", "upcoming", "expired", "revoked"):
        query = VehiclePass.with_status(query, filters.status.data, now)
    rows, more, number = keyset_page(
        VehiclePass, query, VehiclePass.select().where(VehiclePass.territory == tid), PER_PAGE)
    args = {k: v for k, v in request.args.items() if k not in ("page", "after", "before") and v}
    # The search swaps the table in; the limit's mistake comes with the whole page.
    partial = "passes/_table.html" if request.method == "GET" else None
    return page("passes/all.html", partial, rows=rows, more=more, number=number, args=args,
                filters=filters, now=now, form=EmptyForm(), limit_form=limit_form,
                status=status)


@bp.post("/t/<int:tid>/passes/<int:pid>/revoke")
@territory_route(roles=FILERS)
def revoke(tid: int, pid: int) -> Response:
    """Revoke a pass: own ones for residents, any of the territory for managers."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        revoked = passes.revoke_pass(g.membership, pid)
    except NotFound:
        abort(404)
    flash(_("Пропуск %(plate)s отозван", plate=revoked.shown_plate), "success")
    return redirect(_back(url_for(".mine", tid=tid)))


@bp.post("/t/<int:tid>/passes/limit")
@territory_route(roles=["manager"])
def set_limit(tid: int) -> Response:
    """The manager sets how many permanent passes one person may keep."""
    form = LimitForm()
    if not form.validate_on_submit():
        # At the field, with what was typed, in the whole page (not the table's partial),
        # under the list's address: the boosted form would push the POST-only one it sent
        # to, and a reload then answered 405 (review, stop 24).
        response = _all_passes_page(form, status=422)
        response.headers["HX-Replace-Url"] = url_for(".all_passes", tid=tid)
        return response
    passes.set_permanent_limit(g.territory, form.limit.data)
    flash(_("Сохранено"), "success")
    return redirect(url_for(".all_passes", tid=tid))


# --- The operator's check and «Открыть» -----------------------------------------------


def _check_result(plate: str) -> dict | None:
    """What the gate would answer for the plate now, with the pass's people and period."""
    norm = normalize_plate(plate)
    if not norm:
        return None
    decision, found = check_plate(g.territory, norm, utcnow())
    return {"plate": norm, "decision": decision, "pass": found}


def verdict_html(plate: str) -> str:
    """The verdict partial for a plate in g.territory. It reads nothing of the request (no
    context processors), so passes/shortcut.py renders it outside Flask's dispatch alike."""
    template = current_app.jinja_env.get_template("passes/_verdict.html")
    return template.render(result=_check_result(plate))


@bp.get("/t/<int:tid>/check")
@territory_route(roles=WATCHERS)
def check(tid: int) -> Response:
    """«Проверить номер»: may this plate enter now, whose is it, whom to call."""
    plate = request.args.get("plate", "")
    if wants_partial() and could_be_plate(plate) and not request.headers.get(MISTAKE_SHOWN):
        # The check form's own request: only the verdict, no form, feed or gates to build.
        # Mostly answered before it gets here, by passes/shortcut.py, with the same function.
        response = make_response(verdict_html(plate))
        response.headers.add("Vary", "HX-Request")
        return response
    form = CheckForm(request.args)
    # No plate at all («$$$», «---»): said at the field, and no decision taken.
    result = _check_result(plate) if form.validate() else None
    if wants_partial():
        # The field's mistake comes or goes: the form comes with the verdict, out of band.
        return page("passes/check.html", "passes/_verdict.html", result=result, form=form,
                    form_out_of_band=True)
    recent = GateEvent.with_people(GateEvent.feed(tid).limit(FEED_ON_CHECK))
    return page(
        "passes/check.html",
        form=form,
        result=result,
        gates=list(Gate.of(tid).where(Gate.enabled == True)),  # noqa: E712
        rows=recent,
        after=recent[0].id if recent else 0,
        args={},
    )


@bp.get("/t/<int:tid>/check/suggest")
@territory_route(roles=WATCHERS)
def suggest(tid: int) -> Response:
    """Plates with a live or coming pass that contain what has been typed so far."""
    typed = normalize_plate(request.args.get("plate", ""))[:32]
    plates: list[str] = []
    if typed:
        now = utcnow()
        query = (
            VehiclePass.select(VehiclePass.plate)
            .where(
                (VehiclePass.territory == tid)
                & VehiclePass.revoked_at.is_null()
                & (VehiclePass.valid_to.is_null() | (VehiclePass.valid_to > now))
                & VehiclePass.plate.contains(typed)
            )
            .distinct()
            .order_by(VehiclePass.plate)
            .limit(8)
        )
        plates = [row.plate for row in query]
    return page("passes/_suggest.html", plates=plates)


@bp.post("/t/<int:tid>/gates/<int:gid>/open")
@territory_route(roles=WATCHERS)
def open_gate(tid: int, gid: int) -> Response:
    """«Открыть» by an operator or manager: a command to the controller, with their name."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        command = gates.open_by_operator(g.membership, gid)
    except NotFound:
        abort(404)
    except DomainError as error:
        if wants_partial():
            return page("gates/_command.html", failure=error.message)
        flash(error.message, "error")
    else:
        if wants_partial():
            return page("gates/_command.html", command=command)
        flash(_("Команда отправлена"), "success")
    return redirect(_back(url_for(".check", tid=tid)))


# --- Events: live feed, log, CSV ------------------------------------------------------


def _event_filter(form: EventFilterForm) -> EventFilter:
    """The log's filters, dates taken as whole days in the territory's time zone."""
    zone = ZoneInfo(g.timezone)

    def midnight(day: dt.date | None, plus: int = 0) -> dt.datetime | None:
        if day is None:
            return None
        return dt.datetime.combine(day + dt.timedelta(days=plus), dt.time(), tzinfo=zone)

    decision = "" if form.decision.errors else form.decision.data or ""
    code = {"granted": 1, "denied": 0}.get(decision)
    if code is None and decision.isdigit():
        code = int(decision)
    return EventFilter(
        since=None if form.date_from.errors else midnight(form.date_from.data),
        # «По» before «С» is shown at the field and, like any bad value, filters nothing.
        until=None if form.date_to.errors else midnight(form.date_to.data, plus=1),
        gate_id=form.gate.data if isinstance(form.gate.data, int) and not form.gate.errors
        else None,
        code=code,
        plate=form.plate.data or "",
    )


def _filter_form(tid: int) -> EventFilterForm:
    form = EventFilterForm(request.args)
    form.gate.choices = [SelectChoice(0, _("Все ворота"))] + [
        SelectChoice(x.id, x.name) for x in Gate.of(tid)
    ]
    form.validate()  # a bad value empties its own filter only
    return form


def _filter_args() -> dict:
    paging = ("page", "after", "older_than", "newer_than")
    return {k: v for k, v in request.args.items() if k not in paging and v}


@bp.get("/t/<int:tid>/events")
@territory_route(roles=WATCHERS)
def events(tid: int) -> Response:
    """«Журнал»: every decision at the gates, with filters; the first page updates live."""
    form = _filter_form(tid)
    query = _event_filter(form).apply(GateEvent.feed(tid))
    number = page_number()
    older = whole_arg("older_than")
    newer = whole_arg("newer_than")
    if older or newer:
        # By keyset, newest first: a page deep in ten million events costs what the first does.
        if older:
            batch = GateEvent.with_people(
                query.where(GateEvent.id < older).limit(EVENTS_PER_PAGE + 1))
            rows, more = batch[:EVENTS_PER_PAGE], len(batch) > EVENTS_PER_PAGE
        else:
            upward = query.where(GateEvent.id > newer).order_by(GateEvent.id.asc())
            batch = GateEvent.with_people(upward.limit(EVENTS_PER_PAGE + 1), newest_first=False)
            rows, more = batch[:EVENTS_PER_PAGE][::-1], True
            if len(batch) <= EVENTS_PER_PAGE:
                number = 1
    else:
        rows, more = paged(query, number, EVENTS_PER_PAGE, GateEvent.with_people)
    return page(
        "passes/events.html", form=form, rows=rows, more=more, number=number,
        # A filtered, empty feed starts polling after the newest event: nothing older is new.
        args=_filter_args(), after=rows[0].id if rows else GateEvent.newest_after(tid, 0) or 0,
    )


@bp.get("/t/<int:tid>/events/newer")
@territory_route(roles=WATCHERS)
def newer(tid: int) -> Response:
    """The feed's poll: events after `after` (read from the database, so the bridge's too).

    Every open feed asks every second, and mostly nothing is new: that answer takes one
    lookup, before the filters and the events' people are worked out (~5× less work).
    """
    after = whole_arg("after", 0) or 0
    newest = GateEvent.newest_after(tid, after)
    if newest is None:
        return Response(status=204)
    form = _filter_form(tid)
    query = _event_filter(form).apply(GateEvent.feed(tid)).where(GateEvent.id > after)
    batch = GateEvent.with_people(query.order_by(GateEvent.id).limit(FEED_BATCH),
                                  newest_first=False)
    # With new events but none that the filter shows (then or since), the poller goes on
    # from the newest, so its next polls are the one lookup again instead of this query.
    return page(
        "passes/_feed_new.html", rows=list(reversed(batch)),
        after=batch[-1].id if batch else newest, args=_filter_args(),
    )


@bp.get("/t/<int:tid>/events.csv")
@territory_route(roles=WATCHERS)
def events_csv(tid: int) -> Response:
    """The filtered log as CSV for Excel: UTF-8 with a BOM, `;` between columns.

    Russian Excel splits on `;` (its list separator, since `,` is the decimal mark) and needs
    the BOM to read UTF-8; every other spreadsheet takes both as well.
    """
    form = _filter_form(tid)
    rows = GateEvent.with_people(_event_filter(form).apply(GateEvent.feed(tid)).limit(CSV_LIMIT))
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow([
        _("Дата и время"), _("Ворота"), _("Направление"), _("Способ"), _("Идентификатор"),
        _("Решение"), _("Код"), _("Причина"), _("Владелец"), _("Кто открыл"), _("Источник"),
    ])
    zone = ZoneInfo(g.timezone)
    for e in rows:
        # Every cell goes through _csv_safe: names, plates and gates are typed by people.
        writer.writerow([_csv_safe(str(cell)) for cell in (
            e.at.astimezone(zone).strftime("%d.%m.%Y %H:%M:%S"),
            e.gate.name if e.gate_id else "",
            e.direction_label, e.kind_label, e.shown_credential, e.code_label,
            e.code, e.reason_label, _person(e.account), _person(e.actor), e.source,
        )])
    stamp = utcnow().astimezone(zone).strftime("%Y%m%d-%H%M")
    return Response(
        out.getvalue().encode("utf-8"),
        mimetype="text/csv",  # Flask adds "; charset=utf-8" itself
        headers={"Content-Disposition": f'attachment; filename="events-{stamp}.csv"'},
    )


def _person(account: Account | None) -> str:
    if account is None or account.id is None:
        return ""
    return account.full_name or account.login


def _csv_safe(text: str) -> str:
    """Keep a spreadsheet from running what a person typed as a formula (OWASP's list of
    the characters a formula may start with)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text

