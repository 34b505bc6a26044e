"""Product catalogue operations: create, update, archive and the listing query.

Functions take a Session and never commit; the caller owns the transaction. Uniqueness is
left to the database (the ``owner_id, sku`` constraint), so two concurrent creates of the same
SKU cannot both succeed: the loser's IntegrityError becomes ``SkuTaken``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.base import utcnow
from models.products import Product

EDITABLE_FIELDS = frozenset({"sku", "name", "description", "price", "currency", "owner_id"})
_SKU_CONSTRAINT = "uq_products_owner_id_sku"
_OWNER_CONSTRAINT = "fk_products_owner_id_users"


class CatalogError(Exception):
    """Base of the catalogue's refusals."""


class SkuTaken(CatalogError):
    """The owner already has a product with this SKU."""


class UnknownOwner(CatalogError):
    """The owner named for a product is not a user."""


class ProductNotFound(CatalogError):
    """No product with this id."""


@dataclass(frozen=True)
class ProductFilter:
    """What a listing narrows the catalogue to; None means no narrowing."""

    owner_id: int | None = None
    sku: str | None = None
    name_contains: str | None = None
    updated_since: datetime | None = None
    include_archived: bool = False


def _violated_constraint(error: IntegrityError) -> str:
    """The constraint an IntegrityError names (PostgreSQL) or its message (SQLite)."""
    diag = getattr(error.orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    return name or str(error.orig)


def _change_or_raise(session: Session, change: Callable[[], None]) -> None:
    """Make ``change`` and flush it in a savepoint, turning the catalogue's constraint
    violations into its errors; a refused change is undone and the session stays usable."""
    try:
        with session.begin_nested():
            change()
            session.flush()
    except IntegrityError as error:
        constraint = _violated_constraint(error)
        if _SKU_CONSTRAINT in constraint or "products.owner_id, products.sku" in constraint:
            raise SkuTaken("this owner already has a product with this SKU") from error
        if _OWNER_CONSTRAINT in constraint or "FOREIGN KEY" in constraint:
            raise UnknownOwner("the owner is not a user") from error
        raise


def create_product(session: Session, owner_id: int, fields: Mapping[str, Any]) -> Product:
    """A new product owned by ``owner_id``; raises SkuTaken or UnknownOwner."""
    values = {key: value for key, value in fields.items() if key in EDITABLE_FIELDS}
    values["owner_id"] = owner_id
    product = Product(**values)
    _change_or_raise(session, lambda: session.add(product))
    return product


def get_product(session: Session, product_id: int) -> Product:
    product = session.get(Product, product_id)
    if product is None:
        raise ProductNotFound(f"no product {product_id}")
    return product


def update_product(session: Session, product: Product, changes: Mapping[str, Any]) -> Product:
    """Apply ``changes`` (only editable fields); raises SkuTaken or UnknownOwner."""
    edits = {
        key: value
        for key, value in changes.items()
        if key in EDITABLE_FIELDS and getattr(product, key) != value
    }
    if edits:  # updated_at moves through the column's onupdate
        _change_or_raise(session, lambda: _assign(product, edits))
    return product


def _assign(product: Product, edits: Mapping[str, Any]) -> None:
    for key, value in edits.items():
        setattr(product, key, value)


def archive_product(session: Session, product: Product) -> Product:
    """Soft-delete: the product leaves listings but stays readable; archiving twice is a no-op."""
    if product.archived_at is None:
        product.archived_at = utcnow()
        session.flush()
    return product


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_PRODUCTS = Product.__table__.c
# What a listing shows of a product. Table columns, not ORM attributes: a statement made of
# them alone is plain Core, which SQLAlchemy compiles and loads without the ORM layer.
PRODUCT_COLUMNS = (
    _PRODUCTS.id,
    _PRODUCTS.owner_id,
    _PRODUCTS.sku,
    _PRODUCTS.name,
    _PRODUCTS.description,
    _PRODUCTS.price,
    _PRODUCTS.currency,
    _PRODUCTS.created_at,
    _PRODUCTS.updated_at,
    _PRODUCTS.archived_at,
)


def products_query(narrowing: ProductFilter) -> Select[tuple[Product]]:
    """The (unordered) listing query; the caller pages it over (created_at, id)."""
    return _narrowed(select(Product), narrowing)


def product_rows_query(narrowing: ProductFilter) -> Select[Any]:
    """``products_query`` selecting ``PRODUCT_COLUMNS``: plain rows, no ORM objects to build
    (a page of 50 rows reads several times faster than 50 entities)."""
    return _narrowed(select(*PRODUCT_COLUMNS), narrowing)


def _narrowed(query: Select[Any], narrowing: ProductFilter) -> Select[Any]:
    if not narrowing.include_archived:
        query = query.where(_PRODUCTS.archived_at.is_(None))
    if narrowing.owner_id is not None:
        query = query.where(_PRODUCTS.owner_id == narrowing.owner_id)
    if narrowing.sku is not None:
        query = query.where(_PRODUCTS.sku == narrowing.sku)
    if narrowing.name_contains:
        pattern = f"%{_escape_like(narrowing.name_contains)}%"
        query = query.where(_PRODUCTS.name.ilike(pattern, escape="\\"))
    if narrowing.updated_since is not None:
        query = query.where(_PRODUCTS.updated_at >= narrowing.updated_since)
    return query
