"""Read routing with a stand-in replica: a second PostgreSQL database with the same migrations
and *different* rows, so each answer shows which database served it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, text

from models import Database, Product
from shelfwatch import migrate
from shelfwatch.config import Settings
from tests import services as test_services
from tests.conftest import Account
from webapi import create_app
from webapi.replicas import wrote_recently

LONG_WINDOW_SECONDS = 120


@pytest.fixture(scope="module")
def replica_url() -> Iterator[str]:
    with test_services.postgres_database(test_services.unique_name("swreplica")) as url:
        migrate.upgrade(test_services.test_settings(url, "unused"))
        yield url


@pytest.fixture
def replica(replica_url: str) -> Iterator[Engine]:
    """Raw access to the stand-in replica, emptied after the test."""
    engine = create_engine(test_services.test_settings(replica_url, "unused").sqlalchemy_url)
    yield engine
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE products, warehouses, users RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def make_routed(settings: Settings, database, replica_url: str) -> Callable[[int], FlaskClient]:
    """A client of an app reading from the replica, with a given read-your-writes window."""

    def make(window_seconds: int) -> FlaskClient:
        routed_settings = settings.model_copy(
            update={
                "database_replica_urls": [replica_url],
                "replica_read_own_writes_seconds": window_seconds,
            }
        )
        return create_app(routed_settings).test_client()

    return make


@pytest.fixture
def routed(make_routed: Callable[[int], FlaskClient]) -> FlaskClient:
    """A window long enough that no test can outlive it on a loaded machine."""
    return make_routed(LONG_WINDOW_SECONDS)


def _copy_to_replica(replica, user: Account, product_id: int, name: str) -> None:
    with replica.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, email, password_hash, role, is_active, created_at,"
                " updated_at) VALUES (:id, :email, 'x', :role, true, now(), now())"
            ),
            {"id": user.id, "email": user.email, "role": user.role},
        )
        connection.execute(
            text(
                "INSERT INTO products (id, owner_id, sku, name, price, currency, created_at,"
                " updated_at) VALUES (:id, :owner, 'R', :name, 1, 'EUR', now(), now())"
            ),
            {"id": product_id, "owner": user.id, "name": name},
        )


def test_reads_go_to_the_replica_and_a_writer_reads_its_writes_from_the_primary(
    routed: FlaskClient, replica, manager: Account, clerk: Account
) -> None:
    body = {"sku": "P", "name": "on the primary", "price": "1", "currency": "EUR"}
    created = routed.post("/api/v1/products", json=body, headers=manager.headers)
    assert created.status_code == 201
    product_id = created.json["id"]
    _copy_to_replica(replica, manager, product_id, "on the replica")
    path = f"/api/v1/products/{product_id}"

    assert routed.get(path, headers=clerk.headers).json["name"] == "on the replica"
    listing = routed.get("/api/v1/products", headers=clerk.headers).json
    assert [item["name"] for item in listing["items"]] == ["on the replica"]
    # The writer sees its own write, from the primary, during the window.
    assert routed.get(path, headers=manager.headers).json["name"] == "on the primary"
    listing = routed.get("/api/v1/products", headers=manager.headers).json
    assert [item["name"] for item in listing["items"]] == ["on the primary"]


def test_after_the_window_the_writer_reads_from_the_replica_again(
    make_routed, replica, manager: Account
) -> None:
    routed = make_routed(1)
    body = {"sku": "P", "name": "on the primary", "price": "1", "currency": "EUR"}
    product_id = routed.post("/api/v1/products", json=body, headers=manager.headers).json["id"]
    _copy_to_replica(replica, manager, product_id, "on the replica")
    time.sleep(1.2)
    path = f"/api/v1/products/{product_id}"
    assert routed.get(path, headers=manager.headers).json["name"] == "on the replica"


def test_writes_go_to_the_primary(
    routed: FlaskClient, replica, database: Database, manager: Account
) -> None:
    body = {"sku": "W", "name": "written", "price": "1", "currency": "EUR"}
    product_id = routed.post("/api/v1/products", json=body, headers=manager.headers).json["id"]
    with database.session() as session:
        assert session.get(Product, product_id).name == "written"
    with replica.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM products")).scalar() == 0


def test_replica_answers_are_not_cached_while_replicas_may_lag(
    routed: FlaskClient, replica, manager: Account, clerk: Account
) -> None:
    """Right after a write a replica may still hold the old row: nothing read from a replica
    in that window is cached, so the stale answer cannot outlive the lag."""
    body = {"sku": "C", "name": "fresh", "price": "1", "currency": "EUR"}
    product_id = routed.post("/api/v1/products", json=body, headers=manager.headers).json["id"]
    _copy_to_replica(replica, manager, product_id, "lagging")
    path = f"/api/v1/products/{product_id}"
    assert routed.get(path, headers=clerk.headers).json["name"] == "lagging"
    with replica.begin() as connection:  # the replica catches up
        connection.execute(text("UPDATE products SET name = 'fresh'"))
    assert routed.get(path, headers=clerk.headers).json["name"] == "fresh"


def test_replica_listings_are_not_cached_while_replicas_may_lag(
    routed: FlaskClient, replica, manager: Account, clerk: Account
) -> None:
    """The same for a plain listing, which the WSGI shortcut renders before Flask."""
    body = {"sku": "L", "name": "fresh", "price": "1", "currency": "EUR"}
    product_id = routed.post("/api/v1/products", json=body, headers=manager.headers).json["id"]
    path = "/api/v1/products?limit=5"
    assert routed.get(path, headers=clerk.headers).json["items"] == []  # the replica, empty
    _copy_to_replica(replica, manager, product_id, "lagging")
    assert [item["name"] for item in routed.get(path, headers=clerk.headers).json["items"]] == [
        "lagging"
    ]
    with replica.begin() as connection:  # the replica catches up
        connection.execute(text("UPDATE products SET name = 'fresh'"))
    assert [item["name"] for item in routed.get(path, headers=clerk.headers).json["items"]] == [
        "fresh"
    ]
    # The writer reads its own write from the primary meanwhile.
    assert routed.get(path, headers=manager.headers).json["items"][0]["sku"] == "L"


def test_warehouse_reads_are_routed_too(
    routed: FlaskClient, replica, admin: Account, make_account
) -> None:
    created = routed.post(
        "/api/v1/warehouses", json={"code": "R1", "name": "primary"}, headers=admin.headers
    ).json
    with replica.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO warehouses (id, code, name, created_at, updated_at)"
                " VALUES (:id, 'R1', 'replica', now(), now())"
            ),
            {"id": created["id"]},
        )
    reader = make_account("admin")
    path = f"/api/v1/warehouses/{created['id']}"
    assert routed.get(path, headers=reader.headers).json["name"] == "replica"
    assert routed.get(path, headers=admin.headers).json["name"] == "primary"
    listing = routed.get("/api/v1/warehouses", headers=reader.headers).json
    assert [item["name"] for item in listing["items"]] == ["replica"]


def test_without_redis_nobody_can_tell_who_wrote_so_reads_use_the_primary(
    settings: Settings, database, replica_url: str
) -> None:
    app = create_app(
        settings.model_copy(
            update={"database_replica_urls": [replica_url], "redis_url": "redis://127.0.0.1:1/0"}
        )
    )
    with app.test_request_context():
        assert wrote_recently(1) is True


def test_without_replicas_nothing_is_marked(app: Flask, settings: Settings) -> None:
    with app.test_request_context():
        assert wrote_recently(1) is False
