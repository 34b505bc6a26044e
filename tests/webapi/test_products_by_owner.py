"""``products`` partitioned by owner on PostgreSQL: where rows live, what a query reads, and the
stock levels following a product to its new owner (the ledger untouched)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

from models import Database
from models.products import PARTITIONS, partition_names
from models.stock import MovementKind, MovementRequest, move_stock
from tests.conftest import Account
from tests.inventory_factories import levels_and_ledger, make_product, make_warehouse


def _scalar(database: Database, sql: str, **params: Any) -> Any:
    with database.primary.connect() as connection:
        return connection.execute(text(sql), params).scalar_one()


def _partition_of(database: Database, product_id: int) -> str:
    return _scalar(
        database, "SELECT tableoid::regclass::text FROM products WHERE id = :id", id=product_id
    )


def _partitions_read(database: Database, sql: str, **params: Any) -> set[str]:
    """The partitions of products that the plan of ``sql`` reads."""
    plan = _scalar(database, f"EXPLAIN (FORMAT JSON) {sql}", **params)
    plan = plan if isinstance(plan, list) else json.loads(plan)
    found: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        if node.get("Relation Name", "").startswith("products_p"):
            found.add(node["Relation Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return found


def test_products_are_hash_partitioned_by_owner(database: Database) -> None:
    key = _scalar(database, "SELECT pg_get_partkeydef('products'::regclass)")
    assert key == "HASH (owner_id)"
    children = _scalar(
        database,
        "SELECT array_agg(inhrelid::regclass::text ORDER BY 1) FROM pg_inherits"
        " WHERE inhparent = 'products'::regclass",
    )
    assert sorted(children) == sorted(partition_names())
    assert len(children) == PARTITIONS


def test_one_owners_products_share_a_partition_and_owner_queries_read_only_it(
    database: Database, manager: Account, admin: Account
) -> None:
    mine = [make_product(database, manager.id) for _ in range(3)]
    assert len({_partition_of(database, product) for product in mine}) == 1
    only = _partition_of(database, mine[0])
    owner_listing = (
        "SELECT id FROM products WHERE owner_id = :owner AND archived_at IS NULL"
        " ORDER BY created_at DESC, id DESC LIMIT 50"
    )
    assert _partitions_read(database, owner_listing, owner=manager.id) == {only}
    sku = "SELECT id FROM products WHERE owner_id = :owner AND sku = 'S'"
    assert _partitions_read(database, sku, owner=manager.id) == {only}
    # Without the owner every partition is a candidate (an id alone names no partition).
    by_id = "SELECT owner_id FROM products WHERE id = :id"
    assert _partitions_read(database, by_id, id=mine[0]) == set(partition_names())


def test_a_product_given_to_another_owner_keeps_its_stock_and_ledger(
    client: FlaskClient, database: Database, admin: Account, manager: Account
) -> None:
    product = make_product(database, admin.id)
    warehouse = make_warehouse(database)
    receipt = {"kind": "receipt", "product_id": product, "to_warehouse_id": warehouse}
    answer = client.post(
        "/api/v1/stock-movements", json={**receipt, "quantity": 7}, headers=admin.headers
    )
    assert answer.status_code == 201
    before = levels_and_ledger(database, product)
    assert before == {warehouse: (7, 7)}
    ledger_rows = (
        "SELECT array_agg(row(id, kind, product_id, to_warehouse_id, quantity, created_by,"
        " created_at)::text ORDER BY id) FROM stock_movements WHERE product_id = :id"
    )
    ledger_before = _scalar(database, ledger_rows, id=product)

    # A manager's products live in the manager's partition; the given product moves there.
    theirs = make_product(database, manager.id)
    moved = client.patch(
        f"/api/v1/products/{product}", json={"owner_id": manager.id}, headers=admin.headers
    )
    assert moved.status_code == 200, moved.json
    assert moved.json["owner_id"] == manager.id
    assert _partition_of(database, product) == _partition_of(database, theirs)
    owners = _scalar(
        database,
        "SELECT array_agg(DISTINCT product_owner_id) FROM stock_levels WHERE product_id = :id",
        id=product,
    )
    assert owners == [manager.id]
    # The ledger names the levels it changed, not the owner: the owner change left it alone.
    assert _scalar(database, ledger_rows, id=product) == ledger_before
    assert levels_and_ledger(database, product) == before

    shipment = {"kind": "shipment", "product_id": product, "from_warehouse_id": warehouse}
    answer = client.post(
        "/api/v1/stock-movements", json={**shipment, "quantity": 5}, headers=admin.headers
    )
    assert answer.status_code == 201, answer.json
    assert levels_and_ledger(database, product) == {warehouse: (2, 2)}
    stock = client.get(f"/api/v1/products/{product}/stock", headers=admin.headers)
    assert [(level["warehouse_id"], level["quantity"]) for level in stock.json["items"]] == [
        (warehouse, 2)
    ]


def test_an_unknown_product_is_refused_by_every_kind_and_stores_nothing(
    client: FlaskClient, database: Database, admin: Account
) -> None:
    """The product's owner is read inside the movement's statement: no product, no owner, no
    row, and the refusal still names the product."""
    w1, w2 = make_warehouse(database), make_warehouse(database)
    for body in (
        {"kind": "receipt", "to_warehouse_id": w1},
        {"kind": "shipment", "from_warehouse_id": w1},
        {"kind": "transfer", "from_warehouse_id": w1, "to_warehouse_id": w2},
        {"kind": "adjustment", "warehouse_id": w1, "reason": "count"},
    ):
        answer = client.post(
            "/api/v1/stock-movements",
            json={**body, "product_id": 987_654_321, "quantity": 1},
            headers=admin.headers,
        )
        assert answer.status_code == 422, (body, answer.json)
        assert answer.json["type"] == "/problems/unknown-product", answer.json
    for table in ("stock_movements", "stock_levels"):
        count = f"SELECT count(*) FROM {table} WHERE product_id = 987654321"  # noqa: S608
        assert _scalar(database, count) == 0


def _managers(database: Database, count: int) -> list[int]:
    with database.primary.begin() as connection:
        return list(
            connection.execute(
                text(
                    "INSERT INTO users (email, password_hash, role, is_active, created_at,"
                    " updated_at) SELECT 'race-' || gen_random_uuid() || '@example.com', '!',"
                    " 'manager', true, now(), now() FROM generate_series(1, :n) RETURNING id"
                ),
                {"n": count},
            ).scalars()
        )


def _wait_for_a_blocked_movement(database: Database) -> None:
    """Until a movement statement waits for a lock (the admin's uncommitted owner change)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        waiting = _scalar(
            database,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE '%WITH owner AS%'",
        )
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError("the movement never waited for the owner change")


@pytest.mark.parametrize("same_partition", [True, False], ids=["same-partition", "moved"])
def test_a_first_receipt_racing_an_owner_change_is_retried_under_the_new_owner(
    database: Database, same_partition: bool
) -> None:
    """The receipt reads the old owner, writes its new level with it, and its check waits for
    the admin's change: once that commits, the check fails on the old owner (or the row has
    moved to another partition) and the movement runs again with the new one."""
    owners = _managers(database, PARTITIONS + 1)  # two of them share a partition
    partition_of_owner = {
        owner: _partition_of(database, make_product(database, owner)) for owner in owners
    }
    pairs = [
        (old, new)
        for old in owners
        for new in owners
        if old != new and (partition_of_owner[old] == partition_of_owner[new]) == same_partition
    ]
    old, new = pairs[0]
    product = make_product(database, old)
    warehouse = make_warehouse(database)
    receipt = MovementRequest(MovementKind.RECEIPT, product, 5, to_warehouse_id=warehouse)
    outcome: dict[str, Any] = {}

    def move() -> None:
        try:
            outcome["applied"] = move_stock(database.primary, receipt, old)
        except Exception as error:  # reported by the assertion below
            outcome["error"] = error

    with database.primary.connect() as admin:
        with admin.begin():
            admin.execute(
                text("UPDATE products SET owner_id = :new WHERE id = :id"),
                {"new": new, "id": product},
            )
            mover = threading.Thread(target=move)
            mover.start()
            _wait_for_a_blocked_movement(database)
        mover.join(timeout=20)
    assert not mover.is_alive()
    assert "error" not in outcome, outcome
    assert outcome["applied"].movement.quantity == 5
    level = "SELECT product_owner_id || ':' || quantity FROM stock_levels WHERE product_id = :id"
    assert _scalar(database, level, id=product) == f"{new}:5"
    assert levels_and_ledger(database, product) == {warehouse: (5, 5)}
    assert _partition_of(database, product) == partition_of_owner[new]
