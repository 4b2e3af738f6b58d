"""Rendering helpers shared by every blueprint: page-or-partial, forms, domain errors."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Request, Response, make_response, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import DateField, ValidationError
from wtforms.widgets import HiddenInput

from blueprints import ID_MAX
from domain.errors import DomainError

# The deepest ?page=N a list goes to by OFFSET; a longer number is nonsense, like letters.
PAGE_MAX = 1_000_000


def wants_partial(req: Request | None = None) -> bool:
    """True for an htmx request that swaps part of a page (not a boosted navigation); of
    this request, or of `req` where there is none yet (passes/shortcut.py)."""
    hx = (req or request).htmx
    return bool(hx) and not hx.boosted and not hx.history_restore_request


def page(template: str, partial: str | None = None, status: int = 200, **ctx: Any) -> Response:
    """Render the full page, or only its `_partial.html` for an htmx swap; Vary: HX-Request."""
    name = partial if partial and wants_partial() else template
    response = make_response(render_template(name, **ctx), status)
    response.headers.add("Vary", "HX-Request")
    return response


def whole_arg(name: str, default: int | None = None, most: int = ID_MAX) -> int | None:
    """A query argument that is a whole number from 0 to `most`, else `default`: an id or a
    page number. A longer one reached the database and answered 500 (SQLite's integers stop
    at 2**63 - 1, and the OFFSET of a page multiplies it)."""

    def whole(value: str) -> int:
        number = int(value)
        if not 0 <= number <= most:
            raise ValueError(value)
        return number

    return request.args.get(name, default, type=whole)


def page_number() -> int:
    """The ?page=N of a list, 1 when absent or nonsense."""
    return max(1, whole_arg("page", 1, PAGE_MAX) or 1)


def paged(query, number: int, per: int, fetch=list) -> tuple[list, bool]:
    """Page `number` of a query (its rows read by `fetch`) and whether another follows."""
    rows = fetch(query.offset((number - 1) * per).limit(per + 1))
    return rows[:per], len(rows) > per


def keyset_page(model, query, pivots, per: int) -> tuple[list, bool, int]:
    """One page of a newest-first list (a domain.db.NewestFirst model): (rows, more, number).

    ?after=<id> of the last row shown asks for the next page, ?before=<id> of the first for
    the previous one (the pivot is looked for among `pivots`: another territory's id is
    none, and the first page is shown); a bare ?page=N, as old links have it, goes by
    OFFSET."""
    number = page_number()
    after, before = whole_arg("after"), whole_arg("before")
    pivot = pivots.where(model.id == (after or before)).first() if after or before else None
    if pivot is not None:
        rows, beyond = model.page_after(query, pivot, per, backwards=not after)
        more = beyond if after else True
        if before and not beyond:
            number = 1  # reached the top: whatever the link said, this is the first page
        return rows, more, number
    if number > 1 and not (after or before):
        rows, more = paged(query, number, per)
        return rows, more, number
    rows, more = model.page_after(query, None, per)
    return rows, more, 1


# Days a date field takes: beyond them a date is a slip (31.12.9999 ended in a server error:
# the day after it does not exist, and 01.01.0001 has no UTC before it).
FIRST_DAY = dt.date(2000, 1, 1)
LAST_DAY = dt.date(2099, 12, 31)


def not_too_far(form: FlaskForm, field: DateField) -> None:
    """Validator: a day no later than LAST_DAY."""
    if field.data and field.data > LAST_DAY:
        raise ValidationError(_l("Не позже 31.12.2099"))


def not_too_early(form: FlaskForm, field: DateField) -> None:
    """Validator: a day no earlier than FIRST_DAY."""
    if field.data and field.data < FIRST_DAY:
        raise ValidationError(_l("Не раньше 01.01.2000"))


def form_error(form: FlaskForm, error: DomainError) -> None:
    """Show a domain error at the field it names, or above the form."""
    field = getattr(form, error.field, None) if error.field else None
    if field is not None:
        field.errors = [*field.errors, error.message]
    else:
        form.form_errors.append(error.message)


class Form(FlaskForm):
    """Every form of the app. Its hidden fields (the CSRF token) are rendered without an id:
    a page of several forms (the profile, the requests to decide) had id="csrf_token" once
    for each, which HTML forbids and which leaves a label or a script to pick one."""

    def hidden_tag(self, *fields: Any) -> Markup:
        chosen = (getattr(self, f, None) if isinstance(f, str) else f for f in fields or self)
        return Markup("\n").join(f(id=False) for f in chosen
                                  if f is not None and isinstance(f.widget, HiddenInput))


class EmptyForm(Form):
    """A form with nothing but the CSRF token, for action buttons."""
