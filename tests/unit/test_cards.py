"""The number on the back of an access card and the value a reader sends (SPEC §3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.billing import CARD_VALUE_MAX, format_card_number, parse_card_number
from domain.errors import DomainError

# (printed, value a reader sends, shown)
VALID = [
    # EM-Marine pair: facility * 65536 + number (Wiegand 26: 8-bit facility, 16-bit number)
    ("123,45678", 8_106_606, "123,45678"),
    ("123/45678", 8_106_606, "123,45678"),
    ("123.45678", 8_106_606, "123,45678"),  # an English decimal keypad has no comma
    ("12.5", 12 * 65536 + 5, "012,00005"),
    ("123 45678", 8_106_606, "123,45678"),
    (" 123 , 45678 ", 8_106_606, "123,45678"),
    ("012,00345", 12 * 65536 + 345, "012,00345"),
    ("12,345", 12 * 65536 + 345, "012,00345"),
    ("000,12345", 12_345, "000,12345"),
    ("0,1", 1, "000,00001"),
    ("255,65535", 2**24 - 1, "255,65535"),
    # A card printed «213 02000» and «0013961168» is one card: 0x00D507D0 = 213·65536 + 2000.
    ("213 02000", 13_961_168, "213,02000"),
    ("0013961168", 13_961_168, "213,02000"),
    # Plain decimals, also the ten-digit EM-Marine form
    ("8106606", 8_106_606, "123,45678"),
    ("0008106606", 8_106_606, "123,45678"),
    ("12345", 12_345, "000,12345"),
    ("16777216", 2**24, "16777216"),  # past Wiegand 26: shown as the decimal
    ("4329479323", 4_329_479_323, "4329479323"),  # a 40-bit EM4100 serial
    ("18446744073709551615", CARD_VALUE_MAX, "18446744073709551615"),  # u64, the protocol's
    ("00000000000000000000000000042", 42, "000,00042"),  # leading zeros are not size
]


@pytest.mark.parametrize(("printed", "value", "shown"), VALID)
def test_valid_card_numbers(printed: str, value: int, shown: str) -> None:
    assert parse_card_number(printed) == value
    assert format_card_number(value) == shown
    assert parse_card_number(shown) == value


# (typed, words the message must contain)
INVALID = [
    ("", "Введите номер карты"),
    ("   ", "Введите номер карты"),
    ("256,00001", "255"),
    ("999/1", "255"),
    ("1,65536", "65535"),
    ("123 99999", "65535"),
    ("1,99999999999999999999999", "65535"),
    ("18446744073709551616", "слишком большой"),
    ("9" * 5000, "слишком большой"),  # int() of a huge string must not be reached
    ("12a45", "только цифры"),
    ("123,", "только цифры"),
    (",45678", "только цифры"),
    ("1,2,3", "только цифры"),
    ("1 2 3", "только цифры"),
    ("-5", "только цифры"),
    ("12.5.1", "только цифры"),
    ("١٢٣", "только цифры"),  # Arabic-Indic digits are not printed on cards
    ("²", "только цифры"),
    ("0", "нулевым"),
    ("000,00000", "нулевым"),
]


@pytest.mark.parametrize(("typed", "words"), INVALID)
def test_invalid_card_numbers_say_why(typed: str, words: str) -> None:
    with pytest.raises(DomainError) as caught:
        parse_card_number(typed)
    assert caught.value.field == "card_number"
    assert words in str(caught.value)


@pytest.mark.parametrize("value", [-1, 2**64])
def test_format_refuses_values_outside_u64(value: int) -> None:
    with pytest.raises(ValueError, match="u64"):
        format_card_number(value)


# --- properties -------------------------------------------------------------------------

facilities = st.integers(0, 255)
numbers = st.integers(0, 65535)
separators = st.sampled_from([",", "/", " ", " , ", "  ", "/ "])


@given(st.integers(1, CARD_VALUE_MAX))
def test_format_then_parse_is_the_identity(value: int) -> None:
    assert parse_card_number(format_card_number(value)) == value


@given(facilities, numbers, separators, st.integers(0, 3), st.integers(0, 3))
def test_pair_is_facility_times_65536_plus_number(
    facility: int, number: int, sep: str, pad_f: int, pad_n: int
) -> None:
    if facility == number == 0:
        return
    printed = f"{facility:0{pad_f}d}{sep}{number:0{pad_n}d}"
    assert parse_card_number(printed) == facility * 65536 + number


@given(st.integers(1, 2**24 - 1))
def test_wiegand_26_values_show_as_the_printed_pair(value: int) -> None:
    facility, number = format_card_number(value).split(",")
    assert len(facility) == 3 and len(number) == 5
    assert int(facility) * 65536 + int(number) == value


@given(st.text())
def test_any_text_is_a_card_or_a_domain_error(text: str) -> None:
    try:
        value = parse_card_number(text)
    except DomainError as error:
        assert error.field == "card_number"
        assert str(error)
        return
    assert 1 <= value <= CARD_VALUE_MAX


@given(st.text(alphabet="0123456789,/ ", max_size=40))
def test_digit_soup_never_escapes_as_another_error(text: str) -> None:
    try:
        parse_card_number(text)
    except DomainError:
        pass


def test_the_log_shows_a_card_as_printed_like_the_cards_page():
    from domain.gates import GateEvent

    assert GateEvent(kind="card", credential="8106606").shown_credential == "123,45678"
    assert GateEvent(kind="card", credential="18446744073709551000").shown_credential == \
        "18446744073709551000"
    assert GateEvent(kind="card", credential="99999999999999999999999").shown_credential == \
        "99999999999999999999999"  # out of range: as the reader sent it
