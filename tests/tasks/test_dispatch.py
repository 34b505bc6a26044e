"""Sending chunk messages: every message and its ``task-sent`` event, in one Redis pipeline."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu.transport import redis as kombu_redis

from models.jobs import ChunkRef
from shelfwatch.config import Settings
from tasks.app import create_celery_app
from tasks.dispatch import (
    RUN_CHUNK,
    RUN_CHUNKS,
    chunk_groups,
    send_chunk_groups,
    send_chunks,
    submit_chunks,
)
from tests.services import REDIS_URL, unique_name
from tests.tasks.scrape_support import wait_for

# Priority 0 (the API's lowest) is kombu's Redis priority 9.
LOWEST = 9


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    # A namespace of its own: nothing else sends to or consumes these queues.
    return base_settings.model_copy(update={"queue_namespace": unique_name("dispatch") + "."})


@pytest.fixture
def broker(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.delete(*[f"{settings.queue('scrape')}:{step}" for step in range(10)])


def test_chunks_and_their_sent_events_leave_in_one_pipeline(
    settings: Settings, broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushed: list[int] = []
    real_flush = kombu_redis.PublishBatch.flush

    def counting_flush(batch: Any) -> None:
        flushed.append(len(batch.pipeline.command_stack))
        real_flush(batch)

    monkeypatch.setattr(kombu_redis.PublishBatch, "flush", counting_flush)
    refs = [ChunkRef(n, "job-1", "product", 1, 0) for n in range(3)]

    send_chunks(create_celery_app(settings), refs)

    # Three messages (LPUSH) and three task-sent events (PUBLISH), sent once together.
    assert flushed == [6]
    raw = broker.lrange(f"{settings.queue('scrape')}:{LOWEST}", 0, -1)
    headers = [json.loads(message)["headers"] for message in raw]
    assert sorted(h["argsrepr"] for h in headers) == sorted(
        f"(spider='product', urls_count=1, chunk_id={n}, job_id='job-1')" for n in range(3)
    )
    assert {h["task"] for h in headers} == {RUN_CHUNK}


def test_nothing_to_send_sends_nothing(settings: Settings, broker: redis.Redis) -> None:
    send_chunks(create_celery_app(settings), [])

    assert broker.llen(f"{settings.queue('scrape')}:{LOWEST}") == 0


def _refs(
    count: int, *, urls: int = 1, priority: int = 0, spider: str = "product"
) -> list[ChunkRef]:
    return [ChunkRef(n, f"job-{n}", spider, urls, priority) for n in range(count)]


def test_chunk_groups_keep_spider_and_priority_apart_and_respect_both_caps() -> None:
    refs = [
        *_refs(3),
        ChunkRef(10, "job-10", "product", 1, 5),
        ChunkRef(11, "job-11", "sitemap", 1, 0),
        ChunkRef(12, "job-12", "product", 40, 0),
        ChunkRef(13, "job-13", "product", 60, 0),  # above max_urls: alone
    ]

    groups = chunk_groups(refs, max_chunks=2, max_urls=50)

    assert [[ref.chunk_id for ref in group] for group in groups] == [
        [10],  # most urgent first
        [0, 1],
        [2, 12],
        [13],
        [11],
    ]


def test_a_run_chunks_message_names_its_jobs_for_flower(
    settings: Settings, broker: redis.Redis
) -> None:
    send_chunk_groups(create_celery_app(settings), _refs(3), max_chunks=8, max_urls=50)

    [raw] = broker.lrange(f"{settings.queue('scrape')}:{LOWEST}", 0, -1)
    message = json.loads(raw)
    assert message["headers"]["task"] == RUN_CHUNKS
    assert message["headers"]["argsrepr"] == (
        "(spider='product', chunks=3, job_ids=['job-0', 'job-1', 'job-2'])"
    )


def _messages(broker: redis.Redis, settings: Settings) -> list[dict[str, Any]]:
    raw = broker.lrange(f"{settings.queue('scrape')}:{LOWEST}", 0, -1)
    return [json.loads(message) for message in reversed(raw)]  # LPUSH: oldest last


def test_a_lone_job_leaves_at_once_and_a_burst_shares_one_message(
    settings: Settings, broker: redis.Redis
) -> None:
    app = create_celery_app(settings.model_copy(update={"scrape_coalesce_linger_ms": 300.0}))
    first, *burst = _refs(4)

    submit_chunks(app, [first])
    wait_for(lambda: len(_messages(broker, settings)) == 1, timeout=0.2, interval=0.005)
    for ref in burst:  # within the linger of the first send
        submit_chunks(app, [ref])
    time.sleep(0.1)
    assert len(_messages(broker, settings)) == 1
    wait_for(lambda: len(_messages(broker, settings)) == 2, timeout=1)

    headers = [message["headers"] for message in _messages(broker, settings)]
    assert [h["task"] for h in headers] == [RUN_CHUNKS, RUN_CHUNKS]
    assert [h["argsrepr"].split(", ")[1] for h in headers] == ["chunks=1", "chunks=3"]


def test_a_full_message_leaves_before_the_linger(settings: Settings, broker: redis.Redis) -> None:
    app = create_celery_app(
        settings.model_copy(
            update={"scrape_coalesce_linger_ms": 10_000.0, "scrape_coalesce_max_chunks": 3}
        )
    )
    first, *burst = _refs(4)
    submit_chunks(app, [first])
    wait_for(lambda: len(_messages(broker, settings)) == 1, timeout=1)
    for ref in burst:
        submit_chunks(app, [ref])

    wait_for(lambda: len(_messages(broker, settings)) == 2, timeout=1)
    assert _messages(broker, settings)[1]["headers"]["argsrepr"].startswith(
        "(spider='product', chunks=3,"
    )


def test_jobs_of_several_chunks_and_coalescing_off_send_run_chunk_at_once(
    settings: Settings, broker: redis.Redis
) -> None:
    submit_chunks(create_celery_app(settings), _refs(2))
    off = settings.model_copy(update={"scrape_coalesce_max_chunks": 1})
    submit_chunks(create_celery_app(off), _refs(1))
    big = ChunkRef(5, "job-5", "product", settings.scrape_batch_max_urls + 1, 0)
    submit_chunks(create_celery_app(settings), [big])

    assert [m["headers"]["task"] for m in _messages(broker, settings)] == [RUN_CHUNK] * 4
