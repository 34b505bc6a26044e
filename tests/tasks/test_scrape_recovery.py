"""A worker SIGKILLed in the middle of a crawl: another worker finishes the job.

With Redis, the killed worker's unacknowledged message would come back only after the
visibility timeout (over 30 minutes); the dead worker is found by its stale heartbeat and
its chunk re-queued by the surviving worker's recovery loop.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from models import Database, PriceObservation, ScrapeChunk, ScrapedProduct, ScrapeJob
from models.jobs import create_job
from shelfwatch.config import Settings
from tasks.app import create_celery_app
from tasks.dispatch import send_chunk_groups, send_chunks
from tests.tasks.scrape_support import Shop, WorkerProcess, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("scrape-worker")]

HEARTBEAT_SECONDS = 1


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    return base_settings.model_copy(
        update={
            "worker_heartbeat_seconds": HEARTBEAT_SECONDS,
            "scrape_stale_heartbeats": 3,
            "domain_rate_per_second": 1000.0,
            "domain_rate_burst": 1000.0,
            "scrape_task_rate_limit": None,
            "scrape_retry_times": 0,
            "worker_concurrency": 4,
        }
    )


@pytest.fixture
def shop() -> Iterator[Shop]:
    with Shop() as running:
        running.delay = 20.0
        yield running


def _count(database: Database, model: type) -> int:
    with database.transaction() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _chunk(database: Database, chunk_id: int) -> ScrapeChunk:
    with database.transaction() as session:
        return session.get(ScrapeChunk, chunk_id)


def test_killed_worker_job_is_finished_by_another_exactly_once(
    settings: Settings, database: Database, shop: Shop, tmp_path: object
) -> None:
    fast = [shop.url(n) for n in range(1, 4)]
    slow = [shop.url(n, "slow") for n in range(4, 7)]
    with database.transaction() as session:
        job, chunks = create_job(session, spider="product", urls=fast + slow, chunk_size=50)
    [chunk] = chunks
    first = WorkerProcess(settings, tmp_path / "first.log").start()  # type: ignore[operator]
    second = WorkerProcess(settings, tmp_path / "second.log")  # type: ignore[operator]
    try:
        send_chunks(create_celery_app(settings), chunks)
        wait_for(lambda: _chunk(database, chunk.chunk_id).status == "running", timeout=60)
        # The fast pages are stored; the slow ones are in flight when the worker dies.
        wait_for(lambda: _count(database, ScrapedProduct) == 3, timeout=30)
        assert f"/{first.pid}/" in (_chunk(database, chunk.chunk_id).worker or "")
        shop.delay = 1.0
        second.start()
        time.sleep(1.0)  # let the second worker boot while the first is mid-crawl
        first.kill()
        killed_at = time.monotonic()

        def finished() -> ScrapeJob | None:
            with database.transaction() as session:
                row = session.get(ScrapeJob, job.id)
            return row if row.status not in ("queued", "running") else None

        try:
            done = wait_for(finished, timeout=90, interval=0.1)
        except TimeoutError:
            pytest.fail(f"job not finished; second worker log:\n{second.log()[-5000:]}")
        recovery_seconds = time.monotonic() - killed_at
    finally:
        second.stop()
        if first.process is not None and first.process.poll() is None:
            first.kill()
        first.log_file.close()

    print(f"\nkill -> job succeeded: {recovery_seconds:.2f}s (heartbeat {HEARTBEAT_SECONDS}s x 3)")
    assert done.status == "succeeded", (done.status, done.error, done.stats)
    assert done.stats["items"] == 6
    assert f"/{second.pid}/" in (_chunk(database, chunk.chunk_id).worker or "")
    assert _chunk(database, chunk.chunk_id).attempts == 2
    # Every product exactly once, and one price observation each: the re-crawl of the
    # three pages stored before the kill changed nothing, so it added no history.
    assert _count(database, ScrapedProduct) == 6
    assert _count(database, PriceObservation) == 6
    assert recovery_seconds < 20


def test_a_killed_workers_message_of_several_jobs_is_recovered_exactly_once(
    settings: Settings, database: Database, shop: Shop, tmp_path: object
) -> None:
    """A ``run_chunks`` message (several one-URL jobs): each chunk comes back on its own."""
    urls = [shop.url(10), shop.url(11), shop.url(12, "slow"), shop.url(13, "slow")]
    refs = []
    with database.transaction() as session:
        for url in urls:
            refs += create_job(session, spider="product", urls=[url], chunk_size=50)[1]
    first = WorkerProcess(settings, tmp_path / "first.log").start()  # type: ignore[operator]
    second = WorkerProcess(settings, tmp_path / "second.log")  # type: ignore[operator]
    try:
        send_chunk_groups(create_celery_app(settings), refs, max_chunks=8, max_urls=50)
        wait_for(lambda: _count(database, ScrapedProduct) == 2, timeout=60)
        assert all(f"/{first.pid}/" in (_chunk(database, r.chunk_id).worker or "") for r in refs)
        shop.delay = 1.0
        second.start()
        time.sleep(1.0)
        first.kill()

        def finished() -> list[ScrapeJob] | None:
            with database.transaction() as session:
                rows = [session.get(ScrapeJob, ref.job_id) for ref in refs]
            return rows if all(r.status not in ("queued", "running") for r in rows) else None

        try:
            done = wait_for(finished, timeout=90, interval=0.1)
        except TimeoutError:
            pytest.fail(f"jobs not finished; second worker log:\n{second.log()[-5000:]}")
    finally:
        second.stop()
        if first.process is not None and first.process.poll() is None:
            first.kill()
        first.log_file.close()

    assert [job.status for job in done] == ["succeeded"] * 4, [(j.status, j.error) for j in done]
    # The fast two ended before the kill; the slow two were re-run by the second worker.
    attempts = [_chunk(database, ref.chunk_id).attempts for ref in refs]
    assert attempts == [1, 1, 2, 2]
    assert f"/{second.pid}/" in (_chunk(database, refs[3].chunk_id).worker or "")
    assert _count(database, ScrapedProduct) == 4
    assert _count(database, PriceObservation) == 4
