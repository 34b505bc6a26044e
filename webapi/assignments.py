"""Who works in which warehouse: single and bulk assignment changes, and both listings.

Who may change assignments: admins, for anyone anywhere; managers, for *clerks* in the
warehouses they are themselves assigned to (a manager cannot widen another manager's or an
admin's reach, nor their own). Clerks cannot change assignments. Every change is
rate-limited per user (``ASSIGNMENT_RATE_LIMIT``, one budget across these endpoints) and
invalidates the cached assignment lookups of the users concerned before the answer leaves.
"""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.typing import ResponseReturnValue
from flask.views import MethodView
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Role, User, Warehouse, WarehouseAssignment, WorkBatch, assignments
from models.work_batches import BatchKeyReused, record_batch
from webapi.api import Blueprint
from webapi.assignment_schemas import (
    ASYNC_THRESHOLD,
    AssignmentSchema,
    BulkCreate,
    BulkReport,
    UserAssignmentPage,
    WarehouseAssignmentPage,
)
from webapi.idempotency import idempotency_key, key_reused
from webapi.pagination import Keyset, PageArgs, paginate
from webapi.problems import Problem
from webapi.ratelimit import limiter
from webapi.security import current_user
from webapi.services import db_session, services
from webapi.stock_schemas import MAX_ID
from webapi.visibility import assignments_changed, can_see_warehouse, visible_warehouse_ids
from webapi.work_batches import BatchSchema, accepted, batch_view, enqueue, visible_batch

blp = Blueprint("assignments", __name__, url_prefix="/api/v1", description="Warehouse assignments")

APPLY_BULK_TASK = "shelfwatch.assignments.apply_bulk"
BATCH_KIND = "assignments"
_BY_ID = Keyset((WarehouseAssignment.id,))


def _rate_limit() -> str:
    return services().settings.assignment_rate_limit


rate_limited = limiter.shared_limit(_rate_limit, scope="assignments")


def _get(session: Session, model: type, object_id: int, label: str) -> Any:
    found = session.get(model, object_id) if object_id <= MAX_ID else None
    if found is None:
        raise Problem(404, "not-found", f"No {label} {object_id}.")
    return found


def _may_change(actor: User, target_role: str, warehouse_id: int) -> bool:
    if actor.is_admin:
        return True
    return (
        actor.role == Role.MANAGER.value
        and target_role == Role.CLERK.value
        and can_see_warehouse(actor, warehouse_id)
    )


def _authorize_change(actor: User, target: User, warehouse_id: int) -> None:
    if actor.role == Role.CLERK.value:
        raise Problem(403, "forbidden", "Clerks cannot change assignments.")
    if not _may_change(actor, target.role, warehouse_id):
        raise Problem(
            403,
            "forbidden",
            "Managers may assign clerks only, in warehouses they are assigned to.",
        )


@blp.route("/warehouses/<int:warehouse_id>/users/<int:user_id>")
class Membership(MethodView):
    # One rule for both methods, so that an id too large for the database is a 404 for both.
    decorators = [rate_limited]

    @blp.response(200, AssignmentSchema)
    @blp.alt_response(201, schema=AssignmentSchema, description="newly assigned")
    def put(self, warehouse_id: int, user_id: int) -> ResponseReturnValue:
        """Assign a user to a warehouse: 201 if new, 200 if it already was (idempotent).

        Admins may assign anyone; managers may assign clerks to warehouses they are assigned
        to. Unknown user or warehouse: 404.
        """
        actor = current_user()
        session = db_session()
        with session.begin():
            target = _get(session, User, user_id, "user")
            _get(session, Warehouse, warehouse_id, "warehouse")
            _authorize_change(actor, target, warehouse_id)
            created = assignments.assign(session, user_id, warehouse_id, actor.id)
        assignments_changed([user_id])
        with session.begin():
            row = session.scalar(
                select(WarehouseAssignment).where(
                    WarehouseAssignment.user_id == user_id,
                    WarehouseAssignment.warehouse_id == warehouse_id,
                )
            )
            if row is None:  # removed again by a concurrent request
                raise Problem(409, "conflict", "The assignment was removed concurrently.")
            return _assignment_view(row, target), 201 if created else 200

    @blp.response(204)
    def delete(self, warehouse_id: int, user_id: int) -> ResponseReturnValue:
        """Remove a user from a warehouse; 204 whether or not it was assigned (idempotent).

        The change holds from the very next request (the cached lookup is invalidated first).
        """
        actor = current_user()
        session = db_session()
        with session.begin():
            target = _get(session, User, user_id, "user")
            _get(session, Warehouse, warehouse_id, "warehouse")
            _authorize_change(actor, target, warehouse_id)
            assignments.unassign(session, user_id, warehouse_id)
        assignments_changed([user_id])
        return Response(status=204)


def _assignment_view(row: WarehouseAssignment, user: User, warehouse: Any = None) -> dict:
    view = {
        "user_id": row.user_id,
        "warehouse_id": row.warehouse_id,
        "assigned_by": row.assigned_by,
        "assigned_at": row.created_at,
        "email": user.email,
        "role": user.role,
    }
    if warehouse is not None:
        view.update(code=warehouse.code, name=warehouse.name)
    return view


@blp.route("/warehouses/<int:warehouse_id>/users")
@blp.arguments(PageArgs, location="query")
@blp.response(200, WarehouseAssignmentPage)
def warehouse_users(args: dict[str, Any], warehouse_id: int) -> ResponseReturnValue:
    """The users assigned to a warehouse (admins, and users assigned to it)."""
    viewer = current_user()
    session = db_session()
    with session.begin():
        _get(session, Warehouse, warehouse_id, "warehouse")
        if not can_see_warehouse(viewer, warehouse_id):
            raise Problem(404, "not-found", f"No warehouse {warehouse_id}.")
        query = select(WarehouseAssignment).where(WarehouseAssignment.warehouse_id == warehouse_id)
        rows, cursor = paginate(session, query, _BY_ID, cursor=args["cursor"], limit=args["limit"])
        users = {
            u.id: u
            for u in session.scalars(select(User).where(User.id.in_({r.user_id for r in rows})))
        }
        items = [_assignment_view(row, users[row.user_id]) for row in rows]
    return {"items": items, "next_cursor": cursor}


@blp.route("/users/<int:user_id>/warehouses")
@blp.arguments(PageArgs, location="query")
@blp.response(200, UserAssignmentPage)
def user_warehouses(args: dict[str, Any], user_id: int) -> ResponseReturnValue:
    """The warehouses a user is assigned to (admins, and the user itself)."""
    viewer = current_user()
    if not viewer.is_admin and viewer.id != user_id:
        raise Problem(404, "not-found", f"No user {user_id}.")
    session = db_session()
    with session.begin():
        user = _get(session, User, user_id, "user")
        query = select(WarehouseAssignment).where(WarehouseAssignment.user_id == user_id)
        rows, cursor = paginate(session, query, _BY_ID, cursor=args["cursor"], limit=args["limit"])
        ids = {row.warehouse_id for row in rows}
        warehouses = {
            w.id: w for w in session.scalars(select(Warehouse).where(Warehouse.id.in_(ids)))
        }
        items = [_assignment_view(row, user, warehouses[row.warehouse_id]) for row in rows]
    return {"items": items, "next_cursor": cursor}


@blp.route("/assignments/bulk", methods=["POST"])
@blp.arguments(BulkCreate)
@blp.response(200, BulkReport)
@blp.alt_response(202, schema=BatchSchema, description=f"queued (above {ASYNC_THRESHOLD} pairs)")
@rate_limited
def bulk_assign(body: dict[str, Any]) -> ResponseReturnValue:
    """Assign and remove up to 10,000 (user, warehouse) pairs at once, **atomically**.

    Each item is `{"user_id", "warehouse_id", "action": "assign" | "remove"}`; a pair may
    appear once. Everything is validated first: unknown user or warehouse ids answer 422
    `/problems/unknown-reference` (with the offending items), pairs the caller may not change
    answer 403 (same rule as the single endpoints), and nothing is applied. The pairs are
    then applied in one transaction, one statement per chunk of 1,000 pairs: all of them or
    none. The answer reports each pair's outcome (`assigned`, `already_assigned`, `removed`,
    `not_assigned`) and the totals.

    Up to 500 pairs this happens in the request (200). Above, the request is recorded and
    the Celery task `shelfwatch.assignments.apply_bulk` applies it the same way (atomic, ids
    checked again): 202 with `Location` of `GET /api/v1/assignments/batches/{id}`, whose
    `results` hold the same per-pair outcomes once done. `Idempotency-Key` is honoured for
    the queued form (the same body gives back the same batch).
    """
    actor = current_user()
    changes: list[assignments.PairChange] = body["pairs"]
    queued = len(changes) > ASYNC_THRESHOLD
    key = idempotency_key() if queued else None
    session = db_session()
    with session.begin():
        _check_bulk(session, actor, changes)
        if queued:
            batch, replayed = _record_bulk(session, actor, changes, key)
        else:
            outcomes = assignments.apply_changes(session, changes, actor.id)
    if queued:
        url = f"/api/v1/assignments/batches/{batch.id}"
        if batch.status == "queued":
            enqueue(APPLY_BULK_TASK, batch.id, url)
        return accepted(batch, url, replayed=replayed)
    assignments_changed({change.user_id for change in changes})
    return assignments_report(outcomes)


def assignments_report(outcomes: list[assignments.PairOutcome]) -> dict[str, Any]:
    summary = {name: 0 for name in ("assigned", "already_assigned", "removed", "not_assigned")}
    for outcome in outcomes:
        summary[outcome.outcome] += 1
    return {"summary": summary, "results": [vars(outcome) for outcome in outcomes]}


def _check_bulk(session: Session, actor: User, changes: list[assignments.PairChange]) -> None:
    users, warehouses = assignments.missing_ids(
        session, {c.user_id for c in changes}, {c.warehouse_id for c in changes}
    )
    unknown = [
        {"field": f"pairs.{index}", "message": "unknown user or warehouse"}
        for index, c in enumerate(changes)
        if c.user_id in users or c.warehouse_id in warehouses
    ]
    if unknown:
        raise Problem(
            422, "unknown-reference", "Some pairs name unknown ids.", errors=unknown[:100]
        )
    if actor.role == Role.CLERK.value:
        raise Problem(403, "forbidden", "Clerks cannot change assignments.")
    if not actor.is_admin:
        _check_manager_pairs(session, actor, changes)


def _check_manager_pairs(
    session: Session, actor: User, changes: list[assignments.PairChange]
) -> None:
    visible = visible_warehouse_ids(actor) or set()
    user_ids = {c.user_id for c in changes}
    rows = session.execute(select(User.id, User.role).where(User.id.in_(user_ids)))
    roles = {user_id: role for user_id, role in rows}
    refused = [
        {"field": f"pairs.{index}", "message": "not a clerk in one of your warehouses"}
        for index, c in enumerate(changes)
        if roles[c.user_id] != Role.CLERK.value or c.warehouse_id not in visible
    ]
    if refused:
        raise Problem(
            403,
            "forbidden",
            "Managers may assign clerks only, in warehouses they are assigned to.",
            errors=refused[:100],
        )


def _record_bulk(
    session: Session, actor: User, changes: list[assignments.PairChange], key: str | None
) -> tuple[WorkBatch, bool]:
    payload = {"items": [vars(change) for change in changes]}
    try:
        return record_batch(session, BATCH_KIND, payload, actor.id, idempotency_key=key)
    except BatchKeyReused as error:
        raise key_reused() from error


@blp.route("/assignments/batches/<int:batch_id>")
@blp.response(200, BatchSchema)
def get_bulk_batch(batch_id: int) -> ResponseReturnValue:
    """A queued bulk assignment's status and per-pair outcomes (its creator and admins)."""
    return batch_view(visible_batch(current_user(), batch_id, BATCH_KIND))
