import dataclasses

import pytest
from itemadapter import ItemAdapter

from scrapers.items import ProductItem, validate_item


def _item(**changes: object) -> ProductItem:
    return dataclasses.replace(
        ProductItem(url="https://s.example/p/1", name="Lamp", price="9.99", currency="EUR"),
        **changes,
    )


def test_valid_item() -> None:
    assert validate_item(_item()) is None
    assert validate_item(_item(price=None, currency=None)) is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"url": ""}, "missing_url"),
        ({"name": None}, "missing_name"),
        ({"name": "  "}, "missing_name"),
        ({"price": "abc"}, "bad_price"),
        ({"price": "-1"}, "bad_price"),
        ({"price": "NaN"}, "bad_price"),
        ({"currency": "€"}, "bad_currency"),
        ({"availability": "maybe"}, "bad_availability"),
    ],
)
def test_drop_reasons(changes: dict, reason: str) -> None:
    assert validate_item(_item(**changes)) == reason


def test_item_works_with_itemadapter() -> None:
    adapter = ItemAdapter(_item(sources={"name": "json-ld"}))
    assert adapter["name"] == "Lamp"
    assert adapter["availability"] == "unknown"
    assert set(adapter.field_names()) == {
        "url", "canonical_url", "name", "price", "currency", "availability", "sku", "gtin",
        "mpn", "brand", "image_url", "description", "scraped_at", "sources",
    }  # fmt: skip
