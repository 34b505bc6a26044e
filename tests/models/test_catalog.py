"""Catalogue operations on PostgreSQL: constraint errors, updates, archiving, the filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update

from models import Database, Product, Role, catalog
from models.accounts import create_user


@pytest.fixture
def owner_id(database: Database) -> int:
    with database.transaction() as session:
        user = create_user(session, "owner@example.com", "a long password", Role.MANAGER)
        session.flush()
        return user.id


def _fields(sku: str = "SKU", name: str = "Thing") -> dict[str, object]:
    return {"sku": sku, "name": name, "price": Decimal("2.5"), "currency": "EUR"}


def test_create_and_read(database: Database, owner_id: int) -> None:
    with database.transaction() as session:
        product = catalog.create_product(session, owner_id, _fields())
    with database.session() as session:
        stored = catalog.get_product(session, product.id)
        assert (stored.owner_id, stored.sku, stored.price) == (owner_id, "SKU", Decimal("2.5"))
        assert stored.archived_at is None


def test_duplicate_sku_raises_and_leaves_the_session_usable(database, owner_id) -> None:
    with database.transaction() as session:
        catalog.create_product(session, owner_id, _fields())
    with database.transaction() as session:
        with pytest.raises(catalog.SkuTaken):
            catalog.create_product(session, owner_id, _fields())
        # The savepoint kept the transaction alive: other work still commits.
        catalog.create_product(session, owner_id, _fields(sku="OTHER"))
    with database.session() as session:
        assert len(list(session.scalars(catalog.products_query(catalog.ProductFilter())))) == 2


def test_unknown_owner_raises(database: Database) -> None:
    with database.transaction() as session, pytest.raises(catalog.UnknownOwner):
        catalog.create_product(session, 424242, _fields())


def test_get_unknown_raises(database: Database) -> None:
    with database.session() as session, pytest.raises(catalog.ProductNotFound):
        catalog.get_product(session, 1)


def test_update_moves_updated_at_only_when_something_changed(database, owner_id) -> None:
    with database.transaction() as session:
        product = catalog.create_product(session, owner_id, _fields())
    first_update = product.updated_at
    with database.transaction() as session:
        same = catalog.update_product(session, catalog.get_product(session, product.id), {})
        assert same.updated_at == first_update
        changed = catalog.update_product(session, same, {"name": "New", "archived_at": "x"})
        assert changed.name == "New"
        assert changed.archived_at is None  # not an editable field
    assert changed.updated_at > first_update


def test_update_into_a_taken_sku_raises(database, owner_id) -> None:
    with database.transaction() as session:
        catalog.create_product(session, owner_id, _fields(sku="A"))
        second = catalog.create_product(session, owner_id, _fields(sku="B"))
    with database.transaction() as session:
        product = catalog.get_product(session, second.id)
        with pytest.raises(catalog.SkuTaken):
            catalog.update_product(session, product, {"sku": "A", "name": "renamed"})
        # The refused change was undone as a whole; the transaction goes on.
        assert (product.sku, product.name) == ("B", "Thing")
        catalog.update_product(session, product, {"name": "kept"})
    with database.session() as session:
        assert catalog.get_product(session, second.id).name == "kept"


def test_archive_is_idempotent(database, owner_id) -> None:
    with database.transaction() as session:
        product = catalog.create_product(session, owner_id, _fields())
        archived_at = catalog.archive_product(session, product).archived_at
        assert archived_at is not None
        assert catalog.archive_product(session, product).archived_at == archived_at


def _names(database: Database, narrowing: catalog.ProductFilter) -> list[str]:
    """The names the listing query finds; its plain-rows twin must find the same rows."""
    with database.session() as session:
        query = catalog.products_query(narrowing).order_by(Product.id)
        names = [product.name for product in session.scalars(query)]
        rows = session.execute(
            catalog.product_rows_query(narrowing).order_by(Product.id),
            bind_arguments={"mapper": Product},
        )
        assert [row.name for row in rows] == names
        return names


def test_filters_and_like_escaping(database, owner_id) -> None:
    with database.transaction() as session:
        for sku, name in (("A", "50% off"), ("B", "5000 off"), ("C", "snake_case"), ("D", "x")):
            catalog.create_product(session, owner_id, _fields(sku=sku, name=name))
        catalog.archive_product(session, catalog.create_product(session, owner_id, _fields("E")))
    assert _names(database, catalog.ProductFilter(name_contains="0%")) == ["50% off"]
    assert _names(database, catalog.ProductFilter(name_contains="E_C")) == ["snake_case"]
    assert _names(database, catalog.ProductFilter(name_contains="OFF")) == ["50% off", "5000 off"]
    assert _names(database, catalog.ProductFilter(sku="D")) == ["x"]
    assert _names(database, catalog.ProductFilter(owner_id=owner_id + 1)) == []
    assert len(_names(database, catalog.ProductFilter())) == 4
    assert len(_names(database, catalog.ProductFilter(include_archived=True))) == 5
    old = datetime.now(UTC) - timedelta(days=2)
    with database.transaction() as session:
        session.execute(update(Product).where(Product.sku != "D").values(updated_at=old))
    since = datetime.now(UTC) - timedelta(days=1)
    assert _names(database, catalog.ProductFilter(updated_since=since)) == ["x"]
