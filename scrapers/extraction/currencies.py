"""Map the currency marks seen on shop pages to ISO 4217 codes.

price-parser finds the mark ("€", "zł", "US$") but leaves naming the currency to us.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# Unambiguous marks. Keys are compared case-insensitively with dots and spaces removed.
_SYMBOLS: dict[str, str] = {
    "€": "EUR",
    "£": "GBP",
    "us$": "USD",
    "usd$": "USD",
    "a$": "AUD",
    "au$": "AUD",
    "c$": "CAD",
    "ca$": "CAD",
    "can$": "CAD",
    "hk$": "HKD",
    "nz$": "NZD",
    "s$": "SGD",
    "mx$": "MXN",
    "r$": "BRL",
    "zł": "PLN",
    "zl": "PLN",
    "kč": "CZK",
    "ft": "HUF",
    "lei": "RON",
    "₹": "INR",
    "rs": "INR",
    "₽": "RUB",
    "\u0440\u0443\u0431": "RUB",
    "₺": "TRY",
    "₩": "KRW",
    "₪": "ILS",
    "฿": "THB",
    "₫": "VND",
    "₴": "UAH",
    "fr": "CHF",
    "sfr": "CHF",
    "円": "JPY",
    "元": "CNY",
    "rmb": "CNY",
}

# Marks several currencies share: resolved by the shop's country (from its domain), else default.
_AMBIGUOUS: dict[str, tuple[str, dict[str, str]]] = {
    "$": ("USD", {"ca": "CAD", "au": "AUD", "nz": "NZD", "mx": "MXN", "sg": "SGD", "hk": "HKD"}),
    "¥": ("JPY", {"cn": "CNY"}),
    "kr": ("SEK", {"dk": "DKK", "no": "NOK", "is": "ISK"}),
}

_ISO_CODE = re.compile(r"^[A-Za-z]{3}$")
_KNOWN_CODES = frozenset(_SYMBOLS.values()) | {
    "USD", "SEK", "DKK", "NOK", "ISK", "JPY", "CHF", "ZAR", "CNY", "CAD", "AUD", "BGN",
    "HRK", "RSD", "MYR", "IDR", "PHP", "AED", "SAR", "EGP", "NGN", "KES", "CLP", "COP",
    "ARS", "PEN", "TWD",
}  # fmt: skip


def currency_code(mark: str | None, page_url: str | None = None) -> str | None:
    """Return the ISO 4217 code for a currency mark or code, or None when unknown."""
    if not mark:
        return None
    cleaned = mark.strip()
    if _ISO_CODE.match(cleaned) and cleaned.upper() in _KNOWN_CODES:
        return cleaned.upper()
    key = re.sub(r"[\s.]", "", cleaned).lower()
    if key in _SYMBOLS:
        return _SYMBOLS[key]
    if key in _AMBIGUOUS:
        default, by_country = _AMBIGUOUS[key]
        return by_country.get(_country_of(page_url), default)
    return None


def _country_of(url: str | None) -> str:
    """The country-code top-level domain of `url` ("shop.example.co.uk" -> "uk")."""
    host = urlsplit(url or "").hostname or ""
    return host.rsplit(".", 1)[-1]


# Countries with one currency, for prices shown without any currency mark.
_COUNTRY_CURRENCY = {
    **dict.fromkeys(
        ("de", "at", "fr", "es", "it", "nl", "pt", "be", "fi", "ie", "gr", "sk", "si", "lu", "ee"),
        "EUR",
    ),
    "uk": "GBP", "pl": "PLN", "ch": "CHF", "se": "SEK", "dk": "DKK", "no": "NOK",
    "jp": "JPY", "br": "BRL", "cz": "CZK", "hu": "HUF", "ro": "RON", "in": "INR",
}  # fmt: skip


def currency_for_country(page_url: str | None) -> str | None:
    """The currency of the shop's country (from its domain), when it has only one."""
    return _COUNTRY_CURRENCY.get(_country_of(page_url))
