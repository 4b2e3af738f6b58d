"""«Открыть» through the database, the command widget, the gate console and access versions."""

from __future__ import annotations

import datetime as dt
import re
from types import SimpleNamespace

import pytest

from domain import admin, gates, passes, territories, versions
from domain.billing import AccessGrant
from domain.db import utcnow
from domain.errors import DomainError
from domain.gates import Gate, GateCommand, GateEvent, record_event
from domain.territories import Membership, Territory, Unit, create_territory
from tests.conftest import csrf_token
from tests.gate_race import insert_gate, race

HX = {"HX-Request": "true"}


@pytest.fixture
def world(app, make_account):
    with app.app_context():
        manager = make_account(phone="+79990000202", surname="Управляева", name="Мария")
        t = create_territory(manager, name="ЖК", kind="residential")
        unit = Unit.create(territory=t, name="Дом 1")
        resident = make_account(phone="+79990000203", surname="Федоров", name="Роман")
        operator = make_account(phone="+79990000205", surname="Охранов", name="Олег")
        Membership.create(account=resident, territory=t, role="resident", unit=unit)
        Membership.create(account=operator, territory=t, role="operator")
        # The phone's «Открыть» needs paid app access: the resident has it, the manager not.
        AccessGrant.create(account=resident, territory=t, paid_until=utcnow() + dt.timedelta(days=30))
        stranger = make_account(phone="+79990000206")
        other = create_territory(stranger, name="Другая", kind="residential")
        gate = Gate.create(territory=t, name="Въезд", host="127.0.0.1", port=5020)
        off = Gate.create(territory=t, name="Старые", host="127.0.0.1", port=5022, enabled=False)
        other_gate = Gate.create(territory=other, name="Чужие", host="127.0.0.1", port=5021)
        return SimpleNamespace(t=t.id, other=other.id, manager=manager.id, resident=resident.id,
                               operator=operator.id, stranger=stranger.id, gate=gate.id,
                               off=off.id, other_gate=other_gate.id, unit=unit.id)


def _online(gate_id, seen=None):
    gates.save_status(gate_id, status="online", last_seen_at=seen or utcnow(), heartbeat=7,
                      gate_state=1, fault_code=0, last_error=None)


def _press(client, tid, gid, headers=HX):
    token = csrf_token(client, "/")
    return client.post(f"/t/{tid}/gates/{gid}/press", data={"csrf_token": token},
                       headers=headers)


def test_home_shows_one_button_per_usable_gate(client, auth, world):
    auth.login("+79990000203")
    html = client.get(f"/t/{world.t}/").get_data(as_text=True)
    assert 'id="gate-actions"' in html
    assert f"/t/{world.t}/gates/{world.gate}/press" in html
    assert f"/gates/{world.off}/press" not in html  # disabled
    assert f"/gates/{world.other_gate}/press" not in html


def test_blocked_member_gets_no_buttons(app, client, auth, world):
    auth.login("+79990000203")
    with app.app_context():
        from domain.accounts import Account

        # A blocked account cannot sign in, so check the partial's helper directly.
        Account.update(blocked=True).where(Account.id == world.resident).execute()
        from blueprints.gates.routes import usable_gates

        member = Membership.get(Membership.account == world.resident)
        assert usable_gates(member) == []
        Account.update(blocked=False).where(Account.id == world.resident).execute()
        assert [g.id for g in usable_gates(member)] == [world.gate]


def test_member_without_paid_app_access_gets_no_button_and_a_press_is_refused(
        app, client, auth, world):
    with app.app_context():
        _online(world.gate)
        from blueprints.gates.routes import usable_gates

        manager = Membership.get(Membership.account == world.manager)
        assert usable_gates(manager) == []
    auth.login("+79990000202")
    body = _press(client, world.t, world.gate).get_data(as_text=True)
    assert "Не открыто" in body and "Доступ по приложению не оплачен" in body
    with app.app_context():
        assert GateCommand.select().where(GateCommand.status == "pending").count() == 0
        assert GateEvent.get().reason == "not_paid"


def test_press_on_an_offline_gate_fails_at_once_and_is_an_event(app, client, auth, world):
    auth.login("+79990000203")
    response = _press(client, world.t, world.gate)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body
    assert "Не открыто" in body and "Ворота не в сети — открыть сейчас нельзя" in body
    assert "hx-trigger" not in body  # nothing to wait for
    with app.app_context():
        assert GateCommand.get().status == "failed"
        event = GateEvent.get()
        assert (event.kind, event.code, event.reason, event.actor_id, event.gate_id) == (
            "phone", 6, "gate_offline", world.resident, world.gate)


def _event_line(client, tid):
    html = client.get(f"/t/{tid}/events").get_data(as_text=True)
    line = re.search(r'<span class="event-why muted">(.*?)</span>', html, re.S)
    assert line, html
    return " ".join(line.group(1).split())


def test_a_failed_press_says_the_controller_was_away_and_nobody_opened(
        app, client, auth, world):
    auth.login("+79990000203")
    _press(client, world.t, world.gate)
    auth.logout()
    auth.login("+79990000202")
    line = _event_line(client, world.t)
    assert "Контроллер не на связи" in line and "«Открыть» нажал(а) Федоров" in line
    assert "Система недоступна" not in line and "открыл(а)" not in line
    client.post("/lang/en", data={"csrf_token": csrf_token(client, "/")})
    line = _event_line(client, world.t)
    assert "Controller offline" in line and "“Open” pressed by" in line
    assert "opened by" not in line


def test_a_press_the_controller_does_not_carry_out_is_not_an_opening(app, client, auth, world):
    with app.app_context():
        _online(world.gate)
    auth.login("+79990000203")
    _press(client, world.t, world.gate)
    with app.app_context():
        command = GateCommand.get()
        assert gates.finish_command(command.id, False, "write HR 120-123: exception reply 4",
                                    failure="rejected")
        assert GateEvent.get().reason == "gate_failed"
    body = client.get(f"/t/{world.t}/gates/commands/{command.id}", headers=HX).get_data(
        as_text=True)
    assert "контроллер отклонил команду" in body and "exception reply" not in body
    client.post("/lang/en", data={"csrf_token": csrf_token(client, "/")})
    body = client.get(f"/t/{world.t}/gates/commands/{command.id}", headers=HX).get_data(
        as_text=True)
    assert "the controller refused the command" in body
    auth.logout()
    auth.login("+79990000202")
    client.post("/lang/en", data={"csrf_token": csrf_token(client, "/")})
    line = _event_line(client, world.t)
    assert "The controller did not open the gate" in line and "opened by" not in line


def test_a_command_failed_before_failures_had_keys_shows_its_message(app, client, auth, world):
    with app.app_context():
        command = GateCommand.create(gate=world.gate, territory=world.t, account=world.resident,
                                     status="failed", message="Контроллер не отвечает")
    auth.login("+79990000203")
    body = client.get(f"/t/{world.t}/gates/commands/{command.id}", headers=HX).get_data(
        as_text=True)
    assert "Не открыто" in body and "Контроллер не отвечает" in body


def test_press_seen_long_ago_counts_as_offline(app, client, auth, world):
    with app.app_context():
        _online(world.gate, seen=utcnow() - dt.timedelta(seconds=4))
    auth.login("+79990000203")
    assert "Ворота не в сети" in _press(client, world.t, world.gate).get_data(as_text=True)


def test_press_on_an_online_gate_polls_until_the_bridge_answers(app, client, auth, world):
    with app.app_context():
        _online(world.gate)
    auth.login("+79990000203")
    body = _press(client, world.t, world.gate).get_data(as_text=True)
    assert 'hx-trigger="every 300ms"' in body and "Открываем" in body
    with app.app_context():
        command = GateCommand.get()
        assert (command.status, command.reason, command.account_id) == (
            "pending", "phone", world.resident)
    url = f"/t/{world.t}/gates/commands/{command.id}"
    waiting = client.get(url, headers=HX)
    assert waiting.status_code == 200 and "every 300ms" in waiting.get_data(as_text=True)
    with app.app_context():
        assert gates.finish_command(command.id, True, "Открыто")
        assert not gates.finish_command(command.id, False, "again")  # only once
    done = client.get(url, headers=HX)
    text = done.get_data(as_text=True)
    assert done.status_code == 286 and "Открыто" in text and "hx-trigger" not in text
    with app.app_context():
        event = GateEvent.get()
        assert (event.kind, event.code, event.reason, event.account_id, event.actor_id) == (
            "phone", 1, "member", world.resident, world.resident)


def test_a_second_tap_before_the_answer_is_the_same_press(app, client, auth, world):
    """Audit (stop 23): a double tap on «Открыть» (or taps on a slow network) sent a
    command each, and the controller opened the barrier for each. A person's press while
    their last one on that gate waits for the bridge is that press; another person's is
    their own; once answered, the next press is a new one."""
    with app.app_context():
        _online(world.gate)
    auth.login("+79990000203")
    first, again = (_press(client, world.t, world.gate).get_data(as_text=True) for _ in "12")
    with app.app_context():
        [command] = GateCommand.select()
    assert f'id="gate-command-{command.id}"' in first and f'id="gate-command-{command.id}"' in again
    auth.logout()
    auth.login("+79990000205")  # the guard, at the same moment: a press of their own
    assert client.post(f"/t/{world.t}/gates/{world.gate}/open", headers=HX, data={
        "csrf_token": csrf_token(client, f"/t/{world.t}/check")}).status_code == 200
    with app.app_context():
        assert GateCommand.select().count() == 2
        assert gates.finish_command(command.id, True, "Открыто")
    auth.logout()
    auth.login("+79990000203")
    _press(client, world.t, world.gate)
    with app.app_context():
        assert GateCommand.select().where(GateCommand.account == world.resident).count() == 2
    # The button rests while a press is on its way, and a tap meanwhile is dropped.
    home = client.get(f"/t/{world.t}/").get_data(as_text=True)
    assert 'hx-disabled-elt="find button" hx-sync="this:drop"' in home


def test_a_gate_is_not_deleted_under_a_press_on_its_way(app, client, auth, world):
    """Audit (stop 23): deleting a gate took its pending command with it, and the opening
    the controller made a moment later was logged nowhere."""
    with app.app_context():
        _online(world.gate)
    auth.login("+79990000203")
    _press(client, world.t, world.gate)
    auth.logout()
    auth.login("+79990000202")
    token = csrf_token(client, f"/t/{world.t}/gates")
    refused = client.post(f"/t/{world.t}/gates/{world.gate}/delete", data={"csrf_token": token},
                          follow_redirects=True).get_data(as_text=True)
    assert "Ворота сейчас открываются — удалите их через несколько секунд" in refused
    with app.app_context():
        assert Gate.get_or_none(Gate.id == world.gate) is not None
        command = GateCommand.get()
        assert gates.finish_command(command.id, True, "Открыто")
        before = versions.versions().get(world.t, 0)
    client.post(f"/t/{world.t}/gates/{world.gate}/delete", data={"csrf_token": token})
    with app.app_context():
        assert Gate.get_or_none(Gate.id == world.gate) is None
        assert GateEvent.get().reason == "member"  # the opening stays in the log
        assert versions.versions()[world.t] > before  # the bridge lets go at once


def test_a_gate_is_not_deleted_under_a_press_committed_meanwhile(app, world):
    """Review (stop 23): the deletion's check ran before a press that held the gate's row
    committed its command, then the deletion went on and took the command along. It now
    waits for the gate's row as a press does, and sees the command."""
    def press(other):  # what request_open writes under its lock, not committed yet
        other.execute(Gate.select(Gate.id).where(Gate.id == world.gate).for_update()
                      if other.for_update else Gate.select(Gate.id).where(Gate.id == world.gate))
        other.execute(GateCommand.insert(gate=world.gate, territory=world.t,
                                         account=world.resident, reason="phone",
                                         created_at=utcnow()))

    def delete():
        with app.app_context():
            return gates.delete_gate(world.t, world.gate)

    outcome = race(app, press, delete)
    assert isinstance(outcome.get("error"), DomainError), outcome
    with app.app_context():
        assert Gate.get_or_none(Gate.id == world.gate) is not None
        assert GateCommand.select().count() == 1


def test_a_command_nobody_answers_fails_and_never_fires(app, client, auth, world):
    with app.app_context():
        _online(world.gate)
    auth.login("+79990000203")
    _press(client, world.t, world.gate)
    with app.app_context():
        command = GateCommand.get()
        GateCommand.update(created_at=utcnow() - dt.timedelta(seconds=5)).execute()
    response = client.get(f"/t/{world.t}/gates/commands/{command.id}", headers=HX)
    assert response.status_code == 286
    assert "Ворота не ответили вовремя" in response.get_data(as_text=True)
    with app.app_context():
        assert GateCommand.get().status == "failed"


def test_press_and_commands_are_isolated(app, client, auth, world):
    with app.app_context():
        _online(world.other_gate)
        other_cmd = GateCommand.create(gate=world.other_gate, territory=world.other,
                                       account=world.stranger)
        mine = GateCommand.create(gate=world.gate, territory=world.t, account=world.operator)
    auth.login("+79990000203")
    assert _press(client, world.t, world.other_gate).status_code == 404
    assert _press(client, world.other, world.other_gate).status_code == 404
    assert _press(client, world.t, world.off).status_code == 404
    assert client.get(f"/t/{world.other}/gates/commands/{other_cmd.id}").status_code == 404
    # Someone else's command in my own territory is not mine to watch.
    assert client.get(f"/t/{world.t}/gates/commands/{mine.id}").status_code == 404


def test_operator_open_goes_through_the_same_command_path(app, client, auth, world):
    with app.app_context():
        _online(world.gate)
    auth.login("+79990000205")
    token = csrf_token(client, f"/t/{world.t}/check")
    response = client.post(f"/t/{world.t}/gates/{world.gate}/open",
                           data={"csrf_token": token}, headers=HX)
    assert 'hx-trigger="every 300ms"' in response.get_data(as_text=True)
    with app.app_context():
        assert GateCommand.get().reason == "operator"


# --- The console --------------------------------------------------------------------------


def _gate_form(**overrides):
    data = {"name": "Шлагбаум", "direction": "entry", "host": "10.0.0.5", "port": "502",
            "unit_id": "3", "poll_ms": "250", "word_order": "little", "enabled": "y"}
    data.update(overrides)
    return data


def test_the_form_and_the_cli_keep_gates_inside_the_controller_networks(
        app, client, auth, world):
    """GATE_NETWORKS set: an address outside is refused at its field, the rest kept; the CLI
    refuses it in one line."""
    import ipaddress

    app.config["GATE_NETWORKS"] = (ipaddress.ip_network("10.0.0.0/24"),)
    auth.login("+79990000202")
    token = csrf_token(client, f"/t/{world.t}/gates/new")
    outside = client.post(f"/t/{world.t}/gates/new",
                          data={"csrf_token": token, **_gate_form(host="192.168.0.9")})
    html = outside.get_data(as_text=True)
    assert outside.status_code == 422
    assert re.search(r'id="host-error">Этот адрес не из сети контроллеров', html)
    assert 'value="192.168.0.9"' in html and 'value="Шлагбаум"' in html
    inside = client.post(f"/t/{world.t}/gates/new", data={"csrf_token": token, **_gate_form()})
    assert inside.status_code == 302
    with app.app_context():
        code = Territory.get_by_id(world.t).display_code
    result = app.test_cli_runner().invoke(args=[
        "gates", "add", "--territory", code, "--name", "Калитка", "--host", "172.16.0.1",
        "--port", "502", "--unit", "1", "--direction", "exit"])
    assert result.exit_code == 1 and "Этот адрес не из сети контроллеров" in result.output


def test_manager_adds_and_edits_a_gate(app, client, auth, world):
    auth.login("+79990000202")
    token = csrf_token(client, f"/t/{world.t}/gates/new")
    response = client.post(f"/t/{world.t}/gates/new", data={"csrf_token": token, **_gate_form()})
    assert response.status_code == 302
    with app.app_context():
        gate = Gate.get(Gate.name == "Шлагбаум")
        assert (gate.territory_id, gate.direction, gate.host, gate.port, gate.unit_id,
                gate.poll_ms, gate.word_order, gate.enabled) == (
            world.t, "entry", "10.0.0.5", 502, 3, 250, "little", True)
    bad = client.post(f"/t/{world.t}/gates/new",
                      data={"csrf_token": token, **_gate_form(port="70000", name="Ещё")})
    assert bad.status_code == 422 and "Порт — от 1 до 65535" in bad.get_data(as_text=True)
    assert 'value="Ещё"' in bad.get_data(as_text=True)
    # Letters for a number: one message, the one that says what to type, under the field.
    letters = client.post(f"/t/{world.t}/gates/new",
                          data={"csrf_token": token, **_gate_form(port="пятьсот", name="Ещё")})
    html = letters.get_data(as_text=True)
    assert letters.status_code == 422 and 'value="пятьсот"' in html
    assert html.count('id="port-error"') == 1
    assert re.search(r'id="port-error">Порт — от 1 до 65535</p>', html)
    edit = f"/t/{world.t}/gates/{gate.id}/edit"
    form = _gate_form(name="Шлагбаум 2", direction="both", word_order="big")
    del form["enabled"]
    assert client.post(edit, data={"csrf_token": token, **form}).status_code == 302
    with app.app_context():
        gate = Gate.get_by_id(gate.id)
        assert (gate.name, gate.direction, gate.word_order, gate.enabled) == (
            "Шлагбаум 2", "both", "big", False)


def test_a_gate_takes_the_serial_printed_on_its_controller_or_none(app, client, auth, world):
    """«Серийный номер контроллера»: optional; a number in IR 2-3's range, refused at its
    field otherwise with what was typed kept; the CLI's --serial alike."""
    auth.login("+79990000202")
    token = csrf_token(client, f"/t/{world.t}/gates/new")
    assert client.post(f"/t/{world.t}/gates/new",
                       data={"csrf_token": token, **_gate_form()}).status_code == 302
    for typed in ("двенадцать", "-1", "4294967296"):
        bad = client.post(f"/t/{world.t}/gates/new", data={"csrf_token": token, **_gate_form(
            name="Калитка", host="10.0.0.6", serial=typed)})
        html = bad.get_data(as_text=True)
        assert bad.status_code == 422, typed
        assert re.search(r'id="serial-error">Серийный номер — число от 0 до 4294967295</p>',
                         html), typed
        assert f'value="{typed}"' in html and 'value="Калитка"' in html
    assert client.post(f"/t/{world.t}/gates/new", data={"csrf_token": token, **_gate_form(
        name="Калитка", host="10.0.0.6", serial="4294967295")}).status_code == 302
    with app.app_context():
        plain, bound = Gate.get(Gate.name == "Шлагбаум"), Gate.get(Gate.name == "Калитка")
        assert (plain.serial, bound.serial) == (None, 4294967295)
    edit = f"/t/{world.t}/gates/{bound.id}/edit"
    assert 'value="4294967295"' in client.get(edit).get_data(as_text=True)
    states = client.get(f"/t/{world.t}/gates/states", headers=HX).get_data(as_text=True)
    assert "10.0.0.6:502 · устройство 3 · серийный номер 4294967295" in states
    assert states.count("серийный номер") == 1  # the gate given one only
    cleared = _gate_form(name="Калитка", host="10.0.0.6", serial="")
    assert client.post(edit, data={"csrf_token": token, **cleared}).status_code == 302
    with app.app_context():
        assert Gate.get_by_id(bound.id).serial is None
        code = Territory.get_by_id(world.t).display_code
    runner = app.test_cli_runner()
    args = ["gates", "add", "--territory", code, "--name", "Выезд 2", "--host", "10.0.0.7",
            "--port", "502", "--unit", "1", "--direction", "exit"]
    refused = runner.invoke(args=[*args, "--serial", "-5"])
    assert refused.exit_code == 1 and "Серийный номер — число от 0 до 4294967295" in refused.output
    assert runner.invoke(args=[*args, "--serial", "12345678"]).exit_code == 0
    with app.app_context():
        assert Gate.get(Gate.name == "Выезд 2").serial == 12345678


def test_gate_form_wants_a_real_address_and_one_gate_per_controller(app, client, auth, world):
    auth.login("+79990000202")
    url = f"/t/{world.t}/gates/new"
    token = csrf_token(client, url)

    def post(**overrides):
        return client.post(url, data={"csrf_token": token, **_gate_form(**overrides)})

    nonsense = post(host="not a host!! ;rm -rf")
    html = nonsense.get_data(as_text=True)
    assert nonsense.status_code == 422 and 'value="not a host!! ;rm -rf"' in html
    assert re.search(r'id="host-error">Адрес контроллера — IP-адрес или имя хоста', html)
    for host in ("10.0.0.256", "gate_1.local", "-gate.local", "http://10.0.0.5"):
        assert post(host=host).status_code == 422, host
    # «Въезд» is on 127.0.0.1:5020, unit 1: the same controller again is refused, by name.
    twin = post(name="Второй", host="127.0.0.1", port="5020", unit_id="1")
    html = twin.get_data(as_text=True)
    assert twin.status_code == 422 and 'value="Второй"' in html
    assert re.search(r'id="host-error">[^<]*«Въезд»', html)
    assert post(name="Второй", host="127.0.0.1", port="5020", unit_id="1",
                word_order="big").status_code == 422
    with app.app_context():
        assert Gate.select().where(Gate.territory == world.t).count() == 2
    # Another territory's controller is refused too (both gates would answer its events, and
    # the first answer wins: passes here would open the barrier there), without its name.
    theirs = post(name="Третий", host="127.0.0.1", port="5021", unit_id="1")
    html = theirs.get_data(as_text=True)
    assert theirs.status_code == 422 and "уже подключён к другим воротам" in html
    assert "Чужие" not in html
    # Another unit behind the same address, a host name and an IPv6 address are all fine.
    assert post(name="Второй", host="127.0.0.1", port="5020", unit_id="2").status_code == 302
    assert post(name="Третий", host="127.0.0.1", port="5029", unit_id="1").status_code == 302
    assert post(name="Четвёртый", host="Gate-4.local").status_code == 302
    assert post(name="Пятый", host="fe80::1").status_code == 302
    # Editing a gate keeps its own controller; moving it onto another's is refused.
    with app.app_context():
        second = Gate.get(Gate.name == "Второй")
    edit = f"/t/{world.t}/gates/{second.id}/edit"
    same = _gate_form(name="Второй", host="127.0.0.1", port="5020", unit_id="2")
    assert client.post(edit, data={"csrf_token": token, **same}).status_code == 302
    onto = dict(same, unit_id="1")
    moved = client.post(edit, data={"csrf_token": token, **onto})
    assert moved.status_code == 422 and "«Въезд»" in moved.get_data(as_text=True)


def test_gate_form_shows_every_field_error_at_once(client, auth, world):
    auth.login("+79990000202")
    url = f"/t/{world.t}/gates/new"
    token = csrf_token(client, url)
    both = client.post(url, data={"csrf_token": token, **_gate_form(name="", host="")})
    html = both.get_data(as_text=True)
    assert both.status_code == 422
    assert 'id="name-error">Введите название</p>' in html
    assert 'id="host-error">Укажите адрес контроллера</p>' in html
    # A blank name and a controller already in use: both said on the first submit.
    again = client.post(url, data={"csrf_token": token, **_gate_form(
        name=" ", host="127.0.0.1", port="5020", unit_id="1", poll_ms="5")})
    html = again.get_data(as_text=True)
    assert 'id="name-error">Введите название</p>' in html
    assert re.search(r'id="host-error">[^<]*«Въезд»', html)
    assert 'id="poll_ms-error">Опрос — от 20 до 60000 мс</p>' in html


def test_state_table_polls_itself_and_shows_the_controller(app, client, auth, world):
    with app.app_context():
        gates.save_status(world.gate, status="fault", last_seen_at=utcnow(), heartbeat=42,
                          gate_state=6, fault_code=3, error_kind="gate_fault",
                          last_error="gate_state fault, fault_code 3")
    auth.login("+79990000202")
    html = client.get(f"/t/{world.t}/gates").get_data(as_text=True)
    assert 'hx-trigger="every 1s"' in html and "Чужие" not in html
    part = client.get(f"/t/{world.t}/gates/states", headers=HX)
    body = part.get_data(as_text=True)
    assert "<html" not in body
    assert f'id="gate-row-{world.gate}" data-status="fault"' in body
    assert "42" in body and "авария" in body and "Авария ворот, код 3" in body
    assert f'id="gate-row-{world.off}" data-status="disabled"' in body
    # Each controller's events, as SPEC §7 has the manager see them: the log of that gate.
    log = f'href="/t/{world.t}/events?gate={world.gate}"'
    assert log in body
    filtered = client.get(f"/t/{world.t}/events?gate={world.gate}")
    assert filtered.status_code == 200


def _errors_cell(html, gate_id):
    row = re.search(rf'id="gate-row-{gate_id}".*?</tr>', html, re.S)
    cell = re.search(r'<td data-label="[^"]*">((?:(?!<td).)*?)</td>\s*</tr>', row.group(0), re.S)
    return " ".join(cell.group(1).split())


@pytest.mark.parametrize(("kind", "detail", "russian", "english"), [
    ("unreachable", "connect: [Errno 111] Connection refused", "Нет связи с контроллером",
     "Cannot connect to the controller"),
    ("no_answer", "read IR 16-47: Modbus Error: [Input/Output] No response received",
     "Контроллер не отвечает", "The controller does not respond"),
    ("stuck", "heartbeat 7 unchanged for 5 s", "Контроллер завис: пульс не меняется",
     "The controller has hung: its heartbeat does not change"),
    ("wrong_serial", "serial differs from the one given for the gate",
     "По этому адресу отвечает контроллер с другим серийным номером: проверьте адрес и "
     "серийный номер", "A controller with another serial number answers at this address: "
     "check the address and the serial number"),
])
def test_controller_errors_are_told_in_the_readers_language(
        app, client, auth, world, kind, detail, russian, english):
    with app.app_context():
        gates.save_status(world.gate, status="fault", last_seen_at=utcnow(), heartbeat=7,
                          gate_state=1, fault_code=0, error_kind=kind, last_error=detail)
    auth.login("+79990000202")
    cell = _errors_cell(client.get(f"/t/{world.t}/gates/states", headers=HX).get_data(
        as_text=True), world.gate)
    # The words for the manager; the library's text only as a tooltip for whoever digs.
    assert f">{russian}</span>" in cell and f'title="{detail}"' in cell, cell
    client.post("/lang/en", data={"csrf_token": csrf_token(client, "/")})
    cell = _errors_cell(client.get(f"/t/{world.t}/gates/states", headers=HX).get_data(
        as_text=True), world.gate)
    assert f">{english}</span>" in cell and russian not in cell, cell


def test_an_error_stored_as_text_before_kinds_still_reads_sensibly(app, client, auth, world):
    with app.app_context():
        gates.save_status(world.gate, status="offline", last_seen_at=None, heartbeat=None,
                          gate_state=0, fault_code=0, last_error="connect: [Errno 111] refused")
    auth.login("+79990000202")
    cell = _errors_cell(client.get(f"/t/{world.t}/gates/states", headers=HX).get_data(
        as_text=True), world.gate)
    assert ">Ошибка контроллера</span>" in cell and 'title="connect: [Errno 111] refused"' in cell
    client.post("/lang/en", data={"csrf_token": csrf_token(client, "/")})
    cell = _errors_cell(client.get(f"/t/{world.t}/gates/states", headers=HX).get_data(
        as_text=True), world.gate)
    assert ">Controller error</span>" in cell


def test_console_is_for_managers_of_this_territory_only(client, auth, world):
    auth.login("+79990000205")  # operator
    for path in ("gates", "gates/states", "gates/new", f"gates/{world.gate}/edit"):
        assert client.get(f"/t/{world.t}/{path}").status_code == 404, path
    auth.logout()
    auth.login("+79990000202")
    assert client.get(f"/t/{world.t}/gates/{world.other_gate}/edit").status_code == 404
    assert client.get(f"/t/{world.other}/gates").status_code == 404


# --- Access versions ---------------------------------------------------------------------


def test_every_access_change_bumps_the_territory_version(app, world):
    with app.app_context():
        def version():
            return versions.versions().get(world.t, 0)

        resident = Membership.get(Membership.account == world.resident)
        before = version()
        filed = passes.file_pass(resident, plate="А777АА77",
                                 valid_to=utcnow() + dt.timedelta(days=1))
        assert version() == before + 1
        passes.revoke_pass(resident, filed.id)
        assert version() == before + 2
        territory = territories.Territory.get_by_id(world.t)
        territories.update_settings(territory, name="ЖК", address="", timezone=territory.timezone,
                                    passes_enabled=True, app_access_free=True, free_exit=False)
        assert version() == before + 3
        manager = territories.Membership.get(territories.Membership.account == world.manager)
        admin.set_blocked(manager.account, world.resident, True)
        assert version() == before + 4
        territories.update_member(territory, resident.id, role="resident", unit_id=world.unit)
        assert version() == before + 5
        territories.remove_member(territory, resident.id)
        assert version() == before + 6
        from domain.accounts import Account

        territories.attach(Account.get_by_id(world.resident), territory, "operator")
        assert version() == before + 7
        # A failed change leaves the version alone (same transaction).
        with pytest.raises(DomainError):
            passes.file_pass(territories.Membership.get(territories.Membership.account
                                                        == world.operator), plate="А777АА77",
                             valid_to=utcnow() + dt.timedelta(days=1))
        assert version() == before + 7


def test_two_managers_adding_one_controller_at_once_see_the_field_error(
        app, client, auth, world):
    # The other territory's manager saves «10.0.0.7:502, 3» first; this form's check ran
    # before that committed (PostgreSQL: its INSERT then meets the unique index).
    auth.login("+79990000202")
    url = f"/t/{world.t}/gates/new"
    token = csrf_token(client, url)
    form = _gate_form(name="Въезд 2", host="10.0.0.7")

    def second():
        return client.post(url, data={"csrf_token": token, **form})

    outcome = race(app, insert_gate(world.other, "Чужие 2", "10.0.0.7", 502, 3), second)
    response = outcome["result"]
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and 'value="Въезд 2"' in html
    assert re.search(r'id="host-error">Этот контроллер \(адрес, порт и номер устройства\) '
                     r"уже подключён к другим воротам<", html)
    assert "Чужие" not in html
    with app.app_context():
        assert Gate.select().where(Gate.host == "10.0.0.7").count() == 1
    # The same, in English, when moving a gate of ours onto a controller taken meanwhile.
    client.post("/lang/en", data={"csrf_token": csrf_token(client, "/")})
    edit = f"/t/{world.t}/gates/{world.gate}/edit"
    moved = _gate_form(name="Въезд", host="10.0.0.8", port="502", unit_id="3")

    def second_edit():
        return client.post(edit, data={"csrf_token": token, **moved})

    outcome = race(app, insert_gate(world.t, "Калитка", "10.0.0.8", 502, 3), second_edit)
    html = outcome["result"].get_data(as_text=True)
    assert outcome["result"].status_code == 422
    assert ('id="host-error">This controller (address, port and unit id) is already used by '
            "the gate “Калитка”<") in html
    with app.app_context():
        assert Gate.get_by_id(world.gate).host == "127.0.0.1"


def test_a_gate_moved_off_a_shared_controller_asks_for_another(app, client, auth, world):
    # Migration 7 leaves such a gate disabled, its address marked «#<id> <address>».
    with app.app_context():
        moved = Gate.create(territory=world.t, name="Калитка", host="#99 127.0.0.1",
                            port=5020, enabled=False)
    auth.login("+79990000202")
    edit = f"/t/{world.t}/gates/{moved.id}/edit"
    opened = client.get(edit)
    html = opened.get_data(as_text=True)
    assert opened.status_code == 200
    assert re.search(r'id="host-error">[^<]*уже у ворот «Въезд»', html)
    assert 'value="127.0.0.1"' in html  # the address as it was, not «#99 …»
    index = client.get(f"/t/{world.t}/gates").get_data(as_text=True)
    assert "127.0.0.1:5020" in index and "#99" not in index
    assert "Контроллер был и у других ворот: укажите адрес заново" in index
    token = csrf_token(client, edit)
    again = _gate_form(name="Калитка", host="#99 127.0.0.1", port="5020", unit_id="1")
    refused = client.post(edit, data={"csrf_token": token, **again})
    assert refused.status_code == 422
    assert re.search(r'id="host-error">[^<]*уже у ворот «Въезд»', refused.get_data(as_text=True))
    saved = client.post(edit, data={"csrf_token": token, **dict(again, host="127.0.0.2")})
    assert saved.status_code == 302
    with app.app_context():
        gate = Gate.get_by_id(moved.id)
        assert (gate.host, gate.enabled) == ("127.0.0.2", True)


def test_a_moved_off_gate_whose_controller_is_free_again_gets_it_back(app, client, auth, world):
    """Once the gate that kept the controller is gone, the form offers the old address with
    no mistake, and saving it brings the gate back."""
    with app.app_context():
        Gate.delete().where(Gate.territory == world.t).execute()
        moved = Gate.create(territory=world.t, name="Калитка", host="#99 127.0.0.1",
                            port=5020, enabled=False)
    auth.login("+79990000202")
    edit = f"/t/{world.t}/gates/{moved.id}/edit"
    html = client.get(edit).get_data(as_text=True)
    assert 'value="127.0.0.1"' in html and 'id="host-error"' not in html
    form = _gate_form(name="Калитка", host="127.0.0.1", port="5020", unit_id="1")
    assert client.post(edit, data={"csrf_token": csrf_token(client, edit), **form}).status_code == 302
    with app.app_context():
        assert Gate.get_by_id(moved.id).host == "127.0.0.1"


def test_a_manager_deletes_a_gate_and_its_events_stay_in_the_log(app, client, auth, world):
    """Gates audit: a gate could only be switched off, never deleted, so a retired one kept
    its name and its controller's address for good."""
    with app.app_context():
        record_event(world.t, code=1, reason="pass_valid", kind="plate",
                     credential="A777AA77", gate=world.off)
    auth.login("+79990000205")  # an operator may not
    token = csrf_token(client, f"/t/{world.t}/check")
    assert client.post(f"/t/{world.t}/gates/{world.off}/delete",
                       data={"csrf_token": token}).status_code == 404
    auth.logout()
    auth.login("+79990000202")
    edit = client.get(f"/t/{world.t}/gates/{world.off}/edit").get_data(as_text=True)
    assert "Удалить ворота" in edit and "Их события останутся в журнале" in edit
    token = csrf_token(client, f"/t/{world.t}/gates")
    assert client.post(f"/t/{world.t}/gates/{world.other_gate}/delete",
                       data={"csrf_token": token}).status_code == 404  # another territory's
    assert client.post(f"/t/{world.t}/gates/{world.off}/delete").status_code == 400  # no CSRF
    done = client.post(f"/t/{world.t}/gates/{world.off}/delete", data={"csrf_token": token},
                       follow_redirects=True).get_data(as_text=True)
    assert "Ворота «Старые» удалены; их события остались в журнале" in done
    with app.app_context():
        assert Gate.get_or_none(Gate.id == world.off) is None
        assert Gate.get_or_none(Gate.id == world.other_gate) is not None
        assert GateEvent.get(GateEvent.credential == "A777AA77").gate_id is None
    log = client.get(f"/t/{world.t}/events").get_data(as_text=True)
    assert "без ворот" in log
    # Its name and its controller are free again.
    response = client.post(f"/t/{world.t}/gates/new", data={
        "csrf_token": token, **_gate_form(name="Старые", host="127.0.0.1", port="5022",
                                          unit_id="1")})
    assert response.status_code == 302
