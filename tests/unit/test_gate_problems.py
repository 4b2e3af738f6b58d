"""Gate controller problems in the reader's words, the columns that hold them on a database
made before they existed, and the shape of a controller's address."""

from __future__ import annotations

import pytest
from flask_babel import force_locale

from domain.gates import Gate, GateCommand, GateStatus, valid_host
from domain.schema import app_models, upgrade
from domain.territories import Territory


def test_a_database_from_before_kinds_gains_them_and_its_old_rows_read_sensibly(app, scratch):
    database = scratch()
    models = app_models()
    with database.bind_ctx(models):
        database.create_tables(models)
        t = Territory.create(code="123456", name="ЖК", kind="residential")
        gate = Gate.create(territory=t, name="Въезд", host="10.0.0.5")
        GateStatus.create(gate=gate, status="offline",
                          last_error="read IR 16-47: Modbus Error: [Input/Output] No response")
        GateCommand.create(gate=gate, territory=t, status="failed",
                           message="Контроллер не отвечает")
        database.execute_sql("ALTER TABLE gate_status DROP COLUMN error_kind")
        database.execute_sql("ALTER TABLE gate_command DROP COLUMN failure")
    database.close()

    database = scratch()
    with database.bind_ctx(models):
        assert 5 in upgrade(database)
        status, command = GateStatus.get(), GateCommand.get()
        assert (status.error_kind, command.failure) == (None, None)
        with app.test_request_context(), force_locale("en"):
            assert status.error_label == "Controller error"
            # Written for people then; the only words there are.
            assert command.failure_label == "Контроллер не отвечает"
        status.error_kind = "no_answer"
        status.save()
        with app.test_request_context(), force_locale("en"):
            assert GateStatus.get().error_label == "The controller does not respond"


def test_a_gate_fault_names_its_code(app):
    status = GateStatus(error_kind="gate_fault", fault_code=17, last_error="gate_state fault")
    with app.test_request_context():
        assert status.error_label == "Авария ворот, код 17"
        with force_locale("en"):
            assert status.error_label == "Gate fault, code 17"
    assert GateStatus(error_kind=None, last_error=None).error_label is None


@pytest.mark.parametrize(("host", "ok"), [
    ("192.168.1.10", True), ("10.0.0.5", True), ("::1", True), ("fe80::1%eth0", True),
    ("gate-1.local", True), ("Gate-1.Local.", True), ("controller", True),
    ("not a host!! ;rm -rf", False), ("10.0.0.256", False), ("1234", False),
    ("gate_1.local", False), ("-gate.local", False), ("gate-.local", False),
    ("a..b", False), (".", False), ("http://10.0.0.5", False), ("10.0.0.5:502", False),
    ("шлагбаум.local", False), ("a" * 64 + ".local", False), ("[::1]", False),
])
def test_a_controller_address_is_an_ip_or_a_host_name_by_its_shape(host, ok):
    assert valid_host(host) is ok
