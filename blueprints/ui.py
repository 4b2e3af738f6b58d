"""Rendering helpers shared by every blueprint: page-or-partial, forms, domain errors."""

from __future__ import annotations

from typing import Any

from flask import Response, make_response, render_template, request
from flask_wtf import FlaskForm

from domain.errors import DomainError


def wants_partial() -> bool:
    """True for an htmx request that swaps part of a page (not a boosted navigation)."""
    hx = request.htmx
    return bool(hx) and not hx.boosted and not hx.history_restore_request


def page(template: str, partial: str | None = None, status: int = 200, **ctx: Any) -> Response:
    """Render the full page, or only its `_partial.html` for an htmx swap; Vary: HX-Request."""
    name = partial if partial and wants_partial() else template
    response = make_response(render_template(name, **ctx), status)
    response.headers.add("Vary", "HX-Request")
    return response


def page_number() -> int:
    """The ?page=N of a list, 1 when absent or nonsense."""
    return max(1, request.args.get("page", 1, type=int) or 1)


def paged(query, number: int, per: int, fetch=list) -> tuple[list, bool]:
    """Page `number` of a query (its rows read by `fetch`) and whether another follows."""
    rows = fetch(query.offset((number - 1) * per).limit(per + 1))
    return rows[:per], len(rows) > per


def form_error(form: FlaskForm, error: DomainError) -> None:
    """Show a domain error at the field it names, or above the form."""
    field = getattr(form, error.field, None) if error.field else None
    if field is not None:
        field.errors = [*field.errors, error.message]
    else:
        form.form_errors.append(error.message)


class EmptyForm(FlaskForm):
    """A form with nothing but the CSRF token, for action buttons."""
