"""The item the product spiders yield and the check the storage pipeline runs on it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

AVAILABILITY_VALUES = frozenset(
    {"in_stock", "out_of_stock", "preorder", "backorder", "discontinued", "unknown"}
)

# The extraction layers, in the order they are trusted; `ProductItem.sources` names one per field.
LAYERS = ("json-ld", "microdata", "rdfa", "opengraph", "meta", "heuristics")

_CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")


@dataclass
class ProductItem:
    """One product page, normalised.

    `price` is a plain decimal string ("1234.56"), `currency` an ISO 4217 code, `scraped_at`
    an ISO 8601 UTC timestamp, and `sources` maps each filled field to the layer that gave it.
    """

    url: str
    canonical_url: str | None = None
    name: str | None = None
    price: str | None = None
    currency: str | None = None
    availability: str = "unknown"
    sku: str | None = None
    gtin: str | None = None
    mpn: str | None = None
    brand: str | None = None
    image_url: str | None = None
    description: str | None = None
    scraped_at: str | None = None
    sources: dict[str, str] = field(default_factory=dict)


def validate_item(item: ProductItem) -> str | None:
    """Return a short, stable reason to drop `item`, or None when it may be stored.

    The reasons are counted by the pipeline as `drop_item/product/<reason>`, so they must not
    change casually.
    """
    if not item.url:
        return "missing_url"
    if not item.name or not item.name.strip():
        return "missing_name"
    if item.price is not None and not _is_valid_price(item.price):
        return "bad_price"
    if item.currency is not None and not _CURRENCY_CODE.match(item.currency):
        return "bad_currency"
    if item.availability not in AVAILABILITY_VALUES:
        return "bad_availability"
    return None


def _is_valid_price(price: str) -> bool:
    try:
        value = Decimal(price)
    except InvalidOperation:
        return False
    return value.is_finite() and value >= 0
