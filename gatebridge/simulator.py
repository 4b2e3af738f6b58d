"""A GATE-CTL v1 gate controller for development and tests.

    python -m gatebridge.simulator [--host 127.0.0.1] [--port 5020] [--unit 1]
        [--control-port 5021] [--device-type 1] [--word-order big] [--start-seq 0]
        [--count 1] [--delay-ms 0]

Serves the register map of /shared/GATE_PROTOCOL.md over Modbus TCP (pymodbus) and a
small HTTP control on the control port: an HTML page to present cards, plates and the
exit button, and a JSON API for tests (POST /present, POST /seq, POST /freeze, GET /state;
/present answers the event's `event_seq` and `captured_at`, on the machine's monotonic clock).
On startup it prints one line, `SIMULATOR modbus=<host>:<port> control=<host>:<port>`,
so a parent process can use port 0 and still find it. With `--count N` it serves N
controllers on N ports (listed comma-separated after `modbus=`) and the control API picks
one with `gate=<index>`; `--delay-ms` answers every Modbus request late.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gatebridge import protocol as p

log = logging.getLogger(__name__)

DEFAULT_PULSE_S = 1.0
# How long the leaf takes to travel; the states opening/closing last this long.
TRAVEL_S = 0.3
# How long a presented vehicle or person is shown on the presence loop input.
PRESENCE_S = 3.0
BUTTON_S = 0.5
DEFAULT_SERIAL = 0x00BC614E
IR_COUNT = p.IR_SNAPSHOT_START + p.IR_SNAPSHOT_COUNT
DECISION_SPAN = p.HR_DECISION_WITH_TEXT_COUNT

READ_COILS, READ_DISCRETE, READ_HOLDING, READ_INPUT = 1, 2, 3, 4
COIL_WRITES = {5, 15}

GATE_STATE_RU = {
    p.GateState.UNKNOWN: "неизвестно",
    p.GateState.CLOSED: "закрыты",
    p.GateState.OPENING: "открываются",
    p.GateState.OPEN: "открыты",
    p.GateState.CLOSING: "закрываются",
    p.GateState.STOPPED: "остановлены",
    p.GateState.FAULT: "авария",
}
DECISION_RU = {
    p.DecisionCode.GRANT: "проезд разрешён",
    p.DecisionCode.DENY_NO_PASS: "отказ: нет пропуска",
    p.DecisionCode.DENY_EXPIRED: "отказ: пропуск истёк",
    p.DecisionCode.DENY_UNKNOWN: "отказ: неизвестен",
    p.DecisionCode.DENY_BLOCKED: "отказ: не оплачено / заблокирован",
    p.DecisionCode.TRY_AGAIN: "повторите позже (система недоступна)",
}
EVENT_RU = {
    p.EventType.CARD: "карта",
    p.EventType.PLATE: "номер",
    p.EventType.PIN: "PIN",
    p.EventType.EXIT_BUTTON: "кнопка выхода",
    p.EventType.REMOTE: "пульт",
}
COMMAND_RU = {
    p.Command.OPEN: "открыть",
    p.Command.HOLD_OPEN: "держать открытыми",
    p.Command.RELEASE: "отпустить",
    p.Command.CLOSE: "закрыть",
}


@dataclass(frozen=True)
class Event:
    """One presented credential as the controller captured it."""

    seq: int
    type: p.EventType
    direction: p.Direction
    lane: int
    bit_length: int
    card_number: int
    plate: str
    plate_confidence: int
    captured_at: float


class GateModel:
    """The controller's behaviour, driven by a monotonic clock and safe across threads.

    Time-dependent registers (heartbeat, gate state, relay, event age) are computed from
    the clock when read, so nothing has to tick and a read is always consistent.
    """

    def __init__(
        self,
        *,
        device_type: p.DeviceType | int = p.DeviceType.BARRIER,
        serial: int = DEFAULT_SERIAL,
        word_order: p.WordOrder = "big",
        start_seq: int = 0,
        local_whitelist: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.RLock()
        self._clock = clock
        self.info = p.DeviceInfo(p.MAP_VERSION, device_type, serial)
        self.word_order: p.WordOrder = word_order
        self.local_whitelist = frozenset(local_whitelist)
        self._boot = clock()
        self._event_seq = p.check_u16(start_seq, "start_seq")
        self._event: Event | None = None
        self._applied_seq = 0
        self._applied_code = 0
        self._command_seq_echo = 0
        self._relay_from = -math.inf
        self._relay_until = -math.inf
        self._openings = 0
        self._ignored_decisions = 0
        self._last_decision: p.Decision | None = None
        self._last_command: p.CommandBlock | None = None
        self._watchdog = 0
        self._offline_policy = 0
        self._last_poll = self._boot
        self._frozen_heartbeat: int | None = None

    # -- credentials -------------------------------------------------------------

    def present(
        self,
        event_type: p.EventType | int,
        *,
        direction: p.Direction | int = p.Direction.ENTRY,
        card_number: int = 0,
        bit_length: int = 0,
        plate: str = "",
        plate_confidence: int = 0,
        lane: int = 0,
    ) -> int:
        """Capture a credential as the next event; return its event_seq."""
        event_type = p.EventType(event_type)
        direction = p.Direction(direction)
        wire_plate = p.plate_to_latin(plate)
        p.encode_plate(wire_plate)  # fail here, not on the next poll
        p.encode_u64(card_number)
        with self._lock:
            now = self._clock()
            seq = p.next_seq(self._event_seq)
            self._event = Event(
                seq=seq,
                type=event_type,
                direction=direction,
                lane=p.check_u16(lane, "lane"),
                bit_length=p.check_u16(bit_length, "bit_length"),
                card_number=card_number,
                plate=wire_plate,
                plate_confidence=p.check_u16(plate_confidence, "plate_confidence"),
                captured_at=now,
            )
            self._event_seq = seq
            if self._is_offline(now):
                self._decide_offline(self._event, now)
        log.info("event %s: %s %s", seq, event_type.name, wire_plate or card_number or "")
        return seq

    def set_event_seq(self, seq: int) -> None:
        """Jump the event counter (tests use it to reach the 65535 -> 1 wrap quickly), as if
        the events up to it had been presented and answered: none of them waits."""
        with self._lock:
            self._event_seq = p.check_u16(seq, "event_seq")
            self._applied_seq = self._event_seq

    def freeze_heartbeat(self, frozen: bool = True) -> None:
        """Stop (or restart) the heartbeat while still answering, as a hung controller does."""
        with self._lock:
            if frozen:
                if self._frozen_heartbeat is None:
                    self._frozen_heartbeat = self._heartbeat(self._clock())
            else:
                self._frozen_heartbeat = None

    def _heartbeat(self, now: float) -> int:
        if self._frozen_heartbeat is not None:
            return self._frozen_heartbeat
        return int(now - self._boot) & p.U16_MAX

    def _is_offline(self, now: float) -> bool:
        return self._watchdog > 0 and now - self._last_poll > self._watchdog

    def _decide_offline(self, event: Event, now: float) -> None:
        # The bridge is gone: exits stay free, entries pass only from the local list.
        is_exit = event.direction == p.Direction.EXIT or event.type == p.EventType.EXIT_BUTTON
        listed = (
            self._offline_policy == p.OfflinePolicy.LOCAL_WHITELIST
            and (event.plate or str(event.card_number)) in self.local_whitelist
        )
        if is_exit or listed:
            self._pulse(now, DEFAULT_PULSE_S)

    # -- the bridge's writes -----------------------------------------------------

    def apply_decision(self, registers: list[int]) -> bool:
        """Apply HR 100-103(-119); True if accepted, False if ignored for its seq."""
        decision = p.Decision.decode(registers)
        if not isinstance(decision.code, p.DecisionCode):
            raise ValueError(f"unknown decision code {decision.code}")
        with self._lock:
            now = self._clock()
            fresh = decision.seq != 0 and decision.seq == self._event_seq
            # A repeated write for an event already answered must not open twice.
            if not fresh or self._applied_seq == decision.seq:
                self._ignored_decisions += 1
                log.info("decision for %s ignored (event_seq %s)", decision.seq, self._event_seq)
                return False
            self._applied_seq = decision.seq
            self._applied_code = int(decision.code)
            self._last_decision = decision
            if decision.code == p.DecisionCode.GRANT:
                self._pulse(now, p.pulse_seconds(decision.pulse, DEFAULT_PULSE_S))
        log.info("decision for %s: %s", decision.seq, decision.code.name)
        return True

    def apply_command(self, registers: list[int]) -> bool:
        """Apply HR 120-123; True if acted on, False when command_seq did not change."""
        command = p.CommandBlock.decode(registers)
        if not isinstance(command.command, p.Command):
            raise ValueError(f"unknown command {command.command}")
        with self._lock:
            now = self._clock()
            if command.seq == 0 or command.seq == self._command_seq_echo:
                return False
            self._command_seq_echo = command.seq
            self._last_command = command
            if command.command == p.Command.OPEN:
                self._pulse(now, p.pulse_seconds(command.pulse, DEFAULT_PULSE_S))
            elif command.command == p.Command.HOLD_OPEN:
                self._pulse(now, math.inf)
            elif self._relay_on(now):
                self._relay_until = now
        log.info("command %s: %s", command.seq, p.Command(command.command).name)
        return True

    def write_settings(self, watchdog: int | None, offline_policy: int | None) -> None:
        """Take the bridge's HR 200/201 values."""
        with self._lock:
            if watchdog is not None:
                self._watchdog = watchdog
            if offline_policy is not None:
                self._offline_policy = offline_policy

    def mark_polled(self) -> None:
        """Note that the bridge read the snapshot; the watchdog counts from here."""
        with self._lock:
            self._last_poll = self._clock()

    def _pulse(self, now: float, seconds: float) -> None:
        if not self._relay_on(now):
            self._relay_from = now
        self._relay_until = max(self._relay_until, now + seconds)
        self._openings += 1

    # -- what the controller shows -------------------------------------------------

    def _relay_on(self, now: float) -> bool:
        return self._relay_from <= now < self._relay_until

    def _gate_state(self, now: float) -> p.GateState:
        if self._relay_on(now):
            return p.GateState.OPENING if now - self._relay_from < TRAVEL_S else p.GateState.OPEN
        if now < self._relay_until + TRAVEL_S:
            return p.GateState.CLOSING
        return p.GateState.CLOSED

    def _inputs(self, now: float, state: p.GateState) -> p.Input:
        flags = p.Input(0)
        event = self._event
        if event is not None and now - event.captured_at < PRESENCE_S:
            if event.type == p.EventType.EXIT_BUTTON:
                if now - event.captured_at < BUTTON_S:
                    flags |= p.Input.EXIT_BUTTON
            else:
                flags |= p.Input.LOOP
        if state == p.GateState.OPEN:
            flags |= p.Input.OPEN_LIMIT
        elif state == p.GateState.CLOSED:
            flags |= p.Input.CLOSED_LIMIT
        return flags

    def relay(self) -> bool:
        """Coil 0: is the relay closed right now."""
        with self._lock:
            return self._relay_on(self._clock())

    def snapshot(self) -> p.Snapshot:
        """IR 16-47 as of now, taken under the lock so the event is never half-written."""
        with self._lock:
            now = self._clock()
            state = self._gate_state(now)
            event = self._event
            fields: dict[str, Any] = {}
            if event is not None:
                fields = {
                    "event_type": event.type,
                    "direction": event.direction,
                    "lane": event.lane,
                    "bit_length": event.bit_length,
                    "card_number": event.card_number,
                    "plate": event.plate,
                    "plate_confidence": event.plate_confidence,
                    "event_age": min(int(now - event.captured_at), p.U16_MAX),
                }
            return p.Snapshot(
                heartbeat=self._heartbeat(now),
                gate_state=state,
                inputs=int(self._inputs(now, state)),
                event_seq=self._event_seq,
                applied_decision_seq=self._applied_seq,
                applied_decision_code=self._applied_code,
                command_seq_echo=self._command_seq_echo,
                **fields,
            )

    def input_registers(self) -> list[int]:
        """IR 0-47 as of now."""
        header = self.info.encode(self.word_order)
        gap = [0] * (p.IR_SNAPSHOT_START - len(header))
        return header + gap + p.encode_snapshot(self.snapshot(), self.word_order)

    def state(self) -> dict[str, Any]:
        """Everything the control page and the tests want to see, as plain JSON types."""
        with self._lock:
            now = self._clock()
            snap = self.snapshot()
            event = self._event
            decision = self._last_decision
            command = self._last_command
            return {
                "heartbeat": snap.heartbeat,
                "gate_state": int(snap.gate_state),
                "gate_state_name": p.GateState(snap.gate_state).name.lower(),
                "relay": self._relay_on(now),
                "openings": self._openings,
                "inputs": snap.inputs,
                "event_seq": self._event_seq,
                "event": None
                if event is None
                else {
                    "seq": event.seq,
                    "type": event.type.name.lower(),
                    "direction": int(event.direction),
                    "card_number": event.card_number,
                    "bit_length": event.bit_length,
                    "plate": event.plate,
                    "age": snap.event_age,
                },
                "applied_decision_seq": self._applied_seq,
                "applied_decision_code": self._applied_code,
                "ignored_decisions": self._ignored_decisions,
                "last_decision": None
                if decision is None
                else {
                    "seq": decision.seq,
                    "code": int(decision.code),
                    "pulse": decision.pulse,
                    "signal": decision.signal,
                    "text": decision.text,
                },
                "command_seq_echo": self._command_seq_echo,
                "last_command": None
                if command is None
                else {
                    "seq": command.seq,
                    "command": int(command.command),
                    "pulse": command.pulse,
                    "reason": int(command.reason),
                },
                "watchdog": self._watchdog,
                "offline_policy": self._offline_policy,
                "offline": self._is_offline(now),
                "device_type": int(self.info.device_type),
                "serial": self.info.serial,
                "word_order": self.word_order,
                "heartbeat_frozen": self._frozen_heartbeat is not None,
            }


def _overlay(
    registers: list[int], start: int, address: int, values: list[int], lo: int, n: int
) -> list[int]:
    """HR lo..lo+n-1 as they will be once `values` (written at `address`) land."""
    block = [registers[a - start] for a in range(lo, lo + n)]
    for i, value in enumerate(values):
        if lo <= address + i < lo + n:
            block[address + i - lo] = int(value)
    return block


class _ModbusSide:
    """Binds the model to pymodbus: the SimDevice action is called on every access."""

    def __init__(self, model: GateModel, delay_s: float = 0.0) -> None:
        self.model = model
        # A slow controller (or a slow link) answers late; tests use it to prove concurrency.
        self.delay_s = delay_s

    async def action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Serve reads from the model and turn writes into decisions and commands."""
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)
        if function_code == READ_INPUT:
            current = self.model.input_registers()
            for a in range(start_address, start_address + len(registers)):
                if a < len(current):
                    registers[a - start_address] = current[a]
            if address < p.IR_SNAPSHOT_START + p.IR_SNAPSHOT_COUNT and (
                address + count > p.IR_SNAPSHOT_START
            ):
                self.model.mark_polled()
            return None
        if function_code == READ_COILS:
            # Coils are packed 16 to a register, coil n is bit n % 16 of register n // 16.
            index = p.COIL_RELAY // 16 - start_address
            bit = 1 << (p.COIL_RELAY % 16)
            relay = self.model.relay()
            registers[index] = registers[index] | bit if relay else registers[index] & ~bit
            return None
        if function_code in COIL_WRITES:
            return ExcCodes.ILLEGAL_ADDRESS  # the relay coil belongs to the controller
        if set_values is None or function_code in (READ_DISCRETE, READ_HOLDING):
            return None
        values = [int(v) for v in set_values]
        try:
            return self._write(start_address, address, values, registers)
        except ValueError as exc:
            log.warning("rejected write at HR %s: %s", address, exc)
            return ExcCodes.ILLEGAL_VALUE

    def _write(
        self, start: int, address: int, values: list[int], registers: list[int]
    ) -> ExcCodes | None:
        end = address + len(values)

        def covers(a: int) -> bool:
            return address <= a < end

        if covers(p.HR_DECISION_SEQ):
            span = DECISION_SPAN if end > p.HR_DISPLAY_TEXT else p.HR_DECISION_COUNT
            block = _overlay(registers, start, address, values, p.HR_DECISION_SEQ, span)
            self.model.apply_decision(block)
        if covers(p.HR_COMMAND_SEQ):
            block = _overlay(
                registers, start, address, values, p.HR_COMMAND_SEQ, p.HR_COMMAND_COUNT
            )
            self.model.apply_command(block)
        if covers(p.HR_WATCHDOG) or covers(p.HR_OFFLINE_POLICY):
            self.model.write_settings(
                values[p.HR_WATCHDOG - address] if covers(p.HR_WATCHDOG) else None,
                values[p.HR_OFFLINE_POLICY - address] if covers(p.HR_OFFLINE_POLICY) else None,
            )
        return None

    def devices(self, unit: int) -> list[SimDevice]:
        """The controller at `unit`, and a stand-in that refuses every other unit id."""
        gate = SimDevice(
            id=unit,
            simdata=(
                [SimData(0, count=16, values=False, datatype=DataType.BITS)],
                [SimData(0, count=16, values=False, datatype=DataType.BITS)],
                [
                    SimData(p.HR_DECISION_START, count=24, values=0, datatype=DataType.REGISTERS),
                    SimData(p.HR_WATCHDOG, count=2, values=0, datatype=DataType.REGISTERS),
                ],
                [SimData(0, count=IR_COUNT, values=0, datatype=DataType.REGISTERS)],
            ),
            action=self.action,
        )
        if unit == 0:
            return [gate]
        # Without it pymodbus answers a wrong unit id with a logged traceback.
        others = SimDevice(
            id=0,
            simdata=[SimData(0, count=65536, values=0, datatype=DataType.REGISTERS)],
            action=_no_such_unit,
        )
        return [gate, others]


async def _no_such_unit(*_args: Any) -> ExcCodes:
    return ExcCodes.GATEWAY_NO_RESPONSE


# -- HTTP control ------------------------------------------------------------------

STYLE_CSS = b"""\
body { font-family: sans-serif; max-width: 44rem; margin: 1rem auto; padding: 0 1rem; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: .2rem .8rem .2rem 0; }
form { margin: .6rem 0; padding: .6rem; border: 1px solid #ccc; }
.open { color: #070; } .closed { color: #700; }
"""

PRESENT_TYPES = {
    "card": p.EventType.CARD,
    "plate": p.EventType.PLATE,
    "pin": p.EventType.PIN,
    "exit_button": p.EventType.EXIT_BUTTON,
    "remote": p.EventType.REMOTE,
}


def _present(model: GateModel, data: dict[str, Any]) -> int:
    """Present whatever the control API was given; raise ValueError when it makes no sense."""
    kind = data.get("type")
    if kind not in PRESENT_TYPES:
        raise ValueError(f"type must be one of {sorted(PRESENT_TYPES)}")
    event_type = PRESENT_TYPES[kind]
    direction = int(data.get("direction") or 1)
    if kind == "exit_button":
        direction = p.Direction.EXIT
    card = int(data.get("card") or 0)
    plate = str(data.get("plate") or "")
    if kind == "plate" and not p.plate_to_latin(plate):
        raise ValueError("plate is required")
    return model.present(
        event_type,
        direction=direction,
        card_number=card if kind in ("card", "pin") else 0,
        bit_length=int(data.get("bit_length") or 26) if kind == "card" else 0,
        plate=plate if kind == "plate" else "",
        plate_confidence=int(data.get("confidence") or 90) if kind == "plate" else 0,
        lane=int(data.get("lane") or 0),
    )


def _row(label: str, value: object) -> str:
    return f"<tr><th>{html.escape(label)}</th><td>{html.escape(str(value))}</td></tr>"


def _direction_select() -> str:
    return (
        '<label>Направление <select name="direction">'
        '<option value="1">въезд</option><option value="2">выезд</option>'
        "</select></label>"
    )


def render_page(state: dict[str, Any]) -> str:
    """The control page: state on top, forms to present credentials below."""
    gate = GATE_STATE_RU.get(state["gate_state"], str(state["gate_state"]))
    decision = state["last_decision"]
    decision_text = "—"
    if decision is not None:
        label = DECISION_RU.get(decision["code"], str(decision["code"]))
        decision_text = f"№{decision['seq']}: {label}"
        if decision["text"]:
            decision_text += f" «{decision['text']}»"
    command = state["last_command"]
    command_text = "—"
    if command is not None:
        label = COMMAND_RU.get(command["command"], str(command["command"]))
        command_text = f"№{command['seq']}: {label}"
    event = state["event"]
    event_text = "—"
    if event is not None:
        kind = EVENT_RU.get(p.EventType[event["type"].upper()], event["type"])
        what = event["plate"] or (event["card_number"] if event["card_number"] else "")
        way = "выезд" if event["direction"] == p.Direction.EXIT else "въезд"
        event_text = f"№{event['seq']}: {kind} {what} ({way}), {event['age']} с назад"
    rows = "".join(
        [
            _row("Ворота", gate),
            _row("Реле", "включено" if state["relay"] else "выключено"),
            _row("Открытий", state["openings"]),
            _row("Пульс контроллера", state["heartbeat"]),
            _row("Последнее событие", event_text),
            _row("Последнее решение", decision_text),
            _row("Отклонено решений (чужой номер)", state["ignored_decisions"]),
            _row("Последняя команда", command_text),
            _row("Связь с сервером", "нет (автономно)" if state["offline"] else "есть"),
        ]
    )
    relay_class = "open" if state["relay"] else "closed"
    return f"""<!doctype html>
<html lang="ru">
<head>
<meta charset="utf-8">
<title>Симулятор контроллера ворот</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<h1>Симулятор контроллера ворот</h1>
<p class="{relay_class}">GATE-CTL v1 · <a href="/">Обновить</a> · <a href="/state">JSON</a></p>
<table>{rows}</table>

<h2>Поднести карту</h2>
<form method="post" action="/present">
<input type="hidden" name="type" value="card">
<label>Номер карты <input name="card" inputmode="numeric" required></label>
<label>Бит <input name="bit_length" value="26" size="3"></label>
{_direction_select()}
<button>Поднести</button>
</form>

<h2>Номер автомобиля</h2>
<form method="post" action="/present">
<input type="hidden" name="type" value="plate">
<label>Номер <input name="plate" placeholder="А777АА99" required></label>
{_direction_select()}
<button>Показать камере</button>
</form>

<h2>Кнопка выхода</h2>
<form method="post" action="/present">
<input type="hidden" name="type" value="exit_button">
<button>Нажать кнопку выхода</button>
</form>

<h2>Счётчик событий</h2>
<form method="post" action="/seq">
<label>event_seq <input name="event_seq" inputmode="numeric" required></label>
<button>Установить</button>
</form>
</body>
</html>
"""


class _ControlHandler(BaseHTTPRequestHandler):
    """GET / (page), GET /state, POST /present, POST /seq, POST /freeze; JSON in, JSON or 303 out.

    A simulator serving several controllers (--count) picks one with `gate=<index>` in the
    query string or the JSON body; without it, controller 0 answers.
    """

    model: GateModel
    models: list[GateModel]

    def _pick(self, query: str, data: dict[str, Any] | None = None) -> GateModel:
        models = getattr(self, "models", None) or [self.model]
        raw = (data or {}).get("gate")
        if raw is None:
            raw = (parse_qs(query).get("gate") or ["0"])[0]
        index = int(raw)
        if not 0 <= index < len(models):
            raise ValueError(f"gate must be in 0..{len(models) - 1}")
        return models[index]
    server_version = "GateSimulator/1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("control: " + format, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header(
            "Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action 'self'"
        )
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: object) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def do_GET(self) -> None:
        """Serve the page, its stylesheet and the JSON state."""
        path, _, query = self.path.partition("?")
        try:
            model = self._pick(query)
        except ValueError as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        if path == "/":
            page = render_page(model.state()).encode()
            self._send(HTTPStatus.OK, page, "text/html; charset=utf-8")
        elif path == "/style.css":
            self._send(HTTPStatus.OK, STYLE_CSS, "text/css; charset=utf-8")
        elif path == "/state":
            self._json(HTTPStatus.OK, model.state())
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def do_POST(self) -> None:
        """Present a credential or set the event counter."""
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, 64 * 1024))
        is_json = "json" in (self.headers.get("Content-Type") or "")
        try:
            if is_json:
                data = json.loads(raw or b"{}")
                if not isinstance(data, dict):
                    raise ValueError("a JSON object is expected")
            else:
                form = parse_qs(raw.decode("utf-8"))
                data = {key: values[0] for key, values in form.items()}
            model = self._pick(query, data)
            if path == "/present":
                seq = _present(model, data)
                # CLOCK_MONOTONIC is the machine's, so a bench in another process can time
                # from the moment the controller captured the event.
                result = {"event_seq": seq, "captured_at": time.monotonic()}
            elif path == "/seq":
                model.set_event_seq(int(data.get("event_seq", -1)))
                result = {"event_seq": model.state()["event_seq"]}
            elif path == "/freeze":
                frozen = str(data.get("heartbeat", "true")).lower() not in ("0", "false", "no")
                model.freeze_heartbeat(frozen)
                result = {"heartbeat_frozen": model.state()["heartbeat_frozen"]}
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
                return
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        if is_json:
            self._json(HTTPStatus.OK, result)
        else:
            self.send_response(HTTPStatus.SEE_OTHER)
            self.send_header("Location", "/")
            self.send_header("Content-Length", "0")
            self.end_headers()


# -- lifecycle ---------------------------------------------------------------------


class Simulator:
    """A running controller: Modbus TCP on an asyncio loop, the HTTP control in a thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5020,
        *,
        unit: int = 1,
        control_port: int | None = 5021,
        device_type: p.DeviceType | int = p.DeviceType.BARRIER,
        word_order: p.WordOrder = "big",
        serial: int = DEFAULT_SERIAL,
        start_seq: int = 0,
        local_whitelist: Iterable[str] = (),
        count: int = 1,
        delay_s: float = 0.0,
    ) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        self.host = host
        # `count` controllers, each on its own port (one controller per TCP connection).
        self.models = [
            GateModel(
                device_type=device_type,
                serial=(serial + i) & 0xFFFFFFFF,
                word_order=word_order,
                start_seq=start_seq,
                local_whitelist=local_whitelist,
            )
            for i in range(count)
        ]
        self.model = self.models[0]
        self._delay_s = delay_s
        self._modbus_ports: list[int] = []
        self._port = port
        self._unit = unit
        self._control_port = control_port
        self._modbus_port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._http: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None

    @property
    def modbus_address(self) -> tuple[str, int]:
        """Where the Modbus server listens (the real port, also when 0 was asked for)."""
        if self._modbus_port is None:
            raise RuntimeError("simulator is not started")
        return self.host, self._modbus_port

    @property
    def modbus_addresses(self) -> list[tuple[str, int]]:
        """Where each controller listens, in the order of `models`."""
        if not self._modbus_ports:
            raise RuntimeError("simulator is not started")
        return [(self.host, port) for port in self._modbus_ports]

    @property
    def control_address(self) -> tuple[str, int] | None:
        """Where the HTTP control listens, or None when it was not asked for."""
        return None if self._http is None else (self.host, self._http.server_address[1])

    def start(self, timeout: float = 10.0) -> Simulator:
        """Start serving; returns once both ports are bound."""
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        self._thread = threading.Thread(target=self._run, name="gate-sim-modbus", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            self.stop()
            raise RuntimeError(f"Modbus server did not start: {self._error}")
        if self._control_port is not None:
            handler = type(
                "Handler", (_ControlHandler,), {"model": self.model, "models": self.models}
            )
            try:
                self._http = ThreadingHTTPServer((self.host, self._control_port), handler)
            except OSError:
                self.stop()
                raise
            self._http.daemon_threads = True
            # A short poll interval keeps shutdown() quick; the default waits up to 0.5 s.
            self._http_thread = threading.Thread(
                target=self._http.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="gate-sim-http",
                daemon=True,
            )
            self._http_thread.start()
        return self

    def stop(self) -> None:
        """Stop both servers and wait for their threads."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._http_thread is not None:
            self._http_thread.join()
            self._http_thread = None
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception as exc:  # reported to start(), which is waiting for it
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        servers = []
        try:
            for i, model in enumerate(self.models):
                side = _ModbusSide(model, self._delay_s)
                port = self._port + i if self._port else 0
                server = ModbusTcpServer(side.devices(self._unit), address=(self.host, port))
                await server.serve_forever(background=True)
                servers.append(server)
                self._modbus_ports.append(server.transport.sockets[0].getsockname()[1])
            self._modbus_port = self._modbus_ports[0]
            self._ready.set()
            await self._stopping.wait()
        finally:
            for server in servers:
                await server.shutdown()

    # -- in-process helpers for tests ---------------------------------------------

    def present_card(
        self, card: int, direction: p.Direction | int = p.Direction.ENTRY, bit_length: int = 26
    ) -> int:
        """Hold a card to the reader; returns the new event_seq."""
        return self.model.present(
            p.EventType.CARD, direction=direction, card_number=card, bit_length=bit_length
        )

    def present_plate(
        self, plate: str, direction: p.Direction | int = p.Direction.ENTRY, confidence: int = 90
    ) -> int:
        """Drive a car with this plate past the camera; returns the new event_seq."""
        return self.model.present(
            p.EventType.PLATE, direction=direction, plate=plate, plate_confidence=confidence
        )

    def press_exit_button(self) -> int:
        """Press the exit button; returns the new event_seq."""
        return self.model.present(p.EventType.EXIT_BUTTON, direction=p.Direction.EXIT)

    def set_event_seq(self, seq: int) -> None:
        """Jump the event counter."""
        self.model.set_event_seq(seq)

    def state(self) -> dict[str, Any]:
        """The controller's state as the control API reports it."""
        return self.model.state()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line of `python -m gatebridge.simulator`."""
    parser = argparse.ArgumentParser(
        prog="python -m gatebridge.simulator", description="GATE-CTL v1 controller simulator"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5020, help="Modbus TCP port, 0 = any")
    parser.add_argument("--unit", type=int, default=1, help="Modbus unit (device) id")
    parser.add_argument("--control-port", type=int, default=5021, help="HTTP port, 0 = any")
    parser.add_argument("--device-type", type=int, choices=[1, 2, 3], default=1)
    parser.add_argument("--word-order", choices=["big", "little"], default="big")
    parser.add_argument("--serial", type=lambda s: int(s, 0), default=DEFAULT_SERIAL)
    parser.add_argument("--start-seq", type=int, default=0, help="initial event_seq")
    parser.add_argument(
        "--count", type=int, default=1, help="controllers to serve, each on its own port"
    )
    parser.add_argument(
        "--delay-ms", type=float, default=0.0, help="answer every request this much later"
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until SIGTERM or SIGINT."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    logging.getLogger("pymodbus").setLevel(logging.WARNING)
    done = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sim = Simulator(
        args.host,
        args.port,
        unit=args.unit,
        control_port=args.control_port,
        device_type=args.device_type,
        word_order=args.word_order,
        serial=args.serial,
        start_seq=args.start_seq,
        count=args.count,
        delay_s=args.delay_ms / 1000,
    )
    try:
        sim.start()
    except (RuntimeError, OSError) as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 1
    modbus_text = ",".join(f"{host}:{port}" for host, port in sim.modbus_addresses)
    control = sim.control_address
    control_text = f"{control[0]}:{control[1]}" if control else "-"
    print(f"SIMULATOR modbus={modbus_text} control={control_text}", flush=True)
    # A timed wait keeps the main thread returning to Python so signal handlers run.
    while not done.wait(0.1):
        pass
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
