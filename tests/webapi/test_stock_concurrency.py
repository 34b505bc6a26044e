"""Hundreds of concurrent shipments and transfers of one product against a real HTTP server."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from models import Database
from tests.conftest import Account
from tests.inventory_factories import levels_and_ledger, make_product, make_warehouse

pytestmark = pytest.mark.slow

CLIENTS = 16
REQUESTS = 320


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    """The app served by werkzeug's threaded server on a free port."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(10)


def random_movements(product_id: int, warehouses: list[int], seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    movements = []
    for _ in range(REQUESTS):
        if rng.random() < 0.5:
            movements.append(
                {
                    "kind": "shipment",
                    "product_id": product_id,
                    "from_warehouse_id": rng.choice(warehouses),
                    "quantity": rng.randint(1, 3),
                }
            )
        else:
            source, target = rng.sample(warehouses, 2)
            movements.append(
                {
                    "kind": "transfer",
                    "product_id": product_id,
                    "from_warehouse_id": source,
                    "to_warehouse_id": target,
                    "quantity": rng.randint(1, 5),
                }
            )
    return movements


def test_concurrent_shipments_and_transfers_never_go_negative(
    server: str, admin: Account, database: Database
) -> None:
    product_id = make_product(database, admin.id)
    warehouses = [make_warehouse(database) for _ in range(3)]
    url = f"{server}/api/v1/stock-movements"
    with requests.Session() as http:
        for warehouse, quantity in zip(warehouses, (100, 100, 0), strict=True):
            if quantity:
                receipt = {
                    "kind": "receipt",
                    "product_id": product_id,
                    "to_warehouse_id": warehouse,
                    "quantity": quantity,
                }
                answer = http.post(url, json=receipt, headers=admin.headers, timeout=10)
                assert answer.status_code == 201
    movements = random_movements(product_id, warehouses, seed=7)
    local = threading.local()

    def send(movement: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not hasattr(local, "http"):
            local.http = requests.Session()
        answer = local.http.post(url, json=movement, headers=admin.headers, timeout=30)
        return answer.status_code, answer.json()

    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = list(pool.map(send, movements))

    statuses = Counter(status for status, _ in answers)
    assert set(statuses) <= {201, 409}, statuses
    assert statuses[201] > 50 and statuses[409] > 0, statuses  # both outcomes really happened
    for status, body in answers:
        if status == 409:
            assert body["type"] == "/problems/insufficient-stock"
    shipped = sum(
        movement["quantity"]
        for movement, (status, _) in zip(movements, answers, strict=True)
        if status == 201 and movement["kind"] == "shipment"
    )
    balances = levels_and_ledger(database, product_id)
    for level, ledger in balances.values():
        assert level >= 0
        assert level == ledger
    assert sum(level for level, _ in balances.values()) == 200 - shipped
    listed = requests.get(
        url, params={"product_id": product_id, "limit": 200}, headers=admin.headers, timeout=10
    ).json()
    # The ledger lists the 2 receipts and every applied movement (how many were applied
    # depends on the order the threads got in: stock runs out sooner or later).
    in_ledger = 2 + statuses[201]
    assert len(listed["items"]) == min(200, in_ledger)
    assert (listed["next_cursor"] is not None) == (in_ledger > 200)


def test_concurrent_twins_with_one_idempotency_key_apply_once(
    server: str, admin: Account, database: Database
) -> None:
    product_id = make_product(database, admin.id)
    warehouse = make_warehouse(database)
    receipt = {
        "kind": "receipt",
        "product_id": product_id,
        "to_warehouse_id": warehouse,
        "quantity": 5,
    }
    headers = {**admin.headers, "Idempotency-Key": "twins"}
    barrier = threading.Barrier(CLIENTS)

    def send(_: int) -> tuple[int, int]:
        barrier.wait()
        answer = requests.post(
            f"{server}/api/v1/stock-movements", json=receipt, headers=headers, timeout=30
        )
        return answer.status_code, answer.json()["id"]

    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = list(pool.map(send, range(CLIENTS)))
    assert {status for status, _ in answers} == {201}
    assert len({movement_id for _, movement_id in answers}) == 1
    assert levels_and_ledger(database, product_id) == {warehouse: (5, 5)}
