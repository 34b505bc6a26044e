"""Flower, started as ``shelfwatch up`` starts it, watching a real worker run a scrape job.

Checked through Flower's own HTTP API: the job's chunk tasks appear under their names with
their state and readable arguments; the API wants basic auth; ``/metrics`` does not.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from models import Database
from models.jobs import create_job
from shelfwatch.config import Settings
from shelfwatch.up import plan
from tasks.app import create_celery_app
from tasks.dispatch import send_chunk_groups
from tests.conftest import Account
from tests.tasks.scrape_support import ROOT, Shop, WorkerProcess, settings_env, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("scrape-worker")]

AUTH = ("operator", "flower-test-password")


def free_port() -> int:
    """A port nobody listens on now (Flower cannot bind port 0 and report it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def flower_settings(base_settings: Settings) -> Settings:
    return base_settings.model_copy(
        update={
            "flower_port": free_port(),
            "flower_basic_auth": ":".join(AUTH),
            # The same heartbeat as the other worker tests of this process: a worker with a
            # shorter one would take this worker's running chunks for stale.
            "worker_heartbeat_seconds": 1,
            "domain_rate_per_second": 1000.0,
            "domain_rate_burst": 1000.0,
            "scrape_task_rate_limit": None,
            "scrape_retry_times": 0,
            "scrape_chunk_size": 2,
            "worker_concurrency": 2,
        }
    )


@pytest.fixture
def settings(flower_settings: Settings) -> Settings:
    return flower_settings


class FlowerProcess:
    """The ``flower`` part of ``shelfwatch up``, with the test's settings as environment."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.url = f"http://127.0.0.1:{settings.flower_port}"
        (part,) = plan(settings, parts={"flower"})
        env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
        self.log_path = log_path
        self.log_file = log_path.open("ab")
        self.process = subprocess.Popen(
            part.argv, cwd=ROOT, env=env, stdout=self.log_file, stderr=subprocess.STDOUT
        )

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=5, **kwargs)

    def answers(self) -> bool:
        assert self.process.poll() is None, self.log()
        try:
            return self.get("/healthcheck").status_code == 200
        except requests.ConnectionError:
            return False

    def has_seen_a_worker(self) -> bool:
        # Set from the worker's own events (online/heartbeat), so the event stream is flowing.
        return "flower_worker_online{" in self.get("/metrics").text

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.log_file.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def shop() -> Iterator[Shop]:
    with Shop() as running:
        yield running


@pytest.fixture(scope="module")
def flower(
    flower_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FlowerProcess]:
    logs = tmp_path_factory.mktemp("flower")
    worker = WorkerProcess(flower_settings, logs / "worker.log").start()
    flower = FlowerProcess(flower_settings, logs / "flower.log")
    try:
        wait_for(flower.answers, timeout=60, interval=0.2)
        wait_for(flower.has_seen_a_worker, timeout=60, interval=0.5)
        yield flower
    finally:
        flower.stop()
        worker.stop()


def chunk_tasks(flower: FlowerProcess, job_id: str) -> list[dict[str, Any]]:
    tasks = flower.get("/api/tasks", params={"limit": 1000}, auth=AUTH).json()
    return [task for task in tasks.values() if job_id in (task.get("args") or "")]


def test_flower_shows_a_scrape_jobs_tasks_with_state_and_readable_args(
    client: FlaskClient, clerk: Account, shop: Shop, flower: FlowerProcess
) -> None:
    urls = [shop.url(n) for n in range(1, 4)]
    response = client.post(
        "/api/v1/scrape-jobs", json={"spider": "product", "urls": urls}, headers=clerk.headers
    )
    assert response.status_code == 202, response.json
    job_id = response.json["id"]

    def both_succeeded() -> list[dict[str, Any]] | None:
        tasks = chunk_tasks(flower, job_id)
        return tasks if [t["state"] for t in tasks] == ["SUCCESS", "SUCCESS"] else None

    try:
        tasks = wait_for(both_succeeded, timeout=60, interval=0.5)
    except TimeoutError:
        pytest.fail(f"Flower saw {chunk_tasks(flower, job_id)}; its log:\n{flower.log()[-3000:]}")

    assert {task["name"] for task in tasks} == {"shelfwatch.scrape.run_chunk"}
    assert sorted(task["args"].split(", ")[1] for task in tasks) == ["urls_count=1", "urls_count=2"]
    for task in tasks:
        assert task["args"].startswith("(spider='product', urls_count=")
        assert task["args"].endswith(f"job_id='{job_id}')") and "chunk_id=" in task["args"]
        assert task["result"] == "'succeeded'"
        assert task["worker"] and task["runtime"] is not None


def test_flower_shows_a_run_chunks_message_with_its_job_ids(
    clerk: Account, shop: Shop, flower: FlowerProcess, database: Database, settings: Settings
) -> None:
    refs = []
    with database.transaction() as session:
        for n in (10, 11, 12):
            refs += create_job(
                session, spider="product", urls=[shop.url(n)], chunk_size=2, created_by=clerk.id
            )[1]
    send_chunk_groups(create_celery_app(settings), refs, max_chunks=8, max_urls=50)
    job_ids = [ref.job_id for ref in refs]

    def succeeded() -> list[dict[str, Any]] | None:
        tasks = chunk_tasks(flower, job_ids[0])
        return tasks if [t["state"] for t in tasks] == ["SUCCESS"] else None

    try:
        [task] = wait_for(succeeded, timeout=60, interval=0.5)
    except TimeoutError:
        pytest.fail(f"Flower saw {chunk_tasks(flower, job_ids[0])}; log:\n{flower.log()[-3000:]}")
    assert task["name"] == "shelfwatch.scrape.run_chunks"
    quoted = ", ".join(repr(job_id) for job_id in job_ids)
    assert task["args"] == f"(spider='product', chunks=3, job_ids=[{quoted}])"
    assert task["result"] == "['succeeded', 'succeeded', 'succeeded']"


def test_flower_api_wants_basic_auth_and_metrics_do_not(flower: FlowerProcess) -> None:
    assert flower.get("/api/tasks").status_code == 401
    assert flower.get("/api/tasks", auth=("operator", "wrong")).status_code == 401
    assert flower.get("/api/workers", auth=AUTH).status_code == 200

    metrics = flower.get("/metrics")
    assert metrics.status_code == 200
    assert "flower_events_total" in metrics.text
    assert "flower_worker_online" in metrics.text
