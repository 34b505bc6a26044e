"""The OpenAPI document is valid, and no generated request makes the API answer 5xx."""

from __future__ import annotations

import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate

from tests.conftest import Account


def test_openapi_document_is_valid_3_1(client: FlaskClient) -> None:
    answer = client.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    document = answer.json
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_error_responses_are_declared_as_problem_json(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").json
    responses = document["components"]["responses"]
    assert "application/problem+json" in responses["DEFAULT_ERROR"]["content"]
    assert "application/problem+json" in responses["BAD_REQUEST"]["content"]


def test_interactive_docs_are_served(client: FlaskClient) -> None:
    answer = client.get("/api/docs")
    assert answer.status_code == 200
    assert b"swagger-ui" in answer.data.lower()


def test_unknown_route_is_a_problem(client: FlaskClient) -> None:
    answer = client.get("/api/v1/no-such-thing")
    assert answer.status_code == 404
    assert answer.content_type == "application/problem+json"
    assert answer.json["type"] == "/problems/not-found"


SELF_SIGN_OUT = ("/api/v1/auth/logout", "/api/v1/auth/password")


def test_no_generated_request_answers_5xx(app: Flask, admin: Account) -> None:
    """Schemathesis generates requests for every operation (as an admin, who may call
    everything); none may answer 5xx, and every error is problem+json."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 5

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            extra = {} if case.path in SELF_SIGN_OUT else admin.headers
            case.headers = {**(case.headers or {}), **extra}
            response = case.call()
            assert response.status_code < 500, (case.method, case.path, response.text[:500])
            if response.status_code >= 400:
                content_type = response.headers.get("content-type", [""])[0]
                assert content_type.startswith("application/problem+json"), (
                    case.method,
                    case.path,
                    response.status_code,
                    dict(response.headers),
                )

        check()
