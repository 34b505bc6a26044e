"""``/metrics``: request counts and latencies, jobs by state, real broker queue depths, and
the counters of several gunicorn workers added up in multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask.testing import FlaskClient
from kombu import Connection
from prometheus_client.parser import text_string_to_metric_families

from models import Database
from models.jobs import ChunkRef, create_job
from models.scraping import ScrapeJob
from shelfwatch.config import Settings
from tasks.app import create_celery_app
from tasks.config import QUEUES, celery_settings
from tasks.dispatch import send_chunks
from tests.conftest import Account
from tests.services import RABBITMQ_URL, unique_name
from tests.tasks.scrape_support import ROOT, settings_env, wait_for
from tests.tasks.test_flower import free_port
from webapi import create_app
from webapi.queue_depth import queue_depths

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: FlaskClient) -> Samples:
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.content_type.startswith("text/plain")
    return parse(answer.get_data(as_text=True))


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def purge(settings: Settings) -> None:
    # The transport options of the app: kombu's Redis defaults name other priority lists.
    options = celery_settings(settings)["broker_transport_options"]
    with Connection(settings.celery_broker_url, transport_options=options) as connection:
        for name in QUEUES:
            with connection.channel() as channel:
                channel.queue_purge(settings.queue(name))


def test_requests_are_counted_by_method_endpoint_and_status(
    client: FlaskClient, clerk: Account
) -> None:
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    assert client.get("/api/v1/products/12345", headers=clerk.headers).status_code == 404
    assert client.get("/no/such/page/12345").status_code == 404
    assert client.post("/api/v1/auth/login", json={"email": "x", "password": "y"}).status_code

    samples = scrape(client)

    health = {"method": "GET", "endpoint": "/healthz", "status": "200"}
    assert value(samples, "shelfwatch_http_requests_total", **health) == 3
    assert value(samples, "shelfwatch_http_request_duration_seconds_count", **health) == 3
    assert 0 < value(samples, "shelfwatch_http_request_duration_seconds_sum", **health) < 5
    product = {"method": "GET", "endpoint": "/api/v1/products/<product_id>", "status": "404"}
    assert value(samples, "shelfwatch_http_requests_total", **product) == 1
    unmatched = {"method": "GET", "endpoint": "<unmatched>", "status": "404"}
    assert value(samples, "shelfwatch_http_requests_total", **unmatched) == 1
    login = {"method": "POST", "endpoint": "/api/v1/auth/login", "status": "401"}
    assert value(samples, "shelfwatch_http_requests_total", **login) == 1
    assert not any("12345" in str(labels) for _name, labels in samples)


def test_metrics_need_no_token(client: FlaskClient) -> None:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert b"shelfwatch_metrics_source_up" in answer.data


@pytest.fixture
def queued_scrape_chunks(settings: Settings, database: Database) -> Iterator[list[str]]:
    """Jobs in several states, and five chunk messages waiting in the scrape queue."""
    with database.transaction() as session:
        job, refs = create_job(
            session,
            spider="product",
            urls=[f"http://127.0.0.1:9/p/{n}" for n in range(5)],
            chunk_size=1,
        )
        statuses = ["running", "succeeded", "succeeded", "failed"]
        for status in statuses:
            other, _ = create_job(
                session, spider="product", urls=["http://127.0.0.1:9/"], chunk_size=1
            )
            other.status = status
    purge(settings)
    send_chunks(create_celery_app(settings), refs)
    yield [job.id]
    purge(settings)


def test_jobs_by_state_and_queue_depth_come_from_the_database_and_the_broker(
    client: FlaskClient, queued_scrape_chunks: list[str], database: Database
) -> None:
    samples = scrape(client)

    jobs = {
        status: value(samples, "shelfwatch_scrape_jobs", status=status)
        for status in ("queued", "running", "succeeded", "partial", "failed", "cancelled")
    }
    assert jobs == {
        "queued": 1,
        "running": 1,
        "succeeded": 2,
        "partial": 0,
        "failed": 1,
        "cancelled": 0,
    }
    assert value(samples, "shelfwatch_queue_messages", queue="scrape") == 5
    assert value(samples, "shelfwatch_queue_messages", queue="default") == 0
    assert value(samples, "shelfwatch_metrics_source_up", source="broker") == 1
    assert value(samples, "shelfwatch_metrics_source_up", source="database") == 1
    with database.transaction() as session:
        assert session.get(ScrapeJob, queued_scrape_chunks[0]) is not None


def test_a_broker_that_does_not_answer_is_reported_not_a_failed_scrape(
    settings: Settings, database: Database
) -> None:
    unreachable = settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{free_port()}/0"})
    client = create_app(unreachable).test_client()

    samples = scrape(client)

    assert value(samples, "shelfwatch_metrics_source_up", source="broker") == 0
    assert value(samples, "shelfwatch_metrics_source_up", source="database") == 1
    assert value(samples, "shelfwatch_queue_messages", queue="scrape") is None


def test_queue_depth_on_rabbitmq(settings: Settings, database: Database) -> None:
    # Queues of its own: other tests of this process use the namespace's RabbitMQ queues.
    rabbit = settings.model_copy(
        update={"broker_url": RABBITMQ_URL, "queue_namespace": unique_name("qd") + "."}
    )
    assert queue_depths(rabbit) == {"default": 0, "scrape": 0, "stock": 0}
    with database.transaction() as session:
        _job, refs = create_job(
            session,
            spider="product",
            urls=["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"],
            chunk_size=1,
        )
    try:
        send_chunks(create_celery_app(rabbit), refs)
        assert wait_for(lambda: queue_depths(rabbit)["scrape"] == 2, timeout=10)
    finally:
        with Connection(RABBITMQ_URL) as connection:
            for name in QUEUES:
                with connection.channel() as channel:
                    channel.queue_delete(rabbit.queue(name))


def test_queue_depth_in_the_embedded_mode(tmp_path: Path) -> None:
    embedded = Settings(mode="embedded", data_dir=tmp_path, queue_namespace="")
    app = create_celery_app(embedded)

    send_chunks(app, [ChunkRef(n, "job", "product", 1, 0) for n in range(3)])

    assert queue_depths(embedded) == {"default": 0, "scrape": 3, "stock": 0}


@pytest.fixture
def gunicorn(settings: Settings, tmp_path: Path, database: Database) -> Iterator[str]:
    """The API under gunicorn with two sync workers sharing a multiprocess directory."""
    port = free_port()
    env = {
        **os.environ,
        **settings_env(settings),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    log = (tmp_path.parent / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "webapi:create_app()",
            f"--bind=127.0.0.1:{port}",
            "--workers=2",
            "--worker-class=sync",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url), timeout=60, interval=0.2)
        yield url
    finally:
        process.terminate()
        process.wait(20)
        log.close()


def _answers(url: str) -> bool:
    try:
        return requests.get(url + "/healthz", timeout=5).status_code == 200
    except requests.RequestException:  # not listening yet, or a worker still booting
        return False


def test_gunicorn_workers_counters_add_up_in_multiprocess_mode(
    gunicorn: str, tmp_path: Path
) -> None:
    before = parse(requests.get(gunicorn + "/metrics", timeout=10).text)
    ready = {"method": "GET", "endpoint": "/readyz", "status": "200"}
    assert value(before, "shelfwatch_http_requests_total", **ready) is None

    def hit() -> None:
        for _ in range(10):
            assert requests.get(gunicorn + "/readyz", timeout=10).status_code == 200

    # Rounds of 60 concurrent requests until both workers have answered some (the kernel may
    # hand a fast worker every connection of a round).
    sent = 0
    for _ in range(10):
        threads = [threading.Thread(target=hit) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sent += 60
        counter_files = {path.name for path in tmp_path.glob("counter_*.db")}
        if len(counter_files) == 2:
            break
    assert len(counter_files) == 2, counter_files  # both workers answered some requests
    for _ in range(4):  # whichever worker answers, it reports both workers' counts
        samples = parse(requests.get(gunicorn + "/metrics", timeout=10).text)
        assert value(samples, "shelfwatch_http_requests_total", **ready) == sent
        assert value(samples, "shelfwatch_http_request_duration_seconds_count", **ready) == sent
