"""Keyset (cursor) pagination shared by every listing.

A cursor is an opaque, URL-safe token holding the sort key of the last row of a page;
the next page starts strictly after it, so the cost of a page never grows with its depth.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from marshmallow import Schema, fields, validate
from sqlalchemy import Column, Connection, Integer, Row, Select, bindparam, literal, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from webapi.problems import Problem

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class PageArgs(Schema):
    cursor = fields.String(load_default=None, metadata={"description": "from next_cursor"})
    limit = fields.Integer(
        load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT)
    )


def page_schema(item_schema: type[Schema], name: str) -> type[Schema]:
    """The ``{"items": [...], "next_cursor": ...}`` envelope for ``item_schema``."""
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item_schema), required=True),
            "next_cursor": fields.String(allow_none=True, required=True),
        },
        name=name,
    )


def _encode_value(value: Any) -> Any:
    return {"dt": value.isoformat()} if isinstance(value, datetime) else value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and "dt" in value:
        return datetime.fromisoformat(value["dt"])
    return value


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([_encode_value(v) for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, width: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != width:
            raise ValueError("wrong cursor width")
        return [_decode_value(v) for v in values]
    # RecursionError: a cursor of deeply nested JSON arrays, made up by a client.
    except (ValueError, TypeError, RecursionError) as error:
        raise Problem(
            400,
            "invalid-cursor",
            "The cursor is not valid for this listing.",
            errors=[{"field": "cursor", "message": "not a cursor issued by this listing"}],
        ) from error


@dataclass(frozen=True)
class Keyset:
    """The ordered columns a listing pages over, ending with a unique one (the id)."""

    columns: tuple[InstrumentedAttribute[Any] | Column[Any], ...]
    descending: bool = False

    def order(self, query: Select[Any]) -> Select[Any]:
        return query.order_by(*(c.desc() if self.descending else c.asc() for c in self.columns))

    def after(self, values: Sequence[Any]) -> Any:
        """Rows strictly after ``values``: a row-value comparison, which an index on the
        same columns answers with one range scan (PostgreSQL and SQLite alike)."""
        row = tuple_(*self.columns)
        bound = tuple_(
            *(literal(v, type_=c.type) for c, v in zip(self.columns, values, strict=True))
        )
        return row < bound if self.descending else row > bound

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """The bound parameters of ``after_parameters``, one per column."""
        return tuple(f"keyset_{index}" for index in range(len(self.columns)))

    def after_parameters(self) -> Any:
        """``after`` with bound parameters (``parameter_names``) in place of the values."""
        row = tuple_(*self.columns)
        names = zip(self.parameter_names, self.columns, strict=True)
        bound = tuple_(*(bindparam(name, type_=column.type) for name, column in names))
        return row < bound if self.descending else row > bound


def paginate(
    session: Session,
    query: Select[Any],
    keyset: Keyset,
    *,
    cursor: str | None,
    limit: int,
    key_of: Callable[[Any], Sequence[Any]] | None = None,
) -> tuple[list[Any], str | None]:
    """One page of ``query`` (selecting one entity) and the cursor of the next page."""
    statement = keyset.order(_after(query, keyset, cursor)).limit(_page_limit(limit + 1))
    return _page(list(session.scalars(statement)), keyset, limit, key_of)


def row_page_statement(query: Select[Any], keyset: Keyset, *, after_cursor: bool) -> Select[Any]:
    """A Core query selecting columns (the keyset's among them) as ``paginate_rows`` runs it:
    ordered by ``keyset``, after a cursor's key when ``after_cursor``, limited by a bound
    parameter. The same for every page of the query, so it can be built once and kept:
    building a statement and its cache key cost more than running it."""
    if after_cursor:
        query = query.where(keyset.after_parameters())
    return keyset.order(query).limit(_page_limit())


def _page_limit(value: int | None = None) -> Any:
    """The page size written into the SQL text, not sent as a parameter: PostgreSQL then
    plans a prepared listing once (generic plan) instead of re-planning it for every value,
    which costs most on the owner-partitioned products (one statement per page size)."""
    return bindparam("page_limit", value, type_=Integer(), literal_execute=True)


def paginate_rows(
    connection: Connection,
    statement: Select[Any],
    parameters: dict[str, Any],
    keyset: Keyset,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[Row[Any]], str | None]:
    """``paginate`` for a ``row_page_statement`` (built with ``after_cursor=bool(cursor)``)
    whose own bound parameters have ``parameters``: plain rows."""
    values = {**parameters, "page_limit": limit + 1}
    if cursor:
        key = decode_cursor(cursor, len(keyset.columns))
        values.update(zip(keyset.parameter_names, key, strict=True))
    return _page(list(connection.execute(statement, values).all()), keyset, limit, None)


def _after(query: Select[Any], keyset: Keyset, cursor: str | None) -> Select[Any]:
    if not cursor:
        return query
    return query.where(keyset.after(decode_cursor(cursor, len(keyset.columns))))


def _page(
    rows: list[T], keyset: Keyset, limit: int, key_of: Callable[[T], Sequence[Any]] | None
) -> tuple[list[T], str | None]:
    has_more = len(rows) > limit
    rows = rows[:limit]
    if not has_more or not rows:
        return rows, None
    last = rows[-1]
    values = key_of(last) if key_of else [getattr(last, c.key) for c in keyset.columns]
    return rows, encode_cursor(values)
