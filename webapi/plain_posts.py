"""What the POSTs answered before Flask (``movement_shortcut``, ``job_shortcut``) share: the
small JSON body of a plain request, the view's URL rule as Flask would match it, and Flask's
answer to an error raised while doing the view's work."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from webargs.core import parse_json
from werkzeug.routing import Rule

from webapi.routing import match_route, matched_by_path_alone

WsgiApp = Callable[[dict[str, Any], Any], Iterable[bytes]]

# A plain body of these endpoints is far smaller; a larger one is left to Flask unread.
MAX_BODY_BYTES = 16 * 1024


def plain_json_body(app: Flask, environ: dict[str, Any]) -> Any | None:
    """The decoded body of a small ``application/json`` request with a Content-Length (put
    back for Flask, which may read it again); None for anything else, or JSON webargs refuses
    (Flask's 400 "Invalid JSON body")."""
    if environ.get("QUERY_STRING") or environ.get("CONTENT_TYPE") != "application/json":
        return None
    length = environ.get("CONTENT_LENGTH", "")
    limit = min(MAX_BODY_BYTES, app.config["MAX_CONTENT_LENGTH"] or MAX_BODY_BYTES)
    if "HTTP_TRANSFER_ENCODING" in environ or not (length.isascii() and length.isdigit()):
        return None
    if not 0 < int(length) <= limit:
        return None
    raw = environ["wsgi.input"].read(int(length))
    environ["wsgi.input"] = io.BytesIO(raw)
    try:
        return parse_json(raw)
    except (ValueError, RecursionError):
        return None


class EndpointRule:
    """The URL rule of one endpoint, for requests Flask would dispatch to it."""

    def __init__(self, app: Flask, endpoint: str) -> None:
        self._app = app
        self._endpoint = endpoint
        self._rule: Rule | None = None

    def matched(self, environ: dict[str, Any]) -> Rule | None:
        """The rule if Flask would dispatch ``environ`` to the endpoint (remembered while
        matching depends on the method and path alone, which the caller has fixed)."""
        by_path = matched_by_path_alone(self._app)
        if self._rule is not None and by_path:
            return self._rule
        route = match_route(self._app, environ)
        rule = route[1] if route is not None and route[1].endpoint == self._endpoint else None
        self._rule = rule if by_path else None
        return rule


def flask_error_answer(
    app: Flask, environ: dict[str, Any], start_response: Any, error: Exception
) -> Iterable[bytes]:
    """Flask's answer to ``error`` raised by the view (its error handlers and after-request
    hooks), without running the view: its work may have been done, or half done (a
    connection lost during a commit), so it must not run again."""
    with app.request_context(environ):
        response = app.finalize_request(app.handle_user_exception(error))
        return response(environ, start_response)
