"""Which warehouses a user is assigned to (and so may see and move stock in)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.warehouses import WarehouseAssignment


def assigned_warehouse_ids(session: Session, user_id: int) -> set[int]:
    query = select(WarehouseAssignment.warehouse_id).where(WarehouseAssignment.user_id == user_id)
    return set(session.scalars(query))
