"""The whole job flow with a real worker process: API → broker → worker → crawl → stored.

The worker is ``celery -A tasks worker`` with no flags, configured only by the environment,
crawling a shop served by this test on 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import func, select

from models import Database, PriceObservation, ScrapedProduct
from shelfwatch.config import Settings
from tasks.job_events import job_ended_channel
from tests.conftest import Account
from tests.tasks.scrape_support import Shop, WorkerProcess, wait_for, worker_test_settings

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("scrape-worker")]

FINAL = {"succeeded", "partial", "failed", "cancelled"}


@pytest.fixture(scope="module")
def flow_settings(base_settings: Settings) -> Settings:
    return worker_test_settings(base_settings, scrape_chunk_size=2, worker_concurrency=4)


@pytest.fixture
def settings(flow_settings: Settings) -> Settings:
    return flow_settings


@pytest.fixture(scope="module")
def shop() -> Iterator[Shop]:
    with Shop() as running:
        yield running


@pytest.fixture(scope="module")
def worker(flow_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    process = WorkerProcess(flow_settings, tmp_path_factory.mktemp("worker") / "w.log").start()
    yield process
    process.stop()


def submit(client: FlaskClient, account: Account, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/scrape-jobs", json=body, headers=account.headers)
    assert response.status_code == 202, response.json
    assert response.headers["Location"] == f"/api/v1/scrape-jobs/{response.json['id']}"
    return response.json


def wait_job(
    client: FlaskClient, account: Account, job_id: str, until: Callable[[dict], bool], worker: Any
) -> dict[str, Any]:
    def current() -> dict[str, Any] | None:
        job = client.get(f"/api/v1/scrape-jobs/{job_id}", headers=account.headers).json
        return job if until(job) else None

    try:
        return wait_for(current, timeout=60, interval=0.1)
    except TimeoutError:
        pytest.fail(f"job {job_id} did not get there; worker log:\n{worker.log()[-5000:]}")


def test_a_job_runs_end_to_end_and_its_items_are_readable(
    client: FlaskClient, clerk: Account, shop: Shop, worker: WorkerProcess, database: Database
) -> None:
    urls = [shop.url(n) for n in range(1, 6)]
    job = submit(client, clerk, spider="product", urls=urls)
    assert (job["status"], job["urls_count"], job["chunks_total"]) == ("queued", 5, 3)

    done = wait_job(client, clerk, job["id"], lambda j: j["status"] in FINAL, worker)

    assert done["status"] == "succeeded", done
    assert done["stats"]["items"] == 5 and done["stats"]["responses"]["200"] >= 5
    assert done["stats"]["errors"] == 0 and done["error"] is None
    assert done["started_at"] and done["finished_at"] and done["stats"]["workers"]
    items = client.get(f"/api/v1/scrape-jobs/{job['id']}/items", headers=clerk.headers).json
    by_sku = {item["sku"]: item for item in items["items"]}
    assert sorted(by_sku) == [f"SKU-{n}" for n in range(1, 6)]
    first = by_sku["SKU-1"]
    assert (first["name"], first["price"], first["currency"]) == ("Test product 1", "1.99", "EUR")
    assert first["availability"] == "in_stock" and first["canonical_url"] == shop.url(1)
    assert first["brand"] == "Acme" and first["scraped_at"] and first["sources"]


def test_some_failing_urls_make_a_partial_job(
    client: FlaskClient, clerk: Account, shop: Shop, worker: WorkerProcess, database: Database
) -> None:
    urls = [shop.url(10), shop.url(11, "broken")]
    job = submit(client, clerk, spider="product", urls=urls)

    done = wait_job(client, clerk, job["id"], lambda j: j["status"] in FINAL, worker)

    assert done["status"] == "partial", done
    assert done["stats"]["items"] == 1 and done["stats"]["errors"] == 1
    assert done["stats"]["responses"].get("500") == 1
    assert "1 request(s) failed" in done["error"]


def test_a_redelivered_job_stores_nothing_twice(
    client: FlaskClient, clerk: Account, shop: Shop, worker: WorkerProcess, database: Database
) -> None:
    urls = [shop.url(n) for n in range(20, 24)]
    first = submit(client, clerk, spider="product", urls=urls)
    wait_job(client, clerk, first["id"], lambda j: j["status"] in FINAL, worker)
    second = submit(client, clerk, spider="product", urls=urls)
    done = wait_job(client, clerk, second["id"], lambda j: j["status"] in FINAL, worker)

    assert done["status"] == "succeeded"
    with database.transaction() as session:
        products = session.scalar(select(func.count()).select_from(ScrapedProduct))
        history = session.scalar(select(func.count()).select_from(PriceObservation))
    assert (products, history) == (4, 4)


def test_max_age_answers_fresh_pages_from_storage_and_lists_them_as_items(
    client: FlaskClient, clerk: Account, shop: Shop, worker: WorkerProcess, database: Database
) -> None:
    fresh = [shop.url(n) for n in (30, 31)]
    first = submit(client, clerk, spider="product", urls=fresh)
    wait_job(client, clerk, first["id"], lambda j: j["status"] in FINAL, worker)

    second = submit(client, clerk, spider="product", urls=[*fresh, shop.url(32)], max_age=3600)
    done = wait_job(client, clerk, second["id"], lambda j: j["status"] in FINAL, worker)

    assert done["status"] == "succeeded", done
    assert done["stats"]["cached"] == 2 and done["stats"]["items"] == 1
    assert (shop.hits["/p/30"], shop.hits["/p/31"], shop.hits["/p/32"]) == (1, 1, 1)

    def skus(job_id: str) -> list[str]:
        page = client.get(f"/api/v1/scrape-jobs/{job_id}/items", headers=clerk.headers).json
        return sorted(item["sku"] for item in page["items"])

    assert skus(second["id"]) == ["SKU-30", "SKU-31", "SKU-32"]
    assert skus(first["id"]) == ["SKU-30", "SKU-31"]


# A job with max_age (or spider arguments) gets a crawl of its own; a plain small one joins
# the worker's batch crawl: both must stop storing when their task gives up on them.
@pytest.mark.parametrize(("max_age", "n"), [(None, 40), (3600, 50)], ids=["batch", "own-crawl"])
def test_cancel_stops_a_running_job_within_seconds_keeping_what_it_stored(
    client: FlaskClient,
    clerk: Account,
    shop: Shop,
    worker: WorkerProcess,
    database: Database,
    max_age: int | None,
    n: int,
) -> None:
    # The slow pages answer after the job has ended (the worker gives a cancelled crawl 3 s to
    # close, then leaves it to finish in the background): what arrives then is not stored.
    shop.delay = 8.0
    try:
        urls = [shop.url(n), shop.url(n + 1), shop.url(n + 2, "slow"), shop.url(n + 3, "slow")]
        job = submit(client, clerk, spider="product", urls=urls, max_age=max_age)
        wait_job(client, clerk, job["id"], lambda j: j["status"] == "running", worker)
        wait_for(lambda: _stored(database) >= 2, timeout=30)
        slow_requested_at = time.monotonic()

        cancelled_at = time.monotonic()
        response = client.post(f"/api/v1/scrape-jobs/{job['id']}/cancel", headers=clerk.headers)
        assert response.status_code == 200 and response.json["cancel_requested"] is True
        done = wait_job(client, clerk, job["id"], lambda j: j["status"] in FINAL, worker)
        stop_seconds = time.monotonic() - cancelled_at
    finally:
        shop.delay = 0.0

    assert done["status"] == "cancelled"
    assert stop_seconds < 8, f"cancel took {stop_seconds:.1f}s"
    assert _stored(database) == 2
    assert shop.hits[f"/slow/{n + 2}"] == 1 and shop.hits[f"/slow/{n + 3}"] == 1
    # Past the slow answers, the storage flush interval and then some.
    time.sleep(max(0.0, slow_requested_at + 8.0 + 3.0 - time.monotonic()))
    assert _stored(database) == 2, "the abandoned crawl stored pages after the job ended"
    again = client.post(f"/api/v1/scrape-jobs/{job['id']}/cancel", headers=clerk.headers)
    assert again.status_code == 409 and again.json["type"] == "/problems/job-finished"


def test_small_jobs_share_the_batch_crawl_and_keep_their_own_stats_and_items(
    client: FlaskClient, clerk: Account, shop: Shop, worker: WorkerProcess, database: Database
) -> None:
    # Warm: the worker's batch crawl is open and has read robots.txt.
    warm = submit(client, clerk, spider="product", urls=[shop.url(40)])
    wait_job(client, clerk, warm["id"], lambda j: j["status"] in FINAL, worker)
    robots_before = shop.hits["/robots.txt"]

    jobs = [submit(client, clerk, spider="product", urls=[shop.url(n)]) for n in range(41, 53)]
    mixed = submit(client, clerk, spider="product", urls=[shop.url(60), shop.url(61, "broken")])
    done = [
        wait_job(client, clerk, job["id"], lambda j: j["status"] in FINAL, worker)
        for job in [*jobs, mixed]
    ]

    for job, n in zip(done[:-1], range(41, 53), strict=True):
        assert job["status"] == "succeeded", job
        assert (job["stats"]["items"], job["stats"]["requests"]) == (1, 1), job["stats"]
        items = client.get(f"/api/v1/scrape-jobs/{job['id']}/items", headers=clerk.headers).json
        assert [item["sku"] for item in items["items"]] == [f"SKU-{n}"]
    assert done[-1]["status"] == "partial"
    assert done[-1]["stats"]["items"] == 1 and done[-1]["stats"]["errors"] == 1
    assert done[-1]["stats"]["responses"] == {"200": 1, "500": 1}
    # One open crawl served them all: no crawl of their own, so no robots.txt fetch each.
    assert shop.hits["/robots.txt"] == robots_before


def test_the_worker_announces_each_job_it_ends_to_waiting_requests(
    client: FlaskClient, clerk: Account, shop: Shop, worker: WorkerProcess, settings: Settings
) -> None:
    listener = redis.Redis.from_url(settings.redis_url).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(job_ended_channel(settings.redis_prefix))
    assert listener.get_message(timeout=5) is None  # the confirmation, skipped
    job = submit(client, clerk, spider="product", urls=[shop.url(70)])

    done = client.get(f"/api/v1/scrape-jobs/{job['id']}?wait=20", headers=clerk.headers).json

    assert done["status"] == "succeeded", done
    heard = [listener.get_message(timeout=5) for _ in range(3)]
    listener.close()
    assert job["id"].encode() in [message["data"] for message in heard if message]


def _stored(database: Database) -> int:
    with database.transaction() as session:
        return session.scalar(select(func.count()).select_from(ScrapedProduct)) or 0


def test_worker_log_has_no_tracebacks(worker: WorkerProcess) -> None:
    assert "Traceback" not in worker.log(), worker.log()[-5000:]
