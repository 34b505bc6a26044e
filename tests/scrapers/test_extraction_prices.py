import pytest

from scrapers.extraction.currencies import currency_code
from scrapers.extraction.prices import parse_price


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("1.234,56 €", "1234.56", "EUR"),
        ("€1,234.56", "1234.56", "EUR"),
        ("1 234,56 zł", "1234.56", "PLN"),
        ("CHF 1'234.50", "1234.50", "CHF"),
        ("¥1,234", "1234.00", "JPY"),
        ("R$ 1.234,56", "1234.56", "BRL"),
        ("$1,234", "1234.00", "USD"),
        ("US$ 19.99", "19.99", "USD"),
        ("£9.99", "9.99", "GBP"),
        ("1 299 kr", "1299.00", "SEK"),
        ("12.30 EUR", "12.30", "EUR"),
        ("$1,299.00 MXN", "1299.00", "MXN"),
        ("19,-- €", "19.00", "EUR"),
        ("Preis: 1.099,00 EUR inkl. MwSt.", "1099.00", "EUR"),
    ],
)
def test_locale_price_formats(text: str, amount: str, currency: str) -> None:
    parsed = parse_price(text)
    assert (parsed.amount, parsed.currency) == (amount, currency)


def test_numbers_and_schema_strings_use_a_dot_as_decimal_mark() -> None:
    assert parse_price(24.5).amount == "24.50"
    assert parse_price("1.234", currency_hint="EUR").amount == "1.234"
    assert parse_price(12800, currency_hint="JPY").amount == "12800.00"


def test_currency_hint_wins_over_a_symbol_in_the_text() -> None:
    assert parse_price("$20", currency_hint="CAD").currency == "CAD"


@pytest.mark.parametrize("value", [None, "", "call for price", 0, "0.00", -5, True])
def test_missing_zero_and_nonsense_prices_give_no_amount(value: object) -> None:
    assert parse_price(value).amount is None


@pytest.mark.parametrize(
    ("mark", "url", "code"),
    [
        ("$", "https://shop.example.ca/p/1", "CAD"),
        ("$", "https://shop.example.com/p/1", "USD"),
        ("kr", "https://shop.example.dk/", "DKK"),
        ("kr", None, "SEK"),
        ("usd", None, "USD"),
        ("Kč", None, "CZK"),
        ("XYZ", None, None),
        ("", None, None),
    ],
)
def test_currency_marks_map_to_iso_codes(mark: str, url: str | None, code: str | None) -> None:
    assert currency_code(mark, url) == code
