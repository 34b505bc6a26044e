"""Item pipelines: validation (drop with a counted reason) and batched storage.

Storage never blocks the reactor for long: items are buffered, and each batch is written by
`models.scraped.upsert_scraped_products` in a thread (``deferToThread``), one batch at a time,
when the buffer reaches ``STORAGE_BATCH_SIZE`` items, every ``STORAGE_FLUSH_SECONDS``, and when
the spider closes (the close waits for the last write).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Self
from urllib.parse import urlsplit

from scrapy import Spider
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem
from scrapy.utils.defer import maybe_deferred_to_future
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from twisted.internet import defer, task, threads
from twisted.python.failure import Failure

from models import Database, create_database
from models.scraped import ScrapedRow, UpsertResult, upsert_scraped_products
from scrapers.items import ProductItem, validate_item
from scrapers.settings import shelfwatch_settings

logger = logging.getLogger(__name__)

_PRICE_SCALE = Decimal("0.0001")
_WRITE_ATTEMPTS = 3
# deadlock_detected, serialization_failure
_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


class ValidationPipeline:
    """Drops invalid products, counting each reason as ``drop_item/product/<reason>``."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, ProductItem):
            return item
        reason = validate_item(item)
        if reason is None:
            return item
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(f"drop_item/product/{reason}")
        logger.warning("dropped product %s: %s", item.url, reason)
        raise DropItem(f"invalid product ({reason}): {item.url}", log_level="DEBUG")


def item_to_row(item: ProductItem, job_id: str | None) -> ScrapedRow:
    """The row stored for a validated item."""
    canonical = item.canonical_url or item.url
    price = Decimal(item.price).quantize(_PRICE_SCALE) if item.price is not None else None
    return ScrapedRow(
        canonical_url=canonical,
        url=item.url,
        domain=(urlsplit(canonical).hostname or "").lower(),
        scraped_at=_parse_time(item.scraped_at),
        name=item.name,
        price=price,
        currency=item.currency,
        availability=item.availability,
        sku=item.sku,
        gtin=item.gtin,
        mpn=item.mpn,
        brand=item.brand,
        image_url=item.image_url,
        description=item.description,
        sources=dict(item.sources),
        job_id=job_id,
    )


def _parse_time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class StoragePipeline:
    """Upserts products into the scraping schema in batches, off the reactor thread."""

    def __init__(self, crawler: Crawler, database: Database | None) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self.database = database
        self.job_id: str | None = crawler.settings.get("SHELFWATCH_JOB_ID")
        self.batch_size = crawler.settings.getint("STORAGE_BATCH_SIZE", 500)
        self.interval = crawler.settings.getfloat("STORAGE_FLUSH_SECONDS", 1.0)
        self.buffer: list[ScrapedRow] = []
        self.writing: defer.Deferred[None] | None = None
        self.timer = task.LoopingCall(self._flush)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        database = None
        if crawler.settings.getbool("STORAGE_ENABLED", True):
            database = create_database(shelfwatch_settings(crawler.settings))
        return cls(crawler, database)

    def open_spider(self, spider: Spider | None = None) -> None:
        if self.job_id is None and spider is not None:
            self.job_id = getattr(spider, "job_id", None)
        if self.database is not None:
            self.timer.start(self.interval, now=False)

    async def process_item(self, item: Any) -> Any:
        if self.database is None or not isinstance(item, ProductItem):
            return item
        self.buffer.append(item_to_row(item, self.job_id))
        if len(self.buffer) >= self.batch_size:
            # Waiting here when a write is still running bounds the buffer (backpressure).
            await maybe_deferred_to_future(self._flush())
        return item

    async def close_spider(self, spider: Spider | None = None) -> None:
        if self.database is None:
            return
        if self.timer.running:
            self.timer.stop()
        await maybe_deferred_to_future(self._flush())
        self.database.dispose()

    def _flush(self) -> defer.Deferred[None]:
        """Chain a write of the buffered rows after the previous one; one write at a time."""
        previous = self.writing or defer.succeed(None)
        if not self.buffer:
            return previous
        rows, self.buffer = self.buffer, []

        def write(_: object) -> defer.Deferred[None]:
            written = threads.deferToThread(self._write, rows)
            return written.addCallbacks(self._count, self._failed, errbackArgs=(len(rows),))

        self.writing = previous.addCallback(write)
        return self.writing

    def _write(self, rows: list[ScrapedRow]) -> tuple[int, UpsertResult]:
        """Runs in a thread: one transaction, retried on deadlock/serialization failures."""
        assert self.database is not None
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                with self.database.transaction() as session:
                    return len(rows), upsert_scraped_products(session, rows)
            except OperationalError as error:
                sqlstate = getattr(error.orig, "sqlstate", None)
                if sqlstate not in _TRANSIENT_SQLSTATES or attempt + 1 == _WRITE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _count(self, written: tuple[int, UpsertResult]) -> None:
        assert self.stats is not None
        count, result = written
        self.stats.inc_value("storage/batches")
        self.stats.inc_value("storage/products", result.products)
        self.stats.inc_value("storage/observations", result.observations)
        if count > result.products:
            self.stats.inc_value("storage/stale_skipped", count - result.products)

    def _failed(self, failure: Failure, count: int) -> None:
        """A failed batch is counted and logged; the crawl goes on (the job reports it)."""
        assert self.stats is not None
        failure.trap(SQLAlchemyError)
        self.stats.inc_value("storage/failed_rows", count)
        logger.error(
            "storing %d scraped products failed (job %s): %s",
            count,
            self.job_id,
            failure.getErrorMessage(),
        )
