"""Plate normalisation, GOST R 50577 combinations, errors and display (SPEC §6)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import DomainError
from domain.passes import (
    PLATE_LETTERS_CYRILLIC,
    PLATE_LETTERS_LATIN,
    PlateKind,
    classify_plate,
    format_plate,
    normalize_plate,
    parse_plate,
)

# (typed, stored, kind, shown): real-looking plates of every combination, typed the ways
# people type them — Cyrillic, Latin, mixed, lower case, with spaces, dashes, dots, pipes.
VALID = [
    # тип 1: М 000 ММ 55(5)
    ("а 777 аа 999", "A777AA999", PlateKind.PRIVATE, "А 777 АА 999"),
    ("A777AA999", "A777AA999", PlateKind.PRIVATE, "А 777 АА 999"),
    ("a777aa999", "A777AA999", PlateKind.PRIVATE, "А 777 АА 999"),
    ("А777ВС77", "A777BC77", PlateKind.PRIVATE, "А 777 ВС 77"),
    ("о001ор97", "O001OP97", PlateKind.PRIVATE, "О 001 ОР 97"),
    ("Х 123 УК 178", "X123YK178", PlateKind.PRIVATE, "Х 123 УК 178"),
    ("к-456-мн|50", "K456MH50", PlateKind.PRIVATE, "К 456 МН 50"),
    ("Е.100.ТТ.01", "E100TT01", PlateKind.PRIVATE, "Е 100 ТТ 01"),
    ("в 901 Hp 716", "B901HP716", PlateKind.PRIVATE, "В 901 НР 716"),  # Latin H, Cyrillic р
    ("\tс 321 ох 23 ", "C321OX23", PlateKind.PRIVATE, "С 321 ОХ 23"),
    # тип 1Б: ММ 000 55(5)
    ("тх 123 77", "TX12377", PlateKind.TAXI, "ТХ 123 77"),
    ("ТХ 123 777", "TX123777", PlateKind.TAXI, "ТХ 123 777"),
    ("EK 555 199", "EK555199", PlateKind.TAXI, "ЕК 555 199"),
    # тип 2: ММ 0000 55(5)
    ("ав 1234 77", "AB123477", PlateKind.TRAILER, "АВ 1234 77"),
    ("АВ 1234 777", "AB1234777", PlateKind.TRAILER, "АВ 1234 777"),
    ("ен 0001 66", "EH000166", PlateKind.TRAILER, "ЕН 0001 66"),
    # тип 15: ММ 000 М 55(5)
    ("аа 123 а 77", "AA123A77", PlateKind.TRANSIT, "АА 123 А 77"),
    ("КМ 001 Т 750", "KM001T750", PlateKind.TRANSIT, "КМ 001 Т 750"),
    # тип 3/4/5/7/8: 0000 ММ 55(5)
    ("1234 ав 50", "1234AB50", PlateKind.MOTO_OR_MILITARY, "1234 АВ 50"),
    ("0001 ОО 178", "0001OO178", PlateKind.MOTO_OR_MILITARY, "0001 ОО 178"),
    # тип 20: М 0000 55(5)
    ("а 1234 77", "A123477", PlateKind.POLICE, "А 1234 77"),
    ("у 0077 199", "Y0077199", PlateKind.POLICE, "У 0077 199"),
    # тип 9: 000 CD 0 55; тип 10: 000 D 000 55, 000 T 000 55 — Latin letters kept
    ("001 CD 1 77", "001CD177", PlateKind.DIPLOMATIC, "001 CD 1 77"),
    ("004 d 123 77", "004D12377", PlateKind.DIPLOMATIC, "004 D 123 77"),
    ("004 Т 001 99", "004T00199", PlateKind.DIPLOMATIC, "004 T 001 99"),  # Cyrillic Т
]


@pytest.mark.parametrize(("typed", "stored", "kind", "shown"), VALID)
def test_valid_plates(typed: str, stored: str, kind: PlateKind, shown: str) -> None:
    assert parse_plate(typed) == stored
    assert classify_plate(stored) is kind
    assert format_plate(stored) == shown
    assert parse_plate(shown) == stored


def test_the_spec_example_is_one_plate() -> None:
    assert normalize_plate("а 777 аа 999") == normalize_plate("A777AA999") == "A777AA999"
    assert normalize_plate("a777aa999") == "A777AA999"


def test_stored_plates_are_what_the_gate_sends() -> None:
    # GATE_PROTOCOL.md: ASCII, Latin twins of АВЕКМНОРСТУХ, at most 16 characters.
    for _, stored, _, _ in VALID:
        assert stored.isascii() and len(stored) <= 16


def test_two_letters_six_digits_is_taxi_or_trailer_by_the_region() -> None:
    # ММ 000 555 (тип 1Б) and ММ 0000 55 (тип 2) are the same string; 3-digit regions in
    # use start with 1 or 7, so only those are read as a taxi.
    assert classify_plate("TX123777") is PlateKind.TAXI
    assert classify_plate("TX123177") is PlateKind.TAXI
    assert classify_plate("AB123477") is PlateKind.TRAILER
    # A taxi reading that is invalid (serial 000) falls back to the trailer one.
    assert classify_plate("AB000177") is PlateKind.TRAILER


# (typed, words the message must contain)
INVALID = [
    ("", "Введите номер"),
    ("   ", "Введите номер"),
    (" - . | ", "Введите номер"),
    ("А777АА7777777777777", "слишком длинный"),
    ("Б 777 АА 77", "«Б»"),
    ("а 777 жж 77", "«Ж»"),
    ("D 777 AA 77", "«D»"),
    ("A 777 AF 77", "«F»"),
    ("a777aa77!", "«!»"),
    ("a777#aa77", "«#»"),
    ("a777\x00aa77", "U+0000"),
    ("А 000 АА 77", "нулей"),
    ("АВ 0000 77", "нулей"),
    ("А 777 АА 00", "региона"),
    ("А 777 АА 077", "региона"),
    ("А 777 АА 7", "иностранный номер"),
    ("777 АА 77", "иностранный номер"),
    ("АА", "иностранный номер"),
    ("А 7777 АА 77", "иностранный номер"),
]


@pytest.mark.parametrize(("typed", "words"), INVALID)
def test_invalid_plates_say_why(typed: str, words: str) -> None:
    with pytest.raises(DomainError) as caught:
        parse_plate(typed)
    assert caught.value.field == "plate"
    assert words in str(caught.value)


def test_messages_are_russian_and_lazy() -> None:
    with pytest.raises(DomainError) as caught:
        parse_plate("ABC")
    # A lazy string is resolved in the request's language when the view renders it.
    assert type(caught.value.message).__name__ == "LazyString"
    assert re.search("[а-яА-Я]", str(caught.value))


def test_unknown_letter_hint_names_the_foreign_choice_only_when_it_would_help() -> None:
    with pytest.raises(DomainError) as latin:
        parse_plate("Q 777 AA 77")
    assert "иностранный номер" in str(latin.value)
    with pytest.raises(DomainError) as cyrillic:
        parse_plate("Я 777 АА 77")  # no plate anywhere has Я: the foreign choice won't help
    assert "иностранный номер" not in str(cyrillic.value)
    assert "А, В, Е, К, М, Н, О, Р, С, Т, У, Х" in str(cyrillic.value)


FOREIGN_VALID = [
    ("wx-123-yz", "WX123YZ"),
    ("B MW 1234", "BMW1234"),
    ("AB 123 CD", "AB123CD"),
    ("ав 12", "AB12"),  # look-alikes still become Latin
    ("42", "42"),
    ("A" * 16, "A" * 16),
    ("а 777 аа 77", "A777AA77"),  # a Russian plate is a fine foreign one too
]


@pytest.mark.parametrize(("typed", "stored"), FOREIGN_VALID)
def test_foreign_plates(typed: str, stored: str) -> None:
    assert parse_plate(typed, foreign=True) == stored
    assert parse_plate(format_plate(stored), foreign=True) == stored


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("", "Введите номер"),
        ("A", "короткий"),
        ("A" * 17, "слишком длинный"),
        ("ÄÖ 123", "«Ä»"),
        ("Жук 12", "«Ж»"),
        ("AB_12*", "«*»"),
        ("AB@12", "«@»"),
    ],
)
def test_foreign_garbage_is_refused(typed: str, words: str) -> None:
    with pytest.raises(DomainError) as caught:
        parse_plate(typed, foreign=True)
    assert caught.value.field == "plate"
    assert words in str(caught.value)


def test_foreign_plate_is_shown_as_stored() -> None:
    assert format_plate("WX123YZ") == "WX123YZ"


# --- properties -------------------------------------------------------------------------

letters = st.sampled_from(range(len(PLATE_LETTERS_LATIN)))
serial = st.integers(1, 999).map(lambda n: f"{n:03d}")
region = st.one_of(st.integers(1, 99).map(lambda n: f"{n:02d}"), st.integers(100, 999).map(str))
separator = st.sampled_from(["", " ", "  ", "-", ".", "|", " - "])


@st.composite
def private_plates(draw: st.DrawFn) -> tuple[str, str]:
    """A тип 1 plate typed twice: once in Cyrillic, once in Latin, in any case and spacing."""
    picks = [draw(letters) for _ in range(3)]
    number, reg = draw(serial), draw(region)

    def typed(alphabet: str) -> str:
        chars = [alphabet[i] for i in picks]
        chars = [c.lower() if draw(st.booleans()) else c for c in chars]
        sep = draw(separator)
        return sep.join([chars[0], number, chars[1] + chars[2], reg])

    return typed(PLATE_LETTERS_CYRILLIC), typed(PLATE_LETTERS_LATIN)


@given(st.text())
def test_normalisation_is_idempotent(text: str) -> None:
    once = normalize_plate(text)
    assert normalize_plate(once) == once


@given(private_plates())
def test_cyrillic_look_alikes_equal_latin(pair: tuple[str, str]) -> None:
    cyrillic, latin = pair
    assert normalize_plate(cyrillic) == normalize_plate(latin)
    assert parse_plate(cyrillic) == parse_plate(latin)
    assert classify_plate(parse_plate(latin)) is PlateKind.PRIVATE


@given(private_plates())
def test_shown_plate_reads_back(pair: tuple[str, str]) -> None:
    stored = parse_plate(pair[0])
    assert parse_plate(format_plate(stored)) == stored


@given(st.text(), st.booleans())
def test_any_text_is_a_plate_or_a_domain_error(text: str, foreign: bool) -> None:
    try:
        stored = parse_plate(text, foreign=foreign)
    except DomainError as error:
        assert error.field == "plate"
        assert str(error)
        return
    assert re.fullmatch("[A-Z0-9]{2,16}", stored)
    assert normalize_plate(stored) == stored
    if not foreign:
        assert classify_plate(stored) is not None
    assert parse_plate(format_plate(stored), foreign=foreign) == stored


@given(st.text(alphabet="АВЕКМНОРСТУХавекмнорстухABEKMHOPCTYXabekmhopctyx0123456789 -"))
def test_plate_like_text_never_escapes_as_another_error(text: str) -> None:
    try:
        parse_plate(text)
    except DomainError:
        pass


@pytest.mark.parametrize(("typed", "stored", "as_foreign"), [
    ("Р 321 РР 77 RUS", "P321PP77", "P321PP77"),  # as printed on the plate
    ("a777aa177rus", "A777AA177", "A777AA177"),
    ("А ОО1 АА 77", "A001AA77", "AOO1AA77"),  # the letter О for a zero
    ("А 123 0А 77", "A123OA77", "A1230A77"),  # a zero for the letter О
    ("ОО1 АА 77 RUS", None, "OO1AA77RUS"),  # no Russian reading: refused as before
    # A foreign plate of digits stays digits (it read as the motorcycle 1234 ОО 56).
    ("12340056", "1234OO56", "12340056"),
    ("0123477", "O123477", "0123477"),
])
def test_a_russian_plate_typed_with_a_slip_is_that_plate(typed, stored, as_foreign):
    """«Р 321 РР 77 RUS» was refused with «Буквы «R» нет… отметьте «иностранный номер»»; filed
    as foreign it was P321PP77RUS, which no camera sends (s24 audit). Under «иностранный
    номер» only «RUS» goes: O and 0 are read as typed there (review, stop 24)."""
    if stored is None:
        with pytest.raises(DomainError):
            parse_plate(typed)
    else:
        assert parse_plate(typed) == stored
    assert parse_plate(typed, foreign=True) == as_foreign


def test_a_slip_with_two_russian_readings_is_not_guessed() -> None:
    # «O 123 0O 77» reads as О 123 ОО 77 (a car) and as 0123 ОО 77 (a motorcycle): neither
    # is picked, and the person is asked to check the number.
    with pytest.raises(DomainError) as caught:
        parse_plate("O 123 0O 77")
    assert caught.value.field == "plate"
