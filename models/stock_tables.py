"""Stock levels, the immutable movement ledger, and durable batches of requested work."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, InventoryBase, UTCDateTime, utcnow


class MovementKind(enum.StrEnum):
    RECEIPT = "receipt"
    SHIPMENT = "shipment"
    TRANSFER = "transfer"
    ADJUSTMENT = "adjustment"


def _product_reference() -> ForeignKeyConstraint:
    """A level names its product with the product's owner: ``products`` is partitioned by
    owner on PostgreSQL, so only ``(owner_id, id)`` is unique there. When an admin gives a
    product to another owner the key follows."""
    return ForeignKeyConstraint(
        ["product_owner_id", "product_id"],
        ["products.owner_id", "products.id"],
        ondelete="RESTRICT",
        onupdate="CASCADE",
    )


def _level_reference(side: str) -> ForeignKeyConstraint:
    """A ledger row names the level it changed, and through it a product: so an owner change
    never touches the ledger, and its check is a primary-key probe of ``stock_levels``, not a
    query on the partitioned products. Checked at the end of the transaction: the embedded
    mode writes the ledger row before the first receipt creates the level."""
    return ForeignKeyConstraint(
        ["product_id", f"{side}_warehouse_id"],
        ["stock_levels.product_id", "stock_levels.warehouse_id"],
        name=f"fk_stock_movements_{side}_level",
        ondelete="RESTRICT",
        deferrable=True,
        initially="DEFERRED",
    )


class StockLevel(InventoryBase):
    __tablename__ = "stock_levels"
    __table_args__ = (
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        Index("ix_stock_levels_warehouse_id", "warehouse_id"),
        _product_reference(),
    )

    product_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    product_owner_id: Mapped[int] = mapped_column(BigId)
    warehouse_id: Mapped[int] = mapped_column(
        ForeignKey("warehouses.id", ondelete="RESTRICT"), primary_key=True
    )
    quantity: Mapped[int] = mapped_column(BigInteger, default=0)
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class StockMovement(InventoryBase):
    """One immutable ledger row; the direction is given by from/to warehouse."""

    __tablename__ = "stock_movements"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("kind IN ('receipt', 'shipment', 'transfer', 'adjustment')", name="kind"),
        CheckConstraint(
            "(kind = 'receipt' AND to_warehouse_id IS NOT NULL AND from_warehouse_id IS NULL)"
            " OR (kind = 'shipment' AND from_warehouse_id IS NOT NULL AND to_warehouse_id IS NULL)"
            " OR (kind = 'transfer' AND from_warehouse_id IS NOT NULL"
            " AND to_warehouse_id IS NOT NULL AND from_warehouse_id <> to_warehouse_id)"
            " OR (kind = 'adjustment'"
            " AND (from_warehouse_id IS NULL) <> (to_warehouse_id IS NULL))",
            name="direction",
        ),
        UniqueConstraint("created_by", "idempotency_key"),
        Index("ix_stock_movements_product_id_created_at", "product_id", "created_at"),
        Index("ix_stock_movements_from_warehouse_id", "from_warehouse_id"),
        Index("ix_stock_movements_to_warehouse_id", "to_warehouse_id"),
        Index("ix_stock_movements_created_at_id", "created_at", "id"),
        _level_reference("from"),
        _level_reference("to"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    product_id: Mapped[int] = mapped_column(BigId)
    from_warehouse_id: Mapped[int | None] = mapped_column(
        ForeignKey("warehouses.id", ondelete="RESTRICT"), nullable=True
    )
    to_warehouse_id: Mapped[int | None] = mapped_column(
        ForeignKey("warehouses.id", ondelete="RESTRICT"), nullable=True
    )
    quantity: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("work_batches.id", ondelete="SET NULL"), nullable=True
    )
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BatchStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"


class WorkBatch(InventoryBase):
    """A durable request for asynchronous work (stock movements, bulk assignments)."""

    __tablename__ = "work_batches"
    __table_args__ = (
        CheckConstraint("kind IN ('stock_movements', 'assignments')", name="kind"),
        UniqueConstraint("created_by", "idempotency_key"),
        Index("ix_work_batches_created_by_created_at", "created_by", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=BatchStatus.QUEUED.value)
    payload: Mapped[Any] = mapped_column(JSON)
    results: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
