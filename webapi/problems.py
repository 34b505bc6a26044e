"""RFC 9457 problem details: every error of the API leaves through here.

Domain code raises specific exceptions; views raise ``Problem``; HTTP errors from Flask,
webargs and flask-jwt-extended are mapped to the same shape with a stable ``type``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, json, request
from marshmallow import Schema, fields
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

PROBLEM_MIMETYPE = "application/problem+json"
TYPE_PREFIX = "/problems/"

log = logging.getLogger(__name__)

# Stable problem types for HTTP errors raised by the framework itself.
_TYPES_BY_STATUS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    412: "precondition-failed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "unprocessable-content",
    428: "precondition-required",
    429: "rate-limited",
    500: "internal-error",
    503: "service-unavailable",
}


class Problem(Exception):
    """An error answer: ``raise Problem(409, "sku-taken", "SKU already used")``."""

    def __init__(
        self,
        status: int,
        type_: str,
        detail: str | None = None,
        *,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or type_)
        self.status = status
        self.type = type_
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.errors = errors
        self.headers = dict(headers or {})
        self.extensions = extensions

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_PREFIX + self.type,
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if request:
            body["instance"] = request.path
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extensions)
        return body


def invalid_field(field: str, message: str) -> Problem:
    """A 400 validation problem naming one field, for checks beyond the schema's."""
    errors = [{"field": field, "message": message}]
    return Problem(400, "validation-error", "The request is invalid.", errors=errors)


class ProblemSchema(Schema):
    """The documented shape of every error answer."""

    type = fields.String(required=True, metadata={"description": "stable problem type URI"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    instance = fields.String()
    errors = fields.List(
        fields.Dict(),
        metadata={"description": "per-field details: {field, message}"},
    )


def problem_response(problem: Problem) -> Response:
    response = Response(
        json.dumps(problem.body()), status=problem.status, mimetype=PROBLEM_MIMETYPE
    )
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


def validation_errors(messages: Any, path: str = "") -> list[dict[str, Any]]:
    """Flatten marshmallow's nested messages into ``[{field, message}]`` with dotted paths."""
    if isinstance(messages, Mapping):
        found: list[dict[str, Any]] = []
        for key, value in messages.items():
            if key in ("json", "query", "querystring", "headers", "form", "view_args") and not path:
                found.extend(validation_errors(value, ""))
            else:
                found.extend(validation_errors(value, f"{path}.{key}" if path else str(key)))
        return found
    if isinstance(messages, list) and all(isinstance(item, str) for item in messages):
        return [{"field": path or None, "message": message} for message in messages]
    if isinstance(messages, list):
        return [entry for item in messages for entry in validation_errors(item, path)]
    return [{"field": path or None, "message": str(messages)}]


def _from_http_exception(error: HTTPException) -> Problem:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    if messages and status in (400, 422):
        invalid_json = messages == {"json": ["Invalid JSON body."]}
        return Problem(
            400,
            "malformed-json" if invalid_json else "validation-error",
            "The request body is not valid JSON." if invalid_json else "The request is invalid.",
            errors=None if invalid_json else validation_errors(messages),
        )
    problem = Problem(
        status,
        _TYPES_BY_STATUS.get(status, "http-error"),
        data.get("message") or error.description,
        headers=data.get("headers"),
    )
    if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
        problem.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    return problem


def register_problem_handlers(app: Flask) -> None:
    """Map every error to problem+json; registered after flask-smorest so these win."""

    @app.errorhandler(Problem)
    def _problem(error: Problem) -> Response:
        return problem_response(error)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        # Flask-Limiter adds Retry-After to 429 answers in its after_request hook.
        return problem_response(_from_http_exception(error))

    @app.errorhandler(sa_exc.OperationalError)
    @app.errorhandler(sa_exc.InterfaceError)
    @app.errorhandler(sa_exc.TimeoutError)
    def _database_unavailable(error: Exception) -> Response:
        # Lost connection, server restarting, pool exhausted: nothing was written, a retry
        # may succeed. Anything else from the database stays a logged 500.
        log.warning("database unavailable on %s %s: %s", request.method, request.path, error)
        return problem_response(
            Problem(
                503,
                "database-unavailable",
                "The database cannot be reached right now; retry shortly.",
                headers={"Retry-After": "1"},
            )
        )

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        # Logged with its traceback; the client learns nothing of the internals.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(
            Problem(500, "internal-error", "An unexpected error occurred; it has been logged.")
        )
