"""The simulator behaves as GATE-CTL v1 says, seen through a real Modbus TCP client."""

from __future__ import annotations

import time
import urllib.error

import pytest
from pymodbus.client import ModbusTcpClient

from gatebridge import protocol as p
from gatebridge.simulator import Simulator

pytestmark = [pytest.mark.slow, pytest.mark.timing]


def wait_for(predicate, timeout=3.0, interval=0.05):
    """Poll until predicate() is truthy; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def test_one_read_of_ir_16_to_47_decodes_into_a_snapshot(simulator):
    client = simulator.client()
    rr = client.read_input_registers(16, count=32)
    assert not rr.isError()
    assert len(rr.registers) == 32
    snap = p.decode_snapshot(rr.registers)
    assert snap.event_seq == 0
    assert snap.gate_state is p.GateState.CLOSED
    assert snap.closed_limit


def test_device_info_registers(start_simulator):
    sim = start_simulator("--device-type", "3", "--serial", "0x12345678")
    rr = sim.client().read_input_registers(0, count=4)
    assert rr.registers == [1, 3, 0x1234, 0x5678]


def test_heartbeat_advances(simulator):
    client = simulator.client()
    first = simulator.snapshot(client).heartbeat
    time.sleep(1.2)
    assert simulator.snapshot(client).heartbeat > first


def test_presented_plate_changes_event_seq_and_decodes(simulator):
    client = simulator.client()
    before = simulator.snapshot(client).event_seq
    seq = simulator.present(type="plate", plate="А777АА99", direction=1)
    snap = simulator.snapshot(client)
    assert snap.event_seq == seq != before
    assert snap.event_type is p.EventType.PLATE
    assert snap.direction is p.Direction.ENTRY
    assert snap.plate == "A777AA99"
    assert snap.credential == p.Credential("plate", "A777AA99")
    assert snap.loop_present
    assert not snap.is_exit


def test_presented_card_little_word_order(start_simulator):
    sim = start_simulator("--word-order", "little")
    client = sim.client()
    sim.present(type="card", card=0x12345678, direction=2, bit_length=34)
    rr = client.read_input_registers(16, count=32)
    assert rr.registers[p.IR_CARD_NUMBER - 16 : p.IR_CARD_NUMBER - 16 + 4] == [0x5678, 0x1234, 0, 0]
    snap = p.decode_snapshot(rr.registers, "little")
    assert snap.card_number == 0x12345678
    assert snap.bit_length == 34
    assert snap.is_exit


def test_exit_button_event(simulator):
    client = simulator.client()
    seq = simulator.present(type="exit_button")
    snap = simulator.snapshot(client)
    assert snap.event_seq == seq
    assert snap.event_type is p.EventType.EXIT_BUTTON
    assert snap.is_exit


def test_decision_with_wrong_seq_is_ignored(simulator):
    client = simulator.client()
    seq = simulator.present(type="card", card=1001)
    rr = client.write_registers(p.HR_DECISION_START, p.encode_decision(p.next_seq(seq), 1))
    assert not rr.isError()
    snap = simulator.snapshot(client)
    assert snap.applied_decision_seq == 0
    assert not simulator.relay(client)
    state = simulator.state()
    assert state["openings"] == 0
    assert state["ignored_decisions"] == 1


def test_grant_with_right_seq_raises_coil_and_counts_one_opening(simulator):
    client = simulator.client()
    seq = simulator.present(type="plate", plate="A777AA99")
    # pulse 10 = 1 s: long enough to catch "open", short enough to watch it close again
    rr = client.write_registers(p.HR_DECISION_START, p.encode_decision(seq, 1, pulse=10))
    assert not rr.isError()
    assert simulator.relay(client)
    snap = simulator.snapshot(client)
    assert (snap.applied_decision_seq, snap.applied_decision_code) == (seq, p.DecisionCode.GRANT)
    assert snap.gate_state in (p.GateState.OPENING, p.GateState.OPEN)
    assert simulator.state()["openings"] == 1
    assert wait_for(lambda: simulator.snapshot(client).gate_state == p.GateState.OPEN)
    assert wait_for(lambda: not simulator.relay(client))
    assert wait_for(lambda: simulator.snapshot(client).gate_state == p.GateState.CLOSED)
    assert simulator.state()["openings"] == 1


def test_retried_decision_opens_once(simulator):
    client = simulator.client()
    seq = simulator.present(type="card", card=7)
    for _ in range(2):
        assert not client.write_registers(100, p.encode_decision(seq, 1)).isError()
    assert simulator.state()["openings"] == 1


def test_deny_is_applied_without_opening(simulator):
    client = simulator.client()
    seq = simulator.present(type="card", card=7)
    client.write_registers(100, p.encode_decision(seq, p.DecisionCode.DENY_EXPIRED, text="Истёк"))
    snap = simulator.snapshot(client)
    assert (snap.applied_decision_seq, snap.applied_decision_code) == (seq, 3)
    assert not simulator.relay(client)
    state = simulator.state()
    assert state["openings"] == 0
    assert state["last_decision"]["text"] == "Истёк"


def test_unknown_decision_code_is_an_illegal_value(simulator):
    client = simulator.client()
    seq = simulator.present(type="card", card=7)
    rr = client.write_registers(100, [seq, 9, 0, 0])
    assert rr.isError()
    assert rr.exception_code == 3


def test_command_write_opens(simulator):
    client = simulator.client()
    rr = client.write_registers(p.HR_COMMAND_START, p.encode_command(1, 1, 0, 1))
    assert not rr.isError()
    assert simulator.relay(client)
    assert simulator.snapshot(client).command_seq_echo == 1
    assert simulator.state()["openings"] == 1


def test_same_command_seq_twice_opens_once_and_a_new_seq_opens_again(simulator):
    client = simulator.client()
    block = p.encode_command(500, p.Command.OPEN, 0, p.CommandReason.PHONE)
    assert not client.write_registers(120, block).isError()
    assert not client.write_registers(120, block).isError()
    assert simulator.state()["openings"] == 1
    fresh = p.encode_command(p.next_seq(500), p.Command.OPEN, 0, p.CommandReason.PHONE)
    assert not client.write_registers(120, fresh).isError()
    assert simulator.state()["openings"] == 2
    assert simulator.snapshot(client).command_seq_echo == 501


def test_hold_open_and_release(simulator):
    client = simulator.client()
    client.write_registers(120, p.encode_command(1, p.Command.HOLD_OPEN, 0, 2))
    time.sleep(1.3)  # longer than the default pulse
    assert simulator.relay(client)
    client.write_registers(120, p.encode_command(2, p.Command.RELEASE, 0, 2))
    assert not simulator.relay(client)
    assert wait_for(lambda: simulator.snapshot(client).gate_state == p.GateState.CLOSED)


def test_event_seq_wraps_via_start_seq(start_simulator):
    sim = start_simulator("--start-seq", "65534")
    client = sim.client()
    assert sim.snapshot(client).event_seq == 65534
    assert sim.present(type="card", card=1) == 65535
    assert sim.present(type="card", card=2) == 1
    snap = sim.snapshot(client)
    assert (snap.event_seq, snap.card_number) == (1, 2)
    client.write_registers(100, p.encode_decision(1, 1))
    assert sim.snapshot(client).applied_decision_seq == 1


def test_event_seq_wraps_via_control_call(simulator):
    simulator.post("/seq", {"event_seq": 65535})
    assert simulator.present(type="plate", plate="B001BB77") == 1


def test_relay_coil_is_read_only(simulator):
    client = simulator.client()
    rr = client.write_coil(0, True)
    assert rr.isError()
    assert not simulator.relay(client)


def test_other_unit_ids_are_refused(simulator):
    client = simulator.client()
    rr = client.read_input_registers(16, count=32, device_id=7)
    assert rr.isError()


def test_state_json_has_everything(simulator):
    state = simulator.state()
    for key in (
        "event_seq",
        "applied_decision_seq",
        "applied_decision_code",
        "relay",
        "openings",
        "gate_state",
        "heartbeat",
        "command_seq_echo",
    ):
        assert key in state


def test_control_page_is_russian_and_csp_clean(simulator):
    page = simulator.get("/").decode()
    assert "Ворота" in page and "Открытий" in page and "Кнопка выхода" in page
    assert "<script" not in page
    assert "style=" not in page


def test_present_tells_when_the_controller_captured_the_event(simulator):
    """On the machine's monotonic clock, so a bench can time the bridge from the capture."""
    before = time.monotonic()
    answer = simulator.post("/present", {"type": "card", "card": 7})
    after = time.monotonic()
    assert answer["event_seq"] == simulator.state()["event_seq"]
    assert before <= answer["captured_at"] <= after


def test_bad_present_is_a_400(simulator):
    with pytest.raises(urllib.error.HTTPError) as info:
        simulator.post("/present", {"type": "teleport"})
    assert info.value.code == 400
    info.value.close()


def test_watchdog_lets_exits_through_when_the_bridge_is_gone(simulator):
    client = simulator.client()
    client.write_registers(p.HR_WATCHDOG, [1, 0])
    time.sleep(1.2)  # no polls for longer than the watchdog
    simulator.present(type="card", card=5, direction=1)
    assert simulator.state()["openings"] == 0
    simulator.present(type="card", card=5, direction=2)
    assert simulator.state()["openings"] == 1


def test_sigterm_exits_cleanly(simulator):
    simulator.client()
    assert simulator.stop() == 0


def test_in_process_simulator():
    with Simulator(port=0, control_port=None) as sim:
        host, port = sim.modbus_address
        seq = sim.present_card(4242)
        client = ModbusTcpClient(host, port=port, timeout=3)
        try:
            assert client.connect()
            rr = client.read_input_registers(16, count=32)
            assert p.decode_snapshot(rr.registers).card_number == 4242
            client.write_registers(100, p.encode_decision(seq, 1))
        finally:
            client.close()
        state = sim.state()
        assert state["openings"] == 1
        assert state["relay"] is True
