"""The Scrapyd-compatible API, driven by a real Scrapyd client (python-scrapyd-api) over HTTP
against the app on a real server, with a real worker crawling a shop on 127.0.0.1."""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from scrapyd_api import ScrapydAPI
from scrapyd_api.exceptions import ScrapydResponseError
from werkzeug.serving import make_server

from models import Database, ScrapeJob
from shelfwatch.config import Settings
from tests.conftest import PASSWORD, Account
from tests.tasks.scrape_support import Shop, WorkerProcess, wait_for, worker_test_settings
from webapi import create_app

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("scrape-worker")]


@pytest.fixture(scope="module")
def scrapyd_settings(base_settings: Settings) -> Settings:
    return worker_test_settings(base_settings, worker_concurrency=2)


@pytest.fixture
def settings(scrapyd_settings: Settings) -> Settings:
    return scrapyd_settings


@pytest.fixture(scope="module")
def shop() -> Iterator[Shop]:
    with Shop() as running:
        yield running


@pytest.fixture(scope="module")
def worker(scrapyd_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    process = WorkerProcess(scrapyd_settings, tmp_path_factory.mktemp("w") / "w.log").start()
    yield process
    process.stop()


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    """The app on a real threaded HTTP server (the client library speaks HTTP)."""
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    http.server_close()


@pytest.fixture
def scrapyd_for(server: str) -> Callable[[Account], ScrapydAPI]:
    return lambda account: ScrapydAPI(server, auth=(account.email, PASSWORD), timeout=10)


# Tests that need a job to stay pending come first: the module's worker, once started by
# the first test that asks for it, runs until the module ends.


def wait_state(api: ScrapydAPI, job_id: str, state: str) -> None:
    wait_for(lambda: api.job_status("shelfwatch", job_id) == state, timeout=60, interval=0.2)


def test_the_platform_is_one_project_with_its_spiders(
    scrapyd_for: Callable[[Account], ScrapydAPI], clerk: Account, server: str
) -> None:
    api = scrapyd_for(clerk)
    assert api.list_projects() == ["shelfwatch"]
    (version,) = api.list_versions("shelfwatch")
    assert {"product", "catalog", "sitemap"} <= set(api.list_spiders("shelfwatch"))
    status = requests.get(
        f"{server}/daemonstatus.json", auth=(clerk.email, PASSWORD), timeout=10
    ).json()
    assert status["status"] == "ok" and status["node_name"]
    assert (status["pending"], status["running"], status["finished"]) == (0, 0, 0)
    with pytest.raises(ScrapydResponseError, match="project 'other' not found"):
        api.list_spiders("other")
    with pytest.raises(ScrapydResponseError, match=r"version '0\.0\.0-nope' not found"):
        api.client.get(
            f"{server}/listspiders.json", params={"project": "shelfwatch", "_version": "0.0.0-nope"}
        )
    assert version


def test_a_chosen_jobid_is_used_once_and_must_be_a_uuid(
    scrapyd_for: Callable[[Account], ScrapydAPI], clerk: Account, shop: Shop, database: Database
) -> None:
    api = scrapyd_for(clerk)
    chosen = str(uuid.uuid4())

    assert api.schedule("shelfwatch", "product", jobid=chosen, urls=shop.url(3)) == chosen

    assert api.job_status("shelfwatch", chosen) in ("pending", "running", "finished")
    with pytest.raises(ScrapydResponseError, match="already used"):
        api.schedule("shelfwatch", "product", jobid=chosen, urls=shop.url(4))
    with pytest.raises(ScrapydResponseError, match="not a UUID"):
        api.schedule("shelfwatch", "product", jobid="2026-01-01T00_00_00", urls=shop.url(4))
    with database.transaction() as session:
        assert session.query(ScrapeJob).count() == 1  # the refused ones left nothing behind


def test_a_pending_job_is_listed_with_its_arguments_and_cancelled(
    scrapyd_for: Callable[[Account], ScrapydAPI], clerk: Account, shop: Shop, database: Database
) -> None:
    api = scrapyd_for(clerk)  # no worker in this test: the job stays pending
    job_id = api.schedule("shelfwatch", "product", urls=shop.url(6), max_age="3600")

    (pending,) = api.list_jobs("shelfwatch")["pending"]
    assert pending["id"] == job_id and pending["args"] == {"urls": shop.url(6)}
    assert api.cancel("shelfwatch", job_id) == "pending"
    assert api.job_status("shelfwatch", job_id) == "finished"
    with database.transaction() as session:
        job = session.get_one(ScrapeJob, job_id)
        assert (job.status, job.max_age) == ("cancelled", 3600)


def test_errors_have_scrapyds_shape(
    scrapyd_for: Callable[[Account], ScrapydAPI], clerk: Account, server: str
) -> None:
    api = scrapyd_for(clerk)
    refusals = {
        "spider 'nope' not found": {"spider": "nope", "urls": "http://127.0.0.1/"},
        "project 'other' not found": {"project": "other", "urls": "http://127.0.0.1/"},
        "'urls' parameter is required": {},
        "setting 'ITEM_PIPELINES' may not be set": {
            "urls": "http://127.0.0.1/",
            "setting": "ITEM_PIPELINES={}",
        },
        "setting 'DOWNLOAD_DELAY' must be between": {
            "urls": "http://127.0.0.1/",
            "setting": "DOWNLOAD_DELAY=1e9",
        },
        "may not be crawled": {"urls": "http://10.1.2.3/p"},
        "unknown argument": {"urls": "http://127.0.0.1/", "colour": "blue"},
        "priority is invalid": {"urls": "http://127.0.0.1/", "priority": "nan"},
    }
    for message, fields in refusals.items():
        form = {"project": "shelfwatch", "spider": "product", **fields}
        answer = requests.post(
            f"{server}/schedule.json", data=form, auth=(clerk.email, PASSWORD), timeout=10
        )
        assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
        body = answer.json()
        assert body["status"] == "error" and message in body["message"], (fields, body)
        assert body["node_name"]
    with pytest.raises(ScrapydResponseError, match="spiders ship with the shelfwatch platform"):
        api.add_version("shelfwatch", "2", b"PK\x03\x04 not really an egg")
    with pytest.raises(ScrapydResponseError, match="spiders ship"):
        api.delete_version("shelfwatch", "2")
    with pytest.raises(ScrapydResponseError, match="spiders ship"):
        api.delete_project("shelfwatch")


def test_bad_credentials_are_refused_with_401(
    server: str, clerk: Account, scrapyd_for: Callable[[Account], ScrapydAPI]
) -> None:
    wrong = ScrapydAPI(server, auth=(clerk.email, "not the password"), timeout=10)
    with pytest.raises(ScrapydResponseError, match="401"):
        wrong.list_jobs("shelfwatch")
    anonymous = requests.get(f"{server}/listprojects.json", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="shelfwatch"'
    assert anonymous.json()["status"] == "error"
    bearer = requests.get(f"{server}/listprojects.json", headers=clerk.headers, timeout=10)
    assert bearer.status_code == 401  # a JWT is not Scrapyd's auth
    assert scrapyd_for(clerk).list_projects() == ["shelfwatch"]


def test_a_password_change_voids_the_remembered_check(
    server: str, clerk: Account, client: FlaskClient, settings: Settings
) -> None:
    import redis

    auth = (clerk.email, PASSWORD)
    assert requests.get(f"{server}/listprojects.json", auth=auth, timeout=10).status_code == 200
    cached = list(
        redis.Redis.from_url(settings.redis_url).scan_iter(f"{settings.redis_prefix}basic-auth:*")
    )
    assert len(cached) == 1 and PASSWORD.encode() not in cached[0]

    changed = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "a brand new secret"},
        headers=clerk.headers,
    )
    assert changed.status_code == 204

    assert requests.get(f"{server}/listprojects.json", auth=auth, timeout=10).status_code == 401
    new_auth = (clerk.email, "a brand new secret")
    assert requests.get(f"{server}/listprojects.json", auth=new_auth, timeout=10).status_code == 200


def test_users_see_only_their_own_jobs_and_admins_see_all(
    scrapyd_for: Callable[[Account], ScrapydAPI],
    make_account: Callable[..., Account],
    admin: Account,
    shop: Shop,
    database: Database,
) -> None:
    owner, other = make_account("clerk"), make_account("clerk")
    job_id = scrapyd_for(owner).schedule("shelfwatch", "product", urls=shop.url(7))

    assert scrapyd_for(other).list_jobs("shelfwatch")["pending"] == []
    assert scrapyd_for(other).job_status("shelfwatch", job_id) == ""
    assert scrapyd_for(other).cancel("shelfwatch", job_id) is None
    assert [j["id"] for j in scrapyd_for(admin).list_jobs("shelfwatch")["pending"]] == [job_id]
    assert scrapyd_for(owner).job_status("shelfwatch", job_id) == "pending"


def test_a_scheduled_job_is_an_ordinary_scrape_job(
    scrapyd_for: Callable[[Account], ScrapydAPI],
    clerk: Account,
    client: FlaskClient,
    shop: Shop,
    worker: WorkerProcess,
    database: Database,
) -> None:
    api = scrapyd_for(clerk)
    urls = f"{shop.url(1)},{shop.url(2)}"

    job_id = api.schedule(
        "shelfwatch", "product", settings={"DOWNLOAD_DELAY": "0", "RETRY_TIMES": "1"}, urls=urls
    )
    wait_state(api, job_id, "finished")

    job = client.get(f"/api/v1/scrape-jobs/{job_id}", headers=clerk.headers).json
    assert (job["id"], job["spider"], job["status"], job["urls_count"]) == (
        job_id,
        "product",
        "succeeded",
        2,
    )
    assert job["stats"]["items"] == 2
    (finished,) = [
        entry for entry in api.list_jobs("shelfwatch")["finished"] if entry["id"] == job_id
    ]
    assert finished["spider"] == "product" and finished["project"] == "shelfwatch"
    assert finished["start_time"] <= finished["end_time"]
    assert finished["items_url"] == f"/api/v1/scrape-jobs/{job_id}/items"
    with database.transaction() as session:
        assert session.get_one(ScrapeJob, job_id).settings == {
            "DOWNLOAD_DELAY": 0.0,
            "RETRY_TIMES": 1,
        }


def test_cancel_a_running_job(
    scrapyd_for: Callable[[Account], ScrapydAPI],
    clerk: Account,
    shop: Shop,
    worker: WorkerProcess,
) -> None:
    api = scrapyd_for(clerk)
    shop.delay = 30.0
    try:
        job_id = api.schedule("shelfwatch", "product", urls=shop.url(5, "slow"))
        wait_state(api, job_id, "running")
        running = api.list_jobs("shelfwatch")["running"]
        assert [entry["id"] for entry in running] == [job_id] and running[0]["start_time"]

        assert api.cancel("shelfwatch", job_id) == "running"
        wait_state(api, job_id, "finished")
    finally:
        shop.delay = 0.0
    (entry,) = api.list_jobs("shelfwatch")["finished"]
    assert entry["status"] == "cancelled"
    assert api.cancel("shelfwatch", job_id) is None  # already over, as Scrapyd answers


def test_failed_logins_are_rate_limited_per_account_not_successful_polls(
    settings: Settings, database: Database, clerk: Account
) -> None:
    strict = create_app(settings.model_copy(update={"login_rate_limit": "3 per minute"}))
    client = strict.test_client()
    good = {"Authorization": _basic(clerk.email, PASSWORD)}
    bad = {"Authorization": _basic(clerk.email, "wrong password")}

    for _ in range(5):  # successes do not count
        assert client.get("/listprojects.json", headers=good).status_code == 200
    assert [client.get("/listprojects.json", headers=bad).status_code for _ in range(4)] == [
        401,
        401,
        401,
        429,
    ]
    refused = client.get("/listprojects.json", headers=good)
    assert refused.status_code == 429 and refused.json["status"] == "error"
    assert refused.headers["Retry-After"]


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
