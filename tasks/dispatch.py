"""Sending chunk messages: small, readable payloads, the job's priority, after commit.

Imported by the API too, so it imports nothing of Scrapy: messages are sent by task name.
"""

from __future__ import annotations

from collections.abc import Iterable

from celery import Celery

from models.jobs import ChunkRef

RUN_CHUNK = "shelfwatch.scrape.run_chunk"
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
