"""Scrapy inside a long-lived process: one reactor in one thread, many crawls on it.

A worker process installs Twisted's ``AsyncioSelectorReactor`` once, before anything imports
``twisted.internet.reactor``, and runs it in a daemon thread for the rest of its life. Every
crawl is a ``Crawler`` started through the process's ``CrawlerRunner`` on that reactor
(``reactor.callFromThread``); the calling thread (a Celery task thread) waits on a
``CrawlHandle`` and may ask it to stop. Nothing here restarts the reactor, so there is no
``ReactorNotRestartable`` and no per-crawl thread or process.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scrapy import Spider
from scrapy.crawler import Crawler, CrawlerRunner

REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"

log = logging.getLogger(__name__)


class ReactorUnavailable(RuntimeError):
    """This process already has another reactor, or its reactor thread died."""


@dataclass
class CrawlResult:
    """How a crawl ended: its Scrapy stats, the close reason, and a crash if there was one."""

    stats: dict[str, Any]
    finish_reason: str | None
    crash: str | None = None


@dataclass
class CrawlHandle:
    """A crawl running on the reactor thread, seen from the thread that started it."""

    _reactor: Any
    crawler: Crawler | None = None
    result: CrawlResult | None = None
    _done: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float | None) -> bool:
        """True once the crawl has ended (its ``result`` is then set)."""
        return self._done.wait(timeout)

    def stop(self) -> None:
        """Ask for a graceful close: requests in flight finish, items already stored stay."""
        self._reactor.callFromThread(self._stop_on_reactor)

    def _stop_on_reactor(self) -> None:
        if self.crawler is not None and self.crawler.crawling:
            from scrapy.utils.defer import deferred_from_coro

            deferred_from_coro(self.crawler.stop_async()).addErrback(_log_failure)

    def stats_so_far(self) -> dict[str, Any]:
        """A copy of the running crawl's stats, taken from another thread (retried on a race)."""
        for _ in range(5):
            try:
                return dict(self.crawler.stats.get_stats()) if self.crawler is not None else {}
            except RuntimeError:  # the reactor thread changed the dict while it was copied
                continue
        return {}

    def _ended(self, crash: str | None) -> None:
        stats = _stats_of(self.crawler)
        self.result = CrawlResult(stats, stats.get("finish_reason"), crash)
        self._done.set()


def _stats_of(crawler: Crawler | None) -> dict[str, Any]:
    try:
        return dict(crawler.stats.get_stats()) if crawler is not None else {}
    except RuntimeError:  # the crawl failed before its stats existed
        return {}


def _log_failure(failure: Any) -> None:
    log.error("stopping a crawl failed: %s", failure.getErrorMessage())


class ReactorThread:
    """The process's reactor, running in a daemon thread; started once per process."""

    _lock = threading.Lock()
    _current: ReactorThread | None = None

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.reactor = _install_reactor()
        self.runner: CrawlerRunner | None = None
        self.thread = threading.Thread(
            target=self.reactor.run,
            kwargs={"installSignalHandlers": False},
            name="scrapy-reactor",
            daemon=True,
        )
        self.thread.start()

    @classmethod
    def get(cls) -> ReactorThread:
        """This process's reactor thread, started on first use."""
        with cls._lock:
            current = cls._current
            if current is None or current.pid != os.getpid():
                if current is not None:
                    raise ReactorUnavailable(
                        "the reactor thread was started before this process forked; "
                        "start it in the child (worker_process_init), not in the parent"
                    )
                cls._current = current = cls()
            if not current.thread.is_alive():
                raise ReactorUnavailable("the reactor thread has stopped")
            return current

    def start_crawl(
        self, spider_cls: type[Spider], settings: dict[str, Any], spider_kwargs: dict[str, Any]
    ) -> CrawlHandle:
        """Start a crawl on the reactor and return at once."""
        handle = CrawlHandle(self.reactor)
        self.reactor.callFromThread(self._crawl, handle, spider_cls, settings, spider_kwargs)
        return handle

    def crawler_runner(self) -> CrawlerRunner:
        """The process's runner (call on the reactor thread)."""
        if self.runner is None:
            self.runner = CrawlerRunner({"TWISTED_REACTOR": REACTOR})
        return self.runner

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function`` on the reactor thread and wait for its result."""
        from twisted.internet.threads import blockingCallFromThread

        return blockingCallFromThread(self.reactor, function, *args)

    def _crawl(
        self,
        handle: CrawlHandle,
        spider_cls: type[Spider],
        settings: dict[str, Any],
        spider_kwargs: dict[str, Any],
    ) -> None:
        try:
            handle.crawler = Crawler(spider_cls, settings)
            deferred = self.crawler_runner().crawl(handle.crawler, **spider_kwargs)
        except Exception as error:  # a broken spider or setting fails its crawl, not the worker
            log.exception("crawl of %s could not start", spider_cls.__name__)
            handle._ended(f"{type(error).__name__}: {error}")
            return
        deferred.addCallbacks(
            lambda _: handle._ended(None),
            lambda failure: handle._ended(_describe(failure)),
        )


def _describe(failure: Any) -> str:
    log.error("crawl crashed: %s", failure.getTraceback())
    return f"{failure.type.__name__}: {failure.getErrorMessage()}"


def _install_reactor() -> Any:
    """Install the asyncio reactor, or accept it if it is already this process's reactor."""
    if "twisted.internet.reactor" not in sys.modules:
        from scrapy.utils.reactor import install_reactor

        install_reactor(REACTOR)
    from twisted.internet import reactor
    from twisted.internet.asyncioreactor import AsyncioSelectorReactor

    if not isinstance(reactor, AsyncioSelectorReactor):
        raise ReactorUnavailable(
            f"{type(reactor).__name__} is installed; crawls need {REACTOR} "
            "(something imported twisted.internet.reactor too early)"
        )
    if reactor.running:
        raise ReactorUnavailable("a reactor is already running in this process")
    return reactor
