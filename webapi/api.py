"""The flask-smorest ``Api``: OpenAPI 3.1 generated from the views, errors as problem+json."""

from __future__ import annotations

import http
from decimal import Decimal
from typing import Any

from flask import Flask
from flask_smorest import Api
from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest.utils import prepare_response
from marshmallow import fields as ma_fields
from webargs.flaskparser import FlaskParser

from webapi.problems import PROBLEM_MIMETYPE, ProblemSchema


class _Parser(FlaskParser):
    # Malformed input is a 400 with field details; 422 is kept for well-formed but
    # unprocessable requests (an idempotency key reused with another body, a refused URL).
    DEFAULT_VALIDATION_STATUS = 400


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = _Parser()


def _decimal_bounds_as_numbers(_converter: Any, field: Any, ret: dict[str, Any]) -> dict[str, Any]:
    """apispec renders a Decimal field's Range bounds as strings; JSON Schema wants numbers."""
    if not isinstance(field, ma_fields.Decimal):
        return {}
    return {
        key: (int(value) if Decimal(value) == int(Decimal(value)) else float(value))
        for key, value in ret.items()
        if key in _BOUNDS and isinstance(value, str | Decimal)
    }


_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


class ShelfwatchApi(Api):
    ERROR_SCHEMA = ProblemSchema

    def _init_spec(self, *args: Any, **kwargs: Any) -> None:
        super()._init_spec(*args, **kwargs)
        self.ma_plugin.converter.add_attribute_function(_decimal_bounds_as_numbers)

    def _register_responses(self) -> None:
        # flask-smorest's own loop, declaring error bodies as application/problem+json.
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_MIMETYPE)
            self.spec.components.response(status.name, response, lazy=True)
        default = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(default, self.spec, PROBLEM_MIMETYPE)
        self.spec.components.response("DEFAULT_ERROR", default, lazy=True)


def configure_openapi(app: Flask) -> dict[str, Any]:
    return {
        "API_TITLE": "shelfwatch",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.1.0",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "v1/openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        "OPENAPI_SWAGGER_UI_URL": "https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
        "API_SPEC_OPTIONS": {
            "info": {
                "description": "Inventory and distributed scraping. Errors are RFC 9457 "
                "problem details (application/problem+json) with a stable `type`.",
            },
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
                }
            },
            "security": [{"bearerAuth": []}],
        },
    }
