"""GATE-CTL v1: the Modbus register contract between the bridge and a gate controller.

Pure encoding and decoding, no I/O: the poller, the simulator and the tests all speak
through these functions so that one page of the contract lives in one place.
Addresses are zero-based PDU addresses; every register is a 16-bit unsigned int.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

WordOrder = Literal["big", "little"]

MAP_VERSION = 1
U16_MAX = 0xFFFF

# Input registers (FC04).
IR_MAP_VERSION = 0
IR_DEVICE_TYPE = 1
IR_SERIAL = 2
IR_INFO_START = 0
IR_INFO_COUNT = 4

IR_SNAPSHOT_START = 16
IR_SNAPSHOT_COUNT = 32
IR_HEARTBEAT = 16
IR_GATE_STATE = 17
IR_FAULT_CODE = 18
IR_INPUTS = 19
IR_EVENT_SEQ = 20
IR_EVENT_TYPE = 21
IR_DIRECTION = 22
IR_LANE = 23
IR_BIT_LENGTH = 24
IR_CARD_NUMBER = 26
IR_PLATE = 30
IR_PLATE_CONFIDENCE = 38
IR_EVENT_AGE = 39
IR_APPLIED_DECISION_SEQ = 40
IR_APPLIED_DECISION_CODE = 41
IR_COMMAND_SEQ_ECHO = 42
# The controller rewrites this range as one unit, so a poll never sees half an event.
IR_EVENT_START = 20
IR_EVENT_END = 39

PLATE_REGISTERS = 8
PLATE_CHARS = PLATE_REGISTERS * 2

# Holding registers (FC16 writes).
HR_DECISION_START = 100
HR_DECISION_COUNT = 4
HR_DECISION_SEQ = 100
HR_DECISION_CODE = 101
HR_DECISION_PULSE = 102
HR_DECISION_SIGNAL = 103
HR_DISPLAY_TEXT = 104
DISPLAY_TEXT_REGISTERS = 16
DISPLAY_TEXT_BYTES = DISPLAY_TEXT_REGISTERS * 2
HR_DECISION_WITH_TEXT_COUNT = HR_DECISION_COUNT + DISPLAY_TEXT_REGISTERS

HR_COMMAND_START = 120
HR_COMMAND_COUNT = 4
HR_COMMAND_SEQ = 120
HR_COMMAND = 121
HR_COMMAND_PULSE = 122
HR_COMMAND_REASON = 123

HR_WATCHDOG = 200
HR_OFFLINE_POLICY = 201

COIL_RELAY = 0

# Pulse registers count in tenths of a second.
PULSE_UNIT_S = 0.1


class DeviceType(enum.IntEnum):
    """IR 1: what kind of passage the controller drives."""

    BARRIER = 1
    DOOR = 2
    TURNSTILE = 3


class GateState(enum.IntEnum):
    """IR 17: where the gate leaf is."""

    UNKNOWN = 0
    CLOSED = 1
    OPENING = 2
    OPEN = 3
    CLOSING = 4
    STOPPED = 5
    FAULT = 6


class Input(enum.IntFlag):
    """IR 19: bit flags of the controller's inputs."""

    LOOP = 1 << 0
    SAFETY_LOOP = 1 << 1
    PHOTOCELL = 1 << 2
    EXIT_BUTTON = 1 << 3
    OPEN_LIMIT = 1 << 4
    CLOSED_LIMIT = 1 << 5
    TAMPER = 1 << 6


class EventType(enum.IntEnum):
    """IR 21: what was presented."""

    CARD = 1
    PLATE = 2
    PIN = 3
    EXIT_BUTTON = 4
    REMOTE = 5


class Direction(enum.IntEnum):
    """IR 22: which way the event goes."""

    ENTRY = 1
    EXIT = 2


class DecisionCode(enum.IntEnum):
    """HR 101: the bridge's answer to an event."""

    GRANT = 1
    DENY_NO_PASS = 2
    DENY_EXPIRED = 3
    DENY_UNKNOWN = 4
    DENY_BLOCKED = 5
    TRY_AGAIN = 6


class Signal(enum.IntFlag):
    """HR 103: lamps and buzzer shown with a decision."""

    NONE = 0
    GREEN = 1 << 0
    RED = 1 << 1
    BEEP = 1 << 2


class Command(enum.IntEnum):
    """HR 121: what a command asks the relay to do."""

    OPEN = 1
    HOLD_OPEN = 2
    RELEASE = 3
    CLOSE = 4


class CommandReason(enum.IntEnum):
    """HR 123: why a command was sent (for the controller's own log)."""

    PHONE = 1
    OPERATOR = 2
    SCHEDULE = 3
    EMERGENCY = 4


class OfflinePolicy(enum.IntEnum):
    """HR 201: how the controller decides when the bridge has gone quiet."""

    DENY_ENTRY_FREE_EXIT = 0
    LOCAL_WHITELIST = 1


# Cyrillic plate letters that have Latin twins; the wire only carries the Latin ones.
_CYRILLIC_TO_LATIN = str.maketrans("АВЕКМНОРСТУХ", "ABEKMHOPCTYX")


def _check_word_order(word_order: str) -> None:
    if word_order not in ("big", "little"):
        raise ValueError(f"word_order must be 'big' or 'little', not {word_order!r}")


def check_u16(value: int, name: str = "value") -> int:
    """Return `value` if it fits one register, else raise ValueError naming it."""
    if not isinstance(value, int) or not 0 <= value <= U16_MAX:
        raise ValueError(f"{name} must be an int in 0..65535, got {value!r}")
    return int(value)


def _check_registers(registers: Sequence[int], count: int, what: str) -> None:
    if len(registers) != count:
        raise ValueError(f"{what} needs {count} registers, got {len(registers)}")


def encode_uint(value: int, words: int, word_order: WordOrder = "big") -> list[int]:
    """Split an unsigned int into `words` registers in the given word order."""
    _check_word_order(word_order)
    if not isinstance(value, int) or not 0 <= value < 1 << (16 * words):
        raise ValueError(f"{value!r} does not fit in {words} registers")
    high_first = [(value >> (16 * i)) & U16_MAX for i in reversed(range(words))]
    return high_first if word_order == "big" else high_first[::-1]


def decode_uint(registers: Sequence[int], word_order: WordOrder = "big") -> int:
    """Join registers into one unsigned int in the given word order."""
    _check_word_order(word_order)
    ordered = list(registers) if word_order == "big" else list(registers)[::-1]
    value = 0
    for register in ordered:
        value = (value << 16) | check_u16(register, "register")
    return value


def encode_u32(value: int, word_order: WordOrder = "big") -> list[int]:
    """Encode a u32 into two registers."""
    return encode_uint(value, 2, word_order)


def decode_u32(registers: Sequence[int], word_order: WordOrder = "big") -> int:
    """Decode two registers into a u32."""
    _check_registers(registers, 2, "u32")
    return decode_uint(registers, word_order)


def encode_u64(value: int, word_order: WordOrder = "big") -> list[int]:
    """Encode a u64 into four registers."""
    return encode_uint(value, 4, word_order)


def decode_u64(registers: Sequence[int], word_order: WordOrder = "big") -> int:
    """Decode four registers into a u64."""
    _check_registers(registers, 4, "u64")
    return decode_uint(registers, word_order)


def _bytes_to_registers(data: bytes, count: int) -> list[int]:
    padded = data.ljust(count * 2, b"\0")
    return [(padded[i] << 8) | padded[i + 1] for i in range(0, count * 2, 2)]


def _registers_to_bytes(registers: Sequence[int]) -> bytes:
    return b"".join(check_u16(r, "register").to_bytes(2, "big") for r in registers)


def encode_string(text: str, count: int) -> list[int]:
    """Encode ASCII text into `count` registers, 2 chars each, high byte first, NUL-padded."""
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{text!r} is not ASCII") from exc
    if len(data) > count * 2:
        raise ValueError(f"{text!r} is longer than {count * 2} characters")
    return _bytes_to_registers(data, count)


def decode_string(registers: Sequence[int]) -> str:
    """Decode NUL-padded ASCII registers; anything after the first NUL is padding."""
    data = _registers_to_bytes(registers).split(b"\0", 1)[0]
    return data.decode("ascii", errors="replace")


def plate_to_latin(plate: str) -> str:
    """Normalise a plate to the wire form: Latin look-alikes, uppercase, no spaces."""
    cleaned = "".join(plate.split()).replace("\0", "")
    return cleaned.upper().translate(_CYRILLIC_TO_LATIN)


def encode_plate(plate: str) -> list[int]:
    """Encode a plate (Cyrillic or Latin letters) into the 8 plate registers."""
    return encode_string(plate_to_latin(plate), PLATE_REGISTERS)


def decode_plate(registers: Sequence[int]) -> str:
    """Decode the plate registers: NULs and spaces dropped, uppercase Latin."""
    return plate_to_latin(decode_string(registers))


def encode_display_text(text: str) -> list[int]:
    """Encode display text as UTF-8 in 16 registers, cut on a character boundary."""
    data = text.encode("utf-8")
    if len(data) > DISPLAY_TEXT_BYTES:
        # Dropping whole characters from the end keeps the bytes valid UTF-8.
        data = data[:DISPLAY_TEXT_BYTES]
        while data:
            try:
                data.decode("utf-8")
                break
            except UnicodeDecodeError:
                data = data[:-1]
    return _bytes_to_registers(data, DISPLAY_TEXT_REGISTERS)


def decode_display_text(registers: Sequence[int]) -> str:
    """Decode the display text registers (UTF-8, NUL-padded)."""
    data = _registers_to_bytes(registers).split(b"\0", 1)[0]
    return data.decode("utf-8", errors="replace")


def next_seq(seq: int) -> int:
    """Return the sequence number after `seq`: 1..65535, wrapping 65535 -> 1 (0 means none)."""
    return check_u16(seq, "seq") % U16_MAX + 1


def _as_enum(kind: type[enum.IntEnum], value: int) -> int:
    # A controller may report a value newer than this code knows; keep it rather than fail.
    try:
        return kind(value)
    except ValueError:
        return value


@dataclass(frozen=True)
class Credential:
    """What was presented, in the form the access rules look it up by."""

    kind: Literal["card", "plate", "pin"]
    value: str


@dataclass(frozen=True)
class DeviceInfo:
    """IR 0-3: what the controller says it is."""

    map_version: int
    device_type: DeviceType | int
    serial: int

    @classmethod
    def decode(cls, registers: Sequence[int], word_order: WordOrder = "big") -> DeviceInfo:
        """Decode IR 0-3."""
        _check_registers(registers, IR_INFO_COUNT, "device info")
        return cls(
            map_version=check_u16(registers[0]),
            device_type=_as_enum(DeviceType, check_u16(registers[1])),
            serial=decode_u32(registers[2:4], word_order),
        )

    def encode(self, word_order: WordOrder = "big") -> list[int]:
        """Encode into IR 0-3."""
        return [
            check_u16(self.map_version, "map_version"),
            check_u16(self.device_type, "device_type"),
            *encode_u32(self.serial, word_order),
        ]


@dataclass(frozen=True)
class Snapshot:
    """One poll: IR 16-47 decoded, the gate's state and its latest event together."""

    heartbeat: int = 0
    gate_state: GateState | int = GateState.UNKNOWN
    fault_code: int = 0
    inputs: int = 0
    event_seq: int = 0
    event_type: EventType | int = 0
    direction: Direction | int = 0
    lane: int = 0
    bit_length: int = 0
    card_number: int = 0
    plate: str = ""
    plate_confidence: int = 0
    event_age: int = 0
    applied_decision_seq: int = 0
    applied_decision_code: DecisionCode | int = 0
    command_seq_echo: int = 0

    @classmethod
    def decode(cls, registers: Sequence[int], word_order: WordOrder = "big") -> Snapshot:
        """Decode the 32 registers of IR 16-47."""
        _check_registers(registers, IR_SNAPSHOT_COUNT, "snapshot")
        regs = [check_u16(r, "register") for r in registers]

        def at(address: int) -> int:
            return regs[address - IR_SNAPSHOT_START]

        def span(address: int, count: int) -> list[int]:
            start = address - IR_SNAPSHOT_START
            return regs[start : start + count]

        return cls(
            heartbeat=at(IR_HEARTBEAT),
            gate_state=_as_enum(GateState, at(IR_GATE_STATE)),
            fault_code=at(IR_FAULT_CODE),
            inputs=at(IR_INPUTS),
            event_seq=at(IR_EVENT_SEQ),
            event_type=_as_enum(EventType, at(IR_EVENT_TYPE)),
            direction=_as_enum(Direction, at(IR_DIRECTION)),
            lane=at(IR_LANE),
            bit_length=at(IR_BIT_LENGTH),
            card_number=decode_u64(span(IR_CARD_NUMBER, 4), word_order),
            plate=decode_plate(span(IR_PLATE, PLATE_REGISTERS)),
            plate_confidence=at(IR_PLATE_CONFIDENCE),
            event_age=at(IR_EVENT_AGE),
            applied_decision_seq=at(IR_APPLIED_DECISION_SEQ),
            applied_decision_code=_as_enum(DecisionCode, at(IR_APPLIED_DECISION_CODE)),
            command_seq_echo=at(IR_COMMAND_SEQ_ECHO),
        )

    @property
    def has_event(self) -> bool:
        """True once the controller has seen any credential since boot."""
        return self.event_seq != 0

    @property
    def is_exit(self) -> bool:
        """Exit events are granted without asking the database."""
        return self.direction == Direction.EXIT or self.event_type == EventType.EXIT_BUTTON

    @property
    def credential(self) -> Credential | None:
        """The presented credential, or None for events that carry none (button, remote)."""
        if self.event_type == EventType.CARD:
            return Credential("card", str(self.card_number))
        if self.event_type == EventType.PLATE and self.plate:
            return Credential("plate", self.plate)
        if self.event_type == EventType.PIN:
            return Credential("pin", str(self.card_number))
        return None

    @property
    def loop_present(self) -> bool:
        """Input bit 0: a vehicle or person stands on the presence loop."""
        return bool(self.inputs & Input.LOOP)

    @property
    def safety_loop(self) -> bool:
        """Input bit 1: the safety loop under the leaf is occupied."""
        return bool(self.inputs & Input.SAFETY_LOOP)

    @property
    def photocell(self) -> bool:
        """Input bit 2: the photocell beam is broken."""
        return bool(self.inputs & Input.PHOTOCELL)

    @property
    def exit_button(self) -> bool:
        """Input bit 3: the exit button is pressed."""
        return bool(self.inputs & Input.EXIT_BUTTON)

    @property
    def open_limit(self) -> bool:
        """Input bit 4: the leaf is at its open limit."""
        return bool(self.inputs & Input.OPEN_LIMIT)

    @property
    def closed_limit(self) -> bool:
        """Input bit 5: the leaf is at its closed limit."""
        return bool(self.inputs & Input.CLOSED_LIMIT)

    @property
    def tamper(self) -> bool:
        """Input bit 6: the controller's case has been opened."""
        return bool(self.inputs & Input.TAMPER)


def decode_snapshot(registers: Sequence[int], word_order: WordOrder = "big") -> Snapshot:
    """Decode the 32 registers of IR 16-47 into a Snapshot."""
    return Snapshot.decode(registers, word_order)


def encode_snapshot(snapshot: Snapshot, word_order: WordOrder = "big") -> list[int]:
    """Encode a Snapshot into the 32 registers of IR 16-47 (the controller's side)."""
    regs = [0] * IR_SNAPSHOT_COUNT

    def put(address: int, values: Sequence[int]) -> None:
        start = address - IR_SNAPSHOT_START
        regs[start : start + len(values)] = values

    s = snapshot
    put(IR_HEARTBEAT, [check_u16(s.heartbeat, "heartbeat")])
    put(IR_GATE_STATE, [check_u16(s.gate_state, "gate_state")])
    put(IR_FAULT_CODE, [check_u16(s.fault_code, "fault_code")])
    put(IR_INPUTS, [check_u16(int(s.inputs), "inputs")])
    put(IR_EVENT_SEQ, [check_u16(s.event_seq, "event_seq")])
    put(IR_EVENT_TYPE, [check_u16(s.event_type, "event_type")])
    put(IR_DIRECTION, [check_u16(s.direction, "direction")])
    put(IR_LANE, [check_u16(s.lane, "lane")])
    put(IR_BIT_LENGTH, [check_u16(s.bit_length, "bit_length")])
    put(IR_CARD_NUMBER, encode_u64(s.card_number, word_order))
    put(IR_PLATE, encode_plate(s.plate))
    put(IR_PLATE_CONFIDENCE, [check_u16(s.plate_confidence, "plate_confidence")])
    put(IR_EVENT_AGE, [check_u16(s.event_age, "event_age")])
    put(IR_APPLIED_DECISION_SEQ, [check_u16(s.applied_decision_seq, "applied_decision_seq")])
    put(IR_APPLIED_DECISION_CODE, [check_u16(s.applied_decision_code, "applied_decision_code")])
    put(IR_COMMAND_SEQ_ECHO, [check_u16(s.command_seq_echo, "command_seq_echo")])
    return regs


def default_signal(code: DecisionCode | int) -> Signal:
    """The lamps for a decision when the caller does not choose: green+beep or red."""
    if code == DecisionCode.GRANT:
        return Signal.GREEN | Signal.BEEP
    if code == DecisionCode.TRY_AGAIN:
        # The beep tells the person at the gate this is not a refusal of them.
        return Signal.RED | Signal.BEEP
    return Signal.RED


def _check_seq(seq: int, name: str) -> int:
    if check_u16(seq, name) == 0:
        raise ValueError(f"{name} 0 means 'none' and cannot be sent")
    return seq


def encode_decision(
    seq: int,
    code: DecisionCode | int,
    pulse: int = 0,
    signal: Signal | int | None = None,
    text: str | None = None,
) -> list[int]:
    """Registers for one FC16 write at HR 100: 4 of them, or 20 with display text."""
    code = DecisionCode(code)
    chosen = default_signal(code) if signal is None else signal
    regs = [
        _check_seq(seq, "decision_seq"),
        int(code),
        check_u16(pulse, "pulse"),
        check_u16(int(chosen), "signal"),
    ]
    if text is not None:
        regs += encode_display_text(text)
    return regs


@dataclass(frozen=True)
class Decision:
    """HR 100-103 (and 104-119) as the controller receives them."""

    seq: int
    code: DecisionCode | int
    pulse: int = 0
    signal: int = 0
    text: str = ""

    @classmethod
    def decode(cls, registers: Sequence[int]) -> Decision:
        """Decode HR 100-103, or HR 100-119 when 20 registers are given."""
        if len(registers) not in (HR_DECISION_COUNT, HR_DECISION_WITH_TEXT_COUNT):
            raise ValueError(f"a decision is 4 or 20 registers, got {len(registers)}")
        regs = [check_u16(r, "register") for r in registers]
        text = decode_display_text(regs[HR_DECISION_COUNT:]) if len(regs) > 4 else ""
        return cls(regs[0], _as_enum(DecisionCode, regs[1]), regs[2], regs[3], text)


def encode_command(
    seq: int, command: Command | int, pulse: int, reason: CommandReason | int
) -> list[int]:
    """Registers for one FC16 write at HR 120-123."""
    return [
        _check_seq(seq, "command_seq"),
        int(Command(command)),
        check_u16(pulse, "pulse"),
        int(CommandReason(reason)),
    ]


@dataclass(frozen=True)
class CommandBlock:
    """HR 120-123 as the controller receives them."""

    seq: int
    command: Command | int
    pulse: int
    reason: CommandReason | int

    @classmethod
    def decode(cls, registers: Sequence[int]) -> CommandBlock:
        """Decode HR 120-123."""
        _check_registers(registers, HR_COMMAND_COUNT, "command")
        regs = [check_u16(r, "register") for r in registers]
        return cls(regs[0], _as_enum(Command, regs[1]), regs[2], _as_enum(CommandReason, regs[3]))


def pulse_seconds(pulse: int, default_s: float = 1.0) -> float:
    """Seconds a pulse register asks for; 0 means the controller's default."""
    return default_s if pulse == 0 else pulse * PULSE_UNIT_S
