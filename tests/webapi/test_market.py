"""Market prices next to inventory products: watches, their schedule, the market view and its
cache, the listing's lowest prices, and a real crawl by a real worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from models import Database, Role
from models.scraped import ScrapedRow, upsert_scraped_products
from shelfwatch.config import Settings
from tasks.app import create_celery_app
from tasks.beat import DatabaseScheduler
from tasks.context import TaskContext
from tasks.job_events import announce
from tests.conftest import Account
from tests.inventory_factories import make_product
from tests.tasks.scrape_support import WorkerProcess, wait_for, worker_test_settings

SHOP = "http://127.0.0.1:9"


def _watch(client: FlaskClient, account: Account, product_id: int, url: str) -> Any:
    return client.post(
        f"/api/v1/products/{product_id}/watches", json={"url": url}, headers=account.headers
    )


def _store(
    database: Database,
    url: str,
    price: str | None,
    *,
    currency: str = "EUR",
    availability: str = "in_stock",
    at: datetime | None = None,
) -> None:
    """Store a scrape of ``url`` through the pipeline's own storage function."""
    row = ScrapedRow(
        canonical_url=url,
        url=url,
        domain="127.0.0.1",
        scraped_at=at or datetime.now(UTC),
        name=f"Offer at {url}",
        price=Decimal(price) if price is not None else None,
        currency=currency,
        availability=availability,
    )
    with database.transaction() as session:
        upsert_scraped_products(session, [row])


def _workers_stored_products(settings: Settings) -> None:
    """What a worker does after a chunk stored products: bump the scraped generation."""
    worker = TaskContext(settings)
    announce(worker.redis, settings.redis_prefix, ended=[], stored=True)


def _problem(response: Any, status: int, type_: str) -> None:
    assert response.status_code == status, response.json
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == f"/problems/{type_}"


def test_watching_urls_creates_and_refreshes_the_products_schedule(
    client: FlaskClient, manager: Account, database: Database, settings: Settings
) -> None:
    product_id = make_product(database, manager.id)
    first = _watch(client, manager, product_id, f"{SHOP}/p/1")
    assert first.status_code == 201, first.json
    assert first.json["canonical_url"] == f"{SHOP}/p/1"
    assert _watch(client, manager, product_id, f"{SHOP}/p/1").status_code == 200
    assert _watch(client, manager, product_id, f"{SHOP}/p/2?b=2&a=1").status_code == 201

    listed = client.get(f"/api/v1/products/{product_id}/watches", headers=manager.headers).json
    assert [w["url"] for w in listed["items"]] == [f"{SHOP}/p/1", f"{SHOP}/p/2?b=2&a=1"]
    schedule = listed["schedule"]
    assert schedule["watch_product_id"] == product_id
    assert schedule["urls"] == [f"{SHOP}/p/1", f"{SHOP}/p/2?b=2&a=1"]
    assert schedule["spider"] == settings.market_watch_spider
    assert schedule["interval_seconds"] == settings.market_watch_interval_seconds
    # A new watch is crawled at once.
    assert datetime.fromisoformat(schedule["next_run_at"]) <= datetime.now(UTC)

    # The schedule's URLs follow the watches; editing them by hand is refused.
    edit = client.patch(
        f"/api/v1/scrape-schedules/{schedule['id']}",
        json={"urls": [f"{SHOP}/p/9"]},
        headers=manager.headers,
    )
    _problem(edit, 409, "schedule-follows-watches")

    for watch in listed["items"]:
        path = f"/api/v1/products/{product_id}/watches/{watch['id']}"
        assert client.delete(path, headers=manager.headers).status_code == 204
    after = client.get(f"/api/v1/products/{product_id}/watches", headers=manager.headers).json
    assert after == {"items": [], "schedule": None}
    gone = client.get(f"/api/v1/scrape-schedules/{schedule['id']}", headers=manager.headers)
    assert gone.status_code == 404


def test_market_shows_the_latest_offer_per_url_with_history(
    client: FlaskClient, manager: Account, clerk: Account, database: Database
) -> None:
    product_id = make_product(database, manager.id)
    urls = [f"{SHOP}/p/1", f"{SHOP}/p/2", f"{SHOP}/p/3"]
    for url in urls:
        assert _watch(client, manager, product_id, url).status_code == 201
    start = datetime.now(UTC) - timedelta(days=3)
    _store(database, urls[0], "10.00", at=start)
    _store(database, urls[0], "9.50", at=start + timedelta(days=1))
    _store(database, urls[0], "9.50", availability="out_of_stock", at=start + timedelta(days=2))
    _store(database, urls[1], "12.00", currency="USD", at=start)

    market = client.get(f"/api/v1/products/{product_id}/market", headers=clerk.headers)
    assert market.status_code == 200, market.json
    offers = {offer["url"]: offer for offer in market.json["offers"]}
    first = offers[urls[0]]
    assert (first["price"], first["currency"], first["availability"]) == (
        "9.50",
        "EUR",
        "out_of_stock",
    )
    assert [(h["price"], h["availability"]) for h in first["history"]] == [
        ("9.50", "out_of_stock"),
        ("9.50", "in_stock"),
        ("10.00", "in_stock"),
    ]
    assert offers[urls[1]]["price"] == "12.00" and len(offers[urls[1]]["history"]) == 1
    never_crawled = offers[urls[2]]
    assert never_crawled["price"] is None and never_crawled["history"] == []
    # Out of stock is no price one can buy at: the lowest is the USD offer alone.
    assert market.json["lowest_prices"] == [{"price": "12.00", "currency": "USD", "url": urls[1]}]


def test_market_reads_are_cached_until_new_observations_are_stored(
    client: FlaskClient, manager: Account, database: Database, settings: Settings
) -> None:
    product_id = make_product(database, manager.id)
    url = f"{SHOP}/p/7"
    _watch(client, manager, product_id, url)
    _store(database, url, "20.00")
    path = f"/api/v1/products/{product_id}/market"
    first = client.get(path, headers=manager.headers)
    assert first.json["offers"][0]["price"] == "20.00"

    _store(database, url, "18.00")
    # Stored, but no worker has announced it yet: the cached body is still served.
    cached = client.get(path, headers=manager.headers)
    assert cached.json == first.json and cached.headers["ETag"] == first.headers["ETag"]
    not_modified = client.get(
        path, headers={**manager.headers, "If-None-Match": first.headers["ETag"]}
    )
    assert not_modified.status_code == 304

    _workers_stored_products(settings)
    fresh = client.get(path, headers=manager.headers).json
    assert fresh["offers"][0]["price"] == "18.00"
    assert [h["price"] for h in fresh["offers"][0]["history"]] == ["18.00", "20.00"]

    # A watch change shows at once as well.
    _watch(client, manager, product_id, f"{SHOP}/p/8")
    assert len(client.get(path, headers=manager.headers).json["offers"]) == 2


def test_the_product_listing_can_include_the_lowest_market_price(
    client: FlaskClient, manager: Account, database: Database, settings: Settings
) -> None:
    watched, plain = make_product(database, manager.id), make_product(database, manager.id)
    for n in (1, 2, 3):
        _watch(client, manager, watched, f"{SHOP}/p/{n}")
    _store(database, f"{SHOP}/p/1", "15.00")
    _store(database, f"{SHOP}/p/2", "13.00")
    _store(database, f"{SHOP}/p/3", "11.00", currency="GBP")

    def listing() -> dict[int, Any]:
        response = client.get(
            "/api/v1/products", query_string={"include": "market_price"}, headers=manager.headers
        )
        assert response.status_code == 200, response.json
        return {item["id"]: item.get("market_prices") for item in response.json["items"]}

    assert listing() == {
        watched: [
            {"price": "13.00", "currency": "EUR", "url": f"{SHOP}/p/2"},
            {"price": "11.00", "currency": "GBP", "url": f"{SHOP}/p/3"},
        ],
        plain: [],
    }
    plain_listing = client.get("/api/v1/products", headers=manager.headers).json["items"]
    assert all("market_prices" not in item for item in plain_listing)

    _store(database, f"{SHOP}/p/1", "12.00")
    _workers_stored_products(settings)
    assert listing()[watched][0] == {"price": "12.00", "currency": "EUR", "url": f"{SHOP}/p/1"}
    bad = client.get("/api/v1/products", query_string={"include": "all"}, headers=manager.headers)
    _problem(bad, 400, "validation-error")


def test_who_may_watch(
    client: FlaskClient,
    make_account: Any,
    manager: Account,
    clerk: Account,
    admin: Account,
    database: Database,
) -> None:
    product_id = make_product(database, manager.id)
    other_manager = make_account(Role.MANAGER)
    _problem(_watch(client, clerk, product_id, f"{SHOP}/p/1"), 403, "forbidden")
    _problem(_watch(client, other_manager, product_id, f"{SHOP}/p/1"), 403, "not-owner")
    assert _watch(client, admin, product_id, f"{SHOP}/p/1").status_code == 201
    watch_id = client.get(f"/api/v1/products/{product_id}/watches", headers=clerk.headers).json[
        "items"
    ][0]["id"]
    delete = f"/api/v1/products/{product_id}/watches/{watch_id}"
    _problem(client.delete(delete, headers=clerk.headers), 403, "forbidden")
    _problem(client.delete(delete, headers=other_manager.headers), 403, "not-owner")
    assert (
        client.get(f"/api/v1/products/{product_id}/market", headers=clerk.headers).status_code
        == 200
    )
    _problem(client.get(f"/api/v1/products/{product_id}/market"), 401, "missing-token")


def test_bad_input_is_a_problem_never_a_500(
    client: FlaskClient, manager: Account, database: Database
) -> None:
    product_id = make_product(database, manager.id)
    path = f"/api/v1/products/{product_id}/watches"
    headers = {**manager.headers, "Content-Type": "application/json"}
    _problem(client.post(path, data=b'{"url": ', headers=headers), 400, "malformed-json")
    _problem(client.post(path, json={}, headers=manager.headers), 400, "validation-error")
    _problem(client.post(path, json={"url": 5}, headers=manager.headers), 400, "validation-error")
    _problem(client.post(path, json=["x"], headers=manager.headers), 400, "validation-error")
    _problem(
        client.post(path, json={"url": "ftp://x/"}, headers=manager.headers),
        400,
        "validation-error",
    )
    refused = client.post(path, json={"url": "http://169.254.169.254/"}, headers=manager.headers)
    _problem(refused, 422, "url-refused")
    _problem(_watch(client, manager, 999999, f"{SHOP}/p/1"), 404, "not-found")
    _problem(
        client.get("/api/v1/products/999999/market", headers=manager.headers), 404, "not-found"
    )
    _problem(
        client.get("/api/v1/products/999999/watches", headers=manager.headers), 404, "not-found"
    )
    _problem(client.delete(f"{path}/12345", headers=manager.headers), 404, "not-found")
    _problem(
        client.get("/api/v1/products/99999999999999999999/market", headers=manager.headers),
        404,
        "not-found",
    )


# ---- a real crawl --------------------------------------------------------------------------


class PriceShop:
    """One product page on 127.0.0.1 whose price the test changes."""

    def __init__(self) -> None:
        self.price = "19.99"
        shop = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = shop.page(f"http://127.0.0.1:{shop.port}{self.path}").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def page(self, url: str) -> str:
        return (
            f'<html><head><link rel="canonical" href="{url}">'
            '<script type="application/ld+json">{"@context": "https://schema.org", '
            '"@type": "Product", "name": "Rival widget", "offers": {"@type": "Offer", '
            f'"price": "{self.price}", "priceCurrency": "EUR", '
            '"availability": "https://schema.org/InStock"}}</script></head>'
            "<body><h1>Rival widget</h1></body></html>"
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def crawl_settings(base_settings: Settings) -> Settings:
    return worker_test_settings(base_settings)


@pytest.fixture
def settings(request: pytest.FixtureRequest, base_settings: Settings) -> Settings:
    if "crawl_settings" in request.fixturenames:
        return request.getfixturevalue("crawl_settings")
    return base_settings


@pytest.fixture
def price_shop() -> Iterator[PriceShop]:
    shop = PriceShop()
    yield shop
    shop.close()


@pytest.mark.slow
@pytest.mark.xdist_group("scrape-worker")
def test_a_real_crawl_of_a_watched_url_fills_the_market(
    client: FlaskClient,
    manager: Account,
    database: Database,
    crawl_settings: Settings,
    price_shop: PriceShop,
    tmp_path: Path,
) -> None:
    product_id = make_product(database, manager.id)
    url = f"http://127.0.0.1:{price_shop.port}/rival/widget"
    assert _watch(client, manager, product_id, url).status_code == 201
    app = create_celery_app(crawl_settings)
    scheduler = DatabaseScheduler(app=app)
    worker = WorkerProcess(crawl_settings, tmp_path / "worker.log").start()
    path = f"/api/v1/products/{product_id}/market"

    def market_price() -> str | None:
        return client.get(path, headers=manager.headers).json["offers"][0]["price"]

    try:
        assert market_price() is None  # cached as "not crawled yet"
        scheduler.tick()  # the watch's schedule is due now
        _wait(lambda: market_price() == "19.99", worker)

        price_shop.price = "17.49"
        schedule = client.get(
            f"/api/v1/products/{product_id}/watches", headers=manager.headers
        ).json["schedule"]
        # Beat's clock moves to the schedule's next run, hours away.
        next_run = datetime.fromisoformat(schedule["next_run_at"])
        assert next_run > datetime.now(UTC) + timedelta(hours=5)
        scheduler.clock = lambda: next_run
        scheduler.tick()
        _wait(lambda: market_price() == "17.49", worker)
    finally:
        worker.stop()
        app.shelfwatch.reset()  # type: ignore[attr-defined]
    offer = client.get(path, headers=manager.headers).json["offers"][0]
    assert (offer["name"], offer["currency"], offer["availability"]) == (
        "Rival widget",
        "EUR",
        "in_stock",
    )
    assert [h["price"] for h in offer["history"]] == ["17.49", "19.99"]


def _wait(condition: Any, worker: WorkerProcess) -> None:
    try:
        wait_for(condition, timeout=60, interval=0.2)
    except TimeoutError:
        pytest.fail(f"market did not change; worker log:\n{worker.log()[-4000:]}")
