"""GATE-CTL v1 encoding checked against register values worked out by hand from the spec."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatebridge import protocol as p

# -- the register map itself ----------------------------------------------------------


def test_addresses_follow_the_contract():
    assert (p.IR_SNAPSHOT_START, p.IR_SNAPSHOT_COUNT) == (16, 32)
    assert p.IR_SNAPSHOT_START + p.IR_SNAPSHOT_COUNT - 1 == 47
    assert (p.IR_MAP_VERSION, p.IR_DEVICE_TYPE, p.IR_SERIAL) == (0, 1, 2)
    assert (p.IR_HEARTBEAT, p.IR_GATE_STATE, p.IR_FAULT_CODE, p.IR_INPUTS) == (16, 17, 18, 19)
    assert (p.IR_EVENT_SEQ, p.IR_EVENT_TYPE, p.IR_DIRECTION, p.IR_LANE) == (20, 21, 22, 23)
    assert (p.IR_BIT_LENGTH, p.IR_CARD_NUMBER, p.IR_PLATE) == (24, 26, 30)
    assert (p.IR_PLATE_CONFIDENCE, p.IR_EVENT_AGE) == (38, 39)
    assert (p.IR_APPLIED_DECISION_SEQ, p.IR_APPLIED_DECISION_CODE) == (40, 41)
    assert p.IR_COMMAND_SEQ_ECHO == 42
    assert (p.HR_DECISION_SEQ, p.HR_DECISION_CODE, p.HR_DECISION_PULSE) == (100, 101, 102)
    assert (p.HR_DECISION_SIGNAL, p.HR_DISPLAY_TEXT) == (103, 104)
    assert p.HR_DISPLAY_TEXT + p.DISPLAY_TEXT_REGISTERS - 1 == 119
    assert (p.HR_COMMAND_SEQ, p.HR_COMMAND, p.HR_COMMAND_PULSE, p.HR_COMMAND_REASON) == (
        120,
        121,
        122,
        123,
    )
    assert (p.HR_WATCHDOG, p.HR_OFFLINE_POLICY, p.COIL_RELAY) == (200, 201, 0)


def test_enum_values_follow_the_contract():
    assert [int(s) for s in p.GateState] == [0, 1, 2, 3, 4, 5, 6]
    assert p.GateState.OPEN == 3 and p.GateState.FAULT == 6
    assert (p.EventType.CARD, p.EventType.PLATE, p.EventType.PIN) == (1, 2, 3)
    assert (p.EventType.EXIT_BUTTON, p.EventType.REMOTE) == (4, 5)
    assert (p.Direction.ENTRY, p.Direction.EXIT) == (1, 2)
    assert [int(c) for c in p.DecisionCode] == [1, 2, 3, 4, 5, 6]
    assert (p.DecisionCode.GRANT, p.DecisionCode.TRY_AGAIN) == (1, 6)
    assert [int(c) for c in p.Command] == [1, 2, 3, 4]
    assert [int(r) for r in p.CommandReason] == [1, 2, 3, 4]
    assert [int(d) for d in p.DeviceType] == [1, 2, 3]
    assert (p.Input.LOOP, p.Input.EXIT_BUTTON, p.Input.TAMPER) == (1, 8, 64)
    assert (p.Signal.GREEN, p.Signal.RED, p.Signal.BEEP) == (1, 2, 4)


# -- multi-register integers ------------------------------------------------------------


def test_u32_word_orders():
    assert p.encode_u32(0x12345678) == [0x1234, 0x5678]
    assert p.encode_u32(0x12345678, "little") == [0x5678, 0x1234]
    assert p.decode_u32([0x1234, 0x5678]) == 0x12345678
    assert p.decode_u32([0x5678, 0x1234], "little") == 0x12345678


def test_u64_card_numbers():
    assert p.encode_u64(0x0123456789ABCDEF) == [0x0123, 0x4567, 0x89AB, 0xCDEF]
    assert p.encode_u64(0x0123456789ABCDEF, "little") == [0xCDEF, 0x89AB, 0x4567, 0x0123]
    # 12345678 = 0x00BC614E, a typical 26-bit card read as a plain number
    assert p.encode_u64(12345678) == [0, 0, 0x00BC, 0x614E]
    assert p.encode_u64(12345678, "little") == [0x614E, 0x00BC, 0, 0]
    assert p.decode_u64([0xFFFF] * 4) == 2**64 - 1


@pytest.mark.parametrize("value", [-1, 2**32])
def test_u32_out_of_range(value):
    with pytest.raises(ValueError):
        p.encode_u32(value)


def test_bad_word_order_and_register_counts():
    with pytest.raises(ValueError):
        p.encode_u32(1, "middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        p.decode_u32([1, 2, 3])
    with pytest.raises(ValueError):
        p.decode_u64([0x10000, 0, 0, 0])


# -- strings and plates -------------------------------------------------------------------


def test_plate_registers():
    expected = [0x4137, 0x3737, 0x4141, 0x3939, 0, 0, 0, 0]
    assert p.encode_plate("A777AA99") == expected
    # Cyrillic letters go out as their Latin twins; case and spaces do not matter
    assert p.encode_plate("А777АА99") == expected
    assert p.encode_plate(" а 777 аа 99 ") == expected
    assert p.decode_plate(expected) == "A777AA99"


def test_plate_odd_length_pads_low_byte():
    assert p.encode_plate("ABC") == [0x4142, 0x4300, 0, 0, 0, 0, 0, 0]


def test_plate_decoding_strips_nul_space_and_uppercases():
    # " a7" then a NUL, then junk after the NUL which is padding and must be ignored
    assert p.decode_plate([0x2061, 0x3700, 0x5858, 0, 0, 0, 0, 0]) == "A7"
    assert p.decode_plate([0x6B20, 0x3132, 0x3320, 0x6D68, 0, 0, 0, 0]) == "K123MH"
    assert p.decode_plate([0] * 8) == ""


def test_plate_to_latin_maps_every_lookalike():
    assert p.plate_to_latin("авекмнорстух") == "ABEKMHOPCTYX"


def test_plate_too_long_or_not_latin():
    with pytest.raises(ValueError):
        p.encode_plate("A" * 17)
    with pytest.raises(ValueError):
        p.encode_plate("Д123ДД77")  # Д has no Latin twin


def test_string_registers():
    assert p.encode_string("AB", 2) == [0x4142, 0]
    assert p.decode_string([0x4142, 0x4300]) == "ABC"


# -- decisions and commands -----------------------------------------------------------------


def test_grant_decision_layout():
    # seq, code 1, pulse 0 (default), signal green (bit 0) + beep (bit 2) = 5
    assert p.encode_decision(7, p.DecisionCode.GRANT) == [7, 1, 0, 5]


def test_deny_decisions_show_red():
    for code in (2, 3, 4, 5):
        assert p.encode_decision(0x1234, code) == [0x1234, code, 0, 2]


def test_try_again_shows_red_and_beeps():
    assert p.encode_decision(9, p.DecisionCode.TRY_AGAIN) == [9, 6, 0, 6]


def test_decision_pulse_and_explicit_signal():
    # pulse 30 = 3 s in units of 100 ms; an explicit 0 signal is not replaced by the default
    assert p.encode_decision(65535, 1, pulse=30, signal=0) == [65535, 1, 30, 0]
    assert p.encode_decision(1, 1, signal=p.Signal.GREEN) == [1, 1, 0, 1]


def test_decision_with_ascii_text():
    regs = p.encode_decision(3, 1, text="OK")
    assert len(regs) == 20
    assert regs == [3, 1, 0, 5, 0x4F4B] + [0] * 15


def test_decision_with_cyrillic_text_is_utf8():
    # П=D0 9F р=D1 80 и=D0 B8 в=D0 B2 е=D0 B5 т=D1 82
    regs = p.encode_decision(3, 2, text="Привет")
    assert regs[4:] == [0xD09F, 0xD180, 0xD0B8, 0xD0B2, 0xD0B5, 0xD182] + [0] * 10
    assert p.Decision.decode(regs).text == "Привет"


def test_display_text_cut_on_character_boundary():
    exact = "Ж" * 16  # 32 bytes, fits
    assert p.decode_display_text(p.encode_display_text(exact)) == exact
    # 33 bytes: the 16th Ж would be split, so it is dropped whole and the last byte is NUL
    regs = p.encode_display_text("A" + "Ж" * 16)
    assert regs[0] == 0x41D0
    assert regs[-1] == 0x9600
    assert p.decode_display_text(regs) == "A" + "Ж" * 15


@pytest.mark.parametrize("bad", [0, 65536, -1])
def test_decision_seq_must_be_1_to_65535(bad):
    with pytest.raises(ValueError):
        p.encode_decision(bad, 1)


def test_decision_code_must_be_known():
    with pytest.raises(ValueError):
        p.encode_decision(1, 7)


def test_command_layout():
    assert p.encode_command(42, p.Command.OPEN, 50, p.CommandReason.PHONE) == [42, 1, 50, 1]
    assert p.encode_command(65535, 2, 0, 4) == [65535, 2, 0, 4]
    with pytest.raises(ValueError):
        p.encode_command(0, 1, 0, 1)
    with pytest.raises(ValueError):
        p.encode_command(1, 5, 0, 1)


def test_decode_decision_and_command_blocks():
    decision = p.Decision.decode([7, 1, 30, 5])
    assert decision == p.Decision(7, p.DecisionCode.GRANT, 30, 5, "")
    command = p.CommandBlock.decode([42, 1, 50, 1])
    assert command == p.CommandBlock(42, p.Command.OPEN, 50, p.CommandReason.PHONE)
    with pytest.raises(ValueError):
        p.Decision.decode([1, 2, 3])


def test_pulse_seconds():
    assert p.pulse_seconds(0) == 1.0
    assert p.pulse_seconds(0, default_s=2.5) == 2.5
    assert p.pulse_seconds(30) == pytest.approx(3.0)


# -- sequence numbers -------------------------------------------------------------------------


def test_next_seq_wraps_past_zero():
    assert p.next_seq(1) == 2
    assert p.next_seq(65534) == 65535
    assert p.next_seq(65535) == 1
    assert p.next_seq(0) == 1
    with pytest.raises(ValueError):
        p.next_seq(65536)


# -- snapshots ---------------------------------------------------------------------------------


def hand_snapshot_registers():
    """IR 16-47 of a card held to the exit reader, worked out from the table."""
    return [
        0x0102,  # 16 heartbeat 258
        3,  # 17 gate_state open
        0,  # 18 fault_code
        0x11,  # 19 inputs: loop (bit 0) + open limit (bit 4)
        513,  # 20 event_seq
        1,  # 21 event_type card
        2,  # 22 direction exit
        0,  # 23 lane
        26,  # 24 bit_length
        0,  # 25 reserved
        0,  # 26 card_number, high word first
        0,
        0x00BC,
        0x614E,  # 29 -> 12345678
        0,  # 30-37 plate (none for a card)
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,  # 38 plate_confidence
        4,  # 39 event_age
        512,  # 40 applied_decision_seq
        1,  # 41 applied_decision_code grant
        9,  # 42 command_seq_echo
        0,  # 43-47 reserved
        0,
        0,
        0,
        0,
    ]


def test_snapshot_from_hand_registers():
    regs = hand_snapshot_registers()
    assert len(regs) == 32
    s = p.decode_snapshot(regs)
    assert s.heartbeat == 258
    assert s.gate_state is p.GateState.OPEN
    assert s.inputs == 0x11
    assert s.loop_present and s.open_limit
    assert not (s.safety_loop or s.photocell or s.exit_button or s.closed_limit or s.tamper)
    assert s.event_seq == 513 and s.has_event
    assert s.event_type is p.EventType.CARD
    assert s.direction is p.Direction.EXIT
    assert s.bit_length == 26
    assert s.card_number == 12345678
    assert s.plate == ""
    assert s.event_age == 4
    assert (s.applied_decision_seq, s.applied_decision_code) == (512, p.DecisionCode.GRANT)
    assert s.command_seq_echo == 9
    assert s.is_exit
    assert s.credential == p.Credential("card", "12345678")
    assert p.encode_snapshot(s) == regs


def test_snapshot_little_word_order_card():
    regs = hand_snapshot_registers()
    regs[10:14] = [0x614E, 0x00BC, 0, 0]
    assert p.decode_snapshot(regs, "little").card_number == 12345678
    assert p.decode_snapshot(regs).card_number != 12345678


def test_snapshot_plate_event():
    regs = [0] * 32
    regs[4:7] = [1, 2, 1]  # event_seq 1, plate, entry
    regs[14:22] = [0x4137, 0x3737, 0x4141, 0x3939, 0, 0, 0, 0]
    regs[22] = 87
    s = p.Snapshot.decode(regs)
    assert s.plate == "A777AA99"
    assert s.plate_confidence == 87
    assert not s.is_exit
    assert s.credential == p.Credential("plate", "A777AA99")


def test_exit_button_is_exit_and_carries_no_credential():
    s = p.Snapshot(event_seq=5, event_type=p.EventType.EXIT_BUTTON, direction=p.Direction.ENTRY)
    assert s.is_exit
    assert s.credential is None


def test_no_event_since_boot():
    s = p.decode_snapshot([0] * 32)
    assert not s.has_event
    assert s.credential is None
    assert s.gate_state is p.GateState.UNKNOWN


def test_unknown_enum_values_are_kept_not_rejected():
    regs = [0] * 32
    regs[1] = 99  # a gate_state from a newer firmware
    regs[5] = 42
    s = p.decode_snapshot(regs)
    assert s.gate_state == 99
    assert s.event_type == 42


def test_snapshot_needs_exactly_32_registers():
    with pytest.raises(ValueError):
        p.decode_snapshot([0] * 31)


def test_device_info():
    info = p.DeviceInfo.decode([1, 3, 0x1234, 0x5678])
    assert info == p.DeviceInfo(1, p.DeviceType.TURNSTILE, 0x12345678)
    assert info.encode("little") == [1, 3, 0x5678, 0x1234]


# -- properties ---------------------------------------------------------------------------------

word_orders = st.sampled_from(["big", "little"])
u16 = st.integers(0, 0xFFFF)
plates = st.text(alphabet="ABEKMHOPCTYX0123456789", max_size=16)


@given(st.integers(0, 2**32 - 1), word_orders)
def test_u32_round_trip(value, order):
    assert p.decode_u32(p.encode_u32(value, order), order) == value


@given(st.integers(0, 2**64 - 1), word_orders)
def test_u64_round_trip(value, order):
    regs = p.encode_u64(value, order)
    assert len(regs) == 4 and all(0 <= r <= 0xFFFF for r in regs)
    assert p.decode_u64(regs, order) == value


snapshots = st.builds(
    p.Snapshot,
    heartbeat=u16,
    gate_state=st.integers(0, 6),
    fault_code=u16,
    inputs=st.integers(0, 0x7F),
    event_seq=u16,
    event_type=st.integers(0, 5),
    direction=st.integers(0, 2),
    lane=u16,
    bit_length=st.sampled_from([0, 26, 34, 40, 56]),
    card_number=st.integers(0, 2**64 - 1),
    plate=plates,
    plate_confidence=st.integers(0, 100),
    event_age=u16,
    applied_decision_seq=u16,
    applied_decision_code=st.integers(0, 6),
    command_seq_echo=u16,
)


@given(snapshots, word_orders)
def test_snapshot_round_trip(snapshot, order):
    regs = p.encode_snapshot(snapshot, order)
    assert len(regs) == 32
    assert all(0 <= r <= 0xFFFF for r in regs)
    assert p.decode_snapshot(regs, order) == snapshot


ascii_no_nul = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=127), max_size=16)


@given(ascii_no_nul)
def test_string_round_trip(text):
    regs = p.encode_string(text, 8)
    assert len(regs) == 8
    assert p.decode_string(regs) == text


@given(st.text(alphabet="АВЕКМНОРСТУХabekmhopctyx0123456789 ", max_size=16))
def test_plate_round_trip_normalises(plate):
    assert p.decode_plate(p.encode_plate(plate)) == p.plate_to_latin(plate)


@given(st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=["Cs"])))
def test_display_text_is_a_valid_prefix(text):
    regs = p.encode_display_text(text)
    assert len(regs) == 16
    decoded = p.decode_display_text(regs)
    assert text.startswith(decoded)
    assert len(decoded.encode()) <= 32
    if len(text.encode()) <= 32:
        assert decoded == text
    else:
        # Only what would not fit was dropped: one more character would overflow.
        assert len(text[: len(decoded) + 1].encode()) > 32


@given(st.integers(0, 0xFFFF))
def test_next_seq_never_zero(seq):
    nxt = p.next_seq(seq)
    assert 1 <= nxt <= 0xFFFF
    assert nxt == (seq + 1 if seq < 0xFFFF else 1)
