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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from peewee import CharField, IntegerField, Model, PostgresqlDatabase, SqliteDatabase
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
            if field.column_name not in present:
                ops.append(self.migrator.add_column(table, field.column_name, field))
        if ops:
            migrate(*ops)

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
    (codes are never renamed, so it is the text typed), and a refunded one the whole amount
    as refunded (refunds were whole until then)."""
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
