"""The stored product in the spiders' item field names, shared by the job items and the
scraped-products listings."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import Schema, fields

_CENTS = Decimal("0.01")


def price_text(value: Decimal | None) -> str | None:
    """The price as the items give it: a decimal string, cents kept ("12.50", "0.1234")."""
    if value is None:
        return None
    if value == value.quantize(_CENTS):
        return str(value.quantize(_CENTS))
    return format(value.normalize(), "f")


class ScrapedItemSchema(Schema):
    id = fields.Integer()
    url = fields.String()
    canonical_url = fields.String()
    name = fields.String(allow_none=True)
    price = fields.Method("_price", allow_none=True, metadata={"type": "string"})
    currency = fields.String(allow_none=True)
    availability = fields.String()
    sku = fields.String(allow_none=True)
    gtin = fields.String(allow_none=True)
    mpn = fields.String(allow_none=True)
    brand = fields.String(allow_none=True)
    image_url = fields.String(allow_none=True)
    description = fields.String(allow_none=True)
    scraped_at = fields.DateTime()
    sources = fields.Dict()
    job_id = fields.String(allow_none=True)

    def _price(self, product: Any) -> str | None:
        return price_text(product.price)
