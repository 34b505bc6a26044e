"""The Scrapy side of a worker's batch crawl: a product spider fed from outside whose requests
and items carry their chunk, a gate that drops requests of stopped chunks, and storage that
tags each row with its own job and writes what is buffered in one transaction (group commit).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any, Self

from pydantic import model_validator
from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from sqlalchemy.exc import SQLAlchemyError
from twisted.internet import defer, threads
from twisted.python.failure import Failure

from scrapers.items import ProductItem
from scrapers.middlewares.ssrf import SSRFRefused
from scrapers.pipelines import item_to_row
from scrapers.spiders.args import ProductArgs
from scrapers.spiders.product import ProductSpider
from tasks.chunk_ledger import CHUNK_META, ChunkKey, ChunkLedger
from tasks.worker_storage import WorkerStoragePipeline

log = logging.getLogger(__name__)

LEDGER_SETTING = "SHELFWATCH_CHUNK_LEDGER"
GATE_MIDDLEWARE = "tasks.batch_spider.ChunkGateMiddleware"
CHUNK_STATS_MIDDLEWARE = "tasks.batch_spider.ChunkDownloaderStats"
BATCH_STORAGE_PIPELINE = "tasks.batch_spider.BatchStoragePipeline"
# ``scrapers.pipelines.ValidationPipeline`` drops with "invalid product (<reason>): <url>".
_DROP_REASON = re.compile(r"invalid product \(([\w-]+)\)")


class LedgerRef:
    """Carries a batch crawl's ledger inside Scrapy settings (kept, never copied)."""

    def __init__(self, ledger: ChunkLedger) -> None:
        self.ledger = ledger

    def __deepcopy__(self, memo: dict[int, Any]) -> LedgerRef:
        return self


def ledger_of(crawler: Crawler) -> ChunkLedger:
    ref = crawler.settings.get(LEDGER_SETTING)
    assert isinstance(ref, LedgerRef), "a batch crawl needs its ledger in the settings"
    return ref.ledger


@dataclasses.dataclass
class ChunkProductItem(ProductItem):
    """A product item that knows the chunk (and so the job) whose request produced it."""

    chunk_key: ChunkKey | None = None


class BatchArgs(ProductArgs):
    """No start URLs: the requests come from the chunks that join the crawl."""

    @model_validator(mode="after")
    def _urls_given(self) -> BatchArgs:
        return self


class BatchProductSpider(ProductSpider):
    """The ``product`` spider, fed chunk by chunk; every count lands on the request's chunk."""

    name = "product-batch"
    Params = BatchArgs

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.ledger = ledger_of(crawler)
        spider.counting = None
        return spider

    async def start(self) -> AsyncIterator[Request]:
        for request in ():
            yield request

    def chunk_request(self, url: str, key: ChunkKey) -> Request:
        request = self.product_request(url)
        # Two jobs may ask for the same URL at the same time: each gets its own fetch.
        return request.replace(dont_filter=True, meta={**request.meta, CHUNK_META: key})

    def parse_product(self, response: Response) -> Iterator[ProductItem]:  # type: ignore[override]
        key = response.meta.get(CHUNK_META)
        items: list[ProductItem] = []
        self.counting = key
        try:
            items = [
                ChunkProductItem(**_fields(item), chunk_key=key)
                for item in super().parse_product(response)
            ]
        except Exception:
            self.ledger.count(key, "spider_exceptions/count")
            raise
        finally:
            self.counting = None
            self.ledger.request_done(key, len(items))
        return iter(items)

    def on_error(self, failure: Failure) -> None:
        key = failure.request.meta.get(CHUNK_META)  # type: ignore[attr-defined]
        self.counting = key
        try:
            if failure.check(SSRFRefused):
                self.ledger.count(key, "ssrf/refused")
            super().on_error(failure)
        finally:
            self.counting = None
            self.ledger.request_done(key)

    def count(self, key: str) -> None:
        super().count(key)
        self.ledger.count(self.counting, key)


def _fields(item: ProductItem) -> dict[str, Any]:
    return {f.name: getattr(item, f.name) for f in dataclasses.fields(ProductItem)}


class ChunkGateMiddleware:
    """Drops the requests of a cancelled or time-limited chunk before they are sent."""

    def __init__(self, ledger: ChunkLedger) -> None:
        self.ledger = ledger

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(ledger_of(crawler))

    def process_request(self, request: Request) -> None:
        if self.ledger.is_stopped(request.meta.get(CHUNK_META)):
            raise IgnoreRequest("its chunk was stopped")


class ChunkDownloaderStats:
    """Scrapy's ``DownloaderStats`` per chunk: every request sent and response received,
    retries included (it sits beside ``DownloaderStats``, next to the download handler)."""

    def __init__(self, ledger: ChunkLedger) -> None:
        self.ledger = ledger

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(ledger_of(crawler))

    def process_request(self, request: Request) -> None:
        self.ledger.count(request.meta.get(CHUNK_META), "downloader/request_count")

    def process_response(self, request: Request, response: Response) -> Response:
        key = request.meta.get(CHUNK_META)
        self.ledger.count(key, f"downloader/response_status_count/{response.status}")
        return response


class ChunkSignals:
    """Crawler signals turned into per-chunk counts (an extension of the batch crawl)."""

    def __init__(self, crawler: Crawler, ledger: ChunkLedger) -> None:
        self.ledger = ledger
        crawler.signals.connect(self.scraped, signal=signals.item_scraped)
        crawler.signals.connect(self.dropped, signal=signals.item_dropped)
        crawler.signals.connect(self.failed, signal=signals.item_error)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler, ledger_of(crawler))

    def scraped(self, item: Any, **_: Any) -> None:
        key = getattr(item, "chunk_key", None)
        self.ledger.count(key, "item_scraped_count")
        self.ledger.item_done(key)

    def dropped(self, item: Any, exception: BaseException, **_: Any) -> None:
        key = getattr(item, "chunk_key", None)
        match = _DROP_REASON.search(str(exception))
        self.ledger.count(key, f"drop_item/product/{match.group(1) if match else 'other'}")
        self.ledger.item_done(key)

    def failed(self, item: Any, **_: Any) -> None:
        key = getattr(item, "chunk_key", None)
        self.ledger.count(key, "spider_exceptions/count")
        self.ledger.item_done(key)


class BatchStoragePipeline(WorkerStoragePipeline):
    """Rows tagged with their own job; one write at a time, holding everything buffered.

    A chunk ends only after its rows are committed, and many small chunks end at once: each
    write takes all rows buffered by then (one transaction for them all), and the next write
    starts when it is done.
    """

    def __init__(self, crawler: Crawler, database: Any) -> None:
        super().__init__(crawler, database)
        self.ledger = ledger_of(crawler)
        self.ledger.flush = self._flush
        self.keys: list[ChunkKey | None] = []
        self.waiters: list[defer.Deferred[None]] = []
        self.busy = False

    async def process_item(self, item: Any) -> Any:
        if self.database is None or not isinstance(item, ProductItem):
            return item
        key = getattr(item, "chunk_key", None)
        if self.ledger.is_fenced(key):
            self._fenced(1)
            return item
        self.buffer.append(item_to_row(item, self.ledger.job_id(key) if key else self.job_id))
        self.keys.append(key)
        return item

    def _flush(self) -> defer.Deferred[None]:
        """Fires once every row buffered now is written (or its write has failed)."""
        waiter: defer.Deferred[None] = defer.Deferred()
        self.waiters.append(waiter)
        if not self.busy:
            self._write_round()
        return waiter

    def _write_round(self) -> None:
        rows, self.buffer = self.buffer, []
        keys, self.keys = self.keys, []
        if any(self.ledger.is_fenced(key) for key in keys):  # fenced while buffered
            kept = [
                (row, key)
                for row, key in zip(rows, keys, strict=True)
                if not self.ledger.is_fenced(key)
            ]
            self._fenced(len(rows) - len(kept))
            rows, keys = [row for row, _ in kept], [key for _, key in kept]
        waiters, self.waiters = self.waiters, []
        if not rows and not waiters:
            self.busy = False
            return
        self.busy = True
        written = threads.deferToThread(self._write, rows) if rows else defer.succeed(None)
        if rows:
            written.addCallbacks(self._count, self._failed_rows, errbackArgs=(keys,))

        def next_round(_: object) -> None:
            for waiter in waiters:
                waiter.callback(None)
            self._write_round()

        written.addBoth(next_round)

    def _failed_rows(self, failure: Failure, keys: list[ChunkKey | None]) -> None:
        failure.trap(SQLAlchemyError)
        for key in keys:
            self.ledger.count(key, "storage/failed_rows")
        self._failed(failure, len(keys))
