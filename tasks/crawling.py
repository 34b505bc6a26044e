"""Running one claimed chunk: a crawl on the process's reactor, watched from the task thread.

The task thread starts the crawl and waits on it in short slices; between slices it checks
the job's cancel flag, beats the chunk's heartbeat, and enforces the time limits itself
(Celery's own time limits need the prefork pool): at the soft limit the crawl is closed
gracefully (what it stored stays), at the hard limit it is abandoned and the chunk fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
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
    one = crawl_chunks([(chunk, spider_cls)], settings=settings, db=db, limits=limits, batch=batch)
    [(_, outcome)] = next(one)
    return outcome


def crawl_chunks(
    chunks: Sequence[tuple[ClaimedChunk, type]],
    *,
    settings: Settings,
    db: Database,
    limits: Limits,
    batch: BatchCrawl | None = None,
) -> Iterator[list[tuple[ClaimedChunk, ChunkOutcome]]]:
    """Crawl several chunks at once (each with its spider class), each watched as
    ``crawl_chunk`` watches one: its own cancel flag, heartbeat and time limits.

    Yields the chunks that ended in each poll slice, so the caller records them together
    without waiting for a slower one (which delays the others by one slice at most).
    """
    pending = [_Watch(chunk, *_start(chunk, spider_cls, settings, db, batch), db, limits)
               for chunk, spider_cls in chunks]  # fmt: skip
    while pending:
        deadline = time.monotonic() + limits.poll_seconds
        for watch in pending:
            watch.handle.wait(max(0.0, deadline - time.monotonic()))
        now = time.monotonic()
        ended = [w for w in pending if w.handle.wait(0) or w.over(now)]
        pending = [w for w in pending if w not in ended]
        if ended:
            yield [(watch.chunk, watch.outcome()) for watch in ended]


def _start(
    chunk: ClaimedChunk,
    spider_cls: type,
    settings: Settings,
    db: Database,
    batch: BatchCrawl | None,
) -> tuple[CrawlHandle | ChunkHandle, StorageFence | None]:
    """Join the batch crawl, or start a crawl of the chunk's own (fenced by the task)."""
    if batch is not None and batchable(chunk, spider_cls, settings):
        return batch.join(chunk), None
    spider_kwargs = {**chunk.args, "urls": " ".join(chunk.urls)}
    crawler_settings = worker_crawler_settings(settings, db, chunk)
    fence = crawler_settings[STORAGE_FENCE_SETTING] = StorageFence()
    return ReactorThread.get().start_crawl(spider_cls, crawler_settings, spider_kwargs), fence


class _Watch:
    """One chunk's crawl as its task thread watches it.

    A cancelled (or lost) crawl gets ``ABANDON_GRACE_SECONDS`` to close; then it is left to
    end in the background (its requests in flight time out), so a cancel ends within seconds.
    """

    def __init__(
        self,
        chunk: ClaimedChunk,
        handle: CrawlHandle | ChunkHandle,
        fence: StorageFence | None,
        db: Database,
        limits: Limits,
    ) -> None:
        self.chunk, self.handle, self.fence, self.db, self.limits = chunk, handle, fence, db, limits
        self.started = self.last_beat = time.monotonic()
        self.stop_reason: str | None = None  # why it was stopped early, if it was
        self.stopped_at = 0.0

    def over(self, now: float) -> bool:
        """One check of a crawl still running; True once the task stops waiting for it."""
        if now - self.started >= self.limits.hard_seconds:
            self.handle.stop()
            self.stop_reason = "hard_time_limit"
            return True
        if self.stop_reason in _ABANDONED and now - self.stopped_at >= ABANDON_GRACE_SECONDS:
            return True
        beat = now - self.last_beat >= self.limits.heartbeat_seconds
        if beat:
            self.last_beat = now
        elapsed = now - self.started
        reason = _why_stop(self.chunk, self.db, self.limits, elapsed=elapsed, beat=beat)
        if self.stop_reason is None and reason is not None:
            self.stop_reason, self.stopped_at = reason, now
            log.info(
                "stopping chunk %s of job %s: %s", self.chunk.chunk_id, self.chunk.job_id, reason
            )
            self.handle.stop()
        return False

    def outcome(self) -> ChunkOutcome:
        """How the chunk ended; a crawl still running is fenced first (stores nothing more)."""
        if not self.handle.wait(0):  # left to end in the background
            if self.fence is not None:
                self.fence.close()
            elif isinstance(self.handle, ChunkHandle):
                self.handle.fence()
        return _outcome(self.handle, self.stop_reason, self.limits)


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
