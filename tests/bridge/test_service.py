"""The bridge as its own process (`python -m gatebridge`) beside the web, on one database."""

from __future__ import annotations

import datetime as dt
import time
from types import SimpleNamespace

import pytest

from domain import gates
from domain.billing import AccessGrant
from domain.db import db, utcnow
from domain.gates import Gate, GateCommand, GateEvent, GateStatus
from domain.passes import normalize_plate
from domain.territories import Membership, Unit, create_territory
from tests.bridge.conftest import decision, wait_for
from tests.conftest import csrf_token

pytestmark = [pytest.mark.slow, pytest.mark.timing]
HX = {"HX-Request": "true"}


@pytest.fixture
def site(app, make_account, simulator, start_bridge):
    """A territory with a resident and one gate on the simulator, and a running bridge."""
    with app.app_context():
        manager = make_account(phone="+79990000302", surname="Управляева")
        t = create_territory(manager, name="ЖК", kind="residential")
        unit = Unit.create(territory=t, name="Дом 1")
        resident = make_account(phone="+79990000303", surname="Федоров", name="Роман")
        Membership.create(account=resident, territory=t, role="resident", unit=unit)
        AccessGrant.create(account=resident, territory=t, paid_until=utcnow() + dt.timedelta(days=30))
        gate = gates.add_gate(t, name="Въезд", host=simulator.modbus_host,
                              port=simulator.modbus_port, direction="entry", poll_ms=50)
    db.close()
    bridge = start_bridge(app.config["DATABASE_URL"], app.instance_path)

    def online():
        with app.app_context(), db.connection_context():
            return gates.gate_online(gate.id)

    assert wait_for(online, timeout=20), bridge.log()
    return SimpleNamespace(t=t.id, gate=gate.id, resident=resident.id, bridge=bridge)


def test_a_pass_filed_on_the_web_opens_the_gate_within_a_second(
    app, client, auth, simulator, site
):
    seq = simulator.present(type="plate", plate="A777AA77")
    assert decision(simulator, seq) == 4  # unknown: cached for a while by the bridge
    seq = simulator.present(type="plate", plate="A777AA77")
    assert decision(simulator, seq) == 4

    auth.login("+79990000303")
    token = csrf_token(client, f"/t/{site.t}/passes/new")
    response = client.post(f"/t/{site.t}/passes/new",
                           data={"csrf_token": token, "plate": "А777АА77", "period": "day"})
    assert response.status_code == 302
    filed = time.monotonic()
    granted_after = None
    while time.monotonic() - filed < 1.0:
        seq = simulator.present(type="plate", plate="A777AA77")
        if decision(simulator, seq) == 1:
            granted_after = time.monotonic() - filed
            break
        time.sleep(0.05)
    assert granted_after is not None and granted_after < 1.0, site.bridge.log()

    def recorded():
        with app.app_context(), db.connection_context():
            return list(GateEvent.select().where(GateEvent.source == "bridge")
                        .order_by(GateEvent.id))

    events = wait_for(lambda: (rows := recorded()) and rows[-1].code == 1 and rows)
    assert events, site.bridge.log()
    assert [e.code for e in events][:2] == [4, 4] and events[-1].code == 1
    assert (events[-1].reason, events[-1].account_id, events[-1].credential,
            events[-1].kind, events[-1].gate_id) == (
        "pass_valid", site.resident, normalize_plate("А777АА77"), "plate", site.gate)


def test_phone_open_reaches_the_controller_and_the_page_within_a_second(
    app, client, auth, simulator, site
):
    before = simulator.state()
    auth.login("+79990000303")
    token = csrf_token(client, "/")
    pressed = time.monotonic()
    body = client.post(f"/t/{site.t}/gates/{site.gate}/press", data={"csrf_token": token},
                       headers=HX).get_data(as_text=True)
    assert "every 300ms" in body, body
    with app.app_context(), db.connection_context():
        command = GateCommand.get()
    url = f"/t/{site.t}/gates/commands/{command.id}"
    result = wait_for(lambda: (r := client.get(url, headers=HX)).status_code == 286 and r,
                      timeout=2, interval=0.3)
    assert result, site.bridge.log()
    assert "Открыто" in result.get_data(as_text=True)
    assert time.monotonic() - pressed < 1.3
    after = simulator.state()
    assert after["command_seq_echo"] != before["command_seq_echo"]
    assert after["last_command"]["reason"] == 1  # phone
    assert after["openings"] == before["openings"] + 1
    with app.app_context(), db.connection_context():
        event = GateEvent.get(GateEvent.kind == "phone")
        assert (event.code, event.actor_id, event.gate_id) == (1, site.resident, site.gate)


def test_state_is_stored_for_the_console_and_new_gates_are_picked_up(
    app, simulator, start_simulator, site
):
    with app.app_context(), db.connection_context():
        row = GateStatus.get(GateStatus.gate == site.gate)
        assert row.status == "online" and row.heartbeat is not None and row.gate_state == 1
        second = start_simulator()
        added = gates.add_gate(Gate.get_by_id(site.gate).territory, name="Выезд",
                               host=second.modbus_host, port=second.modbus_port,
                               direction="exit", poll_ms=50)

    def online():
        with app.app_context(), db.connection_context():
            return gates.gate_online(added.id)

    assert wait_for(online, timeout=10), site.bridge.log()
    seq = second.present(type="card", card=99, bit_length=26)
    assert decision(second, seq) == 1  # an exit gate: free, without the database


def test_a_dead_controller_is_stored_as_a_kind_of_problem_with_its_detail(
    app, client, auth, site
):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with app.app_context(), db.connection_context():
        dead = gates.add_gate(Gate.get_by_id(site.gate).territory, name="Калитка",
                              host="127.0.0.1", port=free, poll_ms=50)

    def stored():
        with app.app_context(), db.connection_context():
            row = GateStatus.get_or_none(GateStatus.gate == dead.id)
            return row if row is not None and row.error_kind else None

    row = wait_for(stored, timeout=10)
    assert row, site.bridge.log()
    assert row.error_kind == "unreachable" and "connect" in row.last_error
    auth.login("+79990000302")
    html = client.get(f"/t/{site.t}/gates/states", headers=HX).get_data(as_text=True)
    assert "Нет связи с контроллером" in html


def test_a_pin_is_refused_and_logged_as_a_pin(app, simulator, site):
    seq = simulator.present(type="pin", card=1234)
    assert decision(simulator, seq) == 4, site.bridge.log()

    def recorded():
        with app.app_context(), db.connection_context():
            return list(GateEvent.select().where(GateEvent.source == "bridge"))

    events = wait_for(recorded)
    assert events, site.bridge.log()
    event = events[-1]
    # Neither a card nor a plate, and the PIN itself (a secret) is not kept in the log.
    assert (event.kind, event.reason, event.code, event.credential, event.gate_id) == (
        "pin", "pin_unsupported", 4, "", site.gate)
    with app.test_request_context():
        assert (event.kind_label, event.reason_label) == ("PIN", "PIN не поддерживается")


def test_a_gate_switched_off_keeps_its_controller_across_a_bridge_restart(
    app, make_account, simulator, start_bridge, site
):
    """Known weak at stop 20: a switched-off gate's claim on its controller lived only in the
    bridge's memory. Restarted, the bridge let another territory's gate, naming the same
    device by another spelling, take the barrier. The identity reached is stored with the
    gate's status, and the next bridge keeps it for the switched-off gate."""

    def stored_identity():
        with app.app_context(), db.connection_context():
            row = GateStatus.get_or_none(GateStatus.gate == site.gate)
            return row.reached if row is not None else None

    assert wait_for(stored_identity, timeout=10), site.bridge.log()
    with app.app_context(), db.connection_context():
        Gate.update(enabled=False).where(Gate.id == site.gate).execute()
    site.bridge.stop()
    with app.app_context(), db.connection_context():
        stranger = make_account(phone="+79990000399")
        other = create_territory(stranger, name="Чужая", kind="residential")
        intruder = gates.add_gate(other, name="Чужой въезд", host="localhost",
                                  port=simulator.modbus_port, direction="entry", poll_ms=50)
    db.close()
    bridge = start_bridge(app.config["DATABASE_URL"], app.instance_path)

    def refused():
        with app.app_context(), db.connection_context():
            row = GateStatus.get_or_none(GateStatus.gate == intruder.id)
            return row is not None and row.error_kind == "controller_taken"

    assert wait_for(refused, timeout=20), bridge.log()
    simulator.present(type="card", card=77, bit_length=26)
    time.sleep(1.0)
    with app.app_context(), db.connection_context():
        assert not GateEvent.select().where(GateEvent.territory == other.id).exists()
        assert not gates.gate_online(intruder.id)
