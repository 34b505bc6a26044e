"""Long polls on a job (``?wait=``) woken by job-ended announcements on real Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from models import Database
from shelfwatch.config import Settings
from tasks.job_events import announce, job_ended_channel
from tests.conftest import Account
from webapi.job_waits import FALLBACK_POLL_SECONDS, JobEndWatcher, job_end_watcher
from webapi.job_waits import wait_until_finished as wait


@pytest.fixture
def watcher(settings: Settings) -> Iterator[JobEndWatcher]:
    watching = JobEndWatcher(settings.redis_url, job_ended_channel(settings.redis_prefix))
    assert watching.wait_live(5), "the subscription did not come up"
    yield watching
    watching.stop()


@pytest.fixture
def client_redis(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url)
    yield client
    client.close()


class Reads:
    """``finished()`` for the waits: counts its calls; true from call ``true_from`` on."""

    def __init__(self, true_from: int = 0) -> None:
        self.calls, self.true_from = 0, true_from

    def __call__(self) -> bool:
        self.calls += 1
        return 0 < self.true_from <= self.calls


def announce_later(client: redis.Redis, prefix: str, job_id: str, delay: float) -> None:
    def later() -> None:
        time.sleep(delay)
        announce(client, prefix, ended=[job_id])

    threading.Thread(target=later, daemon=True).start()


def test_an_announcement_ends_the_wait_without_another_read(
    watcher: JobEndWatcher, client_redis: redis.Redis, settings: Settings
) -> None:
    reads = Reads()  # the job never looks finished: only the announcement can end the wait
    announce_later(client_redis, settings.redis_prefix, "job-1", delay=0.2)

    started = time.monotonic()
    wait("job-1", started + 10, reads, watcher)

    assert time.monotonic() - started < 5  # not the deadline
    assert reads.calls == 1  # the read before waiting; none after the announcement


def test_another_jobs_announcement_does_not_end_the_wait(
    watcher: JobEndWatcher, client_redis: redis.Redis, settings: Settings
) -> None:
    reads = Reads()
    announce_later(client_redis, settings.redis_prefix, "job-2", delay=0.1)

    started = time.monotonic()
    wait("job-1", started + 0.4, reads, watcher)

    assert time.monotonic() - started >= 0.4
    # The read before waiting and the one at the deadline; short pauses would have read ~8.
    assert reads.calls == 2


def test_a_live_watcher_still_reads_the_job_every_fallback_pause(
    watcher: JobEndWatcher,
) -> None:
    # An announcement lost (published before the subscription, or Redis restarted) costs at
    # most one pause: the job is read again then.
    reads = Reads(true_from=2)
    started = time.monotonic()
    wait("job-1", started + 10, reads, watcher)

    assert reads.calls == 2
    assert FALLBACK_POLL_SECONDS <= time.monotonic() - started < 5


def test_without_redis_the_wait_reads_the_job_with_short_pauses() -> None:
    reads = Reads(true_from=4)
    started = time.monotonic()
    wait("job-1", started + 10, reads, None)

    assert reads.calls == 4
    assert time.monotonic() - started < FALLBACK_POLL_SECONDS  # 5 + 7.5 + 11 ms of pauses


def test_a_watcher_that_cannot_reach_redis_falls_back_to_short_pauses() -> None:
    unreachable = JobEndWatcher("redis://127.0.0.1:1/0", "nowhere")
    reads = Reads(true_from=4)
    started = time.monotonic()
    wait("job-1", started + 10, reads, unreachable)
    unreachable.stop()

    assert not unreachable.live
    assert reads.calls == 4 and time.monotonic() - started < FALLBACK_POLL_SECONDS


def test_each_app_has_one_watcher_per_process(app: Flask, settings: Settings) -> None:
    first = job_end_watcher(app, settings)
    assert first is not None and job_end_watcher(app, settings) is first
    assert job_end_watcher(app, settings.model_copy(update={"redis_url": ""})) is None


def test_cancelling_a_queued_job_answers_the_request_waiting_on_it(
    app: Flask, clerk: Account, settings: Settings, database: Database
) -> None:
    client: FlaskClient = app.test_client()
    job = client.post(
        "/api/v1/scrape-jobs",
        json={"spider": "product", "urls": ["http://shop.example/p/1"]},
        headers=clerk.headers,
    ).json
    watcher = job_end_watcher(app, settings)
    assert watcher is not None and watcher.wait_live(5)
    answers: list[dict] = []
    waiting = threading.Thread(
        target=lambda: answers.append(
            app.test_client()
            .get(f"/api/v1/scrape-jobs/{job['id']}?wait=10", headers=clerk.headers)
            .json
        )
    )
    waiting.start()
    time.sleep(0.2)

    cancelled = client.post(f"/api/v1/scrape-jobs/{job['id']}/cancel", headers=clerk.headers)
    waiting.join(timeout=10)

    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    assert [answer["status"] for answer in answers] == ["cancelled"]
