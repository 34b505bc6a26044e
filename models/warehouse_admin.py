"""Warehouse operations: create, update, delete and the (visibility-scoped) listing query.

Like the catalogue, uniqueness and "still in use" are left to the database constraints,
so concurrent requests cannot slip past a check-then-act.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.warehouses import Warehouse

EDITABLE_FIELDS = frozenset({"code", "name", "address"})
_CODE_CONSTRAINT = "uq_warehouses_code"


class WarehouseError(Exception):
    """Base of the warehouse operations' refusals."""


class WarehouseCodeTaken(WarehouseError):
    """Another warehouse has this code."""


class WarehouseInUse(WarehouseError):
    """Stock levels or ledger rows still name the warehouse."""


class WarehouseNotFound(WarehouseError):
    """No warehouse with this id."""


def _violation(error: IntegrityError) -> tuple[str, str]:
    """(SQLSTATE or '', constraint name or message) of an IntegrityError."""
    sqlstate = getattr(error.orig, "sqlstate", None) or ""
    diag = getattr(error.orig, "diag", None)
    return sqlstate, getattr(diag, "constraint_name", None) or str(error.orig)


def _change_or_raise(session: Session, change: Callable[[], None]) -> None:
    """Make ``change`` and flush it in a savepoint; a refused change is undone."""
    try:
        with session.begin_nested():
            change()
            session.flush()
    except IntegrityError as error:
        sqlstate, constraint = _violation(error)
        if _CODE_CONSTRAINT in constraint or "warehouses.code" in constraint:
            raise WarehouseCodeTaken("another warehouse has this code") from error
        if sqlstate == "23503" or "FOREIGN KEY" in constraint:
            raise WarehouseInUse("stock levels or movements refer to the warehouse") from error
        raise


def create_warehouse(session: Session, fields: Mapping[str, Any]) -> Warehouse:
    warehouse = Warehouse(**{k: v for k, v in fields.items() if k in EDITABLE_FIELDS})
    _change_or_raise(session, lambda: session.add(warehouse))
    return warehouse


def get_warehouse(session: Session, warehouse_id: int) -> Warehouse:
    warehouse = session.get(Warehouse, warehouse_id)
    if warehouse is None:
        raise WarehouseNotFound(f"no warehouse {warehouse_id}")
    return warehouse


def update_warehouse(
    session: Session, warehouse: Warehouse, changes: Mapping[str, Any]
) -> Warehouse:
    edits = {
        key: value
        for key, value in changes.items()
        if key in EDITABLE_FIELDS and getattr(warehouse, key) != value
    }

    def assign() -> None:
        for key, value in edits.items():
            setattr(warehouse, key, value)

    if edits:
        _change_or_raise(session, assign)
    return warehouse


def delete_warehouse(session: Session, warehouse: Warehouse) -> None:
    """Delete a warehouse no stock level or movement refers to (assignments go with it)."""
    _change_or_raise(session, lambda: session.delete(warehouse))


def warehouses_query(visible_ids: set[int] | None) -> Select[tuple[Warehouse]]:
    """All warehouses (``None``: an admin) or only the visible ones."""
    query = select(Warehouse)
    if visible_ids is not None:
        query = query.where(Warehouse.id.in_(visible_ids))
    return query
