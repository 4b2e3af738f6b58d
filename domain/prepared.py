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

from peewee import Model, ModelCursorWrapper, ModelObjectCursorWrapper, Node

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


_NONE: frozenset = frozenset()

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
        if compiled.rows is not None:
            return compiled.rows.build(cursor.fetchall())
        wrapper = compiled.query._get_cursor_wrapper(cursor)
        if compiled.layout is not None:
            # How columns map onto models: Peewee would work it out again for this cursor.
            wrapper.__dict__.update(compiled.layout)
            wrapper.initialized = True
        rows = list(wrapper)
        if compiled.layout is None and wrapper.initialized:
            compiled.layout = {k: v for k, v in vars(wrapper).items() if k not in _PER_CURSOR}
            compiled.rows = _Rows.plan(wrapper)
        return rows

    def first(self, **values: Any) -> Any:
        """The first row, or None."""
        rows = self(**values)
        return rows[0] if rows else None


class _Compiled:
    __slots__ = ("database", "query", "sql", "params", "layout", "rows")

    def __init__(self, database: Any, query: Any, sql: str, params: list[Any]) -> None:
        self.database, self.query, self.sql, self.params = database, query, sql, params
        self.layout: dict[str, Any] | None = None
        self.rows: _Rows | None = None

    def bind(self, values: dict[str, Any]) -> list[Any]:
        """The parameters with each slot's value in place, converted by its field."""
        bound = []
        for param in self.params:
            if isinstance(param, _Bound):
                value = values[param.name]
                param = param.converter(value) if param.converter else value
            bound.append(param)
        return bound


class _Rows:
    """Builds the model objects of a prepared query's rows, as Peewee's cursor wrapper does.

    Peewee's wrapper is general: per row it calls each model's constructor with keyword
    arguments and sets every column through the field's descriptor, about 25 µs a model
    object: the plate's four joined models took ten times what SQLite took to return them.
    Once the first run has shown which column goes to which field of which model, a row
    only needs each value converted and put into its object's field data, then the joined
    objects linked the way Peewee links them. Queries with anything else (a dict or tuple
    row, a computed column, a model with its own constructor) keep Peewee's wrapper:
    `plan` returns None for them.
    """

    __slots__ = ("models", "columns", "links", "reachable")

    def __init__(self, models: tuple, columns: tuple, links: tuple, reachable: dict) -> None:
        self.models = models  # model classes, one object of each per row; [0] is returned
        self.columns = columns  # (row index, object index, field name, converter)
        self.links = links  # (src, attr, dest, outer join?, attr is src's foreign key?)
        self.reachable = reachable  # object index -> objects joined beyond it

    @classmethod
    def plan(cls, wrapper: Any) -> _Rows | None:
        """The plan for a first-run wrapper's layout; None when Peewee's wrapper must stay."""
        if type(wrapper) is ModelObjectCursorWrapper:  # one model, no joins
            if not wrapper.is_model:
                return None
            keys, constructors = [wrapper.model], [wrapper.constructor]
            spec = [(i, wrapper.model, name, wrapper.converters[i])
                    for i, name in enumerate(wrapper.unique_columns)]
            joins, beyond = [], {}
        elif type(wrapper) is ModelCursorWrapper:
            made = [(k, c) for k, c, is_model in wrapper._constructor_list if is_model]
            if len(made) != len(wrapper._constructor_list):
                return None  # a dict among the joined
            made.sort(key=lambda kc: kc[0] is not wrapper.model)  # the returned one first
            keys, constructors = [k for k, _c in made], [c for _k, c in made]
            spec = [(i, key if key in keys else wrapper.model, column, converter)
                    for i, key, column, converter in wrapper._row_spec]
            joins, beyond = wrapper.src_to_dest, wrapper._dest_reachable
        else:
            return None
        slot = {key: n for n, key in enumerate(keys)}
        plain = [isinstance(c, type) and issubclass(c, Model) and c.__init__ is Model.__init__
                 for c in constructors]
        if not all(plain):
            return None
        columns = []
        for i, key, name, converter in spec:
            field = constructors[slot[key]]._meta.fields.get(name)
            if field is None:
                return None  # not a field of its model: Peewee would set a plain attribute
            columns.append((i, slot[key], field.name, converter))
        if any(src not in slot or dest not in slot for src, _a, dest, *_rest in joins):
            return None
        links = tuple((slot[src], attr, slot[dest], is_outer, is_fk)
                      for src, attr, dest, _is_dict, is_outer, is_fk in joins)
        reachable = {slot[d]: frozenset(slot[k] for k in ks if k in slot)
                     for d, ks in beyond.items() if d in slot}
        return cls(tuple(constructors), tuple(columns), links, reachable)

    def build(self, rows: list[tuple]) -> list[Any]:
        """The model objects of the fetched rows, with their joined objects linked."""
        out = []
        models, columns, links, reachable = self.models, self.columns, self.links, self.reachable
        for row in rows:
            objects = []
            datas = []
            for model in models:
                obj = model.__new__(model)
                data: dict[str, Any] = {}
                obj.__data__ = data
                obj._dirty = set()
                obj.__rel__ = {}
                objects.append(obj)
                datas.append(data)
            filled = set()
            for i, n, name, converter in columns:
                value = row[i]
                if value is not None:
                    filled.add(n)
                datas[n][name] = converter(value) if converter is not None else value
            for src, attr, dest, is_outer, is_fk in links:
                joined = objects[dest]
                got = dest in filled
                if not got and not (reachable.get(dest, _NONE) & filled):
                    # Nothing of the joined model came back: on an outer join that is a
                    # row that is not there (None); otherwise no link at all.
                    if not is_outer:
                        continue
                    joined = None
                if is_outer and not got and src not in filled:
                    continue
                if is_fk and joined is None:
                    objects[src].__rel__[attr] = None
                else:
                    setattr(objects[src], attr, joined)
            for obj in objects:
                obj._dirty.clear()
            out.append(objects[0])
        return out
