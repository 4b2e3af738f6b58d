"""Command-line tools (`flask --app app …`) that scripts and operators rely on (SPEC §10)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from flask_babel import lazy_gettext as _l

from domain import accounts, gates, passes, territories
from domain.db import db
from domain.db import utcnow as db_utcnow
from domain.errors import DomainError
from domain.phones import parse_phone
from domain.schema import upgrade

PASS_DEFAULT = dt.timedelta(days=1)

territories_cli = AppGroup("territories", help="Territories: list them.")
passes_cli = AppGroup("passes", help="Vehicle passes: file one from the shell.")
gates_cli = AppGroup("gates", help="Gates and their GATE-CTL controllers.")
events_cli = AppGroup("events", help="Gate events: retention and monthly partitions.")


def register_cli(app: Flask) -> None:
    """Add Propusk's commands to `flask`."""
    app.cli.add_command(migrate_command)
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(create_admin_command)
    app.cli.add_command(territories_cli)
    app.cli.add_command(passes_cli)
    app.cli.add_command(gates_cli)
    app.cli.add_command(purge_deleted_command)
    app.cli.add_command(events_cli)


def _render(message: object) -> str:
    """The text of a message for the terminal.

    Messages are lazy translations, the domain's and this module's alike; the locale
    selector reads the session, so they are rendered inside a request context — with no
    session there, in Russian, the default language.
    """
    with current_app.test_request_context():
        return str(message)


def _fail(message: object) -> None:
    raise click.ClickException(_render(message))


@contextmanager
def _database() -> Iterator[None]:
    """A connection for one command; a database `migrate` never created is said plainly
    rather than as a traceback about a missing table."""
    with db.connection_context():
        created = db.table_exists(territories.Territory._meta.table_name)
        if created:
            yield
    # Said after the connection is closed: the message is rendered in a request context,
    # whose teardown closes the connection under a context still open.
    if not created:
        _fail(_l("База данных не создана: выполните flask --app app migrate"))


# domain/passes.py tells the web form's user to tick the «иностранный номер» box; here
# the same thing is a flag.
WEB_FOREIGN_HINT = "отметьте «иностранный номер»"


def _for_the_shell(error: DomainError) -> str:
    """A domain error's text, with the web form's words put in the command's terms."""
    text = _render(error.message)
    if error.field == "plate" and WEB_FOREIGN_HINT in text:
        text = text.replace(WEB_FOREIGN_HINT, _render(_l("добавьте --foreign")))
    return text


@click.command("migrate")
@with_appcontext
def migrate_command() -> None:
    """Create the schema or upgrade an existing database to the current one."""
    with db.connection_context():
        ran = upgrade()
    click.echo(f"schema up to date ({len(ran)} upgrade steps run)")


@click.command("create-admin")
@with_appcontext
@click.option("--phone", help="Phone of the admin, e.g. +79990001122.")
@click.option("--email", help="E-mail of the admin.")
@click.option("--password", required=True, help="At least 8 characters, letters and digits.")
def create_admin_command(phone: str | None, email: str | None, password: str) -> None:
    """Create a platform admin who can sign in with the phone or e-mail given."""
    if bool(phone) == bool(email):
        _fail(_l("Укажите что-то одно: --phone или --email"))
    try:
        with _database():
            account = accounts.create_account(
                phone=parse_phone(phone) if phone else None,
                # The sign-up's check, so the admin can sign in with what was given.
                email=accounts.parse_email(email) if email else None,
                password=password,
                is_admin=True,
                email_confirmed=bool(email),
            )
    except DomainError as error:
        _fail(error.message)
    click.echo(f"admin\t{account.login}")


@territories_cli.command("list")
def territories_list() -> None:
    """One line per territory: CODE<TAB>KIND<TAB>NAME."""
    with _database():
        for t in territories.Territory.select().order_by(territories.Territory.name):
            click.echo(f"{t.display_code}\t{t.kind}\t{t.name}")


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Demo territories, people in every role and an admin; prints ROLE<TAB>LOGIN<TAB>PASSWORD."""
    from domain.demo import seed_demo

    with _database():
        for role, login, password in seed_demo():
            click.echo(f"{role}\t{login}\t{password}")


def _territory(code: str) -> territories.Territory:
    digits = territories.parse_code(code)
    found = territories.Territory.get_or_none(territories.Territory.code == digits)
    if found is None:
        raise DomainError(
            _l("Территория с кодом %(code)s не найдена", code=f"{digits[:3]}-{digits[3:]}")
        )
    return found


def _moment(text: str | None, timezone: str, name: str) -> dt.datetime | None:
    """An ISO-8601 moment; without an offset it is read in the territory's time zone."""
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise DomainError(_l(
            "%(option)s: «%(value)s» — не дата и время в формате ISO-8601, "
            "например 2030-01-31T18:00", option=name, value=text,
        )) from None
    return passes.local_moment(value, timezone)


def _owner(territory: territories.Territory, login: str | None) -> territories.Membership:
    """The owner's membership: the account given by phone or e-mail, else the first manager."""
    Membership = territories.Membership
    query = Membership.select().where(Membership.territory == territory)
    if not login:
        found = query.where(Membership.role == "manager").order_by(Membership.id).first()
        if found is None:
            raise DomainError(_l("У территории нет управляющего — укажите владельца в --owner"))
        return found
    # Read the way the sign-in form reads a login: an e-mail if it has an @, else a phone.
    if "@" in login:
        account = accounts.find_by_email(accounts.parse_email(login, "owner"))
    else:
        account = accounts.find_by_phone(parse_phone(login, "owner"))
    found = query.where(Membership.account == account).first() if account else None
    if found is None:
        raise DomainError(_l(
            "%(login)s не участник территории %(code)s",
            login=login.strip(), code=territory.display_code,
        ))
    return found


@passes_cli.command("add")
@click.option("--territory", "code", required=True, help="Territory code, e.g. 123-456.")
@click.option("--plate", required=True, help="Plate in any case, Cyrillic or Latin: а777аа77.")
@click.option("--owner", help="Owner's phone or e-mail (default: the territory's first manager).")
@click.option("--from", "start", help="Start, ISO-8601 (default: now; no offset = territory time).")
@click.option("--to", "end", help="End, ISO-8601 (default: start + 1 day).")
@click.option("--foreign", is_flag=True, help="A foreign plate: any Latin letters and digits.")
def passes_add(code: str, plate: str, owner: str | None, start: str | None, end: str | None,
               foreign: bool) -> None:
    """File a vehicle pass; prints pass<TAB>ID<TAB>PLATE<TAB>FROM<TAB>TO."""
    try:
        with _database():
            territory = _territory(code)
            member = _owner(territory, owner)
            valid_from = _moment(start, territory.timezone, "--from") or db_utcnow()
            valid_to = _moment(end, territory.timezone, "--to") or valid_from + PASS_DEFAULT
            filed = passes.file_pass(
                member, plate=plate, foreign=foreign, valid_from=valid_from, valid_to=valid_to
            )
    except DomainError as error:
        _fail(_for_the_shell(error))
    click.echo("\t".join([
        "pass", str(filed.id), filed.plate, filed.valid_from.isoformat(),
        filed.valid_to.isoformat() if filed.valid_to else "",
    ]))


def _gate_line(gate: gates.Gate) -> str:
    return f"{gate.id}\t{gate.name}\t{gate.direction}\t{gate.host}:{gate.port}\t{gate.unit_id}"


@gates_cli.command("add")
@click.option("--territory", "code", required=True, help="Territory code, e.g. 123-456.")
@click.option("--name", required=True, help="Name people see, e.g. «Въезд».")
@click.option("--host", required=True, help="Controller's address (Modbus TCP).")
@click.option("--port", required=True, type=int, help="Controller's TCP port.")
@click.option("--unit", required=True, type=int, help="Modbus unit id of the controller.")
@click.option("--direction", required=True, type=click.Choice(["entry", "exit", "both"]))
@click.option("--poll-ms", default=200, show_default=True, type=int, help="Poll interval.")
@click.option("--word-order", default="big", show_default=True,
              type=click.Choice(["big", "little"]), help="Word order of multi-register integers.")
@click.option("--serial", type=int, help="The serial printed on the controller: the gate then "
              "works with that controller only, and no gate without one takes it.")
def gates_add(code: str, name: str, host: str, port: int, unit: int, direction: str,
              poll_ms: int, word_order: str, serial: int | None) -> None:
    """Configure a gate; prints ID<TAB>NAME<TAB>DIRECTION<TAB>HOST:PORT<TAB>UNIT."""
    try:
        with _database():
            gate = gates.add_gate(
                _territory(code), name=name, host=host, port=port, unit_id=unit,
                direction=direction, poll_ms=poll_ms, word_order=word_order,
                networks=current_app.config["GATE_NETWORKS"], serial=serial,
            )
    except DomainError as error:
        _fail(error.message)
    click.echo(_gate_line(gate))


@gates_cli.command("list")
@click.option("--territory", "code", required=True, help="Territory code, e.g. 123-456.")
def gates_list(code: str) -> None:
    """One line per gate: ID<TAB>NAME<TAB>DIRECTION<TAB>HOST:PORT<TAB>UNIT."""
    try:
        with _database():
            for gate in gates.Gate.of(_territory(code).id):
                click.echo(_gate_line(gate))
    except DomainError as error:
        _fail(error.message)


@gates_cli.command("delete")
@click.option("--territory", "code", required=True, help="Territory code, e.g. 123-456.")
@click.option("--id", "gate_id", required=True, type=int, help="Gate id, as `gates list` shows.")
def gates_delete(code: str, gate_id: int) -> None:
    """Delete a gate as «Удалить ворота» does (its events stay, without the gate); prints
    the deleted gate's line."""
    try:
        with _database():
            gate = gates.delete_gate(_territory(code).id, gate_id)
    except DomainError as error:
        _fail(error.message)
    click.echo(_gate_line(gate))


@click.command("purge-deleted")
@with_appcontext
def purge_deleted_command() -> None:
    """Remove for good the accounts whose 30 days after a deletion request have passed."""
    with _database():
        count = accounts.purge_deleted()
    click.echo(f"purged {count} accounts")


@events_cli.command("prune")
@click.option("--older-than-days", type=int, default=None,
              help="Keep this many days (default: EVENTS_RETENTION_DAYS, else 400).")
def events_prune(older_than_days: int | None) -> None:
    """Delete gate events older than the retention; on PostgreSQL with monthly partitions,
    drop the months that are wholly older and create the coming months."""
    from domain import retention

    days = retention.retention_days() if older_than_days is None else older_than_days
    if days < 1:
        _fail(_l("Срок хранения — не меньше одного дня (--older-than-days)"))
    try:
        with _database():
            removed, created = retention.apply_policy(days)
    except OverflowError:  # the cut-off would fall before the year 1
        _fail(_l("Слишком большой срок хранения: --older-than-days %(days)s", days=days))
    click.echo(f"pruned {removed} events older than {days} days")
    for name in created:
        click.echo(f"created partition {name}")


@events_cli.command("partition")
@click.option("--months-ahead", type=int, default=3, show_default=True,
              help="Create the partitions of this many coming months.")
def events_partition(months_ahead: int) -> None:
    """PostgreSQL: partition gate_event by month (once) and create the coming months."""
    from domain import retention

    if not retention.is_postgres():
        _fail(_l("Помесячные разделы есть только в PostgreSQL; на SQLite запускайте "
                 "`events prune`"))
    with _database():
        created = retention.partition_events(months_ahead)
    click.echo(f"gate_event partitioned by month; {len(created)} partitions created")
    for name in created:
        click.echo(f"created partition {name}")
