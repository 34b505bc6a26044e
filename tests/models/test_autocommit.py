"""A statement run autocommitted on the pooled driver connection (``models.autocommit``)."""

from __future__ import annotations

import pytest
from sqlalchemy import Integer, String, bindparam, create_engine, func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from models import Database, Warehouse
from models.autocommit import fetch_one_autocommitted

INSERT_WAREHOUSE = text(
    "INSERT INTO warehouses (code, name, created_at, updated_at)"
    " VALUES (:code, :code, now(), now()) RETURNING id"
).bindparams(bindparam("code", type_=String))


def warehouse_count(db: Database) -> int:
    with db.primary.connect() as connection:
        return connection.scalar(select(func.count()).select_from(Warehouse)) or 0


def test_a_row_or_none(database: Database) -> None:
    plus_one = text("SELECT :n + 1 WHERE :n > 0").bindparams(bindparam("n", type_=Integer))
    assert fetch_one_autocommitted(database.primary, plus_one, {"n": 41}) == (42,)
    assert fetch_one_autocommitted(database.primary, plus_one, {"n": 0}) is None


def test_the_statement_commits_and_the_connection_goes_back_to_transactions(
    database: Database,
) -> None:
    one_connection = create_engine(database.primary.url, pool_size=1, max_overflow=0)
    try:
        assert fetch_one_autocommitted(one_connection, INSERT_WAREHOUSE, {"code": "A"})
        assert warehouse_count(database) == 1  # committed: another connection sees it
        # The same pooled connection is back in transactional mode: this insert rolls back.
        with one_connection.connect() as connection:
            connection.execute(INSERT_WAREHOUSE, {"code": "B"})
            connection.rollback()
        assert warehouse_count(database) == 1
    finally:
        one_connection.dispose()


def test_driver_errors_come_out_as_sqlalchemy_errors(database: Database) -> None:
    fetch_one_autocommitted(database.primary, INSERT_WAREHOUSE, {"code": "A"})
    with pytest.raises(IntegrityError) as duplicate:
        fetch_one_autocommitted(database.primary, INSERT_WAREHOUSE, {"code": "A"})
    assert duplicate.value.orig.diag.constraint_name == "uq_warehouses_code"
    # the failed statement left nothing open: the next one runs and commits
    assert fetch_one_autocommitted(database.primary, INSERT_WAREHOUSE, {"code": "C"}) is not None
    assert warehouse_count(database) == 2


def test_a_connection_that_cannot_be_opened_is_an_operational_error(database: Database) -> None:
    """As ``Engine.connect`` raises it, so the API answers 503, not a bare 500."""
    unreachable = create_engine(database.primary.url.set(port=1))
    try:
        with pytest.raises(OperationalError):
            fetch_one_autocommitted(unreachable, INSERT_WAREHOUSE, {"code": "A"})
    finally:
        unreachable.dispose()
