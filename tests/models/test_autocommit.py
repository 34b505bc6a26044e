"""A statement run autocommitted on the pooled driver connection (``models.autocommit``)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, Integer, String, bindparam, create_engine, func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from models import Database, Warehouse
from models.autocommit import _CURSOR, fetch_one_autocommitted

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


def _backend_pid(engine: Engine) -> int:
    plain = text("SELECT pg_backend_pid()")
    row = fetch_one_autocommitted(engine, plain, {})
    assert row is not None
    return row[0]


def test_each_pooled_connection_keeps_one_cursor(database: Database) -> None:
    one_connection = create_engine(database.primary.url, pool_size=1, max_overflow=0)
    try:
        assert fetch_one_autocommitted(one_connection, INSERT_WAREHOUSE, {"code": "A"})
        pooled = one_connection.raw_connection()
        kept = pooled.info[_CURSOR]
        assert kept.connection is pooled.driver_connection
        pooled.close()
        assert fetch_one_autocommitted(one_connection, INSERT_WAREHOUSE, {"code": "B"})
        pooled = one_connection.raw_connection()
        assert pooled.info[_CURSOR] is kept
        pooled.close()
        assert warehouse_count(database) == 2
    finally:
        one_connection.dispose()


def test_a_connection_lost_with_its_cursor_is_replaced_with_both(database: Database) -> None:
    """The kept cursor belongs to the connection: after the server ended it, the statement
    fails as before (invalidated), and the next one runs on a new connection and cursor."""
    one_connection = create_engine(database.primary.url, pool_size=1, max_overflow=0)
    try:
        first = _backend_pid(one_connection)
        with database.primary.connect() as killer:
            killer.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first})
        time.sleep(0.1)  # the backend exits asynchronously
        with pytest.raises(OperationalError) as raised:
            fetch_one_autocommitted(one_connection, INSERT_WAREHOUSE, {"code": "A"})
        assert raised.value.connection_invalidated
        assert _backend_pid(one_connection) != first
        assert fetch_one_autocommitted(one_connection, INSERT_WAREHOUSE, {"code": "A"})
        assert warehouse_count(database) == 1
    finally:
        one_connection.dispose()
