"""Fixtures shared by every test: real PostgreSQL, Redis and the app."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from models import Database, InventoryBase, Role, ScrapingBase, create_database
from models.accounts import create_user
from shelfwatch import migrate
from shelfwatch.config import Settings
from tests.services import delete_redis_prefix, postgres_database, test_settings, unique_name
from webapi import create_app

PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def run_id() -> str:
    return unique_name("swt")


@pytest.fixture(scope="session")
def pg_url(run_id: str) -> Iterator[str]:
    with postgres_database(run_id) as url:
        yield url


@pytest.fixture(scope="session")
def base_settings(pg_url: str, run_id: str) -> Settings:
    settings = test_settings(pg_url, run_id)
    migrate.upgrade(settings)
    return settings


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    return base_settings


@pytest.fixture(scope="session")
def database(base_settings: Settings) -> Iterator[Database]:
    db = create_database(base_settings)
    yield db
    db.dispose()


def _truncate_all(db: Database) -> None:
    tables = [t.fullname for t in InventoryBase.metadata.sorted_tables]
    scraping = [f"{t.schema}.{t.name}" for t in ScrapingBase.metadata.sorted_tables]
    statement = text(f"TRUNCATE {', '.join(tables + scraping)} RESTART IDENTITY CASCADE")
    # A module-scoped worker process lives on between tests: its heartbeat or stale-chunk
    # recovery may hold one table while TRUNCATE (locking them in list order) holds another.
    # PostgreSQL then cancels one of the two; if it picked the TRUNCATE, it goes again.
    for attempt in range(5):
        try:
            with db.primary.begin() as connection:
                connection.execute(statement)
            return
        except OperationalError as error:
            if getattr(error.orig, "sqlstate", None) != "40P01" or attempt == 4:
                raise


@pytest.fixture(autouse=True)
def _clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts with empty tables and no Redis keys of this run."""
    yield
    if "database" in request.fixturenames:
        db: Database = request.getfixturevalue("database")
        _truncate_all(db)
        settings: Settings = request.getfixturevalue("base_settings")
        delete_redis_prefix(settings.redis_prefix)


@pytest.fixture
def app(settings: Settings, database: Database) -> Flask:
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass
class Account:
    id: int
    email: str
    role: str
    token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def make_account(database: Database, client: FlaskClient) -> Callable[..., Account]:
    """Create a user with a role and sign it in through the API."""
    counter = iter(range(1, 10_000))

    def make(role: Role | str = Role.CLERK, email: str | None = None) -> Account:
        email = email or f"{Role(role).value}{next(counter)}@example.com"
        with database.transaction() as session:
            user = create_user(session, email, PASSWORD, Role(role))
            session.flush()
            user_id = user.id
        response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.json
        body: dict[str, Any] = response.json
        return Account(
            user_id, email, Role(role).value, body["access_token"], body["refresh_token"]
        )

    return make


@pytest.fixture
def admin(make_account: Callable[..., Account]) -> Account:
    return make_account(Role.ADMIN)


@pytest.fixture
def manager(make_account: Callable[..., Account]) -> Account:
    return make_account(Role.MANAGER)


@pytest.fixture
def clerk(make_account: Callable[..., Account]) -> Account:
    return make_account(Role.CLERK)
