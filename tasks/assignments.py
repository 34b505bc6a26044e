"""Celery task applying a queued bulk assignment request, atomically.

The claim (queued → running), every chunked statement and the results are one transaction:
a duplicate delivery waits on the batch row and then finds it no longer queued, and a
worker dying half-way leaves the batch queued with nothing applied. Cached assignment
lookups of every user named are invalidated after the commit.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Celery, Task

from models import BatchStatus, Database
from models.assignments import AssignmentCache, PairChange, apply_changes, missing_ids
from models.base import utcnow
from models.work_batches import claim_batch, save_results
from tasks.app import context

log = logging.getLogger(__name__)

BATCH_KIND = "assignments"


def register(app: Celery) -> None:
    @app.task(name="shelfwatch.assignments.apply_bulk", bind=True, shared=False, acks_late=True)
    def apply_bulk(self: Task, batch_id: int) -> str | None:
        ctx = context(self.app)
        done = run_bulk_batch(ctx.db, batch_id)
        if done is None:
            return None
        status, user_ids = done
        cache = AssignmentCache(
            ctx.redis, ctx.settings.redis_prefix, ctx.settings.cache_ttl_seconds
        )
        if not cache.invalidate(user_ids):
            log.warning("bulk batch %s: cached assignments not invalidated", batch_id)
        return status.value


def run_bulk_batch(db: Database, batch_id: int) -> tuple[BatchStatus, set[int]] | None:
    """Apply the batch in one transaction; the status and the users whose assignments changed."""
    with db.transaction() as session:
        # Never stale: the claim commits only together with the whole work.
        batch = claim_batch(session, batch_id, BATCH_KIND, utcnow() - timedelta(days=3650))
        if batch is None:
            log.info("bulk batch %s is not claimable (done or running elsewhere)", batch_id)
            return None
        changes = [PairChange(**item) for item in batch.payload["items"]]
        users, warehouses = missing_ids(
            session, {c.user_id for c in changes}, {c.warehouse_id for c in changes}
        )
        if users or warehouses:
            results = refused_results(changes, users, warehouses)
            save_results(session, batch_id, results, BatchStatus.FAILED)
            return BatchStatus.FAILED, set()
        outcomes = apply_changes(session, changes, batch.created_by)
        results = [
            {"index": index, "status": "applied", **vars(outcome)}
            for index, outcome in enumerate(outcomes)
        ]
        save_results(session, batch_id, results, BatchStatus.SUCCEEDED)
    log.info("bulk batch %s applied: %d pairs", batch_id, len(changes))
    return BatchStatus.SUCCEEDED, {c.user_id for c in changes}


def refused_results(
    changes: list[PairChange], users: set[int], warehouses: set[int]
) -> list[dict[str, Any]]:
    """All pairs rejected (the batch is atomic); the unknown ids are named where they occur."""
    results = []
    for index, change in enumerate(changes):
        unknown = change.user_id in users or change.warehouse_id in warehouses
        reason = {
            "type": "/problems/unknown-reference" if unknown else "/problems/batch-refused",
            "detail": "unknown user or warehouse"
            if unknown
            else "not applied: another pair of this atomic batch was refused",
        }
        results.append({"index": index, "status": "rejected", "reason": reason, **vars(change)})
    return results
