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

from collections.abc import Callable
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


# What a Peewee cursor wrapper holds for one cursor; the rest of its state, worked out from the
# query and the result's columns when the first row arrives, is the same on every run.
_PER_CURSOR = frozenset({"cursor", "count", "index", "initialized", "populated", "row_cache"})


class Prepared:
    """A select whose SQL is composed once per database and then only re-bound."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._compiled: _Compiled | None = None

    def _compile(self) -> _Compiled:
        database = db.obj
        compiled = self._compiled
        if compiled is None or compiled.database is not database:
            query = self._build()
            sql, params = query.sql()
            compiled = self._compiled = _Compiled(database, query, sql, params)
        return compiled

    def sql(self, **values: Any) -> tuple[str, list[Any]]:
        """The SQL text and its parameters with `values` in the slots (as Query.sql())."""
        compiled = self._compile()
        return compiled.sql, compiled.bind(values)

    def __call__(self, **values: Any) -> list[Any]:
        """Run with `values` for the slots; the rows as the built query would return them."""
        compiled = self._compile()
        cursor = compiled.database.execute_sql(compiled.sql, compiled.bind(values))
        wrapper = compiled.query._get_cursor_wrapper(cursor)
        if compiled.layout is not None:
            # How columns map onto models: Peewee would work it out again for this cursor.
            wrapper.__dict__.update(compiled.layout)
            wrapper.initialized = True
        rows = list(wrapper)
        if compiled.layout is None and wrapper.initialized:
            compiled.layout = {k: v for k, v in vars(wrapper).items() if k not in _PER_CURSOR}
        return rows

    def first(self, **values: Any) -> Any:
        """The first row, or None."""
        rows = self(**values)
        return rows[0] if rows else None


class _Compiled:
    __slots__ = ("database", "query", "sql", "params", "layout")

    def __init__(self, database: Any, query: Any, sql: str, params: list[Any]) -> None:
        self.database, self.query, self.sql, self.params = database, query, sql, params
        self.layout: dict[str, Any] | None = None

    def bind(self, values: dict[str, Any]) -> list[Any]:
        """The parameters with each slot's value in place, converted by its field."""
        bound = []
        for param in self.params:
            if isinstance(param, _Bound):
                value = values[param.name]
                param = param.converter(value) if param.converter else value
            bound.append(param)
        return bound
