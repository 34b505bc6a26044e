"""The ledger's hot-path SQL, built once per dialect with bound parameters (named ``v_<name>``).

Building a SQLAlchemy statement costs more Python time than PostgreSQL takes to run it, so the
four statements of a movement are constructed once and executed with parameter dicts on the
session's connection (Core, not the ORM's bulk machinery).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.dialects import postgresql, sqlite

from models.stock_tables import StockLevel, StockMovement

LEDGER = StockMovement.__table__
LEVELS = StockLevel.__table__
LEDGER_VALUES = (
    "kind",
    "product_id",
    "from_warehouse_id",
    "to_warehouse_id",
    "quantity",
    "reference",
    "note",
    "created_by",
    "created_at",
    "idempotency_key",
    "request_fingerprint",
    "batch_id",
)


@dataclass(frozen=True)
class LedgerStatements:
    insert_movement: Any  # → the new row
    insert_keyed_movement: Any  # → the new row, or nothing when the key exists
    take: Any  # v_product_id, v_warehouse_id, v_quantity, v_now → quantity left, or nothing
    put: Any  # v_product_id, v_warehouse_id, v_quantity, v_now → the new quantity


@cache
def ledger_statements(dialect_name: str) -> LedgerStatements:
    dialect_insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    insert = dialect_insert(LEDGER).values({name: bindparam(f"v_{name}") for name in LEDGER_VALUES})
    keyed = insert.on_conflict_do_nothing(
        index_elements=[LEDGER.c.created_by, LEDGER.c.idempotency_key]
    )
    return LedgerStatements(
        insert_movement=insert.returning(*LEDGER.c),
        insert_keyed_movement=keyed.returning(*LEDGER.c),
        take=_take(),
        put=_put(dialect_insert),
    )


def _take() -> Any:
    return (
        update(LEVELS)
        .where(
            LEVELS.c.product_id == bindparam("v_product_id"),
            LEVELS.c.warehouse_id == bindparam("v_warehouse_id"),
            LEVELS.c.quantity >= bindparam("v_quantity"),
        )
        .values(
            quantity=LEVELS.c.quantity - bindparam("v_quantity"),
            version=LEVELS.c.version + 1,
            updated_at=bindparam("v_now"),
        )
        .returning(LEVELS.c.quantity)
    )


def _put(dialect_insert: Any) -> Any:
    insert = dialect_insert(LEVELS).values(
        product_id=bindparam("v_product_id"),
        warehouse_id=bindparam("v_warehouse_id"),
        quantity=bindparam("v_quantity"),
        version=1,
        updated_at=bindparam("v_now"),
    )
    return insert.on_conflict_do_update(
        index_elements=[LEVELS.c.product_id, LEVELS.c.warehouse_id],
        set_={
            "quantity": LEVELS.c.quantity + insert.excluded.quantity,
            "version": LEVELS.c.version + 1,
            "updated_at": insert.excluded.updated_at,
        },
    ).returning(LEVELS.c.quantity)
