"""Crawls that go wrong fail their chunk, never the worker: a crash, and the soft time limit
that closes a stuck crawl gracefully, keeping what it stored."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from models import Database, ScrapedProduct, ScrapeJob
from models.jobs import create_job
from shelfwatch.config import Settings
from tasks.app import create_celery_app
from tasks.dispatch import send_chunks
from tests.tasks.scrape_support import Shop, WorkerProcess, wait_for, worker_test_settings

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("scrape-worker")]

SOFT_LIMIT = 3


@pytest.fixture(scope="module")
def limit_settings(base_settings: Settings) -> Settings:
    return worker_test_settings(
        base_settings,
        scrape_soft_time_limit=SOFT_LIMIT,
        scrape_hard_time_limit=60,
        worker_concurrency=2,
    )


@pytest.fixture(scope="module")
def shop() -> Iterator[Shop]:
    with Shop() as running:
        yield running


@pytest.fixture(scope="module")
def worker(
    limit_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    process = WorkerProcess(limit_settings, tmp_path_factory.mktemp("w") / "w.log").start()
    yield process
    process.stop()


def _run(database: Database, settings: Settings, worker: WorkerProcess, **job: object) -> ScrapeJob:
    with database.transaction() as session:
        created, chunks = create_job(session, chunk_size=50, **job)  # type: ignore[arg-type]
    send_chunks(create_celery_app(settings), chunks)

    def finished() -> ScrapeJob | None:
        with database.transaction() as session:
            row = session.get(ScrapeJob, created.id)
        return row if row.status not in ("queued", "running") else None

    try:
        return wait_for(finished, timeout=60, interval=0.1)
    except TimeoutError:
        pytest.fail(f"job did not finish; worker log:\n{worker.log()[-5000:]}")


def test_a_crashing_crawl_fails_its_job_and_the_worker_goes_on(
    limit_settings: Settings, database: Database, shop: Shop, worker: WorkerProcess
) -> None:
    # Arguments the API would have refused: the spider raises while being built.
    broken = _run(
        database, limit_settings, worker, spider="product", urls=[shop.url(1)], args={"x": 1}
    )
    assert broken.status == "failed"
    assert "crawl failed" in broken.error and "'x'" in broken.error

    fine = _run(database, limit_settings, worker, spider="product", urls=[shop.url(2)])
    assert fine.status == "succeeded" and fine.stats["items"] == 1
    assert worker.process is not None and worker.process.poll() is None


def test_the_soft_time_limit_closes_a_stuck_crawl_keeping_its_items(
    limit_settings: Settings, database: Database, shop: Shop, worker: WorkerProcess
) -> None:
    shop.delay = 8.0
    started = time.monotonic()
    try:
        job = _run(
            database,
            limit_settings,
            worker,
            spider="product",
            urls=[shop.url(1), shop.url(2), shop.url(3, "slow")],
        )
    finally:
        shop.delay = 0.0
    assert job.status == "partial", (job.status, job.error)
    assert "soft time limit" in job.error
    # The fast pages, and the slow one if it came back while the crawl was closing.
    assert job.stats["items"] >= 2
    with database.transaction() as session:
        stored = session.scalar(select(func.count()).select_from(ScrapedProduct))
    assert stored == job.stats["items"]
    # The graceful close lets the request in flight finish; the hard limit bounds it.
    assert time.monotonic() - started < 8 + SOFT_LIMIT + 5
