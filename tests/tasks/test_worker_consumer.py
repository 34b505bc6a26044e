"""A real worker's task events: every one still sent, several to a message.

An event receiver on the broker (as Flower listens) counts the ``task.multi`` messages the
worker publishes and the events inside them while the worker runs a job of many one-URL chunks.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from celery.events.receiver import EventReceiver

from models import Database
from models.jobs import create_job
from shelfwatch.config import Settings
from tasks import create_celery_app
from tasks.dispatch import send_chunks
from tests.tasks.scrape_support import Shop, WorkerProcess, wait_for, worker_test_settings

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("scrape-worker")]

CHUNKS = 12


class CountingReceiver(EventReceiver):
    """Celery's event receiver, noting how many broker messages carried the events."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages = 0
        self.ready = threading.Event()

    def on_consume_ready(self, *args: Any, **kwargs: Any) -> None:
        super().on_consume_ready(*args, **kwargs)
        self.ready.set()

    def _receive(self, body: Any, message: Any, *args: Any, **kwargs: Any) -> None:
        self.messages += 1
        super()._receive(body, message, *args, **kwargs)


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    return worker_test_settings(base_settings, scrape_chunk_size=1, worker_concurrency=4)


@pytest.fixture
def worker(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    process = WorkerProcess(settings, tmp_path_factory.mktemp("worker") / "w.log").start()
    yield process
    process.stop()


def test_task_events_arrive_batched(settings: Settings, database: Database, worker: Any) -> None:
    app = create_celery_app(settings)
    states: dict[str, Counter[str]] = defaultdict(Counter)

    def record(event: dict[str, Any]) -> None:
        if event.get("uuid") and event["type"].startswith("task-"):
            states[event["uuid"]][event["type"]] += 1

    with app.connection_for_read() as connection:
        receiver = CountingReceiver(connection, handlers={"*": record}, app=app)
        listening = threading.Thread(target=receiver.capture, kwargs={"limit": None}, daemon=True)
        listening.start()
        assert receiver.ready.wait(10), "the event receiver did not start"
        with Shop() as shop:
            with database.transaction() as session:
                _job, refs = create_job(
                    session,
                    spider="product",
                    urls=[shop.url(n) for n in range(CHUNKS)],
                    chunk_size=1,
                )
            send_chunks(app, refs)

            def all_succeeded() -> bool:
                done = [s for s in states.values() if s["task-succeeded"]]
                return len(done) == CHUNKS

            try:
                wait_for(all_succeeded, timeout=90)
            except TimeoutError:
                pytest.fail(f"events seen: {dict(states)}\n{worker.log()[-3000:]}")
        receiver.should_stop = True
        listening.join(10)

    worker_events = [
        kind
        for counts in states.values()
        for kind, seen in counts.items()
        if kind in ("task-received", "task-started", "task-succeeded")
        for _ in range(seen)
    ]
    for task_id, counts in states.items():
        assert counts["task-received"] == counts["task-started"] == 1, (task_id, counts)
        assert counts["task-succeeded"] == 1, (task_id, counts)
    # The API's task-sent events are single messages; the worker's three per task are batched
    # (a flush per event would need one message each, heartbeats aside).
    sent = sum(counts["task-sent"] for counts in states.values())
    worker_messages = receiver.messages - sent
    assert worker_messages <= len(worker_events) / 2, (worker_messages, len(worker_events))
