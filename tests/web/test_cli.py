"""The command line that scripts rely on (SPEC §10)."""

from __future__ import annotations

from domain.accounts import Account
from domain.territories import Membership, Territory


def test_seed_demo_prints_logins_and_is_idempotent(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    lines = [line.split("\t") for line in first.output.strip().splitlines()]
    assert {role for role, _login, _password in lines} == {"admin", "manager", "resident", "operator"}
    counts = (Account.select().count(), Territory.select().count(), Membership.select().count())
    second = runner.invoke(args=["seed-demo"])
    assert second.output == first.output
    assert (Account.select().count(), Territory.select().count(), Membership.select().count()) == counts
    kinds = {t.kind for t in Territory.select()}
    assert kinds == {"kindergarten", "residential", "business", "other"}
    resident = Account.get(Account.phone == dict((r, login) for r, login, _ in lines)["resident"])
    kinds = {m.territory.kind for m in Membership.select().where(Membership.account == resident)}
    assert kinds == {"kindergarten", "residential"}


def test_seeded_logins_work(app, client, auth):
    lines = app.test_cli_runner().invoke(args=["seed-demo"]).output.strip().splitlines()
    for line in lines:
        _role, login, password = line.split("\t")
        fresh = app.test_client()
        from tests.conftest import Auth

        assert Auth(fresh).login(login, password).status_code == 302, line


def test_territories_list(app):
    runner = app.test_cli_runner()
    runner.invoke(args=["seed-demo"])
    out = runner.invoke(args=["territories", "list"]).output.strip().splitlines()
    assert len(out) == Territory.select().count()
    code, kind, name = out[0].split("\t")
    assert len(code) == 7 and code[3] == "-" and code.replace("-", "").isdigit()
    assert kind in {"kindergarten", "residential", "business", "other"}
    assert name


def test_create_admin(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["create-admin", "--phone", "8 999 111 22 33", "--password", "strong2024pw"])
    assert result.exit_code == 0, result.output
    assert Account.get(Account.phone == "+79991112233").is_admin
    weak = runner.invoke(args=["create-admin", "--email", "a@b.ru", "--password", "short"])
    assert weak.exit_code != 0 and "8" in weak.output and "Traceback" not in weak.output
    both = runner.invoke(args=["create-admin", "--email", "a@b.ru", "--phone", "9991112233",
                               "--password", "strong2024pw"])
    assert both.exit_code != 0


def test_every_command_has_help(app):
    runner = app.test_cli_runner()
    for command in (["seed-demo"], ["create-admin"], ["territories", "list"], ["migrate"]):
        result = runner.invoke(args=[*command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output
