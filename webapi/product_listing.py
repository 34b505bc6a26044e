"""The products listing page: its arguments, its query and its JSON, one implementation for
``products.list_products`` and for the WSGI shortcut that answers plain listing requests
before Flask (``webapi.cache_hits``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Select, bindparam
from werkzeug.datastructures import MultiDict

from models import Product, catalog
from webapi.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Keyset,
    decode_cursor,
    paginate_rows,
    row_page_statement,
)
from webapi.problems import Problem
from webapi.product_schemas import MAX_ID, ORDERS, product_rows_json

_PRODUCTS = Product.__table__.c
# Over the table's columns, like ``catalog.product_rows_query``: the page stays plain Core.
KEYSETS = {
    "created_at": Keyset((_PRODUCTS.created_at, _PRODUCTS.id)),
    "-created_at": Keyset((_PRODUCTS.created_at, _PRODUCTS.id), descending=True),
}

# Digits as ``str(int)`` writes them: no sign, space, underscore, leading zero or non-ASCII
# digit, all of which ``int()`` (so marshmallow) would also take.
_CANONICAL_INT = re.compile(r"[1-9][0-9]{0,18}")
_PLAIN_NAMES = frozenset({"limit", "order", "owner_id", "archived", "cursor"})


def cursor_is_valid(cursor: str | None) -> bool:
    """Whether ``cursor`` is absent or holds a (created_at, id) key this listing issued."""
    if cursor is None:
        return True
    try:
        created_at, product_id = decode_cursor(cursor, 2)
    except Problem:
        return False
    valid_time = isinstance(created_at, datetime) and created_at.tzinfo is not None
    return valid_time and type(product_id) is int and 0 < product_id <= MAX_ID


def check_cursor(cursor: str | None) -> None:
    """Refuse a cursor whose values cannot be a (created_at, id) key, before SQL sees them."""
    if not cursor_is_valid(cursor):
        raise Problem(
            400,
            "invalid-cursor",
            "The cursor is not valid for this listing.",
            errors=[{"field": "cursor", "message": "not a cursor issued by this listing"}],
        )


def _plain_int(text: str, maximum: int) -> int | None:
    if not _CANONICAL_INT.fullmatch(text):
        return None
    value = int(text)
    return value if value <= maximum else None


def plain_listing_args(query: MultiDict[str, str]) -> dict[str, Any] | None:
    """What ``ProductListArgs`` loads from ``query`` when it holds only plain, valid values of
    ``limit``, ``order``, ``owner_id``, ``archived`` (``true``/``false``) and ``cursor``, each
    at most once; None for anything else (other names, repeated names, other spellings,
    invalid values), which only the schema may judge (a test keeps the two equal)."""
    if not _PLAIN_NAMES.issuperset(query) or any(len(query.getlist(name)) > 1 for name in query):
        return None
    args: dict[str, Any] = {
        "cursor": query.get("cursor"),
        "limit": DEFAULT_LIMIT,
        "archived": False,
        "order": query.get("order", "created_at"),
    }
    if "limit" in query:
        args["limit"] = _plain_int(query["limit"], MAX_LIMIT)
    if "owner_id" in query:
        args["owner_id"] = _plain_int(query["owner_id"], MAX_ID)
    if "archived" in query:
        args["archived"] = {"true": True, "false": False}.get(query["archived"])
    if None in (args["limit"], args.get("owner_id", 0), args["archived"]):
        return None
    if args["order"] not in ORDERS or not cursor_is_valid(args["cursor"]):
        return None
    return args


# Narrowing values a kept statement takes as bound parameters of the same names.
_BOUND_NARROWING = ("owner_id", "sku", "updated_since")


def _bound(name: str, present: bool) -> Any:
    """A bound parameter in place of a narrowing value (it takes the compared column's type)."""
    return bindparam(name) if present else None


@cache
def _kept_statement(
    order: str, include_archived: bool, narrowed_by: frozenset[str], after_cursor: bool
) -> Select[Any]:
    """The page statement of one shape of listing (no name search), built once."""
    narrowing = catalog.ProductFilter(
        **{name: _bound(name, name in narrowed_by) for name in _BOUND_NARROWING},
        include_archived=include_archived,
    )
    query = catalog.product_rows_query(narrowing)
    return row_page_statement(query, KEYSETS[order], after_cursor=after_cursor)


def _page_statement(args: Mapping[str, Any]) -> tuple[Select[Any], dict[str, Any]]:
    """The statement of the page ``args`` ask for, and the values of its narrowing."""
    after_cursor = bool(args["cursor"])
    if args.get("q") is not None:
        # A name search's LIKE pattern is escaped into the statement: built for this request.
        narrowing = catalog.ProductFilter(
            owner_id=args.get("owner_id"),
            sku=args.get("sku"),
            name_contains=args["q"],
            updated_since=args.get("updated_since"),
            include_archived=args["archived"],
        )
        query = catalog.product_rows_query(narrowing)
        return row_page_statement(query, KEYSETS[args["order"]], after_cursor=after_cursor), {}
    values = {name: args[name] for name in _BOUND_NARROWING if args.get(name) is not None}
    shape = (args["order"], args["archived"], frozenset(values), after_cursor)
    return _kept_statement(*shape), values


def listing_page(connection: Connection, args: Mapping[str, Any]) -> dict[str, Any]:
    """The page ``args`` (as ``ProductListArgs`` loads them, cursor checked) ask for, read on
    ``connection`` (to the products' database): ``{"items": [...], "next_cursor": ...}``."""
    statement, values = _page_statement(args)
    rows, next_cursor = paginate_rows(
        connection,
        statement,
        values,
        KEYSETS[args["order"]],
        cursor=args["cursor"],
        limit=args["limit"],
    )
    return {"items": product_rows_json(rows), "next_cursor": next_cursor}
