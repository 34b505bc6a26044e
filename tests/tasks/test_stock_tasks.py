"""Queued stock movements and bulk assignments, applied by real Celery workers.

Both brokers are exercised: Redis (the test settings' default) and RabbitMQ.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from flask.testing import FlaskClient
from sqlalchemy import select, update

from models import BatchStatus, Database, Role, StockMovement, WorkBatch
from models.base import utcnow
from models.stock import MovementKind, MovementRequest, apply_movement
from models.work_batches import record_batch
from shelfwatch.config import Settings
from tasks.app import create_celery_app
from tasks.config import QUEUES
from tasks.stock import run_movement_batch
from tests.conftest import Account
from tests.inventory_factories import (
    levels_and_ledger,
    make_assignment,
    make_product,
    make_warehouse,
    movement_count,
)
from tests.services import RABBITMQ_URL, unique_name
from webapi import create_app

pytestmark = pytest.mark.slow


@contextmanager
def running_worker(settings: Settings) -> Iterator[None]:
    """A real worker thread consuming the stock queue of ``settings``' broker."""
    app = create_celery_app(settings)
    try:
        with start_worker(
            app,
            pool="threads",
            concurrency=2,
            perform_ping_check=False,
            queues=[settings.queue("stock")],
            shutdown_timeout=30,
        ):
            yield
    finally:
        with app.connection_for_write() as connection:
            channel = connection.default_channel
            for name in QUEUES:
                channel.queue_delete(settings.queue(name))


def wait_for_batch(client: FlaskClient, who: Account, url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = client.get(url, headers=who.headers)
        assert status.status_code == 200
        if status.json["status"] not in ("queued", "running"):
            return status.json
        time.sleep(0.1)
    raise AssertionError(f"batch {url} did not finish: {status.json}")


@dataclass
class Stockroom:
    product_id: int
    w1: int
    w2: int


@pytest.fixture
def room(database: Database, admin: Account) -> Stockroom:
    return Stockroom(
        make_product(database, admin.id), make_warehouse(database), make_warehouse(database)
    )


def movements(room: Stockroom) -> list[dict[str, Any]]:
    receipt = {"kind": "receipt", "product_id": room.product_id, "to_warehouse_id": room.w1}
    transfer = {
        "kind": "transfer",
        "product_id": room.product_id,
        "from_warehouse_id": room.w1,
        "to_warehouse_id": room.w2,
    }
    return [
        {**receipt, "quantity": 10},
        {**transfer, "quantity": 4},
        {**transfer, "quantity": 7},  # only 6 left: rejected
        {
            "kind": "shipment",
            "product_id": room.product_id,
            "from_warehouse_id": room.w2,
            "quantity": 4,
        },
        {
            "kind": "adjustment",
            "product_id": room.product_id,
            "warehouse_id": room.w1,
            "quantity": -1,
            "reason": "count",
        },
    ]


def check_applied_batch(
    client: FlaskClient, admin: Account, room: Stockroom, database: Database
) -> dict[str, Any]:
    answer = client.post(
        "/api/v1/stock-movements/batch",
        json={"movements": movements(room)},
        headers={**admin.headers, "Idempotency-Key": "batch-1"},
    )
    assert answer.status_code == 202, answer.json
    url = answer.headers["Location"]
    assert url == f"/api/v1/stock-movements/batches/{answer.json['id']}"
    done = wait_for_batch(client, admin, url)
    assert done["status"] == "partial"
    assert (done["total"], done["applied"], done["rejected"]) == (5, 4, 1)
    assert [r["status"] for r in done["results"]] == [
        "applied",
        "applied",
        "rejected",
        "applied",
        "applied",
    ]
    assert done["results"][2]["reason"]["type"] == "/problems/insufficient-stock"
    assert levels_and_ledger(database, room.product_id) == {room.w1: (5, 5), room.w2: (0, 0)}
    return done


def test_batch_applied_by_a_worker_over_redis(
    client: FlaskClient, admin: Account, room: Stockroom, database: Database, settings: Settings
) -> None:
    assert settings.celery_broker_url.startswith("redis://")
    with running_worker(settings):
        done = check_applied_batch(client, admin, room, database)
        # the same request again replays the batch; nothing is applied twice
        replay = client.post(
            "/api/v1/stock-movements/batch",
            json={"movements": movements(room)},
            headers={**admin.headers, "Idempotency-Key": "batch-1"},
        )
        assert replay.status_code == 202
        assert replay.json["id"] == done["id"]
        assert replay.headers["Idempotent-Replayed"] == "true"
        # a redelivered message finds the batch claimed and does nothing
        create_celery_app(settings).send_task("shelfwatch.stock.apply_batch", args=[done["id"]])
        single = client.post(
            "/api/v1/stock-movements?async=true",
            json={
                "kind": "receipt",
                "product_id": room.product_id,
                "to_warehouse_id": room.w2,
                "quantity": 3,
            },
            headers=admin.headers,
        )
        assert single.status_code == 202
        assert wait_for_batch(client, admin, single.headers["Location"])["status"] == "succeeded"
    assert movement_count(database) == 5
    assert levels_and_ledger(database, room.product_id) == {room.w1: (5, 5), room.w2: (3, 3)}
    with database.session() as session:
        batch_ids = set(session.scalars(select(StockMovement.batch_id)))
    assert batch_ids == {done["id"], single.json["id"]}


def test_batch_applied_by_a_worker_over_rabbitmq(
    admin: Account, room: Stockroom, database: Database, settings: Settings
) -> None:
    rabbit = settings.model_copy(
        update={"broker_url": RABBITMQ_URL, "queue_namespace": unique_name("swt") + "."}
    )
    client = create_app(rabbit).test_client()
    with running_worker(rabbit):
        check_applied_batch(client, admin, room, database)


def test_batch_validation_refuses_everything_before_recording(
    client: FlaskClient,
    admin: Account,
    clerk: Account,
    room: Stockroom,
    database: Database,
    settings: Settings,
) -> None:
    url = "/api/v1/stock-movements/batch"
    unknown = [*movements(room)[:2], {**movements(room)[0], "product_id": 999_999}]
    answer = client.post(url, json={"movements": unknown}, headers=admin.headers)
    assert answer.status_code == 422
    assert answer.json["errors"][0]["field"] == "movements.2.product_id"
    shapeless = [movements(room)[0], {**movements(room)[1], "quantity": 0}]
    answer = client.post(url, json={"movements": shapeless}, headers=admin.headers)
    assert answer.status_code == 400
    assert answer.json["errors"][0]["field"] == "movements.1.quantity"
    oversized = client.post(url, json={"movements": movements(room) * 201}, headers=admin.headers)
    assert oversized.status_code == 400
    make_assignment(database, clerk.id, room.w1, settings)
    forbidden = client.post(url, json={"movements": movements(room)}, headers=clerk.headers)
    assert forbidden.status_code == 403  # the transfers reach w2
    with database.session() as session:
        assert session.scalars(select(WorkBatch)).all() == []


def test_a_reclaimed_batch_applies_nothing_twice(
    admin: Account, room: Stockroom, database: Database
) -> None:
    """A worker died mid-batch: the batch is claimed again once stale, and only what was not
    applied yet is applied."""
    requests = [
        MovementRequest(MovementKind.RECEIPT, room.product_id, 2, to_warehouse_id=room.w1)
        for _ in range(3)
    ]
    with database.transaction() as session:
        batch, _ = record_batch(
            session, "stock_movements", {"items": [r.as_dict() for r in requests]}, admin.id
        )
        batch_id = batch.id
        # the dead worker had claimed it and applied the first movement
        session.execute(
            update(WorkBatch)
            .where(WorkBatch.id == batch_id)
            .values(status="running", started_at=utcnow() - timedelta(hours=2))
        )
        apply_movement(
            session,
            requests[0],
            admin.id,
            idempotency_key=f"batch:{batch_id}:0",
            batch_id=batch_id,
        )
    assert run_movement_batch(database, batch_id, timedelta(minutes=5)) == BatchStatus.SUCCEEDED
    assert run_movement_batch(database, batch_id, timedelta(minutes=5)) is None
    assert movement_count(database) == 3
    assert levels_and_ledger(database, room.product_id) == {room.w1: (6, 6)}


def test_a_running_batch_is_not_claimed_twice(
    admin: Account, room: Stockroom, database: Database
) -> None:
    with database.transaction() as session:
        batch, _ = record_batch(session, "stock_movements", {"items": []}, admin.id)
        session.execute(
            update(WorkBatch)
            .where(WorkBatch.id == batch.id)
            .values(status="running", started_at=utcnow())
        )
    assert run_movement_batch(database, batch.id, timedelta(minutes=5)) is None


def test_an_assignment_removed_after_the_request_refuses_its_movements(
    client: FlaskClient,
    admin: Account,
    clerk: Account,
    room: Stockroom,
    database: Database,
    settings: Settings,
) -> None:
    make_assignment(database, clerk.id, room.w1, settings)
    body = {"movements": [movements(room)[0]]}
    answer = client.post("/api/v1/stock-movements/batch", json=body, headers=clerk.headers)
    assert answer.status_code == 202
    delete = client.delete(f"/api/v1/warehouses/{room.w1}/users/{clerk.id}", headers=admin.headers)
    assert delete.status_code == 204
    with running_worker(settings):
        done = wait_for_batch(client, clerk, answer.headers["Location"])
    assert done["status"] == "failed"
    assert done["results"][0]["reason"]["type"] == "/problems/not-assigned"
    assert movement_count(database) == 0


def test_large_bulk_assignment_applied_by_a_worker(
    client: FlaskClient,
    admin: Account,
    make_account: Callable[..., Account],
    database: Database,
    settings: Settings,
) -> None:
    clerks = [make_account(Role.CLERK) for _ in range(26)]
    warehouses = [make_warehouse(database) for _ in range(20)]
    watched = clerks[0]
    # the clerk's (empty) lookup is cached before the bulk change
    assert (
        client.get(f"/api/v1/warehouses/{warehouses[0]}/stock", headers=watched.headers).status_code
        == 404
    )
    pairs = [
        {"user_id": c.id, "warehouse_id": w, "action": "assign"} for c in clerks for w in warehouses
    ]
    with running_worker(settings):
        answer = client.post(
            "/api/v1/assignments/bulk", json={"pairs": pairs}, headers=admin.headers
        )
        assert answer.status_code == 202, answer.json
        done = wait_for_batch(client, admin, answer.headers["Location"])
    assert done["status"] == "succeeded"
    assert done["applied"] == 520
    assert {r["outcome"] for r in done["results"]} == {"assigned"}
    assert (
        client.get(f"/api/v1/warehouses/{warehouses[0]}/stock", headers=watched.headers).status_code
        == 200
    )
    listed = client.get(
        f"/api/v1/users/{watched.id}/warehouses",
        query_string={"limit": 200},
        headers=watched.headers,
    ).json["items"]
    assert len(listed) == 20
