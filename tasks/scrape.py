"""Scrape tasks: a job fans out into chunk tasks; each chunk claims its row, crawls, finishes.

Payloads are ids and counts (``chunk_id, job_id, spider, urls_count``), readable in Flower;
the URLs stay in the database. Every body is safe to run twice: claiming is a conditional
UPDATE and storage is an upsert.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from celery import Celery, Task
from celery.signals import worker_process_init, worker_ready

from models import JobStatus
from models.base import utcnow
from models.jobs import (
    ChunkResult,
    ClaimedChunk,
    claim_chunk,
    claim_chunks_committed,
    finalize_job,
    finish_chunk,
    finish_chunks_committed,
    queued_chunks,
    redispatch_queued_chunks,
    requeue_stale_chunks,
)
from tasks.app import context
from tasks.context import TaskContext
from tasks.dispatch import RUN_CHUNK, RUN_CHUNKS, RUN_JOB, send_chunks
from tasks.job_events import announce

if TYPE_CHECKING:
    from tasks.batch_crawl import BatchCrawl
    from tasks.crawling import ChunkOutcome

log = logging.getLogger(__name__)

FINALIZE = "shelfwatch.scrape.finalize"
RECOVER_STALE = "shelfwatch.scrape.recover_stale"


def register(app: Celery) -> None:
    settings = context(app).settings

    @app.task(
        name=RUN_CHUNK,
        shared=False,
        bind=True,
        # An empty value (the environment's way to say none) means no limit, as None does.
        rate_limit=settings.scrape_task_rate_limit or None,
        acks_late=True,
        reject_on_worker_lost=True,
    )
    def run_chunk(self: Task, chunk_id: int, job_id: str, spider: str, urls_count: int) -> str:
        """Crawl one chunk of a job (the args name it for people reading Flower)."""
        return run_chunk_body(self.app, chunk_id, job_id, worker_name(self))

    @app.task(
        name=RUN_CHUNKS,
        shared=False,
        bind=True,
        # Counts messages, not chunks: one message carries up to scrape_coalesce_max_chunks.
        rate_limit=settings.scrape_task_rate_limit or None,
        acks_late=True,
        reject_on_worker_lost=True,
    )
    def run_chunks(self: Task, jobs: list[str], chunks: list[int], spider: str) -> list[str]:
        """Crawl several one-chunk jobs' chunks together (``jobs[i]`` owns ``chunks[i]``)."""
        claims = list(zip(chunks, jobs, strict=True))
        return run_chunks_body(self.app, claims, worker_name(self))

    @app.task(name=RUN_JOB, bind=True, shared=False, acks_late=True)
    def run_job(self: Task, job_id: str, spider: str, urls_count: int) -> int:
        """Fan a job out: one ``run_chunk`` message per queued chunk."""
        ctx = context(self.app)
        with ctx.db.transaction() as session:
            refs = queued_chunks(session, job_id)
        send_chunks(self.app, refs)
        return len(refs)

    @app.task(name=FINALIZE, bind=True, shared=False, acks_late=True)
    def finalize(self: Task, job_id: str) -> str | None:
        """Aggregate a job whose chunks have all ended (normally done by its last chunk)."""
        with context(self.app).db.transaction() as session:
            status = finalize_job(session, job_id)
        return status.value if status else None

    @app.task(name=RECOVER_STALE, bind=True, shared=False, acks_late=True)
    def recover_stale(self: Task) -> int:
        """Re-queue chunks of dead workers and resend lost messages; on demand or on a timer."""
        return recover(self.app)

    _connect_worker_signals(app)


def worker_name(task: Task) -> str:
    return f"{task.request.hostname or 'worker'}/{os.getpid()}/{threading.get_ident()}"


def run_chunk_body(app: Celery, chunk_id: int, job_id: str, worker: str) -> str:
    ctx = context(app)
    with ctx.db.transaction() as session:
        chunk = claim_chunk(
            session, chunk_id, worker, job_id=job_id, lease=ctx.settings.chunk_lease
        )
    if chunk is None:
        # Redelivered, recovered elsewhere, or cancelled before it started: nothing to do.
        return "skipped"
    from tasks.crawling import ChunkOutcome, Limits, crawl_chunk, spider_class

    try:
        spider_cls = spider_class(chunk.spider, getattr(app, "shelfwatch_spiders", None))
        outcome = crawl_chunk(
            chunk,
            settings=ctx.settings,
            db=ctx.db,
            spider_cls=spider_cls,
            limits=Limits.from_settings(ctx.settings),
            batch=batch_crawl(app) if ctx.settings.scrape_batch_max_urls > 0 else None,
        )
    except LookupError as error:
        outcome = ChunkOutcome(JobStatus.FAILED, {}, str(error))
    with ctx.db.transaction() as session:
        final = finish_chunk(
            session, chunk, status=outcome.status, stats=outcome.stats, error=outcome.error
        )
    announce(
        ctx.redis,
        ctx.settings.redis_prefix,
        ended=[chunk.job_id] if final else [],
        stored=bool(outcome.stats.get("items")),
    )
    log.info(
        "chunk %s of job %s (%s, %d urls): %s%s",
        chunk_id,
        chunk.job_id,
        chunk.spider,
        len(chunk.urls),
        outcome.status.value,
        f"; job {final.value}" if final else "",
    )
    return outcome.status.value


def run_chunks_body(app: Celery, claims: list[tuple[int, str]], worker: str) -> list[str]:
    """``run_chunk_body`` for several chunks: one claim; then, for the chunks that ended in
    the same poll slice, one finish and one listing-cache bump.

    Returns each chunk's status in message order (``skipped``: not claimed here, as a
    redelivered or cancelled chunk is).
    """
    ctx = context(app)
    claimed = claim_chunks_committed(ctx.db, claims, worker, lease=ctx.settings.chunk_lease)
    statuses: dict[int, str] = {}
    for ended in _crawl_claimed(app, claimed):
        results = [ChunkResult(chunk, o.status, o.stats, o.error) for chunk, o in ended]
        _record(ctx, results, worker)
        statuses.update((r.chunk.chunk_id, r.status.value) for r in results)
    return [statuses.get(chunk_id, "skipped") for chunk_id, _ in claims]


def _record(ctx: TaskContext, results: list[ChunkResult], worker: str) -> None:
    finals = finish_chunks_committed(ctx.db, results, worker)
    announce(
        ctx.redis,
        ctx.settings.redis_prefix,
        ended=finals,
        stored=any(result.stats.get("items") for result in results),
    )
    for result in results:
        chunk, final = result.chunk, finals.get(result.chunk.job_id)
        log.info(
            "chunk %s of job %s (%s, %d urls): %s%s",
            chunk.chunk_id,
            chunk.job_id,
            chunk.spider,
            len(chunk.urls),
            result.status.value,
            f"; job {final.value}" if final else "",
        )


def _crawl_claimed(
    app: Celery, claimed: list[ClaimedChunk]
) -> Iterator[list[tuple[ClaimedChunk, ChunkOutcome]]]:
    """Crawl the claimed chunks together (``crawl_chunks``); a chunk naming a spider this
    worker does not have fails alone, first."""
    from tasks.crawling import ChunkOutcome, Limits, crawl_chunks, spider_class

    ctx = context(app)
    spiders = getattr(app, "shelfwatch_spiders", None)
    runnable: list[tuple[ClaimedChunk, type]] = []
    unknown: list[tuple[ClaimedChunk, ChunkOutcome]] = []
    for chunk in claimed:
        try:
            runnable.append((chunk, spider_class(chunk.spider, spiders)))
        except LookupError as error:
            unknown.append((chunk, ChunkOutcome(JobStatus.FAILED, {}, str(error))))
    if unknown:
        yield unknown
    if runnable:
        yield from crawl_chunks(
            runnable,
            settings=ctx.settings,
            db=ctx.db,
            limits=Limits.from_settings(ctx.settings),
            batch=batch_crawl(app) if ctx.settings.scrape_batch_max_urls > 0 else None,
        )


_batch_lock = threading.Lock()


def batch_crawl(app: Celery) -> BatchCrawl:
    """This worker process's batch crawl (created on first use, in the process that uses it)."""
    from tasks.batch_crawl import BatchCrawl
    from tasks.crawling import worker_crawler_settings

    with _batch_lock:
        batch = getattr(app, "shelfwatch_batch", None)
        if batch is None or batch.pid != os.getpid():
            from tasks.worker_gc import freeze_startup_objects

            # The process's first chunk, already claimed: the crawl stack is imported now.
            freeze_startup_objects()
            ctx = context(app)
            batch = BatchCrawl(
                worker_crawler_settings(ctx.settings, ctx.db),
                lifetime_seconds=ctx.settings.scrape_batch_crawl_seconds,
            )
            app.shelfwatch_batch = batch  # type: ignore[attr-defined]
        return batch


def recover(app: Celery) -> int:
    """One recovery pass; returns how many chunk messages were sent again."""
    ctx = context(app)
    settings = ctx.settings
    now = utcnow()
    with ctx.db.transaction() as session:
        refs = requeue_stale_chunks(
            session,
            now=now,
            heartbeat_before=now - settings.chunk_lease,
            max_attempts=settings.scrape_max_attempts,
        )
        refs += redispatch_queued_chunks(
            session, sent_before=now - timedelta(seconds=settings.scrape_redispatch_seconds)
        )
    if refs:
        log.warning("recovery: re-sending %d chunk(s): %s", len(refs), [r.chunk_id for r in refs])
        send_chunks(app, refs)
    return len(refs)


class RecoveryLoop:
    """A daemon thread of each worker that runs ``recover`` every heartbeat interval."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="scrape-recovery", daemon=True)

    def start(self) -> RecoveryLoop:
        self.thread.start()
        return self

    def _run(self) -> None:
        interval = context(self.app).settings.worker_heartbeat_seconds
        while not self.stopped.wait(interval):
            try:
                recover(self.app)
            except Exception:  # a database hiccup must not end the loop; the next pass retries
                log.exception("stale chunk recovery failed")


def _connect_worker_signals(app: Celery) -> None:
    def on_ready(sender: Any = None, **_kwargs: Any) -> None:
        if getattr(sender, "app", None) is not app:
            return
        app.shelfwatch_recovery = RecoveryLoop(app).start()  # type: ignore[attr-defined]
        if not _is_prefork(sender):
            _warm_up(context(app))

    def on_process_init(**_kwargs: Any) -> None:
        _warm_up(context(app))

    worker_ready.connect(on_ready, weak=False)
    worker_process_init.connect(on_process_init, weak=False)


def _is_prefork(consumer: Any) -> bool:
    pool = getattr(consumer, "pool", None)
    return type(pool).__module__.endswith("prefork")


def _warm_up(ctx: TaskContext) -> None:
    """Start the reactor thread before the first chunk arrives (its first crawl is faster).

    The garbage collector is tuned later, by the first chunk (``batch_crawl``): work here
    delays the consumer, and with it the first messages.
    """
    from scrapers.runner import ReactorThread

    ReactorThread.get()
