"""Beat from the database: the scheduler class ticked with a clock the test moves, two
schedulers at once, and a real ``celery -A tasks beat`` with a real worker crawling a shop."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from flask.testing import FlaskClient
from sqlalchemy import select

from models import Database, ScrapedProduct, ScrapeJob
from shelfwatch.config import Settings
from tasks.app import create_celery_app
from tasks.beat import DatabaseScheduler
from tests.conftest import Account
from tests.tasks.scrape_support import (
    ROOT,
    Shop,
    WorkerProcess,
    settings_env,
    wait_for,
    worker_test_settings,
)

BASE = "/api/v1/scrape-schedules"
URLS = ["http://127.0.0.1:9/p/1", "http://127.0.0.1:9/p/2", "http://127.0.0.1:9/p/3"]


class Clock:
    """What the scheduler believes is now; the test moves it."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def celery_app(settings: Settings) -> Iterator[Celery]:
    app = create_celery_app(settings)
    yield app
    app.shelfwatch.reset()  # type: ignore[attr-defined]


def _scheduler(app: Celery, clock: Clock) -> DatabaseScheduler:
    return DatabaseScheduler(app=app, clock=clock)


def _create(client: FlaskClient, account: Account, **body: Any) -> dict[str, Any]:
    body = {"spider": "product", "urls": URLS, "interval_seconds": 60, **body}
    response = client.post(BASE, json=body, headers=account.headers)
    assert response.status_code == 201, response.json
    return response.json


def _jobs(database: Database, schedule_id: int | None = None) -> list[ScrapeJob]:
    query = select(ScrapeJob).order_by(ScrapeJob.created_at)
    if schedule_id is not None:
        query = query.where(ScrapeJob.schedule_id == schedule_id)
    with database.transaction() as session:
        return list(session.scalars(query))


def _queued_messages(app: Celery, settings: Settings) -> int:
    with app.connection_for_write() as connection:
        declared = connection.default_channel.queue_declare(settings.queue("scrape"))
    return declared.message_count


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_schedule_created_through_the_api_launches_a_job_at_its_time(
    client: FlaskClient, manager: Account, database: Database, celery_app: Celery, clock: Clock
) -> None:
    scheduler = _scheduler(celery_app, clock)
    assert scheduler.tick() <= scheduler.max_interval
    created = _create(client, manager, max_age=120)
    next_run = _at(created["next_run_at"])
    messages_before = _queued_messages(celery_app, scheduler.app.shelfwatch.settings)

    clock.now = next_run - timedelta(seconds=1)
    delay = scheduler.tick()
    assert _jobs(database) == [] and 0 < delay <= 1.0

    clock.now = next_run + timedelta(seconds=0.5)
    scheduler.tick()
    (job,) = _jobs(database)
    assert (job.spider, job.urls, job.max_age) == ("product", URLS, 120)
    assert (job.schedule_id, job.created_by, job.status) == (created["id"], manager.id, "queued")
    assert job.chunks_total == 1
    # The chunk message went to the broker after the job's row was committed.
    assert _queued_messages(celery_app, scheduler.app.shelfwatch.settings) == messages_before + 1
    shown = client.get(f"{BASE}/{created['id']}", headers=manager.headers).json
    assert shown["last_job_id"] == job.id
    assert _at(shown["last_run_at"]) == clock.now
    assert _at(shown["next_run_at"]) == next_run + timedelta(seconds=60)


def test_editing_the_interval_changes_the_next_run(
    client: FlaskClient, manager: Account, database: Database, celery_app: Celery, clock: Clock
) -> None:
    scheduler = _scheduler(celery_app, clock)
    created = _create(client, manager)
    old_run = _at(created["next_run_at"])
    patched = client.patch(
        f"{BASE}/{created['id']}", json={"interval_seconds": 3600}, headers=manager.headers
    ).json
    new_run = _at(patched["next_run_at"])
    assert new_run - old_run > timedelta(minutes=58)

    clock.now = old_run + timedelta(seconds=1)
    scheduler.tick()
    assert _jobs(database) == []
    clock.now = new_run
    scheduler.tick()
    assert len(_jobs(database)) == 1


def test_deleting_a_schedule_stops_it(
    client: FlaskClient, manager: Account, database: Database, celery_app: Celery, clock: Clock
) -> None:
    scheduler = _scheduler(celery_app, clock)
    created = _create(client, manager)
    clock.now = _at(created["next_run_at"])
    scheduler.tick()
    assert len(_jobs(database)) == 1
    assert client.delete(f"{BASE}/{created['id']}", headers=manager.headers).status_code == 204
    for _ in range(5):
        clock.advance(minutes=1)
        scheduler.tick()
    assert len(_jobs(database)) == 1


def test_pausing_stops_it_and_resuming_restarts_it(
    client: FlaskClient, manager: Account, database: Database, celery_app: Celery, clock: Clock
) -> None:
    scheduler = _scheduler(celery_app, clock)
    created = _create(client, manager)
    client.post(f"{BASE}/{created['id']}/pause", headers=manager.headers)
    for _ in range(3):
        clock.advance(minutes=1)
        scheduler.tick()
    assert _jobs(database) == []
    resumed = client.post(f"{BASE}/{created['id']}/resume", headers=manager.headers).json
    clock.now = _at(resumed["next_run_at"])
    scheduler.tick()
    assert len(_jobs(database, created["id"])) == 1


def test_catch_up_after_downtime_runs_once(
    client: FlaskClient, manager: Account, database: Database, celery_app: Celery, clock: Clock
) -> None:
    scheduler = _scheduler(celery_app, clock)
    every_minute = _create(client, manager)
    cron = _create(client, manager, cron="*/5 * * * *", interval_seconds=None)
    # Beat was down for six hours: hundreds of runs were missed.
    clock.advance(hours=6)
    for _ in range(3):
        scheduler.tick()
    assert len(_jobs(database, every_minute["id"])) == 1
    assert len(_jobs(database, cron["id"])) == 1
    shown = client.get(f"{BASE}/{cron['id']}", headers=manager.headers).json
    assert clock.now < _at(shown["next_run_at"]) <= clock.now + timedelta(minutes=5)


def test_two_schedulers_ticking_at_once_launch_each_run_once(
    client: FlaskClient,
    manager: Account,
    database: Database,
    settings: Settings,
    clock: Clock,
) -> None:
    created = [_create(client, manager) for _ in range(10)]
    schedules = [schedule["id"] for schedule in created]
    clock.now = max(_at(schedule["next_run_at"]) for schedule in created) - timedelta(seconds=60)
    apps = [create_celery_app(settings), create_celery_app(settings)]
    schedulers = [_scheduler(app, clock) for app in apps]
    rounds = 5
    try:
        for _ in range(rounds):
            clock.advance(seconds=60)
            barrier = threading.Barrier(len(schedulers))

            def tick(scheduler: DatabaseScheduler, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                scheduler.tick()

            threads = [threading.Thread(target=tick, args=(s,)) for s in schedulers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
    finally:
        for app in apps:
            app.shelfwatch.reset()  # type: ignore[attr-defined]
    jobs = _jobs(database)
    assert len(jobs) == rounds * len(schedules)
    per_schedule = {schedule_id: 0 for schedule_id in schedules}
    for job in jobs:
        per_schedule[job.schedule_id] += 1  # type: ignore[index]
    assert set(per_schedule.values()) == {rounds}
    assert len({job.run_key for job in jobs}) == len(jobs)


def test_beat_keeps_going_when_the_database_is_unreachable(
    settings: Settings, clock: Clock
) -> None:
    broken = settings.model_copy(
        update={"database_url": "postgresql://127.0.0.1:1/nothing", "beat_poll_seconds": 2.0}
    )
    app = create_celery_app(broken)
    scheduler = _scheduler(app, clock)
    assert scheduler.tick() == 2.0


# ---- the real beat process ------------------------------------------------------------------


class BeatProcess:
    """``celery -A tasks beat`` with no flags, configured by the environment."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
        self.log_path = log_path
        self.log_file = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tasks", "beat", "--loglevel=INFO"],
            cwd=ROOT,
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.log_file.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def live_settings(base_settings: Settings) -> Settings:
    return worker_test_settings(base_settings, beat_poll_seconds=1.0)


@pytest.fixture
def settings(request: pytest.FixtureRequest, base_settings: Settings) -> Settings:
    if "live_settings" in request.fixturenames:
        return request.getfixturevalue("live_settings")
    return base_settings


@pytest.mark.slow
@pytest.mark.xdist_group("scrape-worker")
def test_a_real_beat_runs_api_schedules_without_restarts(
    client: FlaskClient,
    manager: Account,
    database: Database,
    live_settings: Settings,
    tmp_path: Path,
) -> None:
    with Shop() as shop:
        beat = BeatProcess(live_settings, tmp_path / "beat.log")
        worker = WorkerProcess(live_settings, tmp_path / "worker.log").start()
        try:
            _live_flow(client, manager, database, shop, beat, worker)
        finally:
            beat.stop()
            worker.stop()
    assert "Traceback" not in beat.log(), beat.log()[-5000:]


def _live_flow(
    client: FlaskClient,
    manager: Account,
    database: Database,
    shop: Shop,
    beat: BeatProcess,
    worker: WorkerProcess,
) -> None:
    # Created after beat started: beat picks it up from the table.
    created = _create(client, manager, urls=[shop.url(1), shop.url(2)], interval_seconds=10)

    def finished_job() -> ScrapeJob | None:
        jobs = _jobs(database, created["id"])
        return jobs[0] if jobs and jobs[0].status == "succeeded" else None

    try:
        job = wait_for(finished_job, timeout=60, interval=0.2)
    except TimeoutError:
        pytest.fail(f"no job ran; beat log:\n{beat.log()[-3000:]}\nworker:\n{worker.log()[-3000:]}")
    assert job.stats["items"] == 2
    schedule_jobs = {scheduled.id for scheduled in _jobs(database, created["id"])}
    with database.transaction() as session:
        stored = session.execute(select(ScrapedProduct.url, ScrapedProduct.job_id)).all()
    # The schedule's two pages, each stored once, by one of its runs (a 10 s interval may
    # have launched a second run by now; the listing shows any other rows on failure).
    pages = sorted(url for url, job_id in stored if job_id in schedule_jobs)
    assert pages == sorted([shop.url(1), shop.url(2)]), stored

    # A longer interval: the next run moves an hour away; the old 10 s pass without a run.
    patched = client.patch(
        f"{BASE}/{created['id']}", json={"interval_seconds": 3600}, headers=manager.headers
    ).json
    assert _at(patched["next_run_at"]) > datetime.now(UTC) + timedelta(minutes=59)
    launched = len(_jobs(database, created["id"]))  # 2 if a run started before the edit
    time.sleep(12)
    assert len(_jobs(database, created["id"])) == launched

    # Back to 10 s: overdue, so it runs at once.
    client.patch(f"{BASE}/{created['id']}", json={"interval_seconds": 10}, headers=manager.headers)
    wait_for(lambda: len(_jobs(database, created["id"])) > launched, timeout=15, interval=0.2)

    # Deleted: nothing more, though its interval passes again.
    assert client.delete(f"{BASE}/{created['id']}", headers=manager.headers).status_code == 204
    launched = len(_jobs(database, created["id"]))
    time.sleep(12)
    assert len(_jobs(database, created["id"])) == launched
