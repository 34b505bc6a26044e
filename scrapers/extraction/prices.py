"""Turn price text from any locale into a decimal string and an ISO 4217 currency."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from price_parser import Price

from scrapers.extraction.currencies import currency_code

# schema.org asks for a dot as the decimal mark, so such values skip locale guessing,
# where "1.234" would otherwise read as one thousand two hundred thirty-four.
_PLAIN_NUMBER = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")
_CODE_TOKEN = re.compile(r"(?<![A-Za-z])[A-Z]{3}(?![A-Za-z])")


@dataclass(frozen=True)
class ParsedPrice:
    amount: str | None
    currency: str | None


def parse_price(
    value: object, *, currency_hint: str | None = None, page_url: str | None = None
) -> ParsedPrice:
    """Parse a price given as a number or as text ("1.234,56 €", "CHF 1'234.50", "$1,234").

    `currency_hint` is a code or mark found next to the price (e.g. schema.org priceCurrency)
    and wins over a mark found in the text.
    """
    if value is None or isinstance(value, bool):
        return ParsedPrice(None, currency_code(currency_hint, page_url))
    if isinstance(value, int | float | Decimal):
        return ParsedPrice(
            format_amount(Decimal(str(value))), currency_code(currency_hint, page_url)
        )
    text = str(value)
    if _PLAIN_NUMBER.match(text):
        amount: Decimal | None = Decimal(text.strip())
        mark = None
    else:
        parsed = Price.fromstring(text)
        amount, mark = parsed.amount, parsed.currency
    currency = (
        currency_code(currency_hint, page_url)
        or _code_in_text(text)
        or currency_code(mark, page_url)
    )
    return ParsedPrice(format_amount(amount), currency)


def _code_in_text(text: str) -> str | None:
    """An ISO code written beside a symbol ("$1,299.00 MXN") names the currency exactly."""
    for token in _CODE_TOKEN.findall(text):
        code = currency_code(token)
        if code == token:
            return code
    return None


def format_amount(amount: Decimal | None) -> str | None:
    """Render a positive amount with at least two decimals ("12" -> "12.00"); else None."""
    # Zero is what themes print for "price on request" or an unset variant, never a real price.
    if amount is None or not amount.is_finite() or amount <= 0:
        return None
    try:
        if amount.as_tuple().exponent > -2:  # type: ignore[operator]
            amount = amount.quantize(Decimal("0.01"))
    except InvalidOperation:
        return None
    return format(amount, "f")
