"""Asynchronous work requested over HTTP: enqueue after commit, answer 202, show the status."""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery
from flask import Response, current_app, json
from kombu.exceptions import OperationalError
from marshmallow import Schema, fields

from models import User, WorkBatch
from tasks.app import create_celery_app
from webapi.idempotency import REPLAYED_HEADER
from webapi.problems import Problem
from webapi.services import db_session, services

log = logging.getLogger(__name__)

_CELERY_KEY = "shelfwatch.celery"
_celery_lock = threading.Lock()


class BatchSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    status = fields.String(metadata={"description": "queued, running, succeeded, partial, failed"})
    created_by = fields.Integer()
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    total = fields.Integer()
    applied = fields.Integer()
    rejected = fields.Integer()
    results = fields.List(
        fields.Dict(),
        metadata={"description": "one entry per item, in request order, once processed"},
    )


def celery_app() -> Celery:
    """The Flask app's Celery client (built once, on first use)."""
    with _celery_lock:
        if _CELERY_KEY not in current_app.extensions:
            current_app.extensions[_CELERY_KEY] = create_celery_app(services().settings)
        return current_app.extensions[_CELERY_KEY]


def enqueue(task_name: str, batch_id: int, status_url: str) -> None:
    """Send the task; call only after the batch's transaction committed."""
    try:
        celery_app().send_task(task_name, args=[batch_id])
    except OperationalError as error:
        log.error("could not enqueue %s for batch %s: %s", task_name, batch_id, error)
        # The batch is recorded; retrying the request with its Idempotency-Key sends it again.
        raise Problem(
            503,
            "queue-unavailable",
            "The request was recorded but could not be queued; retry it with the same "
            "Idempotency-Key.",
            headers={"Location": status_url, "Retry-After": "5"},
            batch_id=batch_id,
        ) from error


def batch_view(batch: WorkBatch) -> dict[str, Any]:
    results = batch.results or []
    payload = batch.payload or {}
    return {
        "id": batch.id,
        "kind": batch.kind,
        "status": batch.status,
        "created_by": batch.created_by,
        "created_at": batch.created_at,
        "started_at": batch.started_at,
        "finished_at": batch.finished_at,
        "total": len(payload.get("items", [])),
        "applied": sum(1 for r in results if r.get("status") == "applied"),
        "rejected": sum(1 for r in results if r.get("status") == "rejected"),
        "results": results,
    }


def accepted(batch: WorkBatch, status_url: str, *, replayed: bool) -> Response:
    """The 202 answer pointing at the status URL."""
    body = BatchSchema().dump(batch_view(batch))
    response = Response(json.dumps(body), status=202, mimetype="application/json")
    response.headers["Location"] = status_url
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return response


def visible_batch(user: User, batch_id: int, kind: str) -> WorkBatch:
    """The batch if the user made it (or is an admin), else 404."""
    session = db_session()
    with session.begin():
        batch = session.get(WorkBatch, batch_id)
    if batch is None or batch.kind != kind or not (user.is_admin or batch.created_by == user.id):
        raise Problem(404, "not-found", f"No batch {batch_id}.")
    return batch
