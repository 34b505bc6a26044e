"""The product catalogue.

On PostgreSQL ``products`` is partitioned by owner: ``PARTITION BY HASH (owner_id)`` into
``PARTITIONS`` tables ``products_p0`` … (migration 0005). A query that names the owner (a
manager's own listing, ``?owner_id=``, the SKU uniqueness check, the stock levels' foreign
key) reads one partition; one owner's rows and index pages stay together, and each partition
is vacuumed and indexed on its own. A partitioned table's unique keys must hold the partition
key, so the database's primary key there is ``(id, owner_id)`` (ids still come from one
sequence), and a stock level refers to its product by ``(product_owner_id, product_id)`` (the
ledger refers to the levels it changed). The mapping keeps ``id`` as the identity: SQLite
(embedded mode) has no partitioning and keeps its one-column key.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, InventoryBase, UTCDateTime, utcnow

# Hash partitions of ``products`` on PostgreSQL (fixed by migration 0005; changing it means
# re-creating the table).
PARTITIONS = 8


def partition_names() -> tuple[str, ...]:
    return tuple(f"products_p{n}" for n in range(PARTITIONS))


class Product(InventoryBase):
    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("owner_id", "sku"),
        # What the stock tables' (product_owner_id, product_id) foreign keys refer to (an
        # index, so SQLite could add it without rebuilding the table under its stock rows).
        Index("uq_products_owner_id_id", "owner_id", "id", unique=True),
        CheckConstraint("price >= 0", name="price_not_negative"),
        Index("ix_products_owner_id_created_at_id", "owner_id", "created_at", "id"),
        Index("ix_products_created_at_id", "created_at", "id"),
        Index("ix_products_updated_at", "updated_at"),
        # ?q= is a substring search: trigrams (migration 0002), a plain index on SQLite.
        Index(
            "ix_products_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    price: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
