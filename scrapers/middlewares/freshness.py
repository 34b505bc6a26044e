"""Freshness: with ``max_age`` (spider argument or ``FRESHNESS_MAX_AGE``), a product page stored
more recently than that is not fetched again.

Only product-page requests (``meta["product_page"]``) are checked, by the fetched URL and its
canonical form, against ``scraped_products.canonical_url`` / ``last_seen_at``. A fresh page is
counted as ``freshness/cached`` and recorded on the spider (``cached_products``: URL → stored
product id, ``cached_urls``) so a runner can report the stored product as the result.
The look-up runs in a thread so the reactor never waits for the database.
"""

from __future__ import annotations

import logging
from typing import Any, Self

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet import threads
from w3lib.url import canonicalize_url

from models import Database, create_database
from models.scraped import fresh_products, link_job_products
from scrapers.extraction.urls import strip_tracking
from scrapers.settings import shelfwatch_settings

logger = logging.getLogger(__name__)


class FreshCopy(IgnoreRequest):
    """The stored copy of this page is recent enough; it was not fetched."""


def url_keys(url: str) -> list[str]:
    """The canonical URLs under which a page fetched from ``url`` may be stored."""
    return list(dict.fromkeys([url, canonicalize_url(strip_tracking(url))]))


class FreshnessMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.database: Database | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        middleware = cls(crawler)
        crawler.signals.connect(middleware.spider_closed, signal="spider_closed")
        return middleware

    def spider_closed(self, **_: Any) -> None:
        if self.database is not None:
            self.database.dispose()

    async def process_request(self, request: Request) -> None:
        spider = self.crawler.spider
        max_age = getattr(spider, "max_age", None)
        if max_age is None or not request.meta.get("product_page"):
            return
        keys = url_keys(request.url)
        if self.database is None:
            self.database = create_database(shelfwatch_settings(self.crawler.settings))
        job_id = getattr(spider, "job_id", None)
        fresh = await maybe_deferred_to_future(
            threads.deferToThread(self._lookup, keys, max_age, job_id)
        )
        if not fresh:
            return
        product_id = next(iter(fresh.values()))
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value("freshness/cached")
        spider.cached_urls.append(request.url)  # type: ignore[union-attr]
        spider.cached_products[request.url] = product_id  # type: ignore[union-attr]
        logger.debug("fresh in storage (product %s), not fetched: %s", product_id, request.url)
        raise FreshCopy(f"stored less than {max_age}s ago")

    def _lookup(self, keys: list[str], max_age: int, job_id: str | None) -> dict[str, int]:
        assert self.database is not None
        with self.database.read_session() as session:
            fresh = fresh_products(session, keys, max_age)
        if fresh and job_id:
            # Not fetched, yet one of the job's items: its /items lists the stored copy.
            with self.database.transaction() as session:
                link_job_products(session, {(job_id, next(iter(fresh)))})
        return fresh
