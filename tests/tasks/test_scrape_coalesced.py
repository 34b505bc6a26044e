"""Several one-chunk jobs in one ``run_chunks`` message, with real worker processes.

Each job keeps its own outcome, items, cancel and recovery; a redelivered message stores
nothing twice; chunks whose message was never sent (the API process died with them in its
coalescer) or whose worker was killed are sent again by recovery as ``run_chunk`` messages.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from flask.testing import FlaskClient
from sqlalchemy import func, select

from models import Database, PriceObservation, ScrapeChunk, ScrapedProduct, ScrapeJob
from models.jobs import ChunkRef, create_job
from shelfwatch.config import Settings
from tasks.app import create_celery_app
from tasks.dispatch import send_chunk_groups
from tests.conftest import Account
from tests.tasks.scrape_support import (
    ROOT,
    Shop,
    WorkerProcess,
    settings_env,
    wait_for,
    worker_test_settings,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("scrape-worker")]

FINAL = {"succeeded", "partial", "failed", "cancelled"}


@pytest.fixture(scope="module")
def coalesced_settings(base_settings: Settings) -> Settings:
    # Recovery resends a queued chunk after 10 s without a message (900 s by default): long
    # enough that it never races the messages these tests do send, even on a loaded machine.
    return worker_test_settings(base_settings, worker_concurrency=4, scrape_redispatch_seconds=10)


@pytest.fixture
def settings(coalesced_settings: Settings) -> Settings:
    return coalesced_settings


@pytest.fixture(scope="module")
def shop() -> Iterator[Shop]:
    with Shop() as running:
        yield running


@pytest.fixture(scope="module")
def worker(
    coalesced_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    process = WorkerProcess(coalesced_settings, tmp_path_factory.mktemp("w") / "w.log").start()
    yield process
    process.stop()


@pytest.fixture
def celery(settings: Settings) -> Celery:
    return create_celery_app(settings)


def one_url_jobs(database: Database, urls: list[str], account: Account) -> list[ChunkRef]:
    refs: list[ChunkRef] = []
    with database.transaction() as session:
        for url in urls:
            _, job_refs = create_job(
                session, spider="product", urls=[url], chunk_size=50, created_by=account.id
            )
            refs += job_refs
    return refs


def job_row(database: Database, job_id: str) -> ScrapeJob:
    with database.transaction() as session:
        return session.get(ScrapeJob, job_id)


def wait_final(
    database: Database, job_id: str, worker: WorkerProcess, timeout: float = 60
) -> ScrapeJob:
    try:
        return wait_for(
            lambda: (row := job_row(database, job_id)).status in FINAL and row, timeout=timeout
        )
    except TimeoutError:
        pytest.fail(f"job {job_id} did not end; worker log:\n{worker.log()[-5000:]}")


def chunk_rows(database: Database, refs: list[ChunkRef]) -> list[ScrapeChunk]:
    with database.transaction() as session:
        return [session.get(ScrapeChunk, ref.chunk_id) for ref in refs]


def count(database: Database, model: type) -> int:
    with database.transaction() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def skus(client: FlaskClient, account: Account, job_id: str) -> list[str]:
    items = client.get(f"/api/v1/scrape-jobs/{job_id}/items", headers=account.headers).json
    return [item["sku"] for item in items["items"]]


def test_warm_up(
    worker: WorkerProcess, database: Database, celery: Celery, clerk: Account, shop: Shop
) -> None:
    """The worker's first chunk imports the crawl stack (~1 s): timings below start warm."""
    [ref] = one_url_jobs(database, [shop.url(99)], clerk)
    send_chunk_groups(celery, [ref], max_chunks=8, max_urls=50)
    assert wait_final(database, ref.job_id, worker).status == "succeeded"


def test_one_message_runs_several_jobs_each_with_its_own_items(
    client: FlaskClient,
    clerk: Account,
    shop: Shop,
    worker: WorkerProcess,
    database: Database,
    celery: Celery,
) -> None:
    urls = [shop.url(n) for n in range(100, 105)] + [shop.url(105, "broken")]
    refs = one_url_jobs(database, urls, clerk)

    send_chunk_groups(celery, refs, max_chunks=8, max_urls=50)

    done = [wait_final(database, ref.job_id, worker) for ref in refs]
    assert [job.status for job in done] == ["succeeded"] * 5 + ["failed"]
    for job, n in zip(done[:5], range(100, 105), strict=True):
        assert (job.stats["items"], job.stats["requests"], job.chunks_done) == (1, 1, 1)
        assert skus(client, clerk, job.id) == [f"SKU-{n}"]
    assert done[5].stats["responses"] == {"500": 1} and done[5].stats["items"] == 0
    # One message: one task thread of one worker claimed them all.
    assert len({chunk.worker for chunk in chunk_rows(database, refs)}) == 1


def test_a_cancelled_job_stops_alone_and_the_others_do_not_wait_for_it(
    client: FlaskClient,
    clerk: Account,
    shop: Shop,
    worker: WorkerProcess,
    database: Database,
    celery: Celery,
) -> None:
    shop.delay = 8.0
    try:
        urls = [shop.url(110), shop.url(111, "slow"), shop.url(112)]
        refs = one_url_jobs(database, urls, clerk)
        send_chunk_groups(celery, refs, max_chunks=8, max_urls=50)
        # The fast ones end within a poll slice of the worker, not with the slow one.
        fast = [wait_final(database, refs[i].job_id, worker, timeout=6) for i in (0, 2)]
        assert job_row(database, refs[1].job_id).status == "running"
        cancelled_at = time.monotonic()
        response = client.post(
            f"/api/v1/scrape-jobs/{refs[1].job_id}/cancel", headers=clerk.headers
        )
        assert response.status_code == 200
        slow = wait_final(database, refs[1].job_id, worker)
        stop_seconds = time.monotonic() - cancelled_at
    finally:
        shop.delay = 0.0
    assert [job.status for job in fast] == ["succeeded", "succeeded"]
    assert slow.status == "cancelled" and stop_seconds < 7, stop_seconds
    assert skus(client, clerk, refs[0].job_id) == ["SKU-110"]
    assert skus(client, clerk, refs[1].job_id) == []


def queued_messages(settings: Settings) -> int:
    broker = redis.Redis.from_url(settings.celery_broker_url)
    return sum(broker.llen(f"{settings.queue('scrape')}:{step}") for step in range(10))


def test_a_redelivered_message_stores_nothing_twice(
    client: FlaskClient,
    clerk: Account,
    shop: Shop,
    worker: WorkerProcess,
    database: Database,
    celery: Celery,
    settings: Settings,
) -> None:
    products, history = count(database, ScrapedProduct), count(database, PriceObservation)
    refs = one_url_jobs(database, [shop.url(n) for n in range(120, 124)], clerk)

    send_chunk_groups(celery, refs, max_chunks=8, max_urls=50)
    send_chunk_groups(celery, refs, max_chunks=8, max_urls=50)  # the same message again
    done = [wait_final(database, ref.job_id, worker) for ref in refs]
    send_chunk_groups(celery, refs, max_chunks=8, max_urls=50)  # and after the jobs ended
    wait_for(lambda: queued_messages(settings) == 0, timeout=30)
    time.sleep(1.0)  # the last one taken is run (and claims nothing)

    assert [job.status for job in done] == ["succeeded"] * 4
    assert [chunk.attempts for chunk in chunk_rows(database, refs)] == [1] * 4
    assert count(database, ScrapedProduct) == products + 4
    assert count(database, PriceObservation) == history + 4
    assert shop.hits["/p/120"] == 1
    assert all(job_row(database, ref.job_id).chunks_done == 1 for ref in refs)


def test_chunks_whose_message_was_never_sent_are_recovered(
    client: FlaskClient,
    clerk: Account,
    shop: Shop,
    worker: WorkerProcess,
    database: Database,
    settings: Settings,
) -> None:
    """An API process submits two jobs and dies while the second waits in its coalescer."""
    urls = [shop.url(130), shop.url(131)]
    script = textwrap.dedent(
        f"""
        import os, signal, sys, time
        from models import create_database
        from models.jobs import create_job
        from shelfwatch.config import load_settings
        from tasks.app import create_celery_app
        from tasks.dispatch import submit_chunks

        settings = load_settings()
        db = create_database(settings)
        app = create_celery_app(settings)
        for url in {urls!r}:
            with db.transaction() as session:
                job, refs = create_job(
                    session, spider="product", urls=[url], chunk_size=50, created_by={clerk.id}
                )
            submit_chunks(app, refs)  # the first leaves at once; the second lingers
            print(job.id, refs[0].chunk_id, flush=True)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    lingering = settings.model_copy(update={"scrape_coalesce_linger_ms": 60_000.0})
    env = {**os.environ, **settings_env(lingering)}
    process = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert process.returncode == -9, process.stderr.decode()[-3000:]
    first_id, _, second_id, second_chunk = process.stdout.decode().split()

    first = wait_final(database, first_id, worker, timeout=30)
    second = wait_final(database, second_id, worker, timeout=30)

    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert skus(client, clerk, second_id) == ["SKU-131"]
    assert f"re-sending 1 chunk(s): [{second_chunk}]" in worker.log()


def test_worker_log_has_no_tracebacks(worker: WorkerProcess) -> None:
    assert "Traceback" not in worker.log(), worker.log()[-5000:]
