"""Stock movements (the immutable ledger) and stock levels.

There are no update or delete endpoints for movements: a wrong movement is corrected by
another movement (an adjustment), as in any stock ledger.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app
from flask.typing import ResponseReturnValue
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from models import Product, StockLevel, StockMovement, User, Warehouse
from models.stock import (
    Applied,
    IdempotencyKeyReused,
    InsufficientStock,
    MovementRequest,
    StockError,
    UnknownProduct,
    UnknownWarehouse,
    missing_references,
    move_stock,
)
from models.work_batches import BatchKeyReused, record_batch
from webapi.api import Blueprint
from webapi.idempotency import REPLAYED_HEADER, idempotency_key, key_reused
from webapi.pagination import Keyset, PageArgs, paginate
from webapi.problems import Problem
from webapi.replicas import session_for_read, wrote_recently
from webapi.security import current_user, read_ahead
from webapi.services import db_session, services
from webapi.stock_schemas import (
    MAX_ID,
    AsyncArgs,
    BatchCreate,
    LevelPage,
    MovementCreate,
    MovementFilter,
    MovementPage,
    MovementSchema,
)
from webapi.visibility import assignment_keys, require_assigned, visible_warehouse_ids
from webapi.work_batches import BatchSchema, accepted, batch_view, enqueue, visible_batch

blp = Blueprint(
    "stock", __name__, url_prefix="/api/v1", description="Stock movements and stock levels"
)

APPLY_BATCH_TASK = "shelfwatch.stock.apply_batch"
BATCH_KIND = "stock_movements"
_NEWEST_FIRST = Keyset((StockMovement.created_at, StockMovement.id), descending=True)
_BY_PRODUCT = Keyset((StockLevel.product_id,))
_BY_WAREHOUSE = Keyset((StockLevel.warehouse_id,))
_STATUS_BY_CODE = {
    InsufficientStock.code: 409,
    UnknownProduct.code: 422,
    UnknownWarehouse.code: 422,
    IdempotencyKeyReused.code: 422,
}


def problem_for(error: StockError) -> Problem:
    """The one place where ledger refusals become problem answers."""
    if isinstance(error, IdempotencyKeyReused):
        return key_reused()
    extensions: dict[str, Any] = {}
    if isinstance(error, InsufficientStock):
        extensions = {
            "product_id": error.product_id,
            "warehouse_id": error.warehouse_id,
            "requested": error.requested,
            "available": error.available,
        }
    return Problem(_STATUS_BY_CODE.get(error.code, 422), error.code, str(error), **extensions)


def _read_session(user: User) -> Session:
    """A replica, unless the caller wrote moments ago (then the primary: read your writes)."""
    return session_for_read(fresh=wrote_recently(user.id))


def _movement_url(movement_id: int) -> str:
    return f"/api/v1/stock-movements/{movement_id}"


def _batch_url(batch_id: int) -> str:
    return f"/api/v1/stock-movements/batches/{batch_id}"


@blp.route("/stock-movements", methods=["POST"])
@blp.arguments(AsyncArgs(), location="query")
@blp.arguments(MovementCreate())
@blp.response(201, MovementSchema, headers={"Location": {"schema": {"type": "string"}}})
@blp.alt_response(202, schema=BatchSchema, description="queued (with ?async=true)")
@read_ahead(assignment_keys)
def create_movement(query: dict[str, Any], request: MovementRequest) -> ResponseReturnValue:
    """Move stock: one ledger row and the level changes, in one transaction.

    Kinds: `receipt` (to_warehouse_id), `shipment` (from_warehouse_id), `transfer` (both,
    different), `adjustment` (warehouse_id, a signed quantity and a `reason`; stored as a
    positive quantity leaving or entering the warehouse, with the reason as `note`).
    Taking more than the stock answers 409 `/problems/insufficient-stock` and changes
    nothing. Only admins and users assigned to every warehouse involved may move stock (403).
    With an `Idempotency-Key` header the first successful answer is replayed for the same
    body (nothing is applied twice) and a different body answers 422
    `/problems/idempotency-key-reused`. With `?async=true` the movement is queued like a
    batch of one (202, `Location` of the batch status).
    """
    user = current_user()
    require_assigned(user, request.warehouse_ids)
    key = idempotency_key()
    if query["async_"]:
        return _submit_batch(user, [request], key)
    try:
        applied = move_stock(services().db.primary, request, user.id, idempotency_key=key)
    except StockError as error:
        raise problem_for(error) from error
    return _created(applied)


def _created(applied: Applied) -> ResponseReturnValue:
    body, headers = created_answer(current_app, applied)
    return Response(body, 201, headers, mimetype="application/json")


def created_answer(app: Flask, applied: Applied) -> tuple[bytes, list[tuple[str, str]]]:
    """The JSON body of the 201 answer to a movement and its headers other than
    Content-Type and Content-Length (for the view and for ``movement_shortcut``)."""
    movement = applied.movement
    headers = [("Location", _movement_url(movement.id))]
    if applied.replayed:
        headers.append((REPLAYED_HEADER, "true"))
    # Rendered here rather than by MovementSchema (which documents it): the same JSON for a
    # fraction of the cost on the busiest write path.
    body = {
        "id": movement.id,
        "kind": movement.kind,
        "product_id": movement.product_id,
        "from_warehouse_id": movement.from_warehouse_id,
        "to_warehouse_id": movement.to_warehouse_id,
        "quantity": movement.quantity,
        "reference": movement.reference,
        "note": movement.note,
        "created_by": movement.created_by,
        "created_at": movement.created_at.isoformat(),
    }
    return f"{app.json.dumps(body, separators=(',', ':'))}\n".encode(), headers


@blp.route("/stock-movements/batch", methods=["POST"])
@blp.arguments(BatchCreate)
@blp.response(202, BatchSchema, headers={"Location": {"schema": {"type": "string"}}})
def create_batch(body: dict[str, Any]) -> ResponseReturnValue:
    """Queue up to 1,000 movements; 202 with `Location` of the batch status.

    Everything is validated first (shapes, products and warehouses exist, the caller is
    assigned to every warehouse): any error refuses the whole batch and records nothing.
    The batch is then recorded durably and a task on the `stock` queue applies the movements
    in order, each in its own transaction with the same guarantees as a single movement
    (conditional updates, fixed lock order, never negative). Movements refused then (mostly
    for insufficient stock) are reported per movement as `rejected` with a `reason`;
    the others as `applied` with their `movement_id`. `Idempotency-Key` works as for a single
    movement: the same body gives back the same batch.
    """
    user = current_user()
    requests: list[MovementRequest] = body["movements"]
    require_assigned(user, set().union(*(r.warehouse_ids for r in requests)))
    return _submit_batch(user, requests, idempotency_key())


def _submit_batch(user: User, requests: list[MovementRequest], key: str | None) -> Response:
    session = db_session()
    with session.begin():
        _check_batch_references(session, requests)
        payload = {"items": [r.as_dict() for r in requests]}
        try:
            batch, replayed = record_batch(
                session, BATCH_KIND, payload, user.id, idempotency_key=key
            )
        except BatchKeyReused as error:
            raise key_reused() from error
    if batch.status == "queued":  # also on a replay: a lost message is sent again, harmlessly
        enqueue(APPLY_BATCH_TASK, batch.id, _batch_url(batch.id))
    return accepted(batch, _batch_url(batch.id), replayed=replayed)


def _check_batch_references(session: Session, requests: list[MovementRequest]) -> None:
    products, warehouses = missing_references(session, requests)
    errors = [
        {"field": f"movements.{index}.product_id", "message": f"no product {r.product_id}"}
        for index, r in enumerate(requests)
        if r.product_id in products
    ] + [
        {"field": f"movements.{index}", "message": f"no warehouse {w}"}
        for index, r in enumerate(requests)
        for w in sorted(r.warehouse_ids & warehouses)
    ]
    if errors:
        raise Problem(422, "unknown-reference", "Some movements name unknown ids.", errors=errors)


@blp.route("/stock-movements/batches/<int:batch_id>")
@blp.response(200, BatchSchema)
def get_batch(batch_id: int) -> ResponseReturnValue:
    """A movement batch's status and per-movement results (its creator and admins)."""
    return batch_view(visible_batch(current_user(), batch_id, BATCH_KIND))


def _visible_movements(query: Select[Any], visible: set[int] | None) -> Select[Any]:
    if visible is None:
        return query
    return query.where(
        or_(
            StockMovement.from_warehouse_id.in_(visible),
            StockMovement.to_warehouse_id.in_(visible),
        )
    )


@blp.route("/stock-movements")
@blp.arguments(MovementFilter(), location="query")
@blp.response(200, MovementPage)
def list_movements(args: dict[str, Any]) -> ResponseReturnValue:
    """Movements touching the caller's warehouses (all for admins), newest first."""
    user = current_user()
    query = _visible_movements(select(StockMovement), visible_warehouse_ids(user))
    if "product_id" in args:
        query = query.where(StockMovement.product_id == args["product_id"])
    if "warehouse_id" in args:
        side = args["warehouse_id"]
        query = query.where(
            or_(StockMovement.from_warehouse_id == side, StockMovement.to_warehouse_id == side)
        )
    if "kind" in args:
        query = query.where(StockMovement.kind == args["kind"])
    if "created_after" in args:
        query = query.where(StockMovement.created_at >= args["created_after"])
    if "created_before" in args:
        query = query.where(StockMovement.created_at < args["created_before"])
    session = _read_session(user)
    with session.begin():
        items, cursor = paginate(
            session, query, _NEWEST_FIRST, cursor=args["cursor"], limit=args["limit"]
        )
    return {"items": items, "next_cursor": cursor}


@blp.route("/stock-movements/<int:movement_id>")
@blp.response(200, MovementSchema)
def get_movement(movement_id: int) -> ResponseReturnValue:
    """One movement, if it touches one of the caller's warehouses (or for admins)."""
    user = current_user()
    query = select(StockMovement).where(StockMovement.id == movement_id)
    query = _visible_movements(query, visible_warehouse_ids(user))
    session = _read_session(user)
    with session.begin():
        movement = session.scalar(query) if movement_id <= MAX_ID else None
    if movement is None:
        raise Problem(404, "not-found", f"No movement {movement_id}.")
    return movement


@blp.route("/warehouses/<int:warehouse_id>/stock")
@blp.arguments(PageArgs, location="query")
@blp.response(200, LevelPage)
def warehouse_stock(args: dict[str, Any], warehouse_id: int) -> ResponseReturnValue:
    """The stock levels of one warehouse, by product id (admins and assigned users)."""
    user = current_user()
    visible = visible_warehouse_ids(user)
    session = _read_session(user)
    with session.begin():
        exists = warehouse_id <= MAX_ID and session.get(Warehouse, warehouse_id) is not None
        if not exists or (visible is not None and warehouse_id not in visible):
            raise Problem(404, "not-found", f"No warehouse {warehouse_id}.")
        query = select(StockLevel).where(StockLevel.warehouse_id == warehouse_id)
        items, cursor = paginate(
            session, query, _BY_PRODUCT, cursor=args["cursor"], limit=args["limit"]
        )
    return {"items": items, "next_cursor": cursor}


@blp.route("/products/<int:product_id>/stock")
@blp.arguments(PageArgs, location="query")
@blp.response(200, LevelPage)
def product_stock(args: dict[str, Any], product_id: int) -> ResponseReturnValue:
    """A product's stock level in each warehouse the caller may see, by warehouse id."""
    user = current_user()
    visible = visible_warehouse_ids(user)
    session = _read_session(user)
    with session.begin():
        if product_id > MAX_ID or session.get(Product, product_id) is None:
            raise Problem(404, "not-found", f"No product {product_id}.")
        query = select(StockLevel).where(StockLevel.product_id == product_id)
        if visible is not None:
            query = query.where(StockLevel.warehouse_id.in_(visible))
        items, cursor = paginate(
            session, query, _BY_WAREHOUSE, cursor=args["cursor"], limit=args["limit"]
        )
    return {"items": items, "next_cursor": cursor}
