"""A broker that restarts in the middle of a run, losing every message it held, does not lose
the job: running chunks finish (their end is a database write), and the chunks whose messages
vanished are sent again by the recovery loop once the broker is back.

The broker is a private ``redis-server`` on a free port, without persistence, killed with
SIGKILL and started again on the same port (the shared Redis must not be restarted).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from models import Database, ScrapeChunk, ScrapedProduct, ScrapeJob
from models.jobs import create_job
from shelfwatch.config import Settings
from tasks.app import create_celery_app
from tasks.dispatch import send_chunks
from tests.tasks.scrape_support import Shop, WorkerProcess, wait_for, worker_test_settings

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("scrape-worker")]

REDIS_SERVER = shutil.which("redis-server")


class PrivateRedis:
    """``redis-server`` on 127.0.0.1:<port>, in memory only."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        assert REDIS_SERVER is not None
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.folder)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_for(self._answers, timeout=10)
        return self

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=0.5).ping())
        except redis.ConnectionError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def queued_messages(self, queue: str) -> int:
        client = redis.Redis.from_url(self.url)
        return sum(int(client.llen(key)) for key in client.keys(f"{queue}*"))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateRedis]:
    if REDIS_SERVER is None:
        pytest.fail("redis-server is needed for the broker restart test")
    server = PrivateRedis(tmp_path).start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.kill()


@pytest.fixture
def shop() -> Iterator[Shop]:
    with Shop() as running:
        running.delay = 3.0
        yield running


def test_a_job_survives_a_broker_restart_that_loses_its_messages(
    base_settings: Settings, database: Database, broker: PrivateRedis, shop: Shop, tmp_path: Path
) -> None:
    settings = worker_test_settings(
        base_settings, broker_url=broker.url, scrape_redispatch_seconds=2, worker_concurrency=2
    )
    urls = [shop.url(n, "slow") for n in range(1, 7)]
    with database.transaction() as session:
        job, chunks = create_job(session, spider="product", urls=urls, chunk_size=1)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        send_chunks(create_celery_app(settings), chunks)
        # Two chunks crawl (3 s each); the other four wait in the broker.
        wait_for(lambda: _running(database, job.id) == 2, timeout=60)
        assert broker.queued_messages(settings.queue("scrape")) >= 1
        broker.kill()
        time.sleep(1.0)
        broker.start()
        assert broker.queued_messages(settings.queue("scrape")) == 0  # the messages are gone

        def finished() -> ScrapeJob | None:
            with database.transaction() as session:
                row = session.get(ScrapeJob, job.id)
            return row if row.status not in ("queued", "running") else None

        try:
            done = wait_for(finished, timeout=90, interval=0.2)
        except TimeoutError:
            pytest.fail(f"job not finished; worker log:\n{worker.log()[-5000:]}")
    finally:
        worker.stop()

    assert done.status == "succeeded", (done.status, done.error, done.stats)
    assert done.stats["items"] == 6
    with database.transaction() as session:
        stored = session.scalar(select(func.count()).select_from(ScrapedProduct))
    assert stored == 6


def _running(database: Database, job_id: str) -> int:
    with database.transaction() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(ScrapeChunk)
                .where(ScrapeChunk.job_id == job_id, ScrapeChunk.status == "running")
            )
            or 0
        )
