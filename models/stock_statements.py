"""The ledger's hot-path SQL, built once with bound parameters (named ``v_<name>``).

Building a SQLAlchemy statement costs more Python time than PostgreSQL takes to run it, so the
statements of a movement are constructed once and executed with parameter dicts on a
connection (Core, not the ORM's bulk machinery): on PostgreSQL the single ``MOVE_SQL``
statement (psycopg prepares it on the server after a few executions), on SQLite the ledger
insert, ``take`` and ``put`` one after the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from models.products import Product
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


def _product_owner() -> Any:
    """The product's owner, which a level names with the product: from any level of the
    product (a primary-key probe), else from the product (which, without its owner, probes
    every partition); NULL: no such product, which the NOT NULL column refuses."""
    products = Product.__table__
    from_level = (
        select(LEVELS.c.product_owner_id)
        .where(LEVELS.c.product_id == bindparam("v_product_id"))
        .limit(1)
        .scalar_subquery()
    )
    from_product = (
        select(products.c.owner_id)
        .where(products.c.id == bindparam("v_product_id"))
        .scalar_subquery()
    )
    return func.coalesce(from_level, from_product)


@dataclass(frozen=True)
class LedgerStatements:
    insert_movement: Any  # → the new id
    insert_keyed_movement: Any  # → the new id, or nothing when the key exists
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
        insert_movement=insert.returning(LEDGER.c.id),
        insert_keyed_movement=keyed.returning(LEDGER.c.id),
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
        product_owner_id=_product_owner(),
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


# PostgreSQL only: a whole movement in ONE statement (one round trip, no BEGIN/COMMIT of its
# own under autocommit). Each step reads from the one before, so a later step runs only when
# the earlier one did something:
#   owner   the product's owner, which a new level names with the product (products are
#           partitioned by owner on PostgreSQL): from a level of the product when there is
#           one (a primary-key probe), else from the product (every partition probed);
#   fresh   no movement holds this (created_by, idempotency key) yet (NULL key: always fresh);
#   locked  a transfer locks both level rows in warehouse-id order first (the fixed lock
#           order: two opposite transfers never deadlock);
#   taken   the conditional decrement; no row when the stock is short (or the row is absent);
#   ready   fresh, and taken did its part (or there is nothing to take);
#   ledger  the immutable row (no such product, so no owner: no row, and the caller finds
#           out why); its references to the levels it changed are checked at the end; a
#           concurrent twin with the same key makes it wait on the unique index and then
#           fail (23505), which rolls the whole statement back;
#   put     the increment (creates the level on first receipt); a data-modifying CTE always
#           runs to completion, read or not.
# All CTEs share one snapshot; a row changed by a concurrent transaction after it was read is
# re-checked against its newest version before the UPDATE applies (READ COMMITTED's rule), so
# the stock check never works on a stale quantity. Only the new id comes back (the caller
# knows every other value); no row back: nothing was changed.
MOVE_SQL = f"""
WITH owner AS (
    SELECT owner_id FROM (SELECT COALESCE(
        (SELECT product_owner_id FROM stock_levels WHERE product_id = :v_product_id LIMIT 1),
        (SELECT owner_id FROM products WHERE id = :v_product_id)) AS owner_id) AS known
    WHERE owner_id IS NOT NULL
), fresh AS (
    SELECT WHERE NOT EXISTS (
        SELECT FROM stock_movements
        WHERE created_by = :v_created_by AND idempotency_key = :v_idempotency_key)
), locked AS (
    SELECT warehouse_id FROM stock_levels
    WHERE product_id = :v_product_id
      AND warehouse_id IN (:v_from_warehouse_id, :v_to_warehouse_id)
      AND :v_from_warehouse_id IS NOT NULL AND :v_to_warehouse_id IS NOT NULL
      AND EXISTS (SELECT FROM fresh)
    ORDER BY warehouse_id
    FOR UPDATE
), taken AS (
    UPDATE stock_levels
    SET quantity = quantity - :v_quantity, version = version + 1, updated_at = :v_created_at
    WHERE product_id = :v_product_id AND warehouse_id = :v_from_warehouse_id
      AND quantity >= :v_quantity
      AND (SELECT count(*) FROM locked) >= 0
      AND EXISTS (SELECT FROM fresh)
    RETURNING quantity
), ready AS (
    SELECT FROM fresh
    WHERE :v_from_warehouse_id IS NULL OR EXISTS (SELECT FROM taken)
), ledger AS (
    INSERT INTO stock_movements ({", ".join(LEDGER_VALUES)})
    SELECT {", ".join(f":v_{name}" for name in LEDGER_VALUES)} FROM ready, owner
    RETURNING id, product_id, to_warehouse_id, quantity, created_at
), put AS (
    INSERT INTO stock_levels AS level
        (product_id, product_owner_id, warehouse_id, quantity, version, updated_at)
    SELECT product_id, owner.owner_id, to_warehouse_id, quantity, 1, created_at
    FROM ledger, owner
    WHERE to_warehouse_id IS NOT NULL
    ON CONFLICT (product_id, warehouse_id) DO UPDATE
    SET quantity = level.quantity + excluded.quantity,
        version = level.version + 1,
        updated_at = excluded.updated_at
)
SELECT id FROM ledger
"""  # noqa: S608 - only our own tables' column names are interpolated


@cache
def move_statement() -> Any:
    """``MOVE_SQL`` with typed parameters (rendered as casts, so NULLs need no context)."""
    typed = [bindparam(f"v_{name}", type_=LEDGER.c[name].type) for name in LEDGER_VALUES]
    return text(MOVE_SQL).bindparams(*typed).columns(LEDGER.c.id)
