"""URL converters, and URL matching for answers given before Flask."""

from __future__ import annotations

from typing import Any

from flask import Flask, Request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter, Map, Rule

BIGINT_MAX = 2**63 - 1


class DatabaseIdConverter(IntegerConverter):
    """``<int:…>`` limited to what a BIGINT key holds: a larger id is a 404, not a
    database error (and the OpenAPI document says so with ``maximum``)."""

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", BIGINT_MAX)
        super().__init__(url_map, *args, **kwargs)


def match_route(app: Flask, environ: dict[str, Any]) -> tuple[Request, Rule, dict[str, Any]] | None:
    """The request, URL rule and view arguments Flask would dispatch ``environ`` to (the
    request is not read); None for what Flask answers itself: 404, 405, a redirect, an
    untrusted host."""
    # Shallow: the request is only matched, never read, and a shallow one does not put itself
    # in ``environ`` ("werkzeug.request"), which would make a reference cycle holding the
    # whole environ (gunicorn's request and response with it) until the garbage collector's
    # next pass: ~30 objects per answered request for it to walk and free.
    request = app.request_class(environ, shallow=True)
    try:
        adapter = app.create_url_adapter(request)
        rule, view_args = adapter.match(return_rule=True)  # type: ignore[union-attr]
    except HTTPException:
        return None
    return request, rule, view_args


def matched_by_path_alone(app: Flask) -> bool:
    """Whether ``match_route`` depends on the method and path alone: no trusted hosts, no
    ``SERVER_NAME``, no host or subdomain matching (then nothing else in a request changes
    which rule it reaches, or whether Flask refuses it before dispatching)."""
    return (
        app.config["TRUSTED_HOSTS"] is None
        and app.config["SERVER_NAME"] is None
        and not app.url_map.host_matching
        and not app.subdomain_matching
    )


# Paths remembered by ``RouteMemo`` before it starts over (an id in a path makes each one new).
REMEMBERED_PATHS = 1024


class RouteMemo:
    """``match_route``'s rule and view arguments, remembered by method and path while
    ``matched_by_path_alone`` holds: werkzeug's matcher costs ~20 µs a request (and a
    reference cycle for the collector), the same for the same method and path."""

    def __init__(self, app: Flask) -> None:
        self._app = app
        self._found: dict[tuple[str, str], tuple[Rule, dict[str, Any]] | None] = {}

    def rule_for(self, environ: dict[str, Any]) -> tuple[Rule, dict[str, Any]] | None:
        """The rule and view arguments Flask would dispatch ``environ`` to, or None."""
        if not matched_by_path_alone(self._app):
            return self._match(environ)
        key = (environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""))
        try:
            found = self._found[key]
        except KeyError:
            found = self._match(environ)
            if len(self._found) >= REMEMBERED_PATHS:
                self._found.clear()
            self._found[key] = found
        return None if found is None else (found[0], dict(found[1]))

    def _match(self, environ: dict[str, Any]) -> tuple[Rule, dict[str, Any]] | None:
        matched = match_route(self._app, environ)
        return None if matched is None else (matched[1], matched[2])
