"""The versioned response cache against the real Redis, and what happens when Redis is gone."""

from __future__ import annotations

import pytest
import redis
from flask import Flask

from shelfwatch.config import Settings
from tests.conftest import Account
from tests.services import REDIS_URL
from webapi import create_app
from webapi.caching import CachedBody, VersionedCache, json_response

CLOSED_PORT_URL = "redis://127.0.0.1:1/0"


@pytest.fixture
def live_cache(settings: Settings, database) -> VersionedCache:
    # ``database`` is requested so that the run's Redis prefix is cleared afterwards.
    return VersionedCache(redis.Redis.from_url(REDIS_URL), ttl_seconds=60)


@pytest.fixture
def keys(settings: Settings) -> tuple[str, str]:
    return settings.redis_prefix + "t:v", settings.redis_prefix + "t:entry"


def test_an_entry_is_served_until_its_version_is_bumped(live_cache, keys) -> None:
    version_key, entry_key = keys
    first = live_cache.read(version_key, entry_key)
    assert first is not None and first.entry is None and first.version is not None
    body = CachedBody.of(b'{"items":[]}')
    live_cache.store(entry_key, first.version, body)
    assert live_cache.read(version_key, entry_key).entry == body
    live_cache.bump([version_key])
    after = live_cache.read(version_key, entry_key)
    assert after.entry is None
    assert after.version != first.version


def test_a_body_computed_before_a_bump_is_never_served_after_it(live_cache, keys) -> None:
    """The race that delete-on-write loses: read version, writer commits and bumps, the slow
    reader stores what it read before the write."""
    version_key, entry_key = keys
    before = live_cache.read(version_key, entry_key)
    live_cache.bump([version_key])
    live_cache.store(entry_key, before.version, CachedBody.of(b"old"))
    assert live_cache.read(version_key, entry_key).entry is None


def test_an_evicted_version_restarts_at_random(live_cache, keys) -> None:
    version_key, entry_key = keys
    first = live_cache.read(version_key, entry_key)
    live_cache.store(entry_key, first.version, CachedBody.of(b"old"))
    redis.Redis.from_url(REDIS_URL).delete(version_key)
    assert live_cache.read(version_key, entry_key).entry is None


def test_flags_report_existing_keys(live_cache, keys, settings: Settings) -> None:
    version_key, entry_key = keys
    flag = settings.redis_prefix + "t:flag"
    live_cache.bump([version_key], {flag: 5})
    read = live_cache.read(version_key, entry_key, [flag, settings.redis_prefix + "t:absent"])
    assert read.flags == (True, False)
    assert 0 < redis.Redis.from_url(REDIS_URL).ttl(flag) <= 5


def test_ttl_zero_turns_entries_off(keys) -> None:
    cache = VersionedCache(redis.Redis.from_url(REDIS_URL), ttl_seconds=0)
    version_key, entry_key = keys
    read = cache.read(version_key, entry_key)
    cache.store(entry_key, read.version, CachedBody.of(b"x"))
    assert cache.read(version_key, entry_key).entry is None


def test_ttl_zero_without_flags_reads_nothing_from_redis(keys) -> None:
    cache = VersionedCache(redis.Redis.from_url(CLOSED_PORT_URL), ttl_seconds=0)
    version_key, entry_key = keys
    read = cache.read(version_key, entry_key)  # an unreachable Redis is never asked
    assert read is not None and read.entry is None and read.flags == ()
    assert cache.read(version_key, entry_key, [entry_key]) is None  # flags need Redis


def test_an_unreachable_redis_degrades_to_no_cache(keys) -> None:
    cache = VersionedCache(redis.Redis.from_url(CLOSED_PORT_URL, socket_timeout=0.5), 60)
    version_key, entry_key = keys
    assert cache.read(version_key, entry_key) is None
    cache.store(entry_key, b"1", CachedBody.of(b"x"))  # no exception
    cache.bump([version_key], {"flag": 1})  # no exception


def test_if_none_match_forms(app: Flask) -> None:
    body = CachedBody.of(b'{"a":1}')
    tag = f'"{body.etag}"'
    for header, status in (
        (tag, 304),
        (f'W/"{body.etag}"', 304),
        (f'"other", {tag}', 304),
        ("*", 304),
        ('"other"', 200),
    ):
        with app.test_request_context(headers={"If-None-Match": header}):
            assert json_response(body).status_code == status, header
    with app.test_request_context(method="POST", headers={"If-None-Match": tag}):
        assert json_response(body, status=201).status_code == 201


def test_the_api_works_without_redis(settings: Settings, database, manager: Account) -> None:
    client = create_app(settings.model_copy(update={"redis_url": CLOSED_PORT_URL})).test_client()
    body = {"sku": "NR", "name": "n", "price": "1", "currency": "EUR"}
    created = client.post("/api/v1/products", json=body, headers=manager.headers)
    assert created.status_code == 201
    listing = client.get("/api/v1/products", headers=manager.headers)
    assert listing.status_code == 200
    assert [p["sku"] for p in listing.json["items"]] == ["NR"]


def test_readyz_reports_redis_down(settings: Settings, database) -> None:
    client = create_app(settings.model_copy(update={"redis_url": CLOSED_PORT_URL})).test_client()
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json["checks"]["redis"] == "unavailable"


def test_the_api_works_with_no_redis_configured(settings: Settings, database, manager) -> None:
    """No Redis client at all (the revocation list then lives in the database): no cache,
    every read comes from PostgreSQL and sees every write."""
    client = create_app(settings.model_copy(update={"redis_url": None})).test_client()
    body = {"sku": "NR", "name": "n", "price": "1", "currency": "EUR"}
    created = client.post("/api/v1/products", json=body, headers=manager.headers).json
    path = f"/api/v1/products/{created['id']}"
    assert client.get(path, headers=manager.headers).json["name"] == "n"
    client.patch(path, json={"name": "m"}, headers=manager.headers)
    assert client.get(path, headers=manager.headers).json["name"] == "m"
    listing = client.get("/api/v1/products", headers=manager.headers)
    assert [p["name"] for p in listing.json["items"]] == ["m"]
    etag = listing.headers["ETag"]
    again = client.get("/api/v1/products", headers={**manager.headers, "If-None-Match": etag})
    assert again.status_code == 304
