"""Russian formats: dates DD.MM.YYYY HH:MM, money 1 380,00 ₽, phones +7 (999) 888-77-66."""

from __future__ import annotations

import datetime as dt

import pytest

from blueprints.i18n import format_ago, format_date, format_datetime, format_money
from domain.errors import DomainError
from domain.phones import format_phone, parse_phone


def test_datetime_in_the_territory_zone():
    moment = dt.datetime(2026, 1, 5, 7, 31, tzinfo=dt.UTC)
    assert format_datetime(moment, "Europe/Moscow") == "05.01.2026 10:31"
    assert format_datetime(moment, "Asia/Yekaterinburg") == "05.01.2026 12:31"
    assert format_date(moment, "Europe/Moscow") == "05.01.2026"
    assert format_datetime(None) == "-"


@pytest.mark.parametrize(("seconds", "said"), [
    (-3, "0 с назад"),  # a clock a little ahead: never «in the future»
    (59, "59 с назад"), (60, "1 мин назад"), (3599, "59 мин назад"), (3600, "1 ч назад"),
    (86399, "23 ч назад"), (86400, "04.01.2026 10:31"),  # a day or more: the moment itself
])
def test_how_long_ago_a_controller_answered(app, seconds, said):
    now = dt.datetime(2026, 1, 5, 7, 31, tzinfo=dt.UTC)
    with app.test_request_context():
        assert format_ago(now - dt.timedelta(seconds=seconds), now) == said


@pytest.mark.parametrize(
    ("kopecks", "ru", "en"),
    [
        (138000, "1\xa0380,00\xa0₽", "1,380.00\xa0₽"),
        (8500, "85,00\xa0₽", "85.00\xa0₽"),
        (1, "0,01\xa0₽", "0.01\xa0₽"),
        (-2833, "-28,33\xa0₽", "-28.33\xa0₽"),
    ],
)
def test_money_from_kopecks(app, kopecks, ru, en):
    from flask_babel import force_locale

    with app.test_request_context():
        assert format_money(kopecks) == ru
        with force_locale("en"):
            assert format_money(kopecks) == en


@pytest.mark.parametrize(
    "typed", ["9990001122", "89990001122", "+7 999 000-11-22", "+7 (999) 000-11-22"]
)
def test_phones_in_every_shape(typed):
    assert parse_phone(typed) == "+79990001122"
    assert format_phone("+79990001122") == "+7 (999) 000-11-22"


@pytest.mark.parametrize("typed", ["", "123", "phone", "+7 999", "99900011223344"])
def test_bad_phones_say_so_at_the_field(typed):
    with pytest.raises(DomainError) as raised:
        parse_phone(typed)
    assert raised.value.field == "phone"
