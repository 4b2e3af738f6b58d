"""Billing rules in integers: per-month prices, promo discounts, month arithmetic, amounts."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.billing import (
    add_months,
    extend_from,
    kopecks_to_value,
    parse_rubles,
    per_month_kopecks,
    percent_of,
    value_to_kopecks,
)
from domain.errors import DomainError

UTC = dt.UTC


@pytest.mark.parametrize(("price", "months", "per_month"), [
    (8500, 3, 2833),     # 85,00 ₽ / 3 → 28,33 ₽ (seed 000 §3.4)
    (30000, 12, 2500),   # 300,00 ₽ / 12 → 25,00 ₽
    (100, 3, 33),        # 33,33… → 33
    (200, 3, 67),        # 66,67 → 67
    (50, 4, 13),         # 12,5 exactly → half up → 13
    (150, 4, 38),        # 37,5 → 38
    (1, 2, 1),           # 0,5 → 1
    (15000, 48, 313),    # 312,5 → 313
])
def test_price_per_month_rounds_half_up(price, months, per_month):
    assert per_month_kopecks(price, months) == per_month


@given(st.integers(1, 10**10), st.integers(1, 120))
def test_price_per_month_matches_exact_fractions(price, months):
    from fractions import Fraction

    exact = Fraction(price, months)
    assert per_month_kopecks(price, months) == int(exact + Fraction(1, 2))


@pytest.mark.parametrize(("amount", "percent", "discount"), [
    (8500, 10, 850), (8500, 15, 1275), (15000, 33, 4950), (999, 50, 500), (101, 1, 1),
    (150, 1, 2),  # 1,5 → 2 (half up)
])
def test_percent_discount_in_kopecks(amount, percent, discount):
    assert percent_of(amount, percent) == discount


def test_promo_discount_never_exceeds_the_price():
    from domain.billing import PromoCode

    assert PromoCode(fixed_kopecks=20000).discount_for(15000) == 15000
    assert PromoCode(fixed_kopecks=5000).discount_for(15000) == 5000
    assert PromoCode(percent=20).discount_for(8500) == 1700


@pytest.mark.parametrize(("text", "kopecks"), [
    ("85", 8500), ("85,00", 8500), ("85.5", 8550), ("1 380,00 ₽", 138000), ("0,01", 1),
    ("300 руб.", 30000),
])
def test_parse_rubles(text, kopecks):
    assert parse_rubles(text) == kopecks


@pytest.mark.parametrize("text", ["", "abc", "-5", "1,234", "0", "1e3", "85,00,00"])
def test_parse_rubles_refuses(text):
    with pytest.raises(DomainError):
        parse_rubles(text)


@given(st.integers(0, 10**12))
def test_api_values_round_trip_without_floats(kopecks):
    assert value_to_kopecks(kopecks_to_value(kopecks)) == kopecks


def test_api_values():
    assert kopecks_to_value(8500) == "85.00" and kopecks_to_value(5) == "0.05"
    assert value_to_kopecks("85.0") == 8500 and value_to_kopecks("85") == 8500
    for bad in ("85.001", "-1.00", "1e2", "", "NaN"):
        with pytest.raises(ValueError):
            value_to_kopecks(bad)


def test_add_months_keeps_the_local_wall_clock_and_clamps_the_day():
    moscow = "Europe/Moscow"
    start = dt.datetime(2022, 11, 18, 13, 48, tzinfo=UTC)  # 16:48 in Moscow
    assert add_months(start, 12, moscow) == dt.datetime(2023, 11, 18, 13, 48, tzinfo=UTC)
    end_of_jan = dt.datetime(2024, 1, 31, 9, 0, tzinfo=UTC)
    assert add_months(end_of_jan, 1, moscow) == dt.datetime(2024, 2, 29, 9, 0, tzinfo=UTC)
    assert add_months(end_of_jan, 13, moscow) == dt.datetime(2025, 2, 28, 9, 0, tzinfo=UTC)
    # 31 Dec 23:30 in Moscow is 20:30 UTC; three months later is 31 Mar in Moscow.
    late = dt.datetime(2023, 12, 31, 20, 30, tzinfo=UTC)
    assert add_months(late, 3, moscow) == dt.datetime(2024, 3, 31, 20, 30, tzinfo=UTC)


def test_extension_from_the_later_of_now_and_the_current_end():
    now = dt.datetime(2024, 5, 1, tzinfo=UTC)
    assert extend_from(None, now) == now
    assert extend_from(now - dt.timedelta(days=3), now) == now  # lapsed: from now
    later = now + dt.timedelta(days=40)
    assert extend_from(later, now) == later  # still paid: from its end
