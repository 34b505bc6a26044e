"""The storage pipeline, writing through the worker's own connection pool.

``scrapers.pipelines.StoragePipeline`` builds a ``Database`` per crawl and disposes of it at
the end, which suits ``scrapy crawl``; in a worker running many short crawls that means new
engines and new connections for every chunk. Here the crawl borrows the worker's engines.
"""

from __future__ import annotations

from typing import Any, Self

from scrapy.crawler import Crawler

from models import Database
from scrapers.pipelines import StoragePipeline

STORAGE_PIPELINE = "scrapers.pipelines.StoragePipeline"
WORKER_STORAGE_PIPELINE = "tasks.worker_storage.WorkerStoragePipeline"


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
        return cls(crawler, borrowed)


def worker_storage(pipelines: dict[str, int], database: Database) -> dict[str, Any]:
    """Crawler settings that store through ``database`` instead of a per-crawl one."""
    swapped = {
        (WORKER_STORAGE_PIPELINE if path == STORAGE_PIPELINE else path): order
        for path, order in pipelines.items()
    }
    return {"ITEM_PIPELINES": swapped, "SHELFWATCH_DATABASE": DatabaseRef(database)}
