"""The stock ledger's domain functions on PostgreSQL (and the embedded SQLite mode)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models import (
    Database,
    MovementKind,
    Product,
    Role,
    StockLevel,
    StockMovement,
    Warehouse,
    create_database,
)
from models.accounts import create_user
from models.stock import (
    IdempotencyKeyReused,
    InsufficientStock,
    MovementRequest,
    UnknownProduct,
    UnknownWarehouse,
    apply_movement,
    ledger_balance,
    level_quantity,
    move_stock,
    retrying,
)
from shelfwatch import migrate
from shelfwatch.config import Settings


@dataclass
class Inventory:
    user_id: int
    product_id: int
    warehouses: list[int]
    # How ``move`` applies: ``apply_movement`` in the caller's transaction (tasks), or
    # ``move_stock`` in a transaction of its own (HTTP; one autocommitted statement).
    entry: str = "transaction"


ENTRIES = ["transaction", "own-transaction"]


def make_inventory(db: Database, warehouses: int = 3, entry: str = "transaction") -> Inventory:
    with db.transaction() as session:
        user = create_user(session, "ledger@example.com", "a long password", Role.MANAGER)
        session.flush()
        product = Product(
            owner_id=user.id, sku="SKU-1", name="Widget", price=Decimal("1.50"), currency="EUR"
        )
        places = [Warehouse(code=f"W{i}", name=f"Warehouse {i}") for i in range(warehouses)]
        session.add_all([product, *places])
        session.flush()
        return Inventory(user.id, product.id, [w.id for w in places], entry)


@pytest.fixture(params=ENTRIES)
def inventory(database: Database, request: pytest.FixtureRequest) -> Inventory:
    return make_inventory(database, entry=request.param)


def move(db: Database, inv: Inventory, request: MovementRequest, key: str | None = None):
    if inv.entry == "own-transaction":
        return move_stock(db.primary, request, inv.user_id, idempotency_key=key)
    return retrying(
        db.session, lambda s: apply_movement(s, request, inv.user_id, idempotency_key=key)
    )


def receipt(inv: Inventory, warehouse: int, quantity: int) -> MovementRequest:
    return MovementRequest(
        MovementKind.RECEIPT, inv.product_id, quantity, to_warehouse_id=warehouse
    )


def shipment(inv: Inventory, warehouse: int, quantity: int) -> MovementRequest:
    return MovementRequest(
        MovementKind.SHIPMENT, inv.product_id, quantity, from_warehouse_id=warehouse
    )


def transfer(inv: Inventory, source: int, target: int, quantity: int) -> MovementRequest:
    return MovementRequest(
        MovementKind.TRANSFER,
        inv.product_id,
        quantity,
        from_warehouse_id=source,
        to_warehouse_id=target,
    )


def level(db: Database, inv: Inventory, warehouse: int) -> int:
    with db.session() as session:
        return level_quantity(session, inv.product_id, warehouse)


def ledger_rows(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(StockMovement)) or 0


def assert_levels_match_ledger(db: Database, inv: Inventory) -> None:
    with db.session() as session:
        for warehouse in inv.warehouses:
            quantity = level_quantity(session, inv.product_id, warehouse)
            assert quantity >= 0
            assert quantity == ledger_balance(session, inv.product_id, warehouse)


def test_receipt_creates_the_level_and_one_ledger_row(
    database: Database, inventory: Inventory
) -> None:
    w1 = inventory.warehouses[0]
    applied = move(database, inventory, receipt(inventory, w1, 10))
    assert not applied.replayed
    assert applied.movement.kind == "receipt"
    assert applied.movement.to_warehouse_id == w1
    move(database, inventory, receipt(inventory, w1, 5))
    assert level(database, inventory, w1) == 15
    assert ledger_rows(database) == 2
    with database.session() as session:
        assert session.get(StockLevel, (inventory.product_id, w1)).version == 2


def test_shipment_larger_than_stock_changes_nothing(
    database: Database, inventory: Inventory
) -> None:
    w1 = inventory.warehouses[0]
    move(database, inventory, receipt(inventory, w1, 3))
    with pytest.raises(InsufficientStock) as refused:
        move(database, inventory, shipment(inventory, w1, 4))
    assert (refused.value.requested, refused.value.available) == (4, 3)
    assert level(database, inventory, w1) == 3
    assert ledger_rows(database) == 1
    move(database, inventory, shipment(inventory, w1, 3))
    assert level(database, inventory, w1) == 0


def test_shipment_from_a_warehouse_that_never_had_stock(
    database: Database, inventory: Inventory
) -> None:
    with pytest.raises(InsufficientStock) as refused:
        move(database, inventory, shipment(inventory, inventory.warehouses[1], 1))
    assert refused.value.available == 0
    assert ledger_rows(database) == 0


@pytest.mark.parametrize("downhill", [True, False], ids=["low-to-high", "high-to-low"])
def test_failed_transfer_undoes_both_sides(
    database: Database, inventory: Inventory, downhill: bool
) -> None:
    low, high = inventory.warehouses[0], inventory.warehouses[1]
    source, target = (low, high) if downhill else (high, low)
    move(database, inventory, receipt(inventory, source, 5))
    move(database, inventory, receipt(inventory, target, 1))
    with pytest.raises(InsufficientStock):
        move(database, inventory, transfer(inventory, source, target, 6))
    assert (level(database, inventory, source), level(database, inventory, target)) == (5, 1)
    move(database, inventory, transfer(inventory, source, target, 5))
    assert (level(database, inventory, source), level(database, inventory, target)) == (0, 6)
    assert_levels_match_ledger(database, inventory)


def test_adjustments_are_signed_and_keep_their_reason(
    database: Database, inventory: Inventory
) -> None:
    w1 = inventory.warehouses[0]
    up = MovementRequest.adjustment(inventory.product_id, w1, 7, "stock count", None)
    down = MovementRequest.adjustment(inventory.product_id, w1, -2, "damaged", "INC-1")
    assert move(database, inventory, up).movement.to_warehouse_id == w1
    taken = move(database, inventory, down).movement
    assert (taken.from_warehouse_id, taken.quantity, taken.note) == (w1, 2, "damaged")
    assert level(database, inventory, w1) == 5
    with pytest.raises(InsufficientStock):
        move(
            database,
            inventory,
            MovementRequest.adjustment(inventory.product_id, w1, -6, "lost", None),
        )


def test_unknown_product_and_warehouse(database: Database, inventory: Inventory) -> None:
    with pytest.raises(UnknownProduct):
        move(
            database,
            inventory,
            MovementRequest(
                MovementKind.RECEIPT, 999_999, 1, to_warehouse_id=inventory.warehouses[0]
            ),
        )
    with pytest.raises(UnknownWarehouse) as unknown:
        move(database, inventory, transfer(inventory, inventory.warehouses[0], 424_242, 1))
    assert unknown.value.warehouse_ids == {424_242}
    assert ledger_rows(database) == 0


def test_idempotency_key_replays_and_refuses_another_body(
    database: Database, inventory: Inventory
) -> None:
    w1 = inventory.warehouses[0]
    first = move(database, inventory, receipt(inventory, w1, 4), key="k-1")
    again = move(database, inventory, receipt(inventory, w1, 4), key="k-1")
    assert again.replayed and again.movement.id == first.movement.id
    assert level(database, inventory, w1) == 4
    with pytest.raises(IdempotencyKeyReused):
        move(database, inventory, receipt(inventory, w1, 5), key="k-1")
    assert ledger_rows(database) == 1


def test_concurrent_twins_with_one_key_apply_once(database: Database, inventory: Inventory) -> None:
    w1 = inventory.warehouses[0]
    barrier = threading.Barrier(8)
    outcomes = []

    def twin() -> None:
        barrier.wait()
        outcomes.append(move(database, inventory, receipt(inventory, w1, 2), key="same"))

    threads = [threading.Thread(target=twin) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 8
    assert sum(not outcome.replayed for outcome in outcomes) == 1
    assert len({outcome.movement.id for outcome in outcomes}) == 1
    assert level(database, inventory, w1) == 2


def test_opposite_transfers_neither_deadlock_nor_lose_updates(
    database: Database, inventory: Inventory
) -> None:
    a, b = inventory.warehouses[0], inventory.warehouses[1]
    move(database, inventory, receipt(inventory, a, 50))
    move(database, inventory, receipt(inventory, b, 50))
    refused = []

    def shuttle(source: int, target: int) -> None:
        for _ in range(60):
            try:
                move(database, inventory, transfer(inventory, source, target, 1))
            except InsufficientStock:
                refused.append(1)

    threads = [threading.Thread(target=shuttle, args=pair) for pair in [(a, b), (b, a)] * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert level(database, inventory, a) + level(database, inventory, b) == 100
    assert ledger_rows(database) == 2 + 360 - len(refused)
    assert_levels_match_ledger(database, inventory)


@pytest.mark.parametrize("entry", ENTRIES)
def test_embedded_sqlite_ledger(tmp_path: Path, entry: str) -> None:
    settings = Settings(mode="embedded", data_dir=tmp_path, redis_url=None)
    migrate.upgrade(settings)
    db = create_database(settings)
    try:
        inv = make_inventory(db, warehouses=2, entry=entry)
        a, b = inv.warehouses
        move(db, inv, receipt(inv, a, 5))
        move(db, inv, transfer(inv, a, b, 2), key="k")
        assert move(db, inv, transfer(inv, a, b, 2), key="k").replayed
        with pytest.raises(InsufficientStock):
            move(db, inv, shipment(inv, a, 4))
        with pytest.raises(InsufficientStock):
            move(db, inv, transfer(inv, b, a, 3))
        assert (level(db, inv, a), level(db, inv, b)) == (3, 2)
        assert_levels_match_ledger(db, inv)
    finally:
        db.dispose()
