"""Sending chunk messages: every message and its ``task-sent`` event, in one Redis pipeline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu.transport import redis as kombu_redis

from models.jobs import ChunkRef
from shelfwatch.config import Settings
from tasks.app import create_celery_app
from tasks.dispatch import RUN_CHUNK, send_chunks
from tests.services import REDIS_URL, unique_name

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
