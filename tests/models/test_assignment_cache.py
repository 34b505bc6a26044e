"""The Redis cache of assignment lookups, fed by values read ahead in an earlier round trip."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from models.assignments import AssignmentCache
from tests.services import REDIS_URL, unique_name

USER = 42


@pytest.fixture
def cache() -> Iterator[AssignmentCache]:
    client = redis.Redis.from_url(REDIS_URL)
    prefix = unique_name("assignment_cache") + ":"
    yield AssignmentCache(client, prefix, 60)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


def never_loaded() -> set[int]:
    raise AssertionError("the database was asked although the cache held a current entry")


def test_values_read_ahead_answer_without_redis_or_the_database(cache: AssignmentCache) -> None:
    version_key, data_key = cache.keys(USER)
    ahead = {version_key: b"3", data_key: b"3|5,6"}  # Redis itself holds nothing
    assert cache.warehouse_ids(USER, never_loaded, ahead) == {5, 6}


def test_an_entry_read_ahead_for_an_older_version_is_not_trusted(cache: AssignmentCache) -> None:
    version_key, data_key = cache.keys(USER)
    ahead = {version_key: b"4", data_key: b"3|5"}
    assert cache.warehouse_ids(USER, lambda: {7}, ahead) == {7}
    assert cache.redis.get(data_key) == b"4|7"


def test_without_values_read_ahead_redis_is_asked(cache: AssignmentCache) -> None:
    assert cache.warehouse_ids(USER, lambda: {1, 2}, {}) == {1, 2}
    assert cache.warehouse_ids(USER, never_loaded, {}) == {1, 2}
    assert cache.invalidate([USER])
    assert cache.warehouse_ids(USER, lambda: {2}, None) == {2}
