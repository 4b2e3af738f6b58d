"""One controller, one gate, held by the database: migration 7 settles the controllers an older
database lets several gates share, the unique index refuses a second gate on a controller
however it is written, and two managers saving the same controller at once are told what
the check tells anyone who comes later."""

from __future__ import annotations

import logging

import pytest
from flask_babel import force_locale
from peewee import IntegrityError

from domain import gates
from domain.db import db
from domain.errors import DomainError
from domain.gates import Gate, GateEvent, normal_host
from domain.schema import SchemaVersion, app_models, upgrade
from domain.territories import Territory, create_territory
from tests.gate_race import insert_gate, race

TAKEN_ELSEWHERE = "Этот контроллер (адрес, порт и номер устройства) уже подключён к другим воротам"


def _index(database) -> list:
    return [i for i in database.get_indexes("gate") if i.columns == ["host", "port", "unit_id"]]


def test_a_database_with_shared_controllers_upgrades_keeping_every_gate(app, scratch, caplog):
    database = scratch()
    models = app_models()
    with database.bind_ctx(models):
        database.create_tables(models)
        # As made before migration 7: no index, addresses as typed.
        database.execute_sql("DROP INDEX gate_host_port_unit_id")
        ours = Territory.create(code="123456", name="ЖК", kind="residential")
        theirs = Territory.create(code="654321", name="Соседи", kind="residential")

        def gate(territory, name, host, **fields):
            return Gate.create(territory=territory, name=name, host=host, port=502, unit_id=1,
                               **fields).id

        entry = gate(ours, "Въезд", "10.0.0.5")
        # The same controller, spelled otherwise, in another territory, used and logged.
        foreign = gate(theirs, "Чужие", "10.0.0.5.")
        GateEvent.create(territory=theirs, gate=foreign, code=1, credential="A123BC77")
        third = gate(ours, "Калитка", " 10.0.0.5 ")
        # The enabled one keeps a controller, though a disabled one is older.
        old = gate(ours, "Старые", "GATE.local", enabled=False)
        new = gate(ours, "Новые", "gate.local")
        alone = gate(ours, "Задние", "Gate-5.Local.")
        v6 = gate(ours, "Склад", "2001:DB8:0::1")
        assert Gate.select().count() == 7
    database.close()

    database = scratch()
    with database.bind_ctx(models), caplog.at_level(logging.WARNING, "propusk.schema"):
        assert 7 in upgrade(database)
        rows = {g.id: (g.host, g.enabled) for g in Gate.select()}
        assert rows == {
            entry: ("10.0.0.5", True),
            foreign: (f"#{foreign} 10.0.0.5", False),
            third: (f"#{third} 10.0.0.5", False),
            old: (f"#{old} gate.local", False),
            new: ("gate.local", True),
            alone: ("gate-5.local", True),
            v6: ("2001:db8::1", True),
        }
        # Nothing is lost: the moved gate keeps its name, settings and history.
        moved = Gate.get_by_id(foreign)
        assert (moved.name, moved.territory_id, moved.port, moved.unit_id) == (
            "Чужие", theirs.id, 502, 1)
        assert [e.gate_id for e in GateEvent.select()] == [foreign]
        # Every moved gate is reported, with the one that kept its controller.
        moved_lines = [r.getMessage() for r in caplog.records if r.name == "propusk.schema"]
        assert len(moved_lines) == 3
        assert f"gate {foreign} (territory {theirs.id})" in moved_lines[0]
        assert f"with gate {entry}" in moved_lines[0]

        assert [i.unique for i in _index(database)] == [True]
        with pytest.raises(IntegrityError), database.atomic():
            Gate.create(territory=ours, name="Ещё", host="10.0.0.5", port=502, unit_id=1)

        # Its manager is told the controller is taken; another territory's gate is not named.
        with app.test_request_context():
            assert gates.saved_host_problem(Gate.get_by_id(foreign)) == TAKEN_ELSEWHERE
            assert "«Новые»" in gates.saved_host_problem(Gate.get_by_id(old))
            with force_locale("en"):
                assert str(gates.saved_host_problem(Gate.get_by_id(foreign))) == (
                    "This controller (address, port and unit id) is already used by another gate")
            assert gates.saved_host_problem(Gate.get_by_id(entry)) is None
        with database.bind_ctx([SchemaVersion]):
            assert 7 in {v.version for v in SchemaVersion.select()}
        assert upgrade(database) == []


def test_a_fresh_database_has_the_index(app):
    with app.app_context():
        assert [i.unique for i in _index(db)] == [True]


def test_the_index_refuses_a_second_gate_when_the_check_is_passed_by(app, make_account):
    with app.app_context():
        manager = make_account()
        t = create_territory(manager, name="ЖК", kind="residential")
        gate = gates.add_gate(t, name="Въезд", host="Gate-1.LOCAL.", port=502)
        assert gate.host == "gate-1.local"  # stored as every spelling of it compares
        # Gate.create is what add_gate writes after its check: without the check, the
        # database itself says no, and the transaction leaves no row behind.
        with pytest.raises(IntegrityError), db.atomic():
            Gate.create(territory=t, name="Двойник", host="gate-1.local", port=502, unit_id=1)
        assert [g.name for g in Gate.select()] == ["Въезд"]
        # Moving another gate onto it by a plain UPDATE is refused too.
        other = gates.add_gate(t, name="Выезд", host="gate-1.local", port=502, unit_id=2)
        with pytest.raises(IntegrityError), db.atomic():
            Gate.update(unit_id=1).where(Gate.id == other.id).execute()
        assert Gate.get_by_id(other.id).unit_id == 2


def test_two_managers_adding_one_controller_at_once_get_one_gate(app, make_account):
    with app.app_context():
        ours = create_territory(make_account(), name="ЖК", kind="residential")
        theirs = create_territory(make_account(), name="Соседи", kind="residential")

    def second():
        with app.app_context():
            try:
                return gates.add_gate(ours, name="Въезд", host="10.0.0.7", port=502, unit_id=4)
            finally:
                db.close()

    outcome = race(app, insert_gate(theirs.id, "Чужие", "10.0.0.7", 502, 4), second)
    error = outcome.get("error")
    assert isinstance(error, DomainError), outcome
    assert (error.field, str(error.message)) == ("host", TAKEN_ELSEWHERE)
    with app.app_context():
        assert [(g.name, g.territory_id) for g in Gate.select()] == [("Чужие", theirs.id)]


def test_two_managers_moving_gates_onto_one_controller_at_once(app, make_account):
    with app.app_context():
        t = create_territory(make_account(), name="ЖК", kind="residential")
        gate = gates.add_gate(t, name="Выезд", host="10.0.0.8", port=502, unit_id=1)

    def second():
        with app.app_context(), force_locale("en"):
            try:
                gates.update_gate(t.id, gate.id, name="Выезд", host="10.0.0.9", port=502,
                                  unit_id=1, direction="exit", poll_ms=200, word_order="big",
                                  enabled=True)
            except DomainError as error:
                return error.field, str(error.message)
            finally:
                db.close()

    outcome = race(app, insert_gate(t.id, "Въезд", "10.0.0.9", 502, 1), second)
    assert outcome.get("result") == (
        "host", "This controller (address, port and unit id) is already used by the gate "
                "“Въезд”"), outcome
    with app.app_context():
        assert Gate.get_by_id(gate.id).host == "10.0.0.8"  # the update left nothing behind


def test_the_cli_adding_a_controller_taken_meanwhile_says_so(app, make_account):
    with app.app_context():
        t = create_territory(make_account(), name="ЖК", kind="residential")

    def second():
        return app.test_cli_runner().invoke(args=[
            "gates", "add", "--territory", t.code, "--name", "Выезд", "--host", "10.0.0.6",
            "--port", "502", "--unit", "1", "--direction", "exit"])

    result = race(app, insert_gate(t.id, "Въезд", "10.0.0.6", 502, 1), second)["result"]
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "Этот контроллер (адрес, порт и номер устройства) уже у ворот «Въезд»" in result.output
    with app.app_context():
        assert [g.name for g in Gate.select()] == ["Въезд"]


@pytest.mark.parametrize(("typed", "stored"), [
    ("10.0.0.5", "10.0.0.5"), (" Gate-1.Local. ", "gate-1.local"), ("FE80::1", "fe80::1"),
    ("2001:db8:0:0:0:0:0:1", "2001:db8::1"), ("controller", "controller"),
])
def test_an_address_is_stored_in_its_one_spelling(typed, stored):
    assert normal_host(typed) == stored


def test_an_address_outside_the_installation_s_controller_networks_is_refused(
        app, make_account):
    """GATE_NETWORKS: a manager cannot point the bridge at the installation's other hosts.
    An IP address is refused at the field; a name is left to the bridge, which checks what
    it resolves to and what it reaches (tests/bridge/test_poller.py)."""
    import ipaddress

    from domain.gates import NOT_IN_NETWORKS, gate_problems

    nets = (ipaddress.ip_network("10.20.0.0/16"),)
    with app.test_request_context():
        t = create_territory(make_account(), name="ЖК", kind="residential")
        settings = dict(name="Въезд", port=502, unit_id=1, direction="entry", poll_ms=200,
                        word_order="big")

        def problem(host, networks=nets):
            return gate_problems(t.id, host=host, networks=networks, **settings).get("host")

        assert problem("10.20.3.4") is None and problem("gate-1.local") is None
        assert problem("::ffff:10.20.3.4") is None  # the same address, IPv4-mapped
        assert problem("10.21.0.1") == NOT_IN_NETWORKS
        assert problem("169.254.169.254") == NOT_IN_NETWORKS
        assert problem("127.0.0.1") == NOT_IN_NETWORKS and problem("::1") == NOT_IN_NETWORKS
        assert problem("127.0.0.1", networks=()) is None  # unset: any address
        with pytest.raises(DomainError) as refused:
            gates.add_gate(t, name="Въезд", host="192.168.1.10", port=502, networks=nets)
        assert refused.value.field == "host"
        assert Gate.select().count() == 0
