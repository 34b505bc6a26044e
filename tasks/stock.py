"""Celery task applying a queued batch of stock movements.

Guarantees, per movement: the same as a single HTTP movement (one transaction with its ledger
row, conditional updates, fixed lock order, deadlock retries). The batch is claimed with a
conditional UPDATE (queued → running), so a redelivered message does nothing. Each movement
carries the idempotency key ``batch:<batch id>:<index>``: if a worker dies mid-batch and the
batch is claimed again (only after the task's hard time limit has passed), movements already
applied are found and reported, never applied twice. The caller's assignments are checked
again when each movement runs: an assignment removed since the request refuses its movements.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Celery, Task
from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from models import BatchStatus, Database, User, WorkBatch
from models.assignments import assigned_warehouse_ids
from models.base import utcnow
from models.stock import Applied, MovementRequest, NotAssigned, StockError, apply_movement, retrying
from models.work_batches import claim_batch, final_status, save_results
from tasks.app import context

log = logging.getLogger(__name__)

BATCH_KIND = "stock_movements"
PROGRESS_EVERY = 100


def register(app: Celery) -> None:
    @app.task(
        name="shelfwatch.stock.apply_batch", bind=True, shared=False, acks_late=True, max_retries=5
    )
    def apply_batch(self: Task, batch_id: int) -> str | None:
        db = context(self.app).db
        stale_after = timedelta(seconds=(self.app.conf.task_time_limit or 3600) + 60)
        try:
            status = run_movement_batch(db, batch_id, stale_after)
        except OperationalError as error:
            release_claim(db, batch_id)
            raise self.retry(exc=error, countdown=2**self.request.retries) from error
        return status.value if status else None


def run_movement_batch(db: Database, batch_id: int, stale_after: timedelta) -> BatchStatus | None:
    """Apply the batch's movements one transaction each; None if another delivery has it."""
    with db.transaction() as session:
        batch = claim_batch(session, batch_id, BATCH_KIND, utcnow() - stale_after)
        if batch is None:
            log.info("stock batch %s is not claimable (done or running elsewhere)", batch_id)
            return None
        created_by, items = batch.created_by, batch.payload["items"]
    log.info("applying stock batch %s: %d movements", batch_id, len(items))
    results: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        results.append(apply_batch_item(db, batch_id, created_by, index, item))
        if len(results) % PROGRESS_EVERY == 0 and len(results) < len(items):
            with db.transaction() as session:
                save_results(session, batch_id, results, None)
    status = final_status(results)
    with db.transaction() as session:
        save_results(session, batch_id, results, status)
    log.info("stock batch %s finished: %s", batch_id, status.value)
    return status


def apply_batch_item(
    db: Database, batch_id: int, created_by: int, index: int, item: dict[str, Any]
) -> dict[str, Any]:
    request = MovementRequest.from_dict(item)

    def work(session: Session) -> Applied:
        require_still_assigned(session, created_by, request)
        return apply_movement(
            session,
            request,
            created_by,
            idempotency_key=f"batch:{batch_id}:{index}",
            batch_id=batch_id,
        )

    try:
        applied = retrying(db.session, work)
    except StockError as error:
        reason = {"type": f"/problems/{error.code}", "detail": str(error)}
        return {"index": index, "status": "rejected", "reason": reason}
    return {"index": index, "status": "applied", "movement_id": applied.movement.id}


def require_still_assigned(session: Session, user_id: int, request: MovementRequest) -> None:
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        raise NotAssigned(request.warehouse_ids)
    if user.is_admin:
        return
    refused = request.warehouse_ids - assigned_warehouse_ids(session, user_id)
    if refused:
        raise NotAssigned(refused)


def release_claim(db: Database, batch_id: int) -> None:
    """Put a batch interrupted by a database error back in the queue for the retry."""
    try:
        with db.transaction() as session:
            session.execute(
                update(WorkBatch)
                .where(WorkBatch.id == batch_id, WorkBatch.status == BatchStatus.RUNNING.value)
                .values(status=BatchStatus.QUEUED.value)
            )
    except OperationalError:
        log.warning("stock batch %s stays running until it goes stale", batch_id)
