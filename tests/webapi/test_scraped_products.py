"""The scraped-products API: search filters, cursor pages, the Redis cache and its
invalidation when a job stores data, and one product's price history."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import redis
from flask.testing import FlaskClient

from models import Database, PriceObservation, ScrapedProduct
from models.base import utcnow
from shelfwatch.config import Settings
from tasks.job_events import announce
from tests.conftest import Account
from tests.services import REDIS_URL

PRODUCTS = [
    ("Red kettle", "shop-a.example", "19.99", "in_stock"),
    ("Blue kettle", "shop-a.example", "29.50", "out_of_stock"),
    ("Red toaster", "shop-b.example", "45.00", "in_stock"),
    ("100% cotton towel", "shop-b.example", "9.00", "preorder"),
]


def _store(database: Database, rows: list[tuple[str, str, str, str]]) -> list[int]:
    with database.transaction() as session:
        products = [
            ScrapedProduct(
                canonical_url=f"https://{domain}/{name.replace(' ', '-')}",
                url=f"https://{domain}/{name.replace(' ', '-')}",
                domain=domain,
                name=name,
                price=Decimal(price),
                currency="EUR",
                availability=availability,
                sources={},
            )
            for name, domain, price, availability in rows
        ]
        session.add_all(products)
        session.flush()
        return [product.id for product in products]


def _names(client: FlaskClient, account: Account, **query: Any) -> list[str]:
    response = client.get("/api/v1/scraped-products", query_string=query, headers=account.headers)
    assert response.status_code == 200, response.json
    return [item["name"] for item in response.json["items"]]


def test_filters(client: FlaskClient, clerk: Account, database: Database) -> None:
    _store(database, PRODUCTS)

    assert _names(client, clerk, name="KETTLE") == ["Red kettle", "Blue kettle"]
    assert _names(client, clerk, name="%") == ["100% cotton towel"]
    assert _names(client, clerk, domain="shop-b.example") == ["Red toaster", "100% cotton towel"]
    assert _names(client, clerk, min_price="20", max_price="45") == ["Blue kettle", "Red toaster"]
    assert _names(client, clerk, availability="in_stock", name="red") == [
        "Red kettle",
        "Red toaster",
    ]
    bad = client.get("/api/v1/scraped-products?availability=maybe", headers=clerk.headers)
    assert bad.status_code == 400 and bad.json["errors"][0]["field"] == "availability"


def test_cursor_pages_cover_everything_once(
    client: FlaskClient, clerk: Account, database: Database
) -> None:
    _store(database, PRODUCTS)
    seen: list[str] = []
    query: dict[str, Any] = {"limit": 3}
    while True:
        page = client.get(
            "/api/v1/scraped-products", query_string=query, headers=clerk.headers
        ).json
        seen += [item["name"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        query["cursor"] = page["next_cursor"]
    assert seen == [name for name, *_ in PRODUCTS]


def test_listing_is_cached_until_a_job_stores_data(
    client: FlaskClient, clerk: Account, database: Database, settings: Settings
) -> None:
    _store(database, PRODUCTS[:1])
    first = client.get("/api/v1/scraped-products", headers=clerk.headers)
    again = client.get("/api/v1/scraped-products", headers=clerk.headers)
    assert (first.headers["X-Cache"], again.headers["X-Cache"]) == ("miss", "hit")

    _store(database, PRODUCTS[1:2])
    stale = client.get("/api/v1/scraped-products", headers=clerk.headers)
    assert len(stale.json["items"]) == 1, "served from the cache until invalidated"

    # What a worker does when a chunk stored products.
    announce(redis.Redis.from_url(REDIS_URL), settings.redis_prefix, ended=[], stored=True)
    fresh = client.get("/api/v1/scraped-products", headers=clerk.headers)
    assert fresh.headers["X-Cache"] == "miss" and len(fresh.json["items"]) == 2


def test_a_product_with_its_price_history(
    client: FlaskClient, clerk: Account, database: Database
) -> None:
    [product_id] = _store(database, PRODUCTS[:1])
    now = utcnow()
    with database.transaction() as session:
        for hours, price, availability in ((2, "21.00", "in_stock"), (1, "19.99", "in_stock")):
            session.add(
                PriceObservation(
                    product_id=product_id,
                    price=Decimal(price),
                    currency="EUR",
                    availability=availability,
                    job_id="job-1",
                    observed_at=now - timedelta(hours=hours),
                )
            )

    response = client.get(f"/api/v1/scraped-products/{product_id}", headers=clerk.headers)

    assert response.status_code == 200
    body = response.json
    assert (body["name"], body["price"]) == ("Red kettle", "19.99")
    assert body["domain"] == "shop-a.example"
    assert [h["price"] for h in body["price_history"]] == ["19.99", "21.00"]
    assert body["price_history"][0]["job_id"] == "job-1"
    missing = client.get("/api/v1/scraped-products/999999", headers=clerk.headers)
    assert missing.status_code == 404
