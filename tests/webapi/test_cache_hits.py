"""Cache hits of product reads answered before Flask (``webapi.cache_hits``): the same answers
as the Flask path, and every unusual request left to Flask."""

from __future__ import annotations

import time
from typing import Any

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

URL = "/api/v1/products"
LISTING = f"{URL}?limit=2&order=-created_at"


@pytest.fixture
def through_flask(app: Flask) -> list[str]:
    """The paths of the requests that reached Flask (asked for before any request): URL value
    preprocessors run before every before-request hook, including the refusing ones."""
    paths: list[str] = []

    @app.url_value_preprocessor
    def _seen(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
        paths.append(request.path)

    return paths


@pytest.fixture
def products(client: FlaskClient, manager: Account) -> list[dict[str, Any]]:
    made = []
    for number in range(3):
        body = {"sku": f"HIT-{number}", "name": f"Hit {number}", "price": "1.50"}
        answer = client.post(URL, json={**body, "currency": "EUR"}, headers=manager.headers)
        assert answer.status_code == 201
        made.append(answer.json)
    return made


def shortcut_of(app: Flask) -> CacheHitShortcut:
    layer: Any = app.wsgi_app
    while not isinstance(layer, CacheHitShortcut):
        layer = layer.wsgi_app
    return layer


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
    first = client.get(path, headers=clerk.headers)  # a miss: Flask renders and stores it
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
    assert len(through_flask) == seen + 1  # the bumped version made it a miss


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
