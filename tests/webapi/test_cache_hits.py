"""Cache hits of product reads answered before Flask (``webapi.cache_hits``): the same answers
as the Flask path, and every unusual request left to Flask."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, TypeVar

import pytest
import redis
from flask import Flask, request
from flask.testing import FlaskClient
from werkzeug.test import Client, TestResponse

from shelfwatch.config import Settings
from tests.conftest import PASSWORD, Account
from tests.services import REDIS_URL
from tests.webapi.test_metrics import scrape, value
from webapi import create_app
from webapi.auth_cache import sentinel_key
from webapi.cache_hits import CacheHitShortcut
from webapi.ratelimit import limits_on_every_route
from webapi.services import EXTENSION_KEY

URL = "/api/v1/products"
LISTING = f"{URL}?limit=2&order=-created_at"


def watch_flask(app: Flask) -> list[str]:
    """The paths of the requests that reach Flask (call before any request): URL value
    preprocessors run before every before-request hook, including the refusing ones."""
    paths: list[str] = []

    @app.url_value_preprocessor
    def _seen(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
        paths.append(request.path)

    return paths


@pytest.fixture
def through_flask(app: Flask) -> list[str]:
    return watch_flask(app)


@pytest.fixture
def products(client: FlaskClient, manager: Account) -> list[dict[str, Any]]:
    made = []
    for number in range(3):
        body = {"sku": f"HIT-{number}", "name": f"Hit {number}", "price": "1.50"}
        answer = client.post(URL, json={**body, "currency": "EUR"}, headers=manager.headers)
        assert answer.status_code == 201
        made.append(answer.json)
    return made


Layer = TypeVar("Layer")


def layer_of(app: Flask, kind: type[Layer]) -> Layer:
    """The WSGI middleware of type ``kind`` wrapped around the Flask app."""
    layer: Any = app.wsgi_app
    while not isinstance(layer, kind):
        layer = layer.wsgi_app
    return layer


def shortcut_of(app: Flask) -> CacheHitShortcut:
    return layer_of(app, CacheHitShortcut)


def flask_path(app: Flask) -> Client:
    """A client of the Flask app behind the shortcut: the answer a hit must equal."""
    return Client(shortcut_of(app).wsgi_app)


def same_answer(hit: TestResponse, flask: TestResponse) -> None:
    assert hit.status == flask.status
    assert hit.get_data() == flask.get_data()
    assert {k: v for k, v in hit.headers.items() if k != "Date"} == {
        k: v for k, v in flask.headers.items() if k != "Date"
    }
    assert "Date" in hit.headers


@pytest.mark.parametrize("path", [LISTING, f"{URL}?limit=2&owner_id=1", "item"])
def test_a_hit_is_answered_before_flask_as_flask_answers_it(
    through_flask, app, client, clerk, products, path
) -> None:
    path = f"{URL}/{products[0]['id']}" if path == "item" else path
    first = client.get(path, headers=clerk.headers)  # a miss, rendered and stored
    assert first.status_code == 200
    seen = len(through_flask)
    hit = client.get(path, headers=clerk.headers)
    assert len(through_flask) == seen, "a cached read went through Flask"
    same_answer(hit, flask_path(app).get(path, headers=clerk.headers))
    assert hit.get_data() == first.get_data()
    assert hit.headers["ETag"] == first.headers["ETag"]
    assert hit.headers["Cache-Control"] == "private, no-cache"


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [
        ("{etag}", 304),
        ("W/{etag}", 304),
        ("*", 304),
        ('"other", {etag}', 304),
        ('"other"', 200),
        ("garbage", 200),
    ],
)
def test_if_none_match_is_answered_as_flask_answers_it(
    through_flask, app, client, clerk, products, if_none_match, status
) -> None:
    etag = client.get(LISTING, headers=clerk.headers).headers["ETag"]
    headers = {**clerk.headers, "If-None-Match": if_none_match.format(etag=etag)}
    seen = len(through_flask)
    hit = client.get(LISTING, headers=headers)
    assert len(through_flask) == seen
    same_answer(hit, flask_path(app).get(LISTING, headers=headers))
    assert hit.status_code == status


@pytest.mark.parametrize(
    "headers",
    [
        {"Range": "bytes=0-10"},
        {"If-Match": '"x"'},
        {"If-Modified-Since": "Thu, 01 Jan 2026 00:00:00 GMT"},
    ],
)
def test_other_conditions_go_to_flask(through_flask, client, clerk, products, headers) -> None:
    client.get(LISTING, headers=clerk.headers)
    seen = len(through_flask)
    client.get(LISTING, headers={**clerk.headers, **headers})
    assert len(through_flask) == seen + 1


def test_head_and_other_queries_go_to_flask(through_flask, client, clerk, products) -> None:
    for path in (f"{URL}?limit=2&owner_id=01", f"{URL}?owner_id=1&owner_id=2", f"{URL}?limit=0"):
        client.get(path, headers=clerk.headers)
        seen = len(through_flask)
        answer = client.get(path, headers=clerk.headers)
        assert len(through_flask) == seen + 1, path
        assert answer.status_code in (200, 400)
    client.get(LISTING, headers=clerk.headers)
    seen = len(through_flask)
    assert client.head(LISTING, headers=clerk.headers).status_code == 200
    assert len(through_flask) == seen + 1


def test_a_write_through_the_api_is_seen_by_the_next_read(
    through_flask, client, manager, clerk, products
) -> None:
    assert client.get(LISTING, headers=clerk.headers).json["items"][0]["sku"] == "HIT-2"
    client.get(LISTING, headers=clerk.headers)
    changed = client.patch(
        f"{URL}/{products[2]['id']}", json={"name": "Renamed"}, headers=manager.headers
    )
    assert changed.status_code == 200
    seen = len(through_flask)
    assert client.get(LISTING, headers=clerk.headers).json["items"][0]["name"] == "Renamed"
    # The bumped version made it a miss, which the shortcut rendered (a plain listing query).
    assert len(through_flask) == seen
    item = f"{URL}/{products[2]['id']}"
    assert client.get(item, headers=clerk.headers).json["name"] == "Renamed"
    assert len(through_flask) == seen + 1  # an item's miss is Flask's to render


def test_a_logged_out_token_is_refused_on_the_next_request(
    through_flask, client, clerk, products
) -> None:
    client.get(LISTING, headers=clerk.headers)
    assert client.get(LISTING, headers=clerk.headers).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=clerk.headers).status_code == 204
    for _ in range(2):
        answer = client.get(LISTING, headers=clerk.headers)
        assert answer.status_code == 401
        assert answer.json["type"] == "/problems/revoked-token"


def test_a_deactivated_user_is_refused_on_the_next_request(client, admin, clerk, products) -> None:
    client.get(LISTING, headers=clerk.headers)
    assert client.get(LISTING, headers=clerk.headers).status_code == 200
    answer = client.patch(
        f"/api/v1/users/{clerk.id}", json={"is_active": False}, headers=admin.headers
    )
    assert answer.status_code == 200
    for _ in range(2):
        assert client.get(LISTING, headers=clerk.headers).status_code == 401


def test_tokens_issued_before_a_password_change_are_refused(
    through_flask, client, clerk, products
) -> None:
    client.get(LISTING, headers=clerk.headers)
    time.sleep(1.1)  # tokens carry whole-second iat; the change must be strictly later
    changed = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "a brand new password"},
        headers=clerk.headers,
    )
    assert changed.status_code == 204
    # The first refusal caches the user's record again, with the new cut-off in it; the
    # second request finds that record and still leaves the refusal to Flask.
    for _ in range(2):
        seen = len(through_flask)
        assert client.get(LISTING, headers=clerk.headers).status_code == 401
        assert len(through_flask) == seen + 1


def test_an_unvouched_revocation_copy_sends_the_request_to_flask(
    through_flask, client, clerk, products, settings: Settings
) -> None:
    client.get(LISTING, headers=clerk.headers)
    redis.Redis.from_url(REDIS_URL).delete(sentinel_key(settings.redis_prefix))
    seen = len(through_flask)
    assert client.get(LISTING, headers=clerk.headers).status_code == 200  # the table said so
    assert len(through_flask) == seen + 1


def test_bad_tokens_are_refused_by_flask(client, clerk, products) -> None:
    client.get(LISTING, headers=clerk.headers)
    for header in ("Bearer not-a-token", f"Basic {clerk.token}", ""):
        answer = client.get(LISTING, headers={"Authorization": header})
        assert answer.status_code == 401
        assert answer.content_type == "application/problem+json"


def test_reads_work_from_the_database_while_redis_is_down(
    settings: Settings, database, clerk, products
) -> None:
    down = create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    client = down.test_client()
    for _ in range(3):
        answer = client.get(LISTING, headers=clerk.headers)
        assert answer.status_code == 200
        assert [item["sku"] for item in answer.json["items"]] == ["HIT-2", "HIT-1"]
    # After its failed round trip the shortcut leaves Redis to Flask for a while.
    assert shortcut_of(down).auth.paused_until > time.monotonic()


def test_hits_are_counted_in_the_metrics(client, clerk, products) -> None:
    labels = {"method": "GET", "endpoint": URL, "status": "200"}
    name = "shelfwatch_http_requests_total"
    client.get(LISTING, headers=clerk.headers)
    before = value(scrape(client), name, **labels) or 0
    for _ in range(3):
        client.get(LISTING, headers=clerk.headers)
    etag = client.get(LISTING, headers=clerk.headers).headers["ETag"]
    client.get(LISTING, headers={**clerk.headers, "If-None-Match": etag})
    after = scrape(client)
    assert value(after, name, **labels) == before + 4
    assert value(after, name, **{**labels, "status": "304"}) == 1


def test_product_reads_carry_no_rate_limit(app, client, clerk, products) -> None:
    """The shortcut does not count requests against limits: it relies on these reads having
    none (a limit on them needs the shortcut to take them out of ``CACHED_READS``)."""
    assert not limits_on_every_route()
    for path in (LISTING, f"{URL}/{products[0]['id']}"):
        answer = flask_path(app).get(path, headers=clerk.headers)
        assert answer.status_code == 200
        assert not [name for name, _ in answer.headers.items() if name.startswith("X-RateLimit")]


# ---- misses of plain listing queries, rendered before Flask ----------------------------------


@pytest.fixture
def uncached(settings: Settings, database) -> Iterator[Flask]:
    """The app with response entries off (TTL 0): every read renders from the database."""
    app = create_app(settings.model_copy(update={"cache_ttl_seconds": 0}))
    yield app
    app.extensions[EXTENSION_KEY].db.dispose()  # PostgreSQL's connections are shared


@pytest.fixture
def uncached_flask(uncached: Flask) -> list[str]:
    return watch_flask(uncached)


@pytest.fixture
def listed(client: FlaskClient, manager: Account, products) -> list[dict[str, Any]]:
    """The products, the second one archived, and one with text JSON must escape."""
    body = {"sku": "HIT-X", "name": 'Ünïcode "q" \\ \t\x1f\x7f\u2028 €', "price": "1234.5"}
    body["description"] = "line\nbreak </script> \U0001f600"
    answer = client.post(URL, json={**body, "currency": "USD"}, headers=manager.headers)
    assert answer.status_code == 201
    assert client.delete(f"{URL}/{products[1]['id']}", headers=manager.headers).status_code == 204
    return [*products, answer.json]


PLAIN_QUERIES = [
    "",
    "?limit=2",
    "?limit=2&order=-created_at",
    "?archived=true&limit=200",
    "?archived=false&order=created_at&limit=1",
    "?owner_id={owner}&limit=2",
    "?owner_id=9223372036854775807",
    "?limit=1&cursor={cursor}",
    "?limit=1&order=-created_at&archived=true&cursor={cursor_desc}",
]


def _plain_query(template: str, client: FlaskClient, account: Account, owner: int) -> str:
    def cursor(query: str) -> str:
        return client.get(f"{URL}{query}", headers=account.headers).json["next_cursor"]

    cursor("?limit=1")  # also caches the account's auth record, as any earlier request does
    values: dict[str, Any] = {"owner": owner}
    if "{cursor}" in template:
        values["cursor"] = cursor("?limit=1")
    if "{cursor_desc}" in template:
        values["cursor_desc"] = cursor("?limit=1&order=-created_at&archived=true")
    return template.format(**values)


@pytest.mark.parametrize("template", PLAIN_QUERIES)
def test_an_uncached_plain_listing_is_rendered_before_flask_as_flask_renders_it(
    uncached, uncached_flask, clerk, manager, listed, template
) -> None:
    client = uncached.test_client()
    path = URL + _plain_query(template, client, clerk, manager.id)
    seen = len(uncached_flask)
    answer = client.get(path, headers=clerk.headers)
    assert len(uncached_flask) == seen, "a plain listing went through Flask"
    assert answer.status_code == 200
    same_answer(answer, flask_path(uncached).get(path, headers=clerk.headers))
    assert len(uncached_flask) == seen + 1


def test_an_uncached_listing_answers_if_none_match_as_flask_does(
    uncached, uncached_flask, clerk, listed
) -> None:
    client = uncached.test_client()
    etag = client.get(LISTING, headers=clerk.headers).headers["ETag"]
    for if_none_match, status in ((etag, 304), ('"other"', 200)):
        headers = {**clerk.headers, "If-None-Match": if_none_match}
        seen = len(uncached_flask)
        answer = client.get(LISTING, headers=headers)
        assert (answer.status_code, len(uncached_flask)) == (status, seen)
        same_answer(answer, flask_path(uncached).get(LISTING, headers=headers))


def test_a_listing_miss_is_rendered_and_stored_as_flask_stores_it(
    through_flask, app, client, clerk, listed, settings: Settings
) -> None:
    rendered_by_flask = flask_path(app).get(LISTING, headers=clerk.headers)  # miss, stored
    live = redis.Redis.from_url(REDIS_URL)
    entries = list(live.scan_iter(match=f"{settings.redis_prefix}products:list:*"))
    assert len(entries) == 1
    live.delete(*entries)
    seen = len(through_flask)
    miss = client.get(LISTING, headers=clerk.headers)
    hit = client.get(LISTING, headers=clerk.headers)
    assert len(through_flask) == seen
    same_answer(miss, rendered_by_flask)
    same_answer(hit, rendered_by_flask)
    assert list(live.scan_iter(match=f"{settings.redis_prefix}products:list:*")) == entries


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("?q=Hit", 200),
        ("?sku=HIT-1", 200),
        ("?include=market_price", 200),
        ("?updated_since=2026-01-01T00:00:00Z", 200),
        ("?archived=1", 200),
        ("?limit=02", 200),
        ("?limit=2&limit=3", 200),
        ("?unknown=1", 200),
        ("?limit=201", 400),
        ("?limit=0", 400),
        ("?limit=abc", 400),
        ("?order=name", 400),
        ("?owner_id=0", 400),
        ("?owner_id=9223372036854775808", 400),
        ("?cursor=", 400),
        ("?cursor=garbage", 400),
        ("?cursor=WzEsMl0", 400),  # [1,2]: no timestamp
    ],
)
def test_other_listing_queries_go_to_flask(
    uncached, uncached_flask, clerk, listed, query, status
) -> None:
    client = uncached.test_client()
    client.get(LISTING, headers=clerk.headers)  # caches the account's auth record
    seen = len(uncached_flask)
    answer = client.get(URL + query, headers=clerk.headers)
    assert len(uncached_flask) == seen + 1
    assert answer.status_code == status
    if status >= 400:
        assert answer.content_type == "application/problem+json"


def test_a_database_error_leaves_the_listing_to_flask(
    settings: Settings, database, client, clerk, products
) -> None:
    assert client.get(LISTING, headers=clerk.headers).status_code == 200  # user record cached
    down = create_app(
        settings.model_copy(
            update={"database_url": "postgresql://127.0.0.1:1/nowhere", "cache_ttl_seconds": 0}
        )
    )
    seen = watch_flask(down)
    answer = down.test_client().get(LISTING, headers=clerk.headers)
    down.extensions[EXTENSION_KEY].db.dispose()
    assert seen == [URL]
    assert answer.status_code == 503
    assert answer.json["type"] == "/problems/database-unavailable"


def test_uncached_listings_are_counted_in_the_metrics(uncached, clerk, listed) -> None:
    client = uncached.test_client()
    labels = {"method": "GET", "endpoint": URL, "status": "200"}
    name = "shelfwatch_http_requests_total"
    before = value(scrape(client), name, **labels) or 0
    for _ in range(3):
        client.get(LISTING, headers=clerk.headers)
    assert value(scrape(client), name, **labels) == before + 3
