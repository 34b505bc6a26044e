"""Running one claimed chunk: a crawl on the process's reactor, watched from the task thread.

The task thread starts the crawl and waits on it in short slices; between slices it checks
the job's cancel flag, beats the chunk's heartbeat, and enforces the time limits itself
(Celery's own time limits need the prefork pool): at the soft limit the crawl is closed
gracefully (what it stored stays), at the hard limit it is abandoned and the chunk fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from models import Database, JobStatus
from models.jobs import ClaimedChunk, cancel_requested, heartbeat
from scrapers.runner import CrawlHandle, ReactorThread
from scrapers.settings import build_crawler_settings
from shelfwatch.config import Settings
from tasks.batch_crawl import BatchCrawl, ChunkHandle
from tasks.crawl_stats import chunk_stats
from tasks.worker_storage import STORAGE_FENCE_SETTING, StorageFence, worker_storage

log = logging.getLogger(__name__)

ABANDON_GRACE_SECONDS = 3.0
_ABANDONED = ("cancelled", "lost")


@dataclass(frozen=True)
class Limits:
    soft_seconds: float
    hard_seconds: float
    heartbeat_seconds: float
    poll_seconds: float = 0.5

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            soft_seconds=settings.scrape_soft_time_limit,
            hard_seconds=settings.scrape_hard_time_limit,
            heartbeat_seconds=settings.worker_heartbeat_seconds,
            poll_seconds=min(0.5, settings.worker_heartbeat_seconds),
        )


@dataclass(frozen=True)
class ChunkOutcome:
    status: JobStatus
    stats: dict[str, Any]
    error: str | None = None


class SpiderUnknown(LookupError):
    """The job names a spider this worker does not have."""


def spider_class(name: str, spiders: Mapping[str, type] | None = None) -> type:
    if spiders is None:
        from scrapers.spiders import SPIDERS

        spiders = SPIDERS
    try:
        return spiders[name]
    except KeyError:
        raise SpiderUnknown(f"no spider named {name!r} on this worker") from None


def worker_crawler_settings(
    settings: Settings, db: Database, chunk: ClaimedChunk | None = None
) -> dict[str, Any]:
    """Scrapy settings of a crawl in this worker (of ``chunk``, or of the batch crawl)."""
    crawler_settings = build_crawler_settings(
        settings,
        job_id=chunk.job_id if chunk else None,
        max_age=chunk.max_age if chunk else None,
        extra=chunk.job_settings if chunk else None,
    )
    crawler_settings.update(worker_storage(crawler_settings["ITEM_PIPELINES"], db))
    return crawler_settings


def batchable(chunk: ClaimedChunk, spider_cls: type, settings: Settings) -> bool:
    """Whether the chunk may join the batch crawl: few URLs, plain ``product`` spider."""
    from scrapers.spiders.product import ProductSpider

    return (
        spider_cls is ProductSpider
        and 0 < len(chunk.urls) <= settings.scrape_batch_max_urls
        and not chunk.args
        and not chunk.job_settings
        and chunk.max_age is None
    )


def crawl_chunk(
    chunk: ClaimedChunk,
    *,
    settings: Settings,
    db: Database,
    spider_cls: type,
    limits: Limits,
    batch: BatchCrawl | None = None,
) -> ChunkOutcome:
    """Crawl the chunk's URLs; returns how the chunk ended (never raises for a bad crawl).

    With ``batch``, a small chunk joins the worker's batch crawl instead of starting its own.
    """
    handle: CrawlHandle | ChunkHandle
    fence: StorageFence | None = None
    if batch is not None and batchable(chunk, spider_cls, settings):
        handle = batch.join(chunk)
    else:
        spider_kwargs = {**chunk.args, "urls": " ".join(chunk.urls)}
        crawler_settings = worker_crawler_settings(settings, db, chunk)
        fence = crawler_settings[STORAGE_FENCE_SETTING] = StorageFence()
        handle = ReactorThread.get().start_crawl(spider_cls, crawler_settings, spider_kwargs)
    stop_reason = _watch(handle, chunk, db, limits)
    if not handle.wait(0):  # left to end in the background: it stores nothing more
        if fence is not None:
            fence.close()
        elif isinstance(handle, ChunkHandle):
            handle.fence()
    return _outcome(handle, stop_reason, limits)


def _watch(
    handle: CrawlHandle | ChunkHandle, chunk: ClaimedChunk, db: Database, limits: Limits
) -> str | None:
    """Wait for the crawl; returns why it was stopped early, if it was.

    A cancelled (or lost) crawl gets ``ABANDON_GRACE_SECONDS`` to close; then it is left to
    end in the background (its requests in flight time out), so a cancel ends within seconds.
    """
    started = last_beat = time.monotonic()
    stop_reason: str | None = None
    stopped_at = 0.0
    while not handle.wait(limits.poll_seconds):
        now = time.monotonic()
        if now - started >= limits.hard_seconds:
            handle.stop()
            return "hard_time_limit"
        if stop_reason in _ABANDONED and now - stopped_at >= ABANDON_GRACE_SECONDS:
            return stop_reason
        beat = now - last_beat >= limits.heartbeat_seconds
        if beat:
            last_beat = now
        reason = _why_stop(chunk, db, limits, elapsed=now - started, beat=beat)
        if stop_reason is None and reason is not None:
            stop_reason, stopped_at = reason, now
            log.info("stopping chunk %s of job %s: %s", chunk.chunk_id, chunk.job_id, reason)
            handle.stop()
    return stop_reason


def _why_stop(
    chunk: ClaimedChunk, db: Database, limits: Limits, *, elapsed: float, beat: bool
) -> str | None:
    """Beat the heartbeat when due (even while closing) and look at the cancel flag."""
    with db.transaction() as session:
        if beat:
            control = heartbeat(session, chunk)
            if not control.owned:
                return "lost"
            cancelled = control.cancel_requested
        else:
            cancelled = cancel_requested(session, chunk.job_id)
    if cancelled:
        return "cancelled"
    return "soft_time_limit" if elapsed >= limits.soft_seconds else None


def _outcome(
    handle: CrawlHandle | ChunkHandle, stop_reason: str | None, limits: Limits
) -> ChunkOutcome:
    result = handle.result
    stats = chunk_stats(result.stats if result is not None else handle.stats_so_far())
    if result is None and stop_reason == "hard_time_limit":
        error = f"hard time limit ({limits.hard_seconds:g}s) reached; crawl abandoned"
        return ChunkOutcome(JobStatus.FAILED, stats, error)
    if stop_reason in _ABANDONED:
        return ChunkOutcome(JobStatus.CANCELLED, stats)
    if result is not None and result.crash:
        return ChunkOutcome(JobStatus.FAILED, stats, f"crawl failed: {result.crash}")
    if stop_reason in ("soft_time_limit", "hard_time_limit"):
        error = f"soft time limit ({limits.soft_seconds:g}s) reached; crawl closed early"
        return ChunkOutcome(JobStatus.PARTIAL, stats, error)
    return ChunkOutcome(JobStatus.SUCCEEDED, stats)
