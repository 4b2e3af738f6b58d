"""Command-line tools (`flask --app app …`) that scripts and operators rely on (SPEC §10)."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from domain import accounts, territories
from domain.db import db
from domain.errors import DomainError
from domain.phones import parse_phone
from domain.schema import upgrade

territories_cli = AppGroup("territories", help="Territories: list them.")


def register_cli(app: Flask) -> None:
    """Add Propusk's commands to `flask`."""
    app.cli.add_command(migrate_command)
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(create_admin_command)
    app.cli.add_command(territories_cli)
    app.cli.add_command(purge_deleted_command)


def _fail(message: object) -> None:
    raise click.ClickException(str(message))


@click.command("migrate")
def migrate_command() -> None:
    """Create the schema or upgrade an existing database to the current one."""
    with db.connection_context():
        ran = upgrade()
    click.echo(f"schema up to date ({len(ran)} upgrade steps run)")


@click.command("create-admin")
@click.option("--phone", help="Phone of the admin, e.g. +79990001122.")
@click.option("--email", help="E-mail of the admin.")
@click.option("--password", required=True, help="At least 8 characters, letters and digits.")
def create_admin_command(phone: str | None, email: str | None, password: str) -> None:
    """Create a platform admin who can sign in with the phone or e-mail given."""
    if bool(phone) == bool(email):
        _fail("give exactly one of --phone or --email")
    try:
        with db.connection_context():
            account = accounts.create_account(
                phone=parse_phone(phone) if phone else None,
                email=email,
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
    with db.connection_context():
        for t in territories.Territory.select().order_by(territories.Territory.name):
            click.echo(f"{t.display_code}\t{t.kind}\t{t.name}")


@click.command("seed-demo")
def seed_demo_command() -> None:
    """Demo territories, people in every role and an admin; prints ROLE<TAB>LOGIN<TAB>PASSWORD."""
    from domain.demo import seed_demo

    with db.connection_context():
        for role, login, password in seed_demo():
            click.echo(f"{role}\t{login}\t{password}")


@click.command("purge-deleted")
@with_appcontext
def purge_deleted_command() -> None:
    """Remove for good the accounts whose 30 days after a deletion request have passed."""
    with db.connection_context():
        count = accounts.purge_deleted()
    click.echo(f"purged {count} accounts")
