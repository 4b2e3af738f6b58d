"""Creating the schema and upgrading a live database without losing data.

We use peewee's own playhouse.migrate rather than peewee-migrate: it ships with the ORM,
so it never lags behind a peewee release, it speaks SQLite and PostgreSQL alike, and the
few operations we need (add a column, add an index, create a table) fit in a short,
explicit list of numbered steps that a reviewer reads in one screen.

A fresh database gets every table at once and is stamped with every known step; an older
one runs the steps it has not seen, in order, inside one transaction, and then gains any
table added since. Steps are idempotent, so a database created between two releases
(with some columns already present) upgrades cleanly too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from graphlib import TopologicalSorter
from typing import Any

from peewee import (
    SQL,
    CharField,
    IntegerField,
    Model,
    PostgresqlDatabase,
    SqliteDatabase,
    Value,
)
from playhouse.migrate import SchemaMigrator, migrate

from domain.db import BaseModel, UtcDateTimeField, db, patient_server, utcnow

log = logging.getLogger("propusk.schema")


class SchemaVersion(BaseModel):
    """One upgrade step that has been applied to this database."""

    version = IntegerField(primary_key=True)
    name = CharField()
    applied_at = UtcDateTimeField(default=utcnow)


class Steps:
    """Idempotent schema operations a migration step is written in."""

    def __init__(self, database: Any) -> None:
        self.database = database
        self.migrator = SchemaMigrator.from_database(database)

    def _columns(self, table: str) -> set[str]:
        return {c.name for c in self.database.get_columns(table)}

    def add_columns(self, model: type[Model], *names: str) -> None:
        """Add the model's fields `names` where the table lacks them."""
        table = model._meta.table_name
        if not self.database.table_exists(table):
            return  # created whole, with these columns, at the end of the upgrade
        present = self._columns(table)
        ops = []
        for name in names:
            field = model._meta.fields[name]
            if field.column_name in present:
                continue
            if not field.null and self._sqlite():
                ops.append(self._add_not_null_in_place(table, field))
            else:
                ops.append(self.migrator.add_column(table, field.column_name, field))
        if ops:
            migrate(*ops)

    def _sqlite(self) -> bool:
        return isinstance(getattr(self.database, "obj", self.database), SqliteDatabase)

    def _add_not_null_in_place(self, table: str, field: Any) -> Any:
        """A NOT NULL column added to a SQLite table with its default, in one ALTER TABLE.

        playhouse adds it as NULL, fills it and then rebuilds the table to say NOT NULL: a
        copy, DROP TABLE, a rename. With foreign keys on, that DROP first deletes every row,
        and the ON DELETE actions of the tables that refer to it run: step 9 emptied
        payment_event and unlinked cards from their purchases, step 1 emptied every table
        under territory. SQLite adds a NOT NULL column with a constant default in place.
        """
        default = field.default
        if isinstance(default, bool):
            literal = "1" if default else "0"
        elif isinstance(default, int | float):
            literal = repr(default)
        elif isinstance(default, str):
            literal = "'" + default.replace("'", "''") + "'"
        else:
            raise ValueError(f"{table}.{field.column_name}: NOT NULL needs a constant default")
        field = field.clone()
        field.constraints = [*(field.constraints or []), SQL(f"DEFAULT {literal}")]
        return self.migrator.add_column(table, field.column_name, field, allow_not_null=True)

    def add_index(self, model: type[Model], *names: str, unique: bool = False) -> None:
        """Add an index over the model's fields `names` unless it exists."""
        table = model._meta.table_name
        columns = [model._meta.fields[n].column_name for n in names]
        existing = {tuple(i.columns) for i in self.database.get_indexes(table)}
        if tuple(columns) not in existing:
            migrate(self.migrator.add_index(table, columns, unique))

    def create_tables(self, *models: type[Model]) -> None:
        """Create the models' tables unless they exist."""
        self.database.create_tables(models, safe=True)


Migration = tuple[int, str, Callable[[Steps], None]]

# Numbered upgrade steps, oldest first. Append; never renumber or edit a released step.
MIGRATIONS: list[Migration] = [
    (1, "territory: permanent-pass limit, card price and validity",
     lambda s: s.add_columns(_territory(), "max_permanent_passes", "card_price_kopecks",
                             "card_validity_months")),
    (2, "vehicle_pass: index for the manager's list in its order (keyset pages)",
     lambda s: s.add_index(_model("passes", "VehiclePass"), "territory", "created_at", "id")),
    (3, "gate_event: index for the log's dates and the bridge's duplicate check",
     lambda s: s.add_index(_model("gates", "GateEvent"), "territory", "at")),
    (4, "account: the territory last chosen, where a new sign-in starts",
     lambda s: s.add_columns(_model("accounts", "Account"), "territory_id")),
    (5, "gate_status.error_kind, gate_command.failure: what went wrong, as a key the web words",
     lambda s: (s.add_columns(_model("gates", "GateStatus"), "error_kind"),
                s.add_columns(_model("gates", "GateCommand"), "failure"))),
    # Cards bound with no end were valid for good; from here such a card waits for the
    # manager's approval (Card.valid_until) and the «Карты» page lists it first.
    (6, "payment.card_number, card_until_before: what a card purchase's binding changed",
     lambda s: _record_card_bindings(s)),
    (7, "gate: one gate per controller, held by a unique index on (host, port, unit_id)",
     lambda s: _one_gate_per_controller(s)),
    # Earlier payments keep None: their receipt follows the account's language and their
    # stored title is shown as it was written.
    (8, "payment.locale, tariff_name: the language bought in; the title in each reader's",
     lambda s: s.add_columns(_model("billing", "Payment"), "locale", "tariff_name")),
    (9, "payment.promo_code, refunded_kopecks: the code as typed; what refunds returned",
     lambda s: _record_promo_codes_and_refunds(s)),
    # A deleted newest row's id went to the next row, and a page still open on the old one
    # acted on the newcomer (a cancelled join request's «Принять» admitted a stranger).
    (10, "SQLite: every auto id AUTOINCREMENT, so a deleted row's id is never given again",
     lambda s: _ids_never_reused(s)),
    # Two gates reaching one controller: the one that named it first keeps it (it was the
    # older id, and an old gate re-pointed at another territory's controller took it over).
    # Until stop 24 this step also added and filled gate.address_since, which nothing reads
    # any more. A database still before this step was served by code that never read it
    # either, so the step no longer adds it (see the note after the last step).
    (11, "gate.address_since, gate_status.reached: which gate keeps a controller, restarts too",
     lambda s: s.add_columns(_model("gates", "GateStatus"), "reached")),
    # Earlier gates keep None: they work with whichever controller answers at their address.
    (12, "gate.serial: the controller a gate works with, by the serial printed on it",
     lambda s: s.add_columns(_model("gates", "Gate"), "serial")),
    # gate.address_since is read by nothing since stop 24 (and by no rule since stop 22).
    # Its column stays in the databases steps 11-12 gave it to: processes of the previous
    # release still select it while an upgrade rolls through them (every process upgrades
    # at start, docs/deploy.md), and dropping it here broke their pages with a 500 (review,
    # stop 24). A later release drops it, as any column, one release after the last reader.
]


def _record_card_bindings(s: Steps) -> None:
    """Add the columns; a purchase bound before them gets its card's number, and the card's
    earlier end where the binding shows one (it extended a card still valid at payment)."""
    payment, card = _model("billing", "Payment"), _model("billing", "Card")
    s.add_columns(payment, "card_number", "card_until_before")
    with s.database.bind_ctx([payment, card]):
        for row in card.select(card.number, card.payment).where(card.payment.is_null(False)):
            payment.update(card_number=row.number).where(payment.id == row.payment_id).execute()
        payment.update(card_until_before=payment.period_start).where(
            (payment.kind == "card") & (payment.period_start > payment.paid_at)).execute()


def _record_promo_codes_and_refunds(s: Steps) -> None:
    """Add the columns; an earlier payment gets its promo code's text while the code exists
    (codes are never renamed, so it is the text typed), a refunded one the whole amount as
    refunded (refunds were whole until then), and a canceled one with a promo code the
    record that its use went back (billing.PROMO_RELEASED)."""
    payment, promo = _model("billing", "Payment"), _model("billing", "PromoCode")
    if not s.database.table_exists(payment._meta.table_name):
        return  # created whole, with these columns, at the end of the upgrade
    s.add_columns(payment, "promo_code", "refunded_kopecks")
    with s.database.bind_ctx([payment, promo]):
        code = promo.select(promo.code).where(promo.id == payment.promo)
        payment.update(promo_code=code).where(
            payment.promo.is_null(False) & payment.promo_code.is_null()).execute()
        payment.update(refunded_kopecks=payment.amount_kopecks).where(
            (payment.status == "refunded") & (payment.refunded_kopecks == 0)
            & payment.amount_kopecks.is_null(False)).execute()
        # A cancel gave the promo use back at once until now: say so, or the provider's own
        # cancel arriving after the upgrade gives it back a second time.
        event = _model("billing", "PaymentEvent")
        released = event.select(event.payment).where(event.event == "promo.released")
        with s.database.bind_ctx([event]):
            event.insert_from(
                payment.select(payment.id, Value("promo.released"),
                               Value(utcnow(), converter=event.received_at.db_value))
                .where((payment.status == "canceled") & payment.promo.is_null(False)
                       & payment.id.not_in(released)),
                [event.payment, event.event, event.received_at]).execute()


def _one_gate_per_controller(s: Steps) -> None:
    """Store every gate's address in its one spelling (gates.normal_host: an IP address in
    standard form, a host name in lower case without the root's dot), settle the controllers
    that more than one gate shares, then add the unique index on (host, port, unit_id).

    The check in gates.gate_problems came after some databases were made, and two saves at
    once could both pass it, so a controller may have several gates. The same controller
    answered for all of them, so only one of them ever worked as configured. Of each such
    group one gate keeps the controller: an enabled one before a disabled one, the oldest
    (lowest id) among those. Every other gate of the group is disabled (the bridge polls only
    enabled gates) and its address becomes «#<its id> <the address>»: no address has that
    shape, so the gate stays off the index's identity, the gates page shows it, and its form
    tells its manager the controller is taken (naming the gate that kept it only within the
    same territory) until another address is entered. Nothing is deleted: the gate, its name
    and settings, its events, status and commands all stay. Each moved gate is logged.
    """
    from domain.gates import Gate, normal_host

    table = Gate._meta.table_name
    if not s.database.table_exists(table):
        return  # created whole, with its index, at the end of the upgrade
    limit = Gate.host.max_length or 255
    with s.database.bind_ctx([Gate]):
        groups: dict[tuple[str, int, int], list[Any]] = {}
        for gate in Gate.select(Gate.id, Gate.territory, Gate.host, Gate.port, Gate.unit_id,
                                Gate.enabled).order_by(Gate.id):
            host = normal_host(gate.host or "")
            groups.setdefault((host, gate.port, gate.unit_id), []).append(gate)
            if host != gate.host:
                Gate.update(host=host).where(Gate.id == gate.id).execute()
        for (host, port, unit_id), sharing in groups.items():
            keeper, *others = sorted(sharing, key=lambda g: (not g.enabled, g.id))
            for gate in others:
                moved = f"#{gate.id} {host}"[:limit]
                Gate.update(host=moved, enabled=False).where(Gate.id == gate.id).execute()
                log.warning(
                    "gate %s (territory %s) shared the controller %s:%s unit %s with gate %s "
                    "(territory %s), which keeps it: disabled, address now %r",
                    gate.id, gate.territory_id, host, port, unit_id, keeper.id,
                    keeper.territory_id, moved)
    s.add_index(Gate, "host", "port", "unit_id", unique=True)


REBUILT = "__rebuilt"  # a table's new version is named so until the old one goes
_REFERENCES = re.compile(r'(\bREFERENCES\s+)"?(\w+)"?', re.IGNORECASE)
_AUTOINCREMENT = re.compile(r"\bAUTOINCREMENT\b", re.IGNORECASE)


def _ids_never_reused(s: Steps) -> None:
    """SQLite: rebuild each table whose auto `id` (db.NeverReusedId) lacks AUTOINCREMENT with
    it, keeping every row, id, index, trigger and foreign key, so that the id of a deleted
    row is never given again. PostgreSQL's sequences never go back: nothing to do there.

    SQLite cannot add AUTOINCREMENT to a table; it takes the documented rebuild
    (sqlite.org/lang_altertable.html#otheralter). Its first step, foreign keys off, cannot be
    taken here: the upgrade is one transaction, and inside one PRAGMA foreign_keys does
    nothing. With them on, DROP TABLE first deletes the table's rows and so fires the
    ON DELETE actions of the tables that refer to it: dropping the old `territory` would
    empty memberships, passes and payments. So no table is dropped while another refers to
    it. Each table that refers to a rebuilt one, directly or further down, is rebuilt too
    (gate_status, keyed by its gate, as it is); the new tables refer to each other's new
    versions; the old ones are dropped children first, when nothing refers to them any
    more; renaming a new version to its table's name carries those references along.
    PRAGMA defer_foreign_keys holds the copied rows' checks for foreign_key_check, which
    names any row whose parent is missing, and the upgrade is refused whole.

    sqlite_sequence gets each table's largest id: none at or below it is given again. A
    newest row deleted before this step had its id given again already, as always.
    """
    database = s.database
    if not isinstance(getattr(database, "obj", database), SqliteDatabase):
        return
    from domain.db import NeverReusedId

    def rows(sql: str, params: tuple = ()) -> list[tuple]:
        return list(database.execute_sql(sql, params).fetchall())

    tables: dict[str, str] = dict(rows(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
        " AND substr(name, 1, 7) <> 'sqlite_'"))
    keys = {m._meta.table_name: m._meta.primary_key.column_name for m in app_models()
            if isinstance(m._meta.primary_key, NeverReusedId)}
    wanted = {t for t in keys if t in tables and not _AUTOINCREMENT.search(tables[t])}
    if not wanted:
        return
    parents = {t: {r[2] for r in rows(f'PRAGMA foreign_key_list("{t}")')} - {t}
               for t in tables}
    rebuilt = set(wanted)
    while more := {t for t in tables if t not in rebuilt and parents[t] & rebuilt}:
        rebuilt |= more
    order = list(TopologicalSorter({t: parents[t] & rebuilt for t in rebuilt}).static_order())
    kept = {t: [sql for (sql,) in rows(
        "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger')"
        " AND sql IS NOT NULL ORDER BY type, name", (t,))] for t in order}
    issued = dict(rows("SELECT name, seq FROM sqlite_sequence")) if rows(
        "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'") else {}
    deferred = rows("PRAGMA defer_foreign_keys")[0][0]
    database.execute_sql("PRAGMA defer_foreign_keys = ON")
    # The names put into SQL below are the database's own tables and columns; values go as
    # parameters.
    for t in order:  # parents first
        key = keys[t] if t in wanted else None
        database.execute_sql(_rebuilt_table(tables[t], t, rebuilt, key))
        columns = ", ".join(f'"{r[1]}"' for r in rows(f'PRAGMA table_info("{t}")'))
        database.execute_sql(
            f'INSERT INTO "{t}{REBUILT}" ({columns}) SELECT {columns} FROM "{t}"')  # noqa: S608
    for t in reversed(order):  # children first: nothing refers to a table as it goes
        database.execute_sql(f'DROP TABLE "{t}"')
    for t in order:
        database.execute_sql(f'ALTER TABLE "{t}{REBUILT}" RENAME TO "{t}"')
    # Once every table has its name back: a trigger may name another rebuilt table.
    for t in order:
        for sql in kept[t]:
            database.execute_sql(sql)
        if t in wanted or _AUTOINCREMENT.search(tables[t]):
            database.execute_sql("DELETE FROM sqlite_sequence WHERE name = ?", (t,))
            largest = f'SELECT ?, MAX(?, COALESCE(MAX(rowid), 0)) FROM "{t}"'  # noqa: S608
            database.execute_sql(f"INSERT INTO sqlite_sequence (name, seq) {largest}",
                                 (t, issued.get(t, 0)))
    # A rename that did not carry a reference along (PRAGMA legacy_alter_table) leaves it
    # pointing at a table that is gone.
    stale = rows("SELECT name FROM sqlite_master WHERE instr(sql, ?) > 0", (REBUILT,))
    broken = [row for t in order for row in rows(f'PRAGMA foreign_key_check("{t}")')]
    if stale or broken:
        raise RuntimeError(
            f"ids never reused: not rebuilt; still naming a rebuilt table: {stale}; rows whose "
            f"parent is missing (table, rowid, parent, constraint): {broken}")
    database.execute_sql(f"PRAGMA defer_foreign_keys = {int(deferred)}")
    log.info("ids never reused: %s rebuilt with AUTOINCREMENT", ", ".join(sorted(wanted)))


def _rebuilt_table(sql: str, table: str, rebuilt: set[str], key: str | None) -> str:
    """The CREATE TABLE of `table`'s new version, from its own: references to a rebuilt
    table name that table's new version, and the column `key`, if given, gains AUTOINCREMENT
    after its INTEGER PRIMARY KEY."""
    body = sql.partition("(")[2]
    body = _REFERENCES.sub(
        lambda m: f'{m[1]}"{m[2]}{REBUILT}"' if m[2] in rebuilt else m[0], body)
    if key is not None:
        body, found = re.subn(
            rf'((?:^|,)\s*"?{re.escape(key)}"?\s+INTEGER\b[^,]*?\bPRIMARY\s+KEY)(?=\s*[,)])',
            r"\1 AUTOINCREMENT", body, count=1, flags=re.IGNORECASE)
        if not found:
            raise RuntimeError(f"{table}: no INTEGER PRIMARY KEY {key!r} to add AUTOINCREMENT "
                               f"to in {sql}")
    return f'CREATE TABLE "{table}{REBUILT}" ({body}'


def _territory() -> type[Model]:
    from domain.territories import Territory

    return Territory


def _model(module: str, name: str) -> type[Model]:
    from importlib import import_module

    return getattr(import_module(f"domain.{module}"), name)


def app_models() -> list[type[BaseModel]]:
    """Every model of the application."""
    from domain import accounts, billing, codes, gates, limits, passes, territories, versions
    from providers.payments.sandbox import SandboxBankPayment

    return [
        accounts.Account,
        accounts.Device,
        territories.Territory,
        territories.Unit,
        territories.Membership,
        territories.JoinRequest,
        passes.VehiclePass,
        gates.Gate,
        gates.GateEvent,
        codes.Code,
        codes.SendLog,
        limits.Attempt,
        *billing.models(),
        SandboxBankPayment,
        versions.TerritoryVersion,
        gates.GateStatus,
        gates.GateCommand,
    ]


# Any constant the application owns: the key of PostgreSQL's advisory lock on upgrades.
UPGRADE_LOCK = 0x70726F70  # "prop"


def _exclusive(database: Any) -> Any:
    """The upgrade's transaction, taken so that processes starting together go in turn.

    The web processes, the bridge and `flask migrate` may all start at once: on SQLite the
    write lock is taken at BEGIN (IMMEDIATE), on PostgreSQL an advisory lock held to COMMIT.
    """
    real = getattr(database, "obj", database)
    if isinstance(real, SqliteDatabase):
        return database.atomic(lock_type="IMMEDIATE")
    transaction = database.atomic()
    if isinstance(real, PostgresqlDatabase):
        return _locked(database, transaction)
    return transaction


@contextmanager
def _locked(database: Any, transaction: Any) -> Iterator[None]:
    with transaction:
        database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (UPGRADE_LOCK,))
        yield


def upgrade(
    database: Any = db,
    models: Sequence[type[Model]] | None = None,
    migrations: Iterable[Migration] = MIGRATIONS,
) -> list[int]:
    """Bring the database to the current schema; returns the step numbers that ran."""
    models = list(app_models() if models is None else models)
    steps = sorted(migrations, key=lambda m: m[0])
    # A step may run for minutes on a big database: no limit on the server's silence.
    with patient_server(), database.bind_ctx([SchemaVersion]), _exclusive(database):
        fresh = not any(database.table_exists(m._meta.table_name) for m in models)
        database.create_tables([SchemaVersion], safe=True)
        done = {v.version for v in SchemaVersion.select(SchemaVersion.version)}
        ran: list[int] = []
        for version, name, step in steps:
            if version in done:
                continue
            if not fresh:
                step(Steps(database))
                ran.append(version)
            SchemaVersion.create(version=version, name=name)
        database.create_tables(models, safe=True)
    return ran
