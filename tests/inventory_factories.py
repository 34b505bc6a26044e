"""Rows the stock and assignment tests need, written straight to the database."""

from __future__ import annotations

import itertools
from decimal import Decimal

import redis
from sqlalchemy import select

from models import Database, Product, StockLevel, StockMovement, Warehouse
from models.assignments import AssignmentCache, assign
from models.stock import ledger_balance
from shelfwatch.config import Settings
from tests.services import REDIS_URL

_numbers = itertools.count(1)


def make_product(db: Database, owner_id: int) -> int:
    with db.transaction() as session:
        product = Product(
            owner_id=owner_id,
            sku=f"SKU-{next(_numbers)}",
            name="Widget",
            price=Decimal("2.50"),
            currency="EUR",
        )
        session.add(product)
        session.flush()
        return product.id


def make_warehouse(db: Database) -> int:
    number = next(_numbers)
    with db.transaction() as session:
        warehouse = Warehouse(code=f"WH{number}", name=f"Warehouse {number}")
        session.add(warehouse)
        session.flush()
        return warehouse.id


def make_assignment(db: Database, user_id: int, warehouse_id: int, settings: Settings) -> None:
    """Assign, and invalidate the cached lookups as the API does."""
    with db.transaction() as session:
        assign(session, user_id, warehouse_id, None)
    client = redis.Redis.from_url(REDIS_URL)
    assert AssignmentCache(client, settings.redis_prefix, 60).invalidate([user_id])


def levels_and_ledger(db: Database, product_id: int) -> dict[int, tuple[int, int]]:
    """For every warehouse holding the product: (level, what the ledger sums to)."""
    with db.session() as session:
        levels = session.scalars(select(StockLevel).where(StockLevel.product_id == product_id))
        return {
            level.warehouse_id: (
                level.quantity,
                ledger_balance(session, product_id, level.warehouse_id),
            )
            for level in levels
        }


def movement_count(db: Database) -> int:
    with db.session() as session:
        return len(session.scalars(select(StockMovement.id)).all())
