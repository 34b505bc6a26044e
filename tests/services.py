"""Real services for the tests: a private PostgreSQL database per test process, Redis keys
under a private prefix, and broker queues under a private namespace."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import redis
from psycopg import sql

from shelfwatch.config import Settings

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://127.0.0.1:5432/test")
PG_HOST_URL = PG_ADMIN_URL.rsplit("/", 1)[0]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@contextmanager
def postgres_database(name: str) -> Iterator[str]:
    """Create an empty database, yield its URL, drop it afterwards."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{PG_HOST_URL}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def delete_redis_prefix(prefix: str) -> None:
    """Delete this run's keys, including rate-limit keys that the limits library nests
    behind its own prefix (``LIMITS:LIMITER/<prefix>...``)."""
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


def test_settings(database_url: str, prefix: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "mode": "production",
        "database_url": database_url,
        "redis_url": REDIS_URL,
        "broker_url": REDIS_URL,
        "redis_prefix": f"{prefix}:",
        "queue_namespace": f"{prefix}.",
        "secret_key": "test-secret-key-that-is-long-enough-for-hs256",
        "allow_registration": True,
        "ssrf_allowed_networks": ["127.0.0.0/8", "::1/128"],
        "log_level": "WARNING",
        "login_rate_limit": "1000 per minute",
    }
    values.update(overrides)
    return Settings(**values)


test_settings.__test__ = False  # a factory, not a test, despite its name
