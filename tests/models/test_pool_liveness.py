"""Pooled PostgreSQL connections that died: replaced when idle, a 503 when in steady use."""

from __future__ import annotations

import time

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from models.db import ping_when_idle
from tests.conftest import Account


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _terminate(url: str, pid: int) -> None:
    killer = create_engine(url)
    try:
        with killer.connect() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    finally:
        killer.dispose()
    time.sleep(0.1)  # the backend exits asynchronously


def test_a_connection_killed_while_idle_is_replaced_before_use(pg_url: str) -> None:
    engine = create_engine(pg_url, pool_size=1, max_overflow=0)
    ping_when_idle(engine, 0.2)
    try:
        first = _backend_pid(engine)
        _terminate(pg_url, first)
        time.sleep(0.2)
        assert _backend_pid(engine) != first  # no error: the ping found it dead
    finally:
        engine.dispose()


def test_a_connection_in_steady_use_is_not_pinged(pg_url: str) -> None:
    """No round trip before a recently used connection: a dead one fails its statement (and
    SQLAlchemy invalidates the pool, so the next checkout connects again)."""
    engine = create_engine(pg_url, pool_size=1, max_overflow=0)
    ping_when_idle(engine, 60)
    try:
        first = _backend_pid(engine)
        _terminate(pg_url, first)
        with pytest.raises(OperationalError) as raised:
            _backend_pid(engine)
        assert raised.value.connection_invalidated
        assert _backend_pid(engine) != first
    finally:
        engine.dispose()


def test_the_api_answers_503_when_its_connection_dies_then_recovers(
    client: FlaskClient, manager: Account, pg_url: str
) -> None:
    assert client.get("/api/v1/stock-movements", headers=manager.headers).status_code == 200
    pid = _backend_pid(client.application.extensions["shelfwatch"].db.primary)
    _terminate(pg_url, pid)

    answer = client.get("/api/v1/stock-movements", headers=manager.headers)
    assert answer.status_code == 503
    assert answer.mimetype == "application/problem+json"
    assert answer.json["type"].endswith("/database-unavailable")
    assert answer.headers["Retry-After"] == "1"
    assert client.get("/api/v1/stock-movements", headers=manager.headers).status_code == 200
