"""URL converters."""

from __future__ import annotations

from typing import Any

from werkzeug.routing import IntegerConverter, Map

BIGINT_MAX = 2**63 - 1


class DatabaseIdConverter(IntegerConverter):
    """``<int:…>`` limited to what a BIGINT key holds: a larger id is a 404, not a
    database error (and the OpenAPI document says so with ``maximum``)."""

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", BIGINT_MAX)
        super().__init__(url_map, *args, **kwargs)
