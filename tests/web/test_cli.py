"""The command line that scripts rely on (SPEC §10)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from domain.accounts import Account
from domain.territories import Membership, Territory, create_territory
from tests import database as test_database

ROOT = Path(__file__).resolve().parents[2]


def test_seed_demo_prints_logins_and_is_idempotent(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    lines = [line.split("\t") for line in first.output.strip().splitlines()]
    assert [role for role, _login, _password in lines] == [
        "admin", "manager", "resident", "operator", "applicant"]
    counts = (Account.select().count(), Territory.select().count(), Membership.select().count())
    second = runner.invoke(args=["seed-demo"])
    assert second.output == first.output
    assert (Account.select().count(), Territory.select().count(), Membership.select().count()) == counts
    kinds = {t.kind for t in Territory.select()}
    assert kinds == {"kindergarten", "residential", "business", "other"}
    # The demo gate pointed at a real controller: a third run adds no second «Въезд».
    from domain.gates import Gate

    Gate.update(port=5804).where(Gate.port == 5020).execute()
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    assert Gate.select().where(Gate.name == "Въезд").count() == 1
    resident = Account.get(Account.phone == dict((r, login) for r, login, _ in lines)["resident"])
    kinds = {m.territory.kind for m in Membership.select().where(Membership.account == resident)}
    assert kinds == {"kindergarten", "residential"}


def test_seed_demo_prints_every_login_it_creates(app):
    """Every account seed-demo makes can sign in, so every one is printed — the applicant
    too — and a second run prints the same lines and makes nothing new."""
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    lines = [line.split("\t") for line in first.output.strip().splitlines()]
    assert all(len(line) == 3 for line in lines)
    with app.app_context():
        can_sign_in = {a.phone for a in Account.select().where(Account.password_hash.is_null(False))}
    assert {login for _role, login, _password in lines} == can_sign_in
    assert ["applicant", "+79990000005", "demo2024pass"] in lines
    assert [line for line in lines if line[0] == "resident"]  # what .ci/run greps for
    second = runner.invoke(args=["seed-demo"])
    assert second.exit_code == 0 and second.output == first.output
    with app.app_context():
        assert {a.phone for a in Account.select()} == can_sign_in


def test_seed_demo_runs_again_after_the_demo_gate_was_renamed(app):
    """`make run` seeds on every start; the gate on the simulator's controller is the demo's
    whatever it is called now (a second gate on that controller would be refused)."""
    from domain.gates import Gate

    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    Gate.update(name="Главный въезд").where(Gate.name == "Въезд").execute()
    again = runner.invoke(args=["seed-demo"])
    assert again.exit_code == 0, again.output
    assert [g.name for g in Gate.select()] == ["Главный въезд"]


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
    assert both.exit_code == 1 and "Укажите что-то одно: --phone или --email" in both.output
    neither = runner.invoke(args=["create-admin", "--password", "strong2024pw"])
    assert neither.exit_code == 1 and "--phone или --email" in neither.output


def _refused(result, message: str) -> None:
    """A CLI refusal: exit code 1, one line, in Russian, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert message in result.output, result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("login", "message"),
    [(["--email", "notanemail"], "Неверный e-mail"),
     (["--email", "boss@example"], "Неверный e-mail"),
     (["--email", "a b@example.ru"], "Неверный e-mail"),
     (["--email", "@example.ru"], "Неверный e-mail"),
     (["--email", "   "], "Введите e-mail"),
     (["--phone", "123"], "Неверный номер телефона"),
     (["--phone", "notaphone"], "Неверный номер телефона")],
)
def test_create_admin_checks_the_login_like_the_sign_up(app, login, message):
    result = app.test_cli_runner().invoke(
        args=["create-admin", *login, "--password", "Kv7rtQ9zmX2p"]
    )
    _refused(result, message)
    assert Account.select().count() == 0


def test_an_admin_made_with_an_email_can_sign_in(app):
    result = app.test_cli_runner().invoke(
        args=["create-admin", "--email", " Boss@Example.RU ", "--password", "Kv7rtQ9zmX2p"]
    )
    assert result.exit_code == 0, result.output
    assert result.output == "admin\tboss@example.ru\n"
    from tests.conftest import Auth

    assert Auth(app.test_client()).login("boss@example.ru", "Kv7rtQ9zmX2p").status_code == 302


@pytest.fixture
def territory_code(app, make_account) -> str:
    """A territory with a manager (boss@example.ru) and a resident (+79990000203)."""
    with app.app_context():
        manager = make_account(phone="+79990000202", email="boss@example.ru")
        territory = create_territory(manager, name="ЖК", kind="residential")
        resident = make_account(phone="+79990000203")
        Membership.create(account=resident, territory=territory, role="resident")
        make_account(phone="+79990000209", email="stranger@example.ru")
        return territory.display_code


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--owner", "boss@example"], "Неверный e-mail"),
     (["--owner", "boss@@example.ru"], "Неверный e-mail"),
     (["--owner", "notanemail"], "Неверный номер телефона"),
     (["--owner", "stranger@example.ru"], "stranger@example.ru не участник территории "),
     (["--owner", "8 999 000-02-09"], "8 999 000-02-09 не участник территории "),
     (["--from", "yesterday"],
      "--from: «yesterday» — не дата и время в формате ISO-8601, например 2030-01-31T18:00"),
     (["--to", "2030-13-01"], "--to: «2030-13-01» — не дата и время в формате ISO-8601")],
)
def test_passes_add_refuses_in_russian(app, territory_code, args, message):
    result = app.test_cli_runner().invoke(
        args=["passes", "add", "--territory", territory_code, "--plate", "А777АА77", *args]
    )
    _refused(result, message)
    if "не участник" in message:
        assert territory_code in result.output


def test_passes_add_finds_the_owner_by_an_email_in_any_case(app, territory_code):
    result = app.test_cli_runner().invoke(args=[
        "passes", "add", "--territory", territory_code, "--plate", "А777АА77",
        "--owner", " Boss@Example.RU ",
    ])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("pass\t")


def test_a_territory_not_found_or_without_a_manager_is_said_in_russian(app, territory_code):
    runner = app.test_cli_runner()
    for args in (["passes", "add", "--territory", "999999", "--plate", "А777АА77"],
                 ["gates", "list", "--territory", "999-999"],
                 ["gates", "add", "--territory", "999 999", "--name", "Въезд", "--host", "h",
                  "--port", "502", "--unit", "1", "--direction", "both"]):
        _refused(runner.invoke(args=args), "Территория с кодом 999-999 не найдена")
    with app.app_context():
        Membership.delete().where(Membership.role == "manager").execute()
    _refused(runner.invoke(args=["passes", "add", "--territory", territory_code,
                                 "--plate", "А777АА77"]),
             "У территории нет управляющего — укажите владельца в --owner")


def test_a_gate_name_the_form_would_refuse_is_refused_here_too(app, territory_code):
    """Gates audit: `gates add` took a 150-character name that the web form then refused on
    every save, so the gate could not even be switched off."""
    runner = app.test_cli_runner()
    _refused(runner.invoke(args=["gates", "add", "--territory", territory_code, "--name",
                                 "x" * 150, "--host", "h2", "--port", "502", "--unit", "1",
                                 "--direction", "exit"]),
             "Название — не длиннее 100 символов")


def test_gates_delete_removes_one_gate_of_that_territory(app, territory_code, make_account):
    """Gates audit: a gate could be deleted on the web only. The CLI deletes it the same way
    (its events stay, without the gate) and only in the territory named."""
    from domain.gates import Gate, GateEvent

    runner = app.test_cli_runner()
    added = runner.invoke(args=["gates", "add", "--territory", territory_code, "--name",
                                "Шлагбаум", "--host", "h3", "--port", "502", "--unit", "1",
                                "--direction", "entry"])
    assert added.exit_code == 0, added.output
    gate_id = int(added.output.split("\t")[0])
    with app.app_context():
        gate = Gate.get_by_id(gate_id)
        GateEvent.create(territory=gate.territory_id, gate=gate, kind="plate",
                         credential="A777AA77", direction=1, code=1, reason="granted")
        other = create_territory(make_account(phone="+79990000299"), name="Чужая",
                                 kind="residential")
    _refused(runner.invoke(args=["gates", "delete", "--territory", other.display_code,
                                 "--id", str(gate_id)]), "Ворота не найдены")
    deleted = runner.invoke(args=["gates", "delete", "--territory", territory_code,
                                  "--id", str(gate_id)])
    assert deleted.exit_code == 0, deleted.output
    assert deleted.output == added.output
    with app.app_context():
        assert not Gate.select().where(Gate.id == gate_id).exists()
        assert GateEvent.get().gate_id is None
    _refused(runner.invoke(args=["gates", "delete", "--territory", territory_code,
                                 "--id", str(gate_id)]), "Ворота не найдены")


def test_events_refusals_are_in_russian(app):
    runner = app.test_cli_runner()
    _refused(runner.invoke(args=["events", "prune", "--older-than-days", "0"]),
             "Срок хранения — не меньше одного дня (--older-than-days)")
    _refused(runner.invoke(args=["events", "prune", "--older-than-days", "100000000"]),
             "Слишком большой срок хранения")
    if not test_database.postgresql():  # the PostgreSQL pass shares one database
        _refused(runner.invoke(args=["events", "partition"]),
                 "Помесячные разделы есть только в PostgreSQL; на SQLite запускайте")


def test_every_command_has_help(app):
    runner = app.test_cli_runner()
    for command in (["seed-demo"], ["create-admin"], ["territories", "list"], ["migrate"],
                    ["passes", "add"], ["gates", "add"], ["gates", "list"], ["gates", "delete"],
                    ["purge-deleted"],
                    ["events", "prune"], ["events", "partition"]):
        result = runner.invoke(args=[*command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


@pytest.mark.parametrize("plate", ["W777WW77", "А77"])
def test_a_plate_refusal_names_the_flag_not_the_web_checkbox(app, territory_code, plate):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["passes", "add", "--territory", territory_code, "--plate", plate])
    _refused(result, "Если номер иностранный, добавьте --foreign")
    assert "отметьте" not in result.output and "«иностранный номер»" not in result.output
    if plate.isascii():
        filed = runner.invoke(args=["passes", "add", "--territory", territory_code,
                                    "--plate", plate, "--foreign"])
        assert filed.exit_code == 0 and filed.output.startswith("pass\t"), filed.output


NOT_MIGRATED = "База данных не создана: выполните flask --app app migrate"


def test_commands_on_a_database_never_migrated_say_to_migrate(tmp_path):
    """A fresh instance: every command but `migrate` says what to do, with no traceback."""
    from app import create_app
    from domain.db import db

    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret",
                      "INSTANCE_PATH": str(tmp_path / "instance"),
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'never-migrated.db'}"})
    runner = app.test_cli_runner()
    try:
        for args in (["seed-demo"], ["territories", "list"], ["purge-deleted"],
                     ["events", "prune"], ["gates", "list", "--territory", "123-456"],
                     ["create-admin", "--phone", "+79991112233", "--password", "Kv7rtQ9zmX2p"],
                     ["passes", "add", "--territory", "123-456", "--plate", "А777АА77"],
                     ["gates", "add", "--territory", "123-456", "--name", "Въезд", "--host", "h",
                      "--port", "502", "--unit", "1", "--direction", "both"]):
            _refused(runner.invoke(args=args), NOT_MIGRATED)
        migrated = runner.invoke(args=["migrate"])
        assert migrated.exit_code == 0, migrated.output
        listed = runner.invoke(args=["territories", "list"])
        assert listed.exit_code == 0 and listed.output == ""
    finally:
        db.close()


def test_the_shell_on_a_fresh_instance_says_to_migrate(tmp_path):
    """The same through `flask --app app` itself, on a new INSTANCE_PATH and nothing else."""
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env["INSTANCE_PATH"] = str(tmp_path / "instance")
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "territories", "list"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"Error: {NOT_MIGRATED}"
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
