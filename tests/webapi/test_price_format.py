"""Prices as the API writes them: a decimal string with at least two places, no noise."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from webapi.product_schemas import format_price


def _by_normalize(value: Decimal) -> str:
    """The definition: the normalized digits, padded to two places."""
    whole, _, fraction = f"{value.normalize():f}".partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("19.9900", "19.99"),
        ("19.9000", "19.90"),
        ("100.0000", "100.00"),
        ("0.0000", "0.00"),
        ("0.0001", "0.0001"),
        ("1E+2", "100.00"),
        ("0E+2", "0.00"),
        ("2.5E+3", "2500.00"),
        ("9999999999.9999", "9999999999.9999"),
    ],
)
def test_prices_read_back_from_the_database(stored: str, shown: str) -> None:
    assert format_price(Decimal(stored)) == shown


def test_the_plain_notation_path_agrees_with_normalize_everywhere() -> None:
    rng = random.Random(7)
    for _ in range(20_000):
        value = Decimal(rng.randint(0, 10**14)).scaleb(rng.randint(-6, 4))
        assert format_price(value) == _by_normalize(value), value
