"""Durable requests for asynchronous work: recorded once, claimed once, results kept.

A batch is written in the request's transaction (with its idempotency key, so a retried
request finds its batch instead of making a second one); the task claims it with a
conditional UPDATE (queued → running), so a redelivered message does nothing. A batch left
``running`` longer than the task's hard time limit belongs to a dead worker and may be
claimed again; its work must therefore be safe to repeat (stock batches give each movement
an idempotency key, assignment batches apply in one transaction).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models.base import utcnow
from models.stock_tables import BatchStatus, WorkBatch


class BatchKeyReused(Exception):
    """The idempotency key was used before for a different batch."""


def payload_fingerprint(payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def record_batch(
    session: Session,
    kind: str,
    payload: Any,
    created_by: int,
    *,
    idempotency_key: str | None = None,
) -> tuple[WorkBatch, bool]:
    """The new queued batch and False, or the batch recorded earlier under the key and True."""
    fingerprint = payload_fingerprint(payload)
    if idempotency_key is not None:
        earlier = find_batch_by_key(session, created_by, idempotency_key)
        if earlier is not None:
            return _replay(earlier, kind, fingerprint), True
    dialect_insert = (
        postgresql.insert
        if session.get_bind(WorkBatch).dialect.name == "postgresql"
        else sqlite.insert
    )
    statement = dialect_insert(WorkBatch).values(
        kind=kind,
        status=BatchStatus.QUEUED.value,
        payload=payload,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
        created_by=created_by,
        created_at=utcnow(),
    )
    if idempotency_key is not None:
        statement = statement.on_conflict_do_nothing(
            index_elements=[WorkBatch.created_by, WorkBatch.idempotency_key]
        )
    batch = session.scalar(statement.returning(WorkBatch))
    if batch is None:  # a concurrent twin request committed first
        earlier = find_batch_by_key(session, created_by, idempotency_key or "")
        assert earlier is not None
        return _replay(earlier, kind, fingerprint), True
    return batch, False


def find_batch_by_key(session: Session, created_by: int, idempotency_key: str) -> WorkBatch | None:
    return session.scalar(
        select(WorkBatch).where(
            WorkBatch.created_by == created_by, WorkBatch.idempotency_key == idempotency_key
        )
    )


def _replay(earlier: WorkBatch, kind: str, fingerprint: str) -> WorkBatch:
    if earlier.kind != kind or earlier.request_fingerprint != fingerprint:
        raise BatchKeyReused("this Idempotency-Key was used for a different request")
    return earlier


def claim_batch(
    session: Session, batch_id: int, kind: str, stale_before: datetime
) -> WorkBatch | None:
    """Mark the batch running and return it, or None if another delivery has it (or had it)."""
    claimable = or_(
        WorkBatch.status == BatchStatus.QUEUED.value,
        (WorkBatch.status == BatchStatus.RUNNING.value) & (WorkBatch.started_at < stale_before),
    )
    statement = (
        update(WorkBatch)
        .where(WorkBatch.id == batch_id, WorkBatch.kind == kind, claimable)
        .values(status=BatchStatus.RUNNING.value, started_at=utcnow())
        .returning(WorkBatch)
        .execution_options(synchronize_session=False)
    )
    return session.scalar(statement)


def save_results(
    session: Session, batch_id: int, results: list[dict[str, Any]], status: BatchStatus | None
) -> None:
    """Store the results so far; with a final ``status`` the batch is finished."""
    values: dict[str, Any] = {"results": results}
    if status is not None:
        values.update(status=status.value, finished_at=utcnow())
    session.execute(
        update(WorkBatch)
        .where(WorkBatch.id == batch_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def final_status(results: list[dict[str, Any]]) -> BatchStatus:
    rejected = sum(1 for result in results if result["status"] == "rejected")
    if rejected == 0:
        return BatchStatus.SUCCEEDED
    return BatchStatus.FAILED if rejected == len(results) else BatchStatus.PARTIAL
