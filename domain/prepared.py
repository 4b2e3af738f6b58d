"""Hot queries built once: their SQL text is kept, and each call binds only its values.

Peewee composes a query's SQL from its node tree on every execution; for a query joining two
models that is over a hundred calls per query and, on the operator's check, more time than
the database takes to answer (bench/README.md). A `Prepared` query is built once per
database with `Slot` placeholders where the values go; a call fills the slots (converted by
the field they are compared with, like any Peewee value) and hands the cursor to the
query's own row wrapper, so the rows come back as the same model objects.

    by_token = Prepared(lambda: Device.select(Device, Account).join(Account)
                        .where(Device.token_hash == Slot("token")).limit(1))
    device = by_token.first(token=digest)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from peewee import Node

from domain.db import db


class _Bound:
    """Where a value goes in the parameter list, and how its field converts it."""

    __slots__ = ("name", "converter")

    def __init__(self, name: str, converter: Callable[[Any], Any] | None) -> None:
        self.name = name
        self.converter = converter


class Slot(Node):
    """A named placeholder for a value supplied when the prepared query runs."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __sql__(self, ctx: Any) -> Any:
        # The converter is the compared field's db_value (set by Peewee's Expression).
        ctx._values.append(_Bound(self.name, ctx.state.converter))
        return ctx.literal(ctx.state.param or "?")


class Prepared:
    """A select whose SQL is composed once per database and then only re-bound."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._compiled: tuple[Any, Any, str, list[Any]] | None = None

    def _compile(self) -> tuple[Any, Any, str, list[Any]]:
        database = db.obj
        compiled = self._compiled
        if compiled is None or compiled[0] is not database:
            query = self._build()
            sql, params = query.sql()
            compiled = self._compiled = (database, query, sql, params)
        return compiled

    def __call__(self, **values: Any) -> Iterable[Any]:
        """Run with `values` for the slots; the rows as the built query would return them."""
        database, query, sql, params = self._compile()
        bound = []
        for param in params:
            if isinstance(param, _Bound):
                value = values[param.name]
                param = param.converter(value) if param.converter else value
            bound.append(param)
        return query._get_cursor_wrapper(database.execute_sql(sql, bound))

    def first(self, **values: Any) -> Any:
        """The first row, or None."""
        return next(iter(self(**values)), None)
