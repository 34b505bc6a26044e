"""The storage pipeline, writing through the worker's own connection pool.

``scrapers.pipelines.StoragePipeline`` builds a ``Database`` per crawl and disposes of it at
the end, which suits ``scrapy crawl``; in a worker running many short crawls that means new
engines and new connections for every chunk. Here the crawl borrows the worker's engines.
"""

from __future__ import annotations

import threading
from typing import Any, Self

from scrapy.crawler import Crawler
from twisted.internet import defer

from models import Database
from models.scraped import ScrapedRow, UpsertResult
from scrapers.pipelines import StoragePipeline

STORAGE_PIPELINE = "scrapers.pipelines.StoragePipeline"
WORKER_STORAGE_PIPELINE = "tasks.worker_storage.WorkerStoragePipeline"
STORAGE_FENCE_SETTING = "SHELFWATCH_STORAGE_FENCE"


class StorageFence:
    """Closed by the task when it gives up on a crawl that is still running (cancelled, lost to
    recovery, past its hard limit): what that crawl would store afterwards is dropped, so
    nothing lands under a job after the job reported how it ended. Kept, never copied."""

    def __init__(self) -> None:
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __deepcopy__(self, memo: dict[int, Any]) -> StorageFence:
        return self


class BorrowedDatabase(Database):
    """The worker's engines under new sessionmakers; disposing of it leaves them open."""

    def dispose(self) -> None:
        """The worker owns the engines; a crawl ending must not close its pool."""


class DatabaseRef:
    """Carries the worker's ``Database`` inside Scrapy settings (kept, never copied)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def __repr__(self) -> str:
        return "<worker Database>"

    def __deepcopy__(self, memo: dict[int, Any]) -> DatabaseRef:
        return self


class WorkerStoragePipeline(StoragePipeline):
    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        ref = crawler.settings.get("SHELFWATCH_DATABASE")
        if not isinstance(ref, DatabaseRef) or not crawler.settings.getbool("STORAGE_ENABLED"):
            return super().from_crawler(crawler)
        source = ref.database
        borrowed = BorrowedDatabase(
            primary=source.primary, scraping=source.scraping, replicas=source.replicas
        )
        pipeline = cls(crawler, borrowed)
        fence = crawler.settings.get(STORAGE_FENCE_SETTING)
        pipeline.fence = fence if isinstance(fence, StorageFence) else None
        return pipeline

    fence: StorageFence | None = None

    def _flush(self) -> defer.Deferred[None]:
        if self.fence is not None and self.fence.closed and self.buffer:
            self._fenced(len(self.buffer))
            self.buffer = []
        return super()._flush()

    def _write(self, rows: list[ScrapedRow]) -> tuple[int, UpsertResult]:
        if self.fence is not None and self.fence.closed:  # closed while the write waited
            self._fenced(len(rows))
            return 0, UpsertResult()
        return super()._write(rows)

    def _fenced(self, count: int) -> None:
        assert self.stats is not None
        self.stats.inc_value("storage/fenced_rows", count)


def worker_storage(pipelines: dict[str, int], database: Database) -> dict[str, Any]:
    """Crawler settings that store through ``database`` instead of a per-crawl one."""
    swapped = {
        (WORKER_STORAGE_PIPELINE if path == STORAGE_PIPELINE else path): order
        for path, order in pipelines.items()
    }
    return {"ITEM_PIPELINES": swapped, "SHELFWATCH_DATABASE": DatabaseRef(database)}
