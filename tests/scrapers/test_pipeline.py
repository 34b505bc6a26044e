"""Validation and storage pipelines (Scrapy components built from a real crawler object)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from scrapy.exceptions import DropItem
from scrapy.utils.test import get_crawler
from sqlalchemy import select

from models import Database, ScrapedProduct
from scrapers.items import ProductItem
from scrapers.pipelines import StoragePipeline, ValidationPipeline, item_to_row
from scrapers.settings import scrapy_settings
from shelfwatch.config import Settings


def _crawler(settings: Settings, **overrides: object):  # type: ignore[no-untyped-def]
    crawler = get_crawler(settings_dict=scrapy_settings(settings, **overrides))
    crawler.stats.open_spider()
    return crawler


def test_invalid_items_are_dropped_with_a_counted_reason(settings: Settings) -> None:
    crawler = _crawler(settings)
    pipeline = ValidationPipeline.from_crawler(crawler)
    good = ProductItem(url="https://a.example/p", name="Lamp", price="10.00", currency="EUR")
    assert pipeline.process_item(good) is good
    for bad in (
        ProductItem(url="https://a.example/p", name=" "),
        ProductItem(url="https://a.example/p", name="Lamp", price="-3"),
        ProductItem(url="https://a.example/p", name="Lamp", currency="euro"),
    ):
        with pytest.raises(DropItem):
            pipeline.process_item(bad)
    stats = crawler.stats.get_stats()
    assert stats["drop_item/product/missing_name"] == 1
    assert stats["drop_item/product/bad_price"] == 1
    assert stats["drop_item/product/bad_currency"] == 1


def test_items_become_rows_keyed_by_canonical_url() -> None:
    item = ProductItem(
        url="https://Shop.example/p/1?utm_source=x",
        canonical_url="https://shop.example/p/1",
        name="Lamp",
        price="19.99999",
        currency="EUR",
        scraped_at="2026-01-01T10:00:00Z",
        sources={"price": "json-ld"},
    )
    row = item_to_row(item, "job-9")
    assert row.canonical_url == "https://shop.example/p/1"
    assert row.domain == "shop.example"
    assert row.price == Decimal("20.0000")
    assert row.scraped_at.isoformat() == "2026-01-01T10:00:00+00:00"
    assert row.job_id == "job-9" and row.sources == {"price": "json-ld"}


def test_the_storage_write_stores_a_batch_in_one_transaction(
    settings: Settings, database: Database
) -> None:
    crawler = _crawler(settings, SHELFWATCH_JOB_ID="job-7")
    pipeline = StoragePipeline.from_crawler(crawler)
    items = [
        ProductItem(url=f"https://a.example/p/{n}", name=f"P{n}", price="1.50", currency="EUR")
        for n in range(300)
    ]
    rows = [item_to_row(item, pipeline.job_id) for item in items]
    pipeline._count(pipeline._write(rows))
    assert crawler.stats.get_value("storage/products") == 300
    assert crawler.stats.get_value("storage/observations") == 300
    with database.session() as session:
        jobs = set(session.scalars(select(ScrapedProduct.job_id)))
    assert jobs == {"job-7"}
    pipeline.database.dispose()  # type: ignore[union-attr]
