"""Sending chunk messages: small, readable payloads, the job's priority, after commit.

Imported by the API too, so it imports nothing of Scrapy: messages are sent by task name.
The API submits through ``submit_chunks``: a one-chunk job goes to this process's
coalescer (``tasks.coalescer``), which sends the one-chunk jobs submitted within a few
milliseconds of each other as one ``run_chunks`` message; anything else is sent at once,
one ``run_chunk`` message per chunk, as recovery and a job's fan-out send them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from itertools import groupby

from celery import Celery

from models.jobs import ChunkRef

log = logging.getLogger(__name__)

RUN_CHUNK = "shelfwatch.scrape.run_chunk"
RUN_CHUNKS = "shelfwatch.scrape.run_chunks"
RUN_JOB = "shelfwatch.scrape.run_job"
MAX_PRIORITY = 9


def broker_priority(app: Celery, priority: int) -> int:
    """The API's priority (9 = most urgent) in the broker's terms.

    AMQP serves higher numbers first; kombu's Redis transport serves 0 first.
    """
    priority = max(0, min(MAX_PRIORITY, priority))
    broker = str(app.conf.broker_url or "")
    return MAX_PRIORITY - priority if broker.startswith(("redis", "rediss")) else priority


def send_chunks(app: Celery, refs: Iterable[ChunkRef]) -> None:
    """Enqueue one ``run_chunk`` per chunk; call only after the chunks' rows are committed.

    The messages and their ``task-sent`` events leave in one batch (one Redis pipeline; on
    brokers without batches, one by one as before). If it fails, the chunks stay queued in the
    database, and recovery sends them again (``redispatch_queued_chunks``).
    """
    with app.producer_or_acquire() as producer, producer.batch():
        for ref in refs:
            app.send_task(
                RUN_CHUNK,
                args=(ref.chunk_id, ref.job_id, ref.spider, ref.urls_count),
                # Flower and worker logs show this instead of the bare tuple.
                argsrepr=chunk_argsrepr(ref),
                priority=broker_priority(app, ref.priority),
                producer=producer,
            )


def chunk_argsrepr(ref: ChunkRef) -> str:
    """``run_chunk``'s arguments with their names, as people read them in Flower.

    The long job id comes last: Flower's task list cuts the column short.
    """
    return (
        f"(spider={ref.spider!r}, urls_count={ref.urls_count}, chunk_id={ref.chunk_id}, "
        f"job_id={ref.job_id!r})"
    )


def submit_chunks(app: Celery, refs: Sequence[ChunkRef]) -> None:
    """The API's call after committing a job: coalesce a small one-chunk job, send the rest.

    A coalesced chunk leaves within ``scrape_coalesce_linger_ms`` (at once when the process
    sent nothing that recently); if the process dies first, the chunk stays queued and
    recovery sends it (``redispatch_queued_chunks``), as for any lost message.

    It never raises: the job is accepted once its rows are committed. A broker that refuses
    the send leaves the chunks queued for recovery, as the coalescer's thread does; failing
    the request would only make the client submit the same job twice.
    """
    from tasks.app import context
    from tasks.coalescer import coalescer

    settings = context(app).settings
    small = len(refs) == 1 and refs[0].urls_count <= settings.scrape_batch_max_urls
    if small and settings.scrape_coalesce_max_chunks > 1:
        coalescer(app).submit(refs[0])
        return
    try:
        send_chunks(app, refs)
    except Exception:
        log.exception(
            "job(s) %s accepted; their messages were not sent (recovery resends them)",
            sorted({ref.job_id for ref in refs}),
        )


def send_chunk_groups(
    app: Celery, refs: Sequence[ChunkRef], max_chunks: int, max_urls: int
) -> None:
    """Send ``refs`` as ``run_chunks`` messages of up to ``max_chunks`` chunks and ``max_urls``
    URLs, one spider and priority each, all in one batch (one Redis pipeline)."""
    with app.producer_or_acquire() as producer, producer.batch():
        for group in chunk_groups(refs, max_chunks, max_urls):
            app.send_task(
                RUN_CHUNKS,
                args=(
                    [ref.job_id for ref in group],
                    [ref.chunk_id for ref in group],
                    group[0].spider,
                ),
                # Flower and worker logs show this instead of the bare lists.
                argsrepr=chunks_argsrepr(group),
                priority=broker_priority(app, group[0].priority),
                producer=producer,
            )


def chunk_groups(refs: Sequence[ChunkRef], max_chunks: int, max_urls: int) -> list[list[ChunkRef]]:
    """The messages ``refs`` make: same spider and priority, at most ``max_chunks`` chunks and
    ``max_urls`` URLs each (a larger chunk alone), the most urgent first, in arrival order."""
    groups: list[list[ChunkRef]] = []
    by_kind = sorted(refs, key=lambda ref: (-ref.priority, ref.spider))  # stable: arrival order
    for _kind, same in groupby(by_kind, key=lambda ref: (ref.priority, ref.spider)):
        group: list[ChunkRef] = []
        urls = 0
        for ref in same:
            if group and (len(group) >= max_chunks or urls + ref.urls_count > max_urls):
                groups.append(group)
                group, urls = [], 0
            group.append(ref)
            urls += ref.urls_count
        groups.append(group)
    return groups


def chunks_argsrepr(refs: Sequence[ChunkRef]) -> str:
    """``run_chunks``' arguments as people read them in Flower: the job ids last."""
    job_ids = ", ".join(repr(ref.job_id) for ref in refs)
    return f"(spider={refs[0].spider!r}, chunks={len(refs)}, job_ids=[{job_ids}])"
