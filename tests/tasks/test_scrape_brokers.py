"""The job flow over the other transports: RabbitMQ, and the embedded mode (SQLite and
kombu's filesystem transport, no server at all)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from kombu import Connection

from models import Database, Role, create_database
from models.accounts import create_user
from shelfwatch import migrate
from shelfwatch.config import Settings
from tasks.config import QUEUES
from tests.conftest import PASSWORD
from tests.services import RABBITMQ_URL
from tests.tasks.scrape_support import Shop, WorkerProcess, wait_for
from webapi import create_app

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("scrape-worker")]

FAST = {
    "worker_heartbeat_seconds": 1,
    "domain_rate_per_second": 1000.0,
    "domain_rate_burst": 1000.0,
    "scrape_task_rate_limit": None,
    "scrape_retry_times": 0,
    "worker_concurrency": 2,
}


@pytest.fixture
def shop() -> Iterator[Shop]:
    with Shop() as running:
        yield running


def _login(client: FlaskClient, email: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.json
    return {"Authorization": f"Bearer {response.json['access_token']}"}


def _run_job(
    client: FlaskClient, headers: dict[str, str], urls: list[str], worker: WorkerProcess
) -> dict[str, Any]:
    response = client.post(
        "/api/v1/scrape-jobs", json={"spider": "product", "urls": urls}, headers=headers
    )
    assert response.status_code == 202, response.json
    job_id = response.json["id"]

    def finished() -> dict[str, Any] | None:
        job = client.get(f"/api/v1/scrape-jobs/{job_id}", headers=headers).json
        return job if job["status"] not in ("queued", "running") else None

    try:
        return wait_for(finished, timeout=90, interval=0.2)
    except TimeoutError:
        pytest.fail(f"job {job_id} did not finish; worker log:\n{worker.log()[-5000:]}")


@pytest.fixture
def rabbit_settings(base_settings: Settings) -> Iterator[Settings]:
    settings = base_settings.model_copy(update={**FAST, "broker_url": RABBITMQ_URL})
    yield settings
    with Connection(RABBITMQ_URL) as connection:
        channel = connection.default_channel
        for name in QUEUES:
            channel.queue_delete(settings.queue(name))


def test_job_flow_over_rabbitmq(
    rabbit_settings: Settings,
    database: Database,
    make_account: Any,
    shop: Shop,
    tmp_path: Path,
) -> None:
    account = make_account(Role.CLERK)
    client = create_app(rabbit_settings).test_client()
    worker = WorkerProcess(rabbit_settings, tmp_path / "rabbit.log").start()
    try:
        job = _run_job(client, account.headers, [shop.url(1), shop.url(2), shop.url(3)], worker)
    finally:
        worker.stop()
    assert "amqp://" in worker.log()
    assert job["status"] == "succeeded", job
    assert job["stats"]["items"] == 3


@pytest.fixture
def embedded_settings(tmp_path: Path) -> Iterator[Settings]:
    settings = Settings(
        mode="embedded",
        data_dir=tmp_path / "data",
        ssrf_allowed_networks=["127.0.0.0/8"],
        log_level="WARNING",
        **FAST,
    )
    migrate.upgrade(settings)
    yield settings


def test_job_flow_in_the_embedded_mode(
    embedded_settings: Settings, shop: Shop, tmp_path: Path
) -> None:
    db = create_database(embedded_settings)
    with db.transaction() as session:
        create_user(session, "clerk@example.com", PASSWORD, Role.CLERK)
    db.dispose()
    client = create_app(embedded_settings).test_client()
    headers = _login(client, "clerk@example.com")
    worker = WorkerProcess(embedded_settings, tmp_path / "embedded.log").start()
    try:
        job = _run_job(client, headers, [shop.url(1), shop.url(2)], worker)
    finally:
        worker.stop()
    assert "filesystem://" in worker.log()
    assert job["status"] == "succeeded", job
    items = client.get(f"/api/v1/scrape-jobs/{job['id']}/items", headers=headers).json["items"]
    assert sorted(item["sku"] for item in items) == ["SKU-1", "SKU-2"]
