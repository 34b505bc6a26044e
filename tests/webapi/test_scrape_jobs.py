"""The scrape-jobs API: validation, SSRF refusals, visibility, listing, cancel, rate limit.

No worker runs here: jobs stay queued (their messages wait in this run's private queues).
The job flow with a worker is in ``tests/tasks/test_scrape_flow.py``.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import select

from models import Database, ScrapeChunk, ScrapeJob
from models.base import utcnow
from models.scraped import ScrapedRow, upsert_scraped_products
from shelfwatch.config import Settings
from tests.conftest import Account
from tests.services import REDIS_URL
from tests.tasks.scrape_support import wait_for

URL = "http://shop.example/p/1"


def submit(client: FlaskClient, account: Account, **body: Any) -> Any:
    body.setdefault("spider", "product")
    body.setdefault("urls", [URL])
    return client.post("/api/v1/scrape-jobs", json=body, headers=account.headers)


def test_submit_answers_202_with_location_and_queues_chunks(
    client: FlaskClient, clerk: Account, database: Database, settings: Settings
) -> None:
    urls = [f"http://shop.example/p/{n}" for n in range(settings.scrape_chunk_size + 1)]
    response = submit(client, clerk, urls=urls, priority=7, max_age=3600)

    assert response.status_code == 202
    job = response.json
    assert response.headers["Location"] == f"/api/v1/scrape-jobs/{job['id']}"
    assert (job["status"], job["urls_count"], job["chunks_total"]) == ("queued", len(urls), 2)
    assert (job["priority"], job["max_age"], job["spider"]) == (7, 3600, "product")
    with database.transaction() as session:
        chunks = session.scalars(select(ScrapeChunk).where(ScrapeChunk.job_id == job["id"])).all()
    assert sorted(len(chunk.urls) for chunk in chunks) == [1, settings.scrape_chunk_size]


def test_chunk_messages_carry_ids_not_urls(
    client: FlaskClient, clerk: Account, settings: Settings
) -> None:
    job = submit(client, clerk).json
    broker = redis.Redis.from_url(REDIS_URL)
    queue = settings.queue("scrape")

    # Priority 0 (the API's lowest) is kombu's Redis priority 9.
    # A one-URL job leaves through the process's coalescer thread, at once when it is idle.
    def messages() -> list[bytes]:
        return [m for m in broker.lrange(f"{queue}:9", 0, -1) if job["id"].encode() in m]

    [message] = wait_for(messages, timeout=5)
    assert b"shelfwatch.scrape.run_chunks" in message
    assert URL.encode() not in message


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"spider": "nope"}, "spider"),
        ({"urls": []}, "urls"),
        ({"urls": ["ftp://shop.example/x"]}, "urls"),
        ({"priority": 10}, "priority"),
        ({"max_age": -1}, "max_age"),
        ({"args": {"colour": "red"}}, "args.colour"),
        ({"args": {"urls_file": "/etc/passwd"}}, "args.urls_file"),
        ({"spider": "sitemap", "args": {"limit": 0}}, "args.limit"),
        ({"spider": "sitemap", "args": {"include": "(["}}, "args.include"),
    ],
)
def test_invalid_submissions_name_the_field(
    client: FlaskClient, clerk: Account, body: dict[str, Any], field: str
) -> None:
    response = submit(client, clerk, **body)

    assert response.status_code == 400, response.json
    assert response.mimetype == "application/problem+json"
    assert field in [error["field"] for error in response.json["errors"]]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:10.0.0.1]/",
        "http://10.1.2.3/",
        "http://[fe80::1]/",
    ],
)
def test_urls_refused_by_the_ssrf_guard_answer_422(
    client: FlaskClient, clerk: Account, url: str, database: Database
) -> None:
    # The tests allow 127.0.0.0/8 (local shops); these are outside that.
    response = submit(client, clerk, urls=[URL, url])

    assert response.status_code == 422
    assert response.json["type"] == "/problems/url-refused"
    assert response.json["url"] == url
    assert response.json["errors"][0]["field"] == "urls.1"
    with database.transaction() as session:
        assert session.scalars(select(ScrapeJob)).all() == []


def test_loopback_spellings_are_refused_without_the_allow_list(
    app: Any, clerk: Account, settings: Settings
) -> None:
    app.extensions["shelfwatch"].settings = settings.model_copy(
        update={"ssrf_allowed_networks": []}
    )
    client = app.test_client()
    for url in ("http://2130706433/", "http://0177.0.0.1/", "http://[::1]/", "http://localhost/"):
        response = submit(client, clerk, urls=[url])
        assert response.status_code == 422, (url, response.json)


def test_clients_see_only_their_own_jobs_unless_admin(
    client: FlaskClient, clerk: Account, manager: Account, admin: Account
) -> None:
    mine = submit(client, clerk).json
    theirs = submit(client, manager).json

    assert (
        client.get(f"/api/v1/scrape-jobs/{theirs['id']}", headers=clerk.headers).status_code == 404
    )
    cancel = client.post(f"/api/v1/scrape-jobs/{theirs['id']}/cancel", headers=clerk.headers)
    assert cancel.status_code == 404
    items = client.get(f"/api/v1/scrape-jobs/{theirs['id']}/items", headers=clerk.headers)
    assert items.status_code == 404
    listed = client.get("/api/v1/scrape-jobs", headers=clerk.headers).json["items"]
    assert [job["id"] for job in listed] == [mine["id"]]
    everyone = client.get("/api/v1/scrape-jobs", headers=admin.headers).json["items"]
    assert {job["id"] for job in everyone} == {mine["id"], theirs["id"]}
    assert client.get(f"/api/v1/scrape-jobs/{mine['id']}", headers=admin.headers).status_code == 200


def test_listing_filters_and_pages_newest_first(
    client: FlaskClient, clerk: Account, database: Database
) -> None:
    ids = [submit(client, clerk).json["id"] for _ in range(5)]
    sitemap = submit(client, clerk, spider="sitemap").json["id"]
    client.post(f"/api/v1/scrape-jobs/{ids[0]}/cancel", headers=clerk.headers)

    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/scrape-jobs", query_string=query, headers=clerk.headers).json
        seen += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [sitemap, *reversed(ids)]

    def listed(**query: Any) -> list[str]:
        page = client.get("/api/v1/scrape-jobs", query_string=query, headers=clerk.headers).json
        return [job["id"] for job in page["items"]]

    assert listed(spider="sitemap") == [sitemap]
    assert listed(status="cancelled") == [ids[0]]
    assert listed(created_after=utcnow().isoformat()) == []
    assert len(listed(created_before=utcnow().isoformat())) == 6
    bad = client.get("/api/v1/scrape-jobs?status=sleeping", headers=clerk.headers)
    assert bad.status_code == 400 and bad.json["errors"][0]["field"] == "status"


def test_cancel_of_a_queued_job_ends_it_at_once(
    client: FlaskClient, clerk: Account, database: Database
) -> None:
    job = submit(client, clerk, urls=[f"http://shop.example/p/{n}" for n in range(120)]).json

    response = client.post(f"/api/v1/scrape-jobs/{job['id']}/cancel", headers=clerk.headers)

    assert response.status_code == 200
    assert response.json["status"] == "cancelled" and response.json["finished_at"]
    with database.transaction() as session:
        statuses = session.scalars(
            select(ScrapeChunk.status).where(ScrapeChunk.job_id == job["id"])
        ).all()
    assert set(statuses) == {"cancelled"}
    again = client.post(f"/api/v1/scrape-jobs/{job['id']}/cancel", headers=clerk.headers)
    assert again.status_code == 409


def finish_job_later(database: Database, job_id: str, delay: float) -> threading.Thread:
    """A worker's moves on the job's one chunk (claim, finish), ``delay`` seconds from now."""
    from models.jobs import claim_chunk, finish_chunk
    from models.scraping import JobStatus

    def work() -> None:
        time.sleep(delay)
        with database.transaction() as session:
            chunk_id = session.scalar(select(ScrapeChunk.id).where(ScrapeChunk.job_id == job_id))
            claimed = claim_chunk(session, chunk_id, "test-worker", job_id=job_id)
        assert claimed is not None
        with database.transaction() as session:
            finish_chunk(session, claimed, status=JobStatus.SUCCEEDED, stats={})

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_wait_answers_as_soon_as_the_job_ends(
    client: FlaskClient, clerk: Account, database: Database
) -> None:
    job = submit(client, clerk).json
    worker = finish_job_later(database, job["id"], delay=0.3)

    started = time.monotonic()
    response = client.get(f"/api/v1/scrape-jobs/{job['id']}?wait=10", headers=clerk.headers)
    waited = time.monotonic() - started
    worker.join()

    assert response.status_code == 200
    assert response.json["status"] == "succeeded" and response.json["finished_at"]
    assert 0.3 <= waited < 5


def test_wait_gives_up_after_the_timeout_with_the_current_state(
    client: FlaskClient, clerk: Account
) -> None:
    job = submit(client, clerk).json

    started = time.monotonic()
    response = client.get(f"/api/v1/scrape-jobs/{job['id']}?wait=0.4", headers=clerk.headers)

    assert response.status_code == 200 and response.json["status"] == "queued"
    assert 0.4 <= time.monotonic() - started < 3


@pytest.mark.parametrize("wait", ["-1", "21", "soon"])
def test_wait_out_of_range_names_the_field(client: FlaskClient, clerk: Account, wait: str) -> None:
    job = submit(client, clerk).json
    response = client.get(f"/api/v1/scrape-jobs/{job['id']}?wait={wait}", headers=clerk.headers)
    assert response.status_code in (400, 422)
    assert "wait" in str(response.json)


def test_wait_on_someone_elses_job_is_404_at_once(
    client: FlaskClient, clerk: Account, manager: Account
) -> None:
    job = submit(client, manager).json
    started = time.monotonic()
    response = client.get(f"/api/v1/scrape-jobs/{job['id']}?wait=5", headers=clerk.headers)
    assert response.status_code == 404 and time.monotonic() - started < 2


def test_unknown_job_is_404(client: FlaskClient, clerk: Account) -> None:
    response = client.get("/api/v1/scrape-jobs/no-such-job", headers=clerk.headers)
    assert response.status_code == 404 and response.json["type"] == "/problems/not-found"


def _store(database: Database, job_id: str, numbers: range, name: str = "Thing") -> None:
    """Products stored by the workers' own storage function, as a crawl of ``job_id`` does."""
    rows = [
        ScrapedRow(
            canonical_url=f"http://shop.example/p/{n}",
            url=f"http://shop.example/p/{n}?ref=x",
            domain="shop.example",
            scraped_at=utcnow(),
            name=f"{name} {n}",
            price=Decimal("12.5"),
            currency="EUR",
            availability="in_stock",
            sources={"name": "json-ld"},
            job_id=job_id,
        )
        for n in numbers
    ]
    with database.transaction() as session:
        upsert_scraped_products(session, rows)


def test_items_lists_the_products_the_job_stored(
    client: FlaskClient, clerk: Account, database: Database
) -> None:
    job = submit(client, clerk).json
    other = submit(client, clerk).json
    _store(database, job["id"], range(2))
    _store(database, other["id"], range(2, 3))

    page = client.get(f"/api/v1/scrape-jobs/{job['id']}/items?limit=1", headers=clerk.headers).json
    assert len(page["items"]) == 1 and page["next_cursor"]
    item = page["items"][0]
    fields = {"url", "canonical_url", "name", "price", "currency", "availability", "sku", "gtin"}
    fields |= {"mpn", "brand", "image_url", "description", "scraped_at", "sources"}
    assert fields <= set(item)
    assert (item["name"], item["price"], item["url"]) == (
        "Thing 0",
        "12.50",
        "http://shop.example/p/0?ref=x",
    )
    rest = client.get(
        f"/api/v1/scrape-jobs/{job['id']}/items",
        query_string={"cursor": page["next_cursor"]},
        headers=clerk.headers,
    ).json
    assert [i["name"] for i in rest["items"]] == ["Thing 1"] and rest["next_cursor"] is None


def test_items_of_someone_elses_job_are_404_and_an_admin_sees_them(
    client: FlaskClient, clerk: Account, manager: Account, admin: Account, database: Database
) -> None:
    theirs, empty = submit(client, manager).json, submit(client, clerk).json
    _store(database, theirs["id"], range(2))

    def items(job_id: str, account: Account) -> tuple[int, Any]:
        response = client.get(f"/api/v1/scrape-jobs/{job_id}/items", headers=account.headers)
        return response.status_code, response.json

    status, body = items(theirs["id"], clerk)
    assert (status, body["type"]) == (404, "/problems/not-found")
    assert items("no-such-job", clerk)[0] == items("no-such-job", admin)[0] == 404
    assert [item["name"] for item in items(theirs["id"], admin)[1]["items"]] == [
        "Thing 0",
        "Thing 1",
    ]
    assert items(empty["id"], clerk) == (200, {"items": [], "next_cursor": None})


def test_a_later_job_scraping_the_same_page_leaves_the_earlier_jobs_items(
    client: FlaskClient, clerk: Account, database: Database
) -> None:
    first = submit(client, clerk).json
    later = submit(client, clerk).json
    _store(database, first["id"], range(2))
    _store(database, later["id"], range(1, 2), name="Renamed")

    def names(job_id: str) -> list[str]:
        page = client.get(f"/api/v1/scrape-jobs/{job_id}/items", headers=clerk.headers).json
        return [item["name"] for item in page["items"]]

    # Both jobs list product 1, with its latest stored values.
    assert names(first["id"]) == ["Thing 0", "Renamed 1"]
    assert names(later["id"]) == ["Renamed 1"]


def test_spiders_are_listed_with_their_argument_schemas(
    client: FlaskClient, clerk: Account
) -> None:
    spiders = client.get("/api/v1/spiders", headers=clerk.headers).json["items"]

    by_name = {spider["name"]: spider for spider in spiders}
    assert {"product", "sitemap", "catalog"} <= set(by_name)
    sitemap = by_name["sitemap"]["args_schema"]
    assert "limit" in sitemap["properties"]
    assert "urls_file" not in sitemap["properties"] and "job_id" not in sitemap["properties"]


def test_submissions_are_rate_limited_per_user(
    app: Any, clerk: Account, manager: Account, settings: Settings
) -> None:
    app.extensions["shelfwatch"].settings = settings.model_copy(
        update={"scrape_submit_rate_limit": "2 per minute"}
    )
    client = app.test_client()
    assert [submit(client, clerk).status_code for _ in range(2)] == [202, 202]

    refused = submit(client, clerk)

    assert refused.status_code == 429
    assert refused.json["type"] == "/problems/rate-limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert submit(client, manager).status_code == 202


def test_submitting_needs_a_token(client: FlaskClient) -> None:
    response = client.post("/api/v1/scrape-jobs", json={"spider": "product", "urls": [URL]})
    assert response.status_code == 401
