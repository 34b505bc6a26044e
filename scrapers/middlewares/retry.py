"""Retries of 5xx/429 answers and connection errors, with exponential backoff.

Scrapy's RetryMiddleware re-schedules a failed request at once. This one marks the retry with
a delay (``RETRY_BACKOFF_BASE`` * 2^(attempt-1), capped by ``RETRY_BACKOFF_MAX``, or the
server's ``Retry-After`` when longer) and holds it in ``process_request`` without blocking the
reactor. Waits are counted as ``retry/backoff_seconds``.
"""

from __future__ import annotations

import random
from email.utils import parsedate_to_datetime
from typing import Self

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.http import Response
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet import task

from models.base import utcnow

BACKOFF_META = "retry_backoff"


def retry_after_seconds(response: Response) -> float | None:
    """The ``Retry-After`` header in seconds (delta-seconds or an HTTP date), if any."""
    value = response.headers.get(b"Retry-After")
    if not value:
        return None
    text = value.decode("latin-1").strip()
    if text.isdigit():
        return float(text)
    try:
        return max(0.0, (parsedate_to_datetime(text) - utcnow()).total_seconds())
    except (TypeError, ValueError):
        return None


class BackoffRetryMiddleware(RetryMiddleware):
    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler.settings)
        self.crawler = crawler
        self.base = crawler.settings.getfloat("RETRY_BACKOFF_BASE", 1.0)
        self.cap = crawler.settings.getfloat("RETRY_BACKOFF_MAX", 60.0)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    async def process_request(self, request: Request) -> None:
        delay = request.meta.pop(BACKOFF_META, 0)
        if delay > 0:
            assert self.crawler.stats is not None
            self.crawler.stats.inc_value("retry/backoff_seconds", delay)
            from twisted.internet import reactor

            await maybe_deferred_to_future(task.deferLater(reactor, delay))  # type: ignore[arg-type]

    def process_response(self, request: Request, response: Response) -> Request | Response:
        result = super().process_response(request, response)
        if isinstance(result, Request):
            server_delay = retry_after_seconds(response) or 0.0
            result.meta[BACKOFF_META] = max(result.meta.get(BACKOFF_META, 0), server_delay)
            result.meta[BACKOFF_META] = min(self.cap, result.meta[BACKOFF_META])
        return result

    def _retry(self, request: Request, reason: str | Exception | type[Exception]) -> Request | None:
        retry = super()._retry(request, reason)
        if retry is not None:
            attempt = retry.meta.get("retry_times", 1)
            delay = self.base * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)
            retry.meta[BACKOFF_META] = min(self.cap, delay)
        return retry
