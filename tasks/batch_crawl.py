"""A worker process's long-lived batch crawl, which small chunks join instead of each starting
a crawl of its own.

A crawl of one URL spends most of its time on set-up and close (crawler, middlewares,
pipelines, robots.txt, the final flush); the page itself is a few milliseconds. So a chunk
of at most ``scrape_batch_max_urls`` URLs is fed as requests into one open crawl of the
``product`` spider, which idles instead of closing. Its requests carry the chunk's key,
its items are stored under the chunk's job, and the ledger counts everything per chunk and
ends the chunk when its rows are committed. Claims, heartbeats, cancel, time limits and the
final UPDATE stay in the task thread exactly as for a crawl of its own.

After ``scrape_batch_crawl_seconds`` a crawl takes no new chunks; the next chunk starts a
fresh one, and the old one closes once its chunks are done (so robots.txt is re-read and
the crawler's own stats do not grow forever).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import DontCloseSpider

from models.jobs import ClaimedChunk
from scrapers.runner import CrawlResult, ReactorThread
from tasks.batch_spider import (
    BATCH_STORAGE_PIPELINE,
    CHUNK_STATS_MIDDLEWARE,
    GATE_MIDDLEWARE,
    LEDGER_SETTING,
    BatchProductSpider,
    LedgerRef,
)
from tasks.chunk_ledger import ChunkEntry, ChunkKey, ChunkLedger
from tasks.worker_storage import WORKER_STORAGE_PIPELINE

log = logging.getLogger(__name__)

_GATE_ORDER = 50  # before everything: a stopped chunk's request costs nothing
_STATS_ORDER = 851  # beside Scrapy's DownloaderStats (850): counts what it counts


@dataclass
class ChunkHandle:
    """A chunk running inside a batch crawl, seen from its task thread (like ``CrawlHandle``)."""

    key: ChunkKey
    batch: BatchCrawl
    crawler: Crawler | None = None
    result: CrawlResult | None = None
    _done: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float | None) -> bool:
        return self._done.wait(timeout)

    def stop(self) -> None:
        self.batch.reactor.callFromThread(self.batch.stop_chunk, self.key)

    def fence(self) -> None:
        """The task gives up on the chunk: what it would store from now on is dropped."""
        self.batch.reactor_thread.call(self.batch.fence_chunk, self.key)

    def stats_so_far(self) -> dict[str, Any]:
        return self.batch.reactor_thread.call(self.batch.snapshot, self.key)

    def ended(self, stats: dict[str, Any], crash: str | None) -> None:
        self.result = CrawlResult(stats, "finished" if crash is None else "crashed", crash)
        self._done.set()


@dataclass
class _Crawl:
    crawler: Crawler
    ledger: ChunkLedger
    started: float
    retiring: bool = False
    open: bool = False
    waiting: list[tuple[ChunkKey, list[str]]] = field(default_factory=list)


class BatchCrawl:
    """The batch crawls of one worker process (all their work runs on the reactor thread)."""

    def __init__(self, settings: dict[str, Any], lifetime_seconds: float) -> None:
        self.pid = os.getpid()
        self.settings = _batch_settings(settings)
        self.lifetime = lifetime_seconds
        self.reactor_thread = ReactorThread.get()
        self.reactor = self.reactor_thread.reactor
        self.current: _Crawl | None = None
        self.by_key: dict[ChunkKey, _Crawl] = {}

    def join(self, chunk: ClaimedChunk) -> ChunkHandle:
        """Feed the chunk's URLs into the open batch crawl; returns at once."""
        handle = ChunkHandle((chunk.chunk_id, chunk.attempt), self)
        self.reactor.callFromThread(self._join, handle, chunk.job_id, list(chunk.urls))
        return handle

    def _join(self, handle: ChunkHandle, job_id: str, urls: list[str]) -> None:
        key = handle.key

        def on_end(stats: dict[str, Any], crash: str | None) -> None:
            self.by_key.pop(key, None)
            handle.ended(stats, crash)

        try:
            crawl = self._open_crawl()
        except Exception as error:  # a broken component fails this chunk, not the worker
            log.exception("the batch crawl could not start")
            on_end({}, f"{type(error).__name__}: {error}")
            return
        self.by_key[key] = crawl
        crawl.ledger.add(key, ChunkEntry(job_id=job_id, on_end=on_end), requests=len(urls))
        if not crawl.open:
            crawl.waiting.append((key, urls))
            return
        self._feed(crawl, key, urls)

    def _open_crawl(self) -> _Crawl:
        current = self.current
        if current is not None and time.monotonic() - current.started >= self.lifetime:
            current.retiring = True
            current = None
        if current is None:
            current = self.current = self._start()
        return current

    def _start(self) -> _Crawl:
        ledger = ChunkLedger()
        crawler = Crawler(BatchProductSpider, {**self.settings, LEDGER_SETTING: LedgerRef(ledger)})
        crawl = _Crawl(crawler, ledger, time.monotonic())
        crawler.signals.connect(
            lambda **_: self._opened(crawl), signal=signals.spider_opened, weak=False
        )
        crawler.signals.connect(
            lambda **_: self._idle(crawl), signal=signals.spider_idle, weak=False
        )
        deferred = self.reactor_thread.crawler_runner().crawl(crawler)
        deferred.addBoth(lambda outcome: self._ended(crawl, outcome))
        return crawl

    def _opened(self, crawl: _Crawl) -> None:
        crawl.open = True
        waiting, crawl.waiting = crawl.waiting, []
        for key, urls in waiting:
            self._feed(crawl, key, urls)

    def _feed(self, crawl: _Crawl, key: ChunkKey, urls: list[str]) -> None:
        spider = crawl.crawler.spider
        engine = crawl.crawler.engine
        try:
            assert isinstance(spider, BatchProductSpider) and engine is not None
            for url in urls:
                engine.crawl(spider.chunk_request(url, key))
        except Exception as error:  # the crawl is closing under us: this chunk fails
            log.exception("could not feed chunk %s into the batch crawl", key[0])
            crawl.ledger.end_one(key, f"{type(error).__name__}: {error}")

    def _idle(self, crawl: _Crawl) -> None:
        if not (crawl.retiring and not crawl.ledger.entries):
            raise DontCloseSpider

    def _ended(self, crawl: _Crawl, outcome: Any) -> None:
        if self.current is crawl:
            self.current = None
        reason = getattr(outcome, "getErrorMessage", lambda: None)()
        if reason:
            log.error("the batch crawl crashed: %s", reason)
        stats = crawl.crawler.stats.get_stats() if crawl.crawler.stats else {}
        crash = reason or f"batch crawl closed ({stats.get('finish_reason', 'unknown')})"
        crawl.ledger.end_all(crash)
        for key in [k for k, c in self.by_key.items() if c is crawl]:
            del self.by_key[key]

    def stop_chunk(self, key: ChunkKey) -> None:
        if (crawl := self.by_key.get(key)) is not None:
            crawl.ledger.stop(key)

    def fence_chunk(self, key: ChunkKey) -> None:
        if (crawl := self.by_key.get(key)) is not None:
            crawl.ledger.fence(key)

    def snapshot(self, key: ChunkKey) -> dict[str, Any]:
        crawl = self.by_key.get(key)
        return crawl.ledger.snapshot(key) if crawl else {}


def _batch_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The worker's crawl settings with the gate, the chunk counters and batch storage."""
    values = dict(settings)
    values["DOWNLOADER_MIDDLEWARES"] = {
        **values["DOWNLOADER_MIDDLEWARES"],
        GATE_MIDDLEWARE: _GATE_ORDER,
        CHUNK_STATS_MIDDLEWARE: _STATS_ORDER,
    }
    values["ITEM_PIPELINES"] = {
        (BATCH_STORAGE_PIPELINE if path == WORKER_STORAGE_PIPELINE else path): order
        for path, order in values["ITEM_PIPELINES"].items()
    }
    values["EXTENSIONS"] = {**values.get("EXTENSIONS", {}), "tasks.batch_spider.ChunkSignals": 0}
    # The crawl lives on; LogStats every minute of every worker would be noise.
    values["LOGSTATS_INTERVAL"] = 0
    # A product page gives one item: Scrapy starts CONCURRENT_ITEMS (default 100) asyncio
    # tasks for every response's output, which was a large part of a one-URL chunk's crawl.
    values["CONCURRENT_ITEMS"] = 1
    # The batch spider follows no links, so the middlewares that only treat the requests a
    # callback yields (their referer, URL length and depth) have nothing to do.
    values["SPIDER_MIDDLEWARES"] = {**values.get("SPIDER_MIDDLEWARES", {}), **_NO_FOLLOW_UPS}
    return values


_NO_FOLLOW_UPS = {
    "scrapy.spidermiddlewares.referer.RefererMiddleware": None,
    "scrapy.spidermiddlewares.urllength.UrlLengthMiddleware": None,
    "scrapy.spidermiddlewares.depth.DepthMiddleware": None,
}
