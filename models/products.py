"""The product catalogue."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, InventoryBase, UTCDateTime, utcnow


class Product(InventoryBase):
    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("owner_id", "sku"),
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
