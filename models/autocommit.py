"""One statement run on its own, outside any transaction, straight on the pooled driver
connection.

For a statement that is a whole transaction by itself (PostgreSQL runs a single statement
atomically), SQLAlchemy's execution layer, and switching a ``Connection`` to AUTOCOMMIT and
back, cost more Python time than PostgreSQL takes to run it. Here the statement is compiled
once by SQLAlchemy and executed by the driver; the pool (with its pre-ping) still hands out and
takes back the connection, and driver errors come out wrapped as SQLAlchemy's (``IntegrityError``,
``OperationalError``…) just as ``Connection.execute`` raises them.

Each pooled connection keeps one driver cursor for these statements (in the pool's per-connection
``info``): a new psycopg cursor per statement builds its adapters and looks up a dumper for
every parameter again, ~20-40 µs of Python per statement measured on the movement statement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from sqlalchemy import Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import ClauseElement

# The pool's per-connection ``info`` key of the kept cursor.
_CURSOR = "shelfwatch.autocommit_cursor"


@cache
def _compiled(statement: ClauseElement, dialect: Dialect) -> tuple[str, dict[str, Any]]:
    """The statement's SQL, and the values of the parameters it holds itself (its literals:
    ``status == 'running'`` is sent as a parameter too)."""
    compiled = statement.compile(dialect=dialect)
    sql = str(compiled)
    # An expanding IN list is rendered per execution by SQLAlchemy; here nothing would.
    assert "POSTCOMPILE" not in sql, "no IN (<list>) in an autocommitted statement"
    held = compiled.params.items()
    return sql, {key: value for key, value in held if not compiled.binds[key].required}


def fetch_one_autocommitted(
    engine: Engine, statement: ClauseElement, values: Mapping[str, Any]
) -> tuple[Any, ...] | None:
    """The first row of ``statement`` run in a transaction of its own (None: no row).

    ``values`` go to the driver as they are: no SQLAlchemy type processing runs, so they must
    be what the driver takes (typed casts in the statement make NULLs unambiguous).
    """
    return _run(engine, statement, values, lambda cursor: cursor.fetchone())


def fetch_all_autocommitted(
    engine: Engine, statement: ClauseElement, values: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """Every row of ``statement`` run in a transaction of its own (as ``fetch_one_…``)."""
    return _run(engine, statement, values, lambda cursor: cursor.fetchall())


def _run(
    engine: Engine,
    statement: ClauseElement,
    values: Mapping[str, Any],
    fetch: Callable[[Any], Any],
) -> Any:
    sql, literals = _compiled(statement, engine.dialect)
    values = {**literals, **values}
    try:
        pooled = engine.raw_connection()
    except engine.dialect.loaded_dbapi.Error as error:
        # A connection that cannot be opened (server down, too many clients): wrapped as
        # ``Engine.connect`` wraps it, so callers see SQLAlchemy's ``OperationalError``.
        raise DBAPIError.instance(
            None, None, error, engine.dialect.loaded_dbapi.Error, dialect=engine.dialect
        ) from error
    driver = pooled.driver_connection
    try:
        driver.autocommit = True
        try:
            return fetch(_cursor_of(pooled).execute(sql, values))
        except engine.dialect.loaded_dbapi.Error as error:
            lost = engine.dialect.is_disconnect(error, driver, None)
            if lost:
                pooled.invalidate(error)
            raise DBAPIError.instance(
                sql,
                values,
                error,
                engine.dialect.loaded_dbapi.Error,
                connection_invalidated=lost,
                dialect=engine.dialect,
            ) from error
        finally:
            if not driver.closed:
                driver.autocommit = False
    finally:
        pooled.close()


def _cursor_of(pooled: PoolProxiedConnection) -> Any:
    """The cursor kept with this pooled connection (a new one for a new driver connection,
    after a reconnect, or once it was closed)."""
    driver = pooled.driver_connection
    cursor = pooled.info.get(_CURSOR)
    if cursor is None or cursor.closed or cursor.connection is not driver:
        cursor = pooled.info[_CURSOR] = driver.cursor()
    return cursor
