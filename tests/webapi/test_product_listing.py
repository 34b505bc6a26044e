"""The listing arguments the WSGI shortcut reads itself (``plain_listing_args``): exactly what
the view's schema loads, and nothing the schema might judge otherwise."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request

from webapi.pagination import encode_cursor
from webapi.product_listing import cursor_is_valid, plain_listing_args
from webapi.product_schemas import ProductListArgs


def _query(text: str) -> MultiDict[str, str]:
    """The arguments as Flask's request parses them."""
    return Request.from_values(query_string=text).args


def _cursor() -> str:
    return encode_cursor([datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), 7])


@pytest.mark.parametrize(
    "text",
    [
        "",
        "limit=50",
        "limit=1",
        "limit=200",
        "order=-created_at",
        "order=created_at&limit=7",
        "owner_id=1",
        "owner_id=9223372036854775807",
        "archived=true",
        "archived=false",
        "cursor={cursor}",
        "limit=3&order=-created_at&owner_id=42&archived=true&cursor={cursor}",
    ],
)
def test_plain_arguments_load_as_the_schema_loads_them(text: str) -> None:
    query = _query(text.format(cursor=_cursor()))
    assert plain_listing_args(query) == ProductListArgs().load(query.to_dict())


@pytest.mark.parametrize(
    "text",
    [
        "limit=0",
        "limit=201",
        "limit=050",
        "limit=+5",
        "limit=%205",
        "limit=5_0",
        "limit=\u0665",  # an Arabic-Indic five: int() takes it
        "limit=",
        "limit=1&limit=2",
        "owner_id=0",
        "owner_id=01",
        "owner_id=9223372036854775808",
        "owner_id=-1",
        "archived=True",
        "archived=1",
        "archived=yes",
        "archived=",
        "order=name",
        "order=",
        "cursor=",
        "cursor=garbage",
        "cursor=WzEsMl0",
        "sku=A",
        "q=a",
        "updated_since=2026-01-01T00:00:00Z",
        "include=market_price",
        "unknown=1",
    ],
)
def test_anything_else_is_left_to_the_schema(text: str) -> None:
    assert plain_listing_args(_query(text)) is None


def test_cursors_this_listing_issues_are_valid() -> None:
    assert cursor_is_valid(None)
    assert cursor_is_valid(_cursor())
    assert not cursor_is_valid(encode_cursor([1, 2]))
    assert not cursor_is_valid(encode_cursor(["x", 2]))
