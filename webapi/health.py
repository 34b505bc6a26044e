"""Liveness and readiness probes."""

from __future__ import annotations

import logging
from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue
from kombu import Connection
from sqlalchemy import text

from webapi.api import Blueprint
from webapi.problems import Problem, problem_response
from webapi.ratelimit import limiter
from webapi.security import public
from webapi.services import services

log = logging.getLogger(__name__)

blp = Blueprint("health", __name__, description="Liveness and readiness probes")


@blp.route("/healthz")
@blp.doc(security=[])
@limiter.exempt
@public
def healthz() -> ResponseReturnValue:
    """The process is alive."""
    return jsonify(status="ok")


def _check_database() -> None:
    db = services().db
    for engine in {db.primary, db.scraping}:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))


def _check_redis() -> None:
    client = services().redis
    if client is not None:
        client.ping()


def _check_broker() -> None:
    settings = services().settings
    with Connection(settings.celery_broker_url, connect_timeout=1) as connection:
        if settings.celery_broker_url.startswith("filesystem"):
            return
        connection.ensure_connection(max_retries=1, timeout=1)


CHECKS = {"database": _check_database, "redis": _check_redis, "broker": _check_broker}


@blp.route("/readyz")
@blp.doc(security=[])
@limiter.exempt
@public
def readyz() -> ResponseReturnValue:
    """Each dependency answers; 503 names the ones that do not."""
    results: dict[str, Any] = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as error:
            log.warning("readiness check %s failed: %s", name, error)
            results[name] = "unavailable"
    down = [name for name, state in results.items() if state != "ok"]
    if down:
        problem = Problem(
            503, "dependency-unavailable", "Unavailable: " + ", ".join(down), checks=results
        )
        return problem_response(problem)
    return jsonify(status="ok", checks=results)
