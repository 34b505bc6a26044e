"""The stock ledger: one immutable movement row and its level changes, in the caller's transaction.

Concurrency (PostgreSQL under READ COMMITTED, and SQLite):
- a decrement is one conditional ``UPDATE … SET quantity = quantity - :n WHERE … AND
  quantity >= :n``: the row lock it takes makes a concurrent decrement wait and re-check the
  condition, so stock never goes negative and no update is lost;
- an increment is one ``INSERT … ON CONFLICT DO UPDATE`` (creates the level on first receipt);
- a transfer locks its two rows in warehouse-id order, so two opposite transfers cannot
  deadlock; the shells still retry SQLSTATE 40P01/40001 (``retrying``) as a safety net;
- a keyed request whose key exists changes nothing and replays; a concurrent twin waits on the
  unique index of (created_by, idempotency_key) and then replays instead of applying twice;
- the ledger's foreign keys find unknown warehouses, and the product's owner (which a level
  names, ``products`` being partitioned by owner) is read inside the same statement, so the
  happy path costs no separate lookup; a refused movement pays for the queries that say why.

On PostgreSQL the whole movement is ONE statement (``stock_statements.MOVE_SQL``): one round
trip, and none for BEGIN/COMMIT when ``move_stock`` runs it autocommitted. SQLite (embedded
mode) runs the same steps one statement at a time in the caller's transaction.

Domain functions never commit. When one raises, the caller must roll back its transaction
(``with session.begin():`` does), which undoes any half-applied transfer.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from models.autocommit import fetch_one_autocommitted
from models.base import utcnow
from models.products import Product
from models.stock_statements import LEDGER, LEVELS, ledger_statements, move_statement
from models.stock_tables import MovementKind, StockLevel, StockMovement
from models.warehouses import Warehouse

T = TypeVar("T")

RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure
TWIN_KEY_CONSTRAINT = "uq_stock_movements_created_by_idempotency_key"
LEVEL_OWNER_CONSTRAINT = "fk_stock_levels_product_owner_id_products"
ATTEMPTS = 5


class StockError(Exception):
    """A movement the ledger refuses; nothing was applied. ``code`` names the reason."""

    code = "stock-error"


class InsufficientStock(StockError):
    code = "insufficient-stock"

    def __init__(self, product_id: int, warehouse_id: int, requested: int, available: int):
        super().__init__(
            f"warehouse {warehouse_id} holds {available} of product {product_id}, "
            f"{requested} requested"
        )
        self.product_id = product_id
        self.warehouse_id = warehouse_id
        self.requested = requested
        self.available = available


class UnknownProduct(StockError):
    code = "unknown-product"

    def __init__(self, product_id: int):
        super().__init__(f"no product {product_id}")
        self.product_id = product_id


class UnknownWarehouse(StockError):
    code = "unknown-warehouse"

    def __init__(self, warehouse_ids: set[int]):
        super().__init__(f"no warehouse {', '.join(map(str, sorted(warehouse_ids)))}")
        self.warehouse_ids = warehouse_ids


class IdempotencyKeyReused(StockError):
    """The key was used before for a different request."""

    code = "idempotency-key-reused"


class NotAssigned(StockError):
    """The user may not move stock in these warehouses (checked again when a batch runs)."""

    code = "not-assigned"

    def __init__(self, warehouse_ids: set[int]):
        super().__init__(f"not assigned to warehouse {', '.join(map(str, sorted(warehouse_ids)))}")
        self.warehouse_ids = warehouse_ids


@dataclass(frozen=True)
class MovementRequest:
    """A requested movement in ledger form: a positive quantity and its direction.

    ``adjustment`` builds the ledger form of a signed adjustment (``note`` holds the reason).
    """

    kind: MovementKind
    product_id: int
    quantity: int
    from_warehouse_id: int | None = None
    to_warehouse_id: int | None = None
    reference: str | None = None
    note: str | None = None

    @classmethod
    def adjustment(
        cls, product_id: int, warehouse_id: int, delta: int, reason: str, reference: str | None
    ) -> MovementRequest:
        side = (
            {"to_warehouse_id": warehouse_id} if delta > 0 else {"from_warehouse_id": warehouse_id}
        )
        return cls(
            MovementKind.ADJUSTMENT,
            product_id,
            abs(delta),
            reference=reference,
            note=reason,
            **side,
        )

    @property
    def warehouse_ids(self) -> set[int]:
        return {w for w in (self.from_warehouse_id, self.to_warehouse_id) if w is not None}

    def fingerprint(self) -> str:
        """A digest of everything the request asks for (idempotency keys are bound to it)."""
        canonical = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": MovementKind(self.kind).value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MovementRequest:
        return cls(**{**data, "kind": MovementKind(data["kind"])})

    def level_changes(self) -> list[tuple[int, int]]:
        """(warehouse_id, signed delta) in warehouse-id order: the fixed lock order."""
        changes = []
        if self.from_warehouse_id is not None:
            changes.append((self.from_warehouse_id, -self.quantity))
        if self.to_warehouse_id is not None:
            changes.append((self.to_warehouse_id, self.quantity))
        return sorted(changes)


@dataclass(frozen=True, slots=True)
class Movement:
    """A ledger row as callers see it (the values the API answers with)."""

    id: int
    kind: str
    product_id: int
    from_warehouse_id: int | None
    to_warehouse_id: int | None
    quantity: int
    reference: str | None
    note: str | None
    created_by: int
    created_at: datetime

    @classmethod
    def written(cls, movement_id: int, values: dict[str, Any]) -> Movement:
        """The movement just written with ``values`` (``_ledger_values``) under its new id."""
        return cls(movement_id, *(values[f"v_{name}"] for name in _MOVEMENT_FIELDS))


_MOVEMENT_FIELDS = [f.name for f in fields(Movement)][1:]
_EARLIER_COLUMNS = [LEDGER.c[f.name] for f in fields(Movement)] + [LEDGER.c.request_fingerprint]


@dataclass(frozen=True)
class Applied:
    movement: Movement
    replayed: bool


def apply_movement(
    session: Session,
    request: MovementRequest,
    created_by: int,
    *,
    idempotency_key: str | None = None,
    batch_id: int | None = None,
) -> Applied:
    """Write the ledger row and change the levels; raises a ``StockError`` to refuse.

    With ``idempotency_key``, a request seen before (same user and key) is not applied again:
    the first movement comes back with ``replayed=True``, or ``IdempotencyKeyReused`` when
    the earlier request asked for something else.
    """
    values = _ledger_values(request, created_by, idempotency_key, batch_id)
    if _dialect_name(session) == "postgresql":
        return _apply_in_one_statement(_connection(session), request, values)
    return _apply_step_by_step(session, request, values)


def move_stock(
    engine: Engine, request: MovementRequest, created_by: int, *, idempotency_key: str | None = None
) -> Applied:
    """``apply_movement`` in a transaction of its own, retried on deadlocks (a single
    movement's shell: HTTP). On PostgreSQL the movement is one autocommitted statement, so
    the transaction costs no BEGIN or COMMIT round trip."""
    if engine.dialect.name != "postgresql":
        work = partial(apply_movement, request=request, created_by=created_by)
        return retrying(
            lambda: Session(engine), lambda session: work(session, idempotency_key=idempotency_key)
        )
    values = _ledger_values(request, created_by, idempotency_key, None)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            row = fetch_one_autocommitted(engine, move_statement(), values)
        except DBAPIError as error:
            if isinstance(error, IntegrityError) and not is_retryable(error):
                with engine.connect() as connection:
                    raise _unknown_reference(connection, request, error) from error
            if attempt == ATTEMPTS or not is_retryable(error):
                raise
            _back_off(attempt)
            continue
        if row is not None:
            return Applied(Movement.written(row[0], values), replayed=False)
        with engine.connect() as connection:
            return _why_nothing_changed(connection, request, values)
    raise AssertionError("unreachable")


def _apply_in_one_statement(
    connection: Connection, request: MovementRequest, values: dict[str, Any]
) -> Applied:
    """PostgreSQL: the whole movement in ``MOVE_SQL``, in the caller's transaction."""
    try:
        row = connection.execute(move_statement(), values).first()
    except IntegrityError as error:
        raise _unknown_reference(connection, request, error) from error
    if row is not None:
        return Applied(Movement.written(row.id, values), replayed=False)
    return _why_nothing_changed(connection, request, values)


def _why_nothing_changed(
    connection: Connection, request: MovementRequest, values: dict[str, Any]
) -> Applied:
    """After ``MOVE_SQL`` changed nothing: replay the earlier movement with this key, or
    raise why (an unknown id, short stock). The rare path pays for these queries."""
    key = values["v_idempotency_key"]
    if key is not None:
        earlier = find_by_key(connection, values["v_created_by"], key)
        if earlier is not None:
            return _replay(earlier, request)
    check_references(connection, request)
    source = request.from_warehouse_id
    assert source is not None  # nothing to take: the statement cannot have refused
    available = _level_on(connection, request.product_id, source)
    raise InsufficientStock(request.product_id, source, request.quantity, available)


def _apply_step_by_step(
    session: Session, request: MovementRequest, values: dict[str, Any]
) -> Applied:
    """SQLite (embedded mode): the ids checked, the ledger row (``ON CONFLICT DO NOTHING`` on
    the key), then each level in the fixed lock order."""
    created_by, idempotency_key = values["v_created_by"], values["v_idempotency_key"]
    if idempotency_key is not None:
        earlier = find_by_key(session, created_by, idempotency_key)
        if earlier is not None:
            return _replay(earlier, request)
    # The ledger row names no product directly (its references to the levels are checked at
    # commit), so the product is looked up first; the embedded mode can afford the query.
    check_references(session, request)
    try:
        movement_id = _insert_ledger_row(session, values)
    except IntegrityError as error:
        raise _unknown_reference(session, request, error) from error
    if movement_id is None:  # a concurrent twin committed first; the unique key made us wait
        earlier = find_by_key(session, created_by, idempotency_key or "")
        assert earlier is not None
        return _replay(earlier, request)
    for warehouse_id, delta in request.level_changes():
        if delta < 0:
            _take(session, request.product_id, warehouse_id, -delta)
        else:
            _put(session, request.product_id, warehouse_id, delta)
    return Applied(Movement.written(movement_id, values), replayed=False)


def find_by_key(
    session: Session | Connection, created_by: int, idempotency_key: str
) -> tuple[Movement, str | None] | None:
    """The movement recorded under this user's key, with its request's fingerprint."""
    query = select(*_EARLIER_COLUMNS).where(
        LEDGER.c.created_by == created_by, LEDGER.c.idempotency_key == idempotency_key
    )
    connection = session if isinstance(session, Connection) else _connection(session)
    row = connection.execute(query).first()
    return None if row is None else (Movement(*row[:-1]), row[-1])


def _replay(earlier: tuple[Movement, str | None], request: MovementRequest) -> Applied:
    movement, fingerprint = earlier
    if fingerprint != request.fingerprint():
        raise IdempotencyKeyReused("this Idempotency-Key was used for a different request")
    return Applied(movement, replayed=True)


def check_references(session: Session | Connection, request: MovementRequest) -> None:
    """Raise ``UnknownProduct``/``UnknownWarehouse`` (one round trip when all exist)."""
    wanted = request.warehouse_ids
    product = select(Product.id).where(Product.id == request.product_id).scalar_subquery()
    warehouses = select(func.count(Warehouse.id)).where(Warehouse.id.in_(wanted)).scalar_subquery()
    product_id, warehouses_found = session.execute(select(product, warehouses)).one()
    if product_id is None:
        raise UnknownProduct(request.product_id)
    if warehouses_found != len(wanted):
        found = set(session.scalars(select(Warehouse.id).where(Warehouse.id.in_(wanted))))
        raise UnknownWarehouse(wanted - found)


def _unknown_reference(
    session: Session | Connection, request: MovementRequest, error: IntegrityError
) -> Exception:
    """Which reference a failed ledger insert named (its foreign keys check them for free)."""
    constraint = getattr(getattr(error.orig, "diag", None), "constraint_name", None) or ""
    if constraint.startswith("fk_stock_movements_from_warehouse_id"):
        return UnknownWarehouse({request.from_warehouse_id or 0})
    if constraint.startswith("fk_stock_movements_to_warehouse_id"):
        return UnknownWarehouse({request.to_warehouse_id or 0})
    if not constraint and _dialect_name(session) == "sqlite":
        # SQLite names no constraint, but its transaction survives a failed statement.
        check_references(session, request)
    return error


def _connection(session: Session) -> Connection:
    """The session's connection to the inventory database, in its transaction."""
    return session.connection(bind_arguments={"mapper": StockMovement})


def _dialect_name(session: Session | Connection) -> str:
    if isinstance(session, Connection):
        return session.dialect.name
    return session.get_bind(StockMovement).dialect.name


def _ledger_values(
    request: MovementRequest, created_by: int, idempotency_key: str | None, batch_id: int | None
) -> dict[str, Any]:
    return {
        "v_kind": MovementKind(request.kind).value,
        "v_product_id": request.product_id,
        "v_from_warehouse_id": request.from_warehouse_id,
        "v_to_warehouse_id": request.to_warehouse_id,
        "v_quantity": request.quantity,
        "v_reference": request.reference,
        "v_note": request.note,
        "v_created_by": created_by,
        "v_created_at": utcnow(),
        "v_idempotency_key": idempotency_key,
        # Only a keyed request can be replayed, so only it needs its fingerprint.
        "v_request_fingerprint": request.fingerprint() if idempotency_key else None,
        "v_batch_id": batch_id,
    }


def _insert_ledger_row(session: Session, values: dict[str, Any]) -> int | None:
    """The new row's id, or None when a row with this user's key exists."""
    statements = ledger_statements(_dialect_name(session))
    keyed = values["v_idempotency_key"] is not None
    statement = statements.insert_keyed_movement if keyed else statements.insert_movement
    return _connection(session).scalar(statement, values)


def _level_values(product_id: int, warehouse_id: int, quantity: int) -> dict[str, Any]:
    return {
        "v_product_id": product_id,
        "v_warehouse_id": warehouse_id,
        "v_quantity": quantity,
        "v_now": utcnow(),
    }


def _take(session: Session, product_id: int, warehouse_id: int, quantity: int) -> int:
    values = _level_values(product_id, warehouse_id, quantity)
    statement = ledger_statements(_dialect_name(session)).take
    left = _connection(session).scalar(statement, values)
    if left is None:
        available = level_quantity(session, product_id, warehouse_id)
        raise InsufficientStock(product_id, warehouse_id, quantity, available)
    return int(left)


def _put(session: Session, product_id: int, warehouse_id: int, quantity: int) -> int:
    values = _level_values(product_id, warehouse_id, quantity)
    statement = ledger_statements(_dialect_name(session)).put
    return int(_connection(session).scalar(statement, values) or 0)


def level_quantity(session: Session, product_id: int, warehouse_id: int) -> int:
    level = session.get(StockLevel, (product_id, warehouse_id), populate_existing=True)
    return level.quantity if level is not None else 0


def _level_on(connection: Connection, product_id: int, warehouse_id: int) -> int:
    query = select(LEVELS.c.quantity).where(
        LEVELS.c.product_id == product_id, LEVELS.c.warehouse_id == warehouse_id
    )
    return int(connection.scalar(query) or 0)


def ledger_balance(session: Session, product_id: int, warehouse_id: int) -> int:
    """What the ledger says a level must be: everything in minus everything out."""
    incoming = select(func.coalesce(func.sum(StockMovement.quantity), 0)).where(
        StockMovement.product_id == product_id, StockMovement.to_warehouse_id == warehouse_id
    )
    outgoing = select(func.coalesce(func.sum(StockMovement.quantity), 0)).where(
        StockMovement.product_id == product_id, StockMovement.from_warehouse_id == warehouse_id
    )
    return int(session.scalar(incoming) or 0) - int(session.scalar(outgoing) or 0)


def is_retryable(error: DBAPIError) -> bool:
    """The whole transaction may simply run again: a deadlock, a serialization failure, a
    concurrent twin's ledger row (same user and key) committed under ours (the next attempt
    replays it), or a new level naming the owner the product had when the statement began,
    changed by an admin before its check (the next attempt reads the new owner)."""
    orig = error.orig
    if getattr(orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
        return True
    constraint = getattr(getattr(orig, "diag", None), "constraint_name", None)
    return constraint in (TWIN_KEY_CONSTRAINT, LEVEL_OWNER_CONSTRAINT)


def retrying(
    make_session: Callable[[], Session], work: Callable[[Session], T], attempts: int = ATTEMPTS
) -> T:
    """Run ``work`` in a fresh transaction, again on a deadlock/serialization failure."""
    for attempt in range(1, attempts + 1):
        try:
            with make_session() as session, session.begin():
                return work(session)
        except DBAPIError as error:
            if attempt == attempts or not is_retryable(error):
                raise
            _back_off(attempt)
    raise AssertionError("unreachable")


def _back_off(attempt: int) -> None:
    time.sleep(0.01 * 2**attempt)


def missing_references(
    session: Session, requests: list[MovementRequest]
) -> tuple[set[int], set[int]]:
    """The product ids and warehouse ids named by ``requests`` that do not exist."""
    product_ids = {r.product_id for r in requests}
    warehouse_ids = set().union(*(r.warehouse_ids for r in requests))
    products = set(session.scalars(select(Product.id).where(Product.id.in_(product_ids))))
    warehouses = set(session.scalars(select(Warehouse.id).where(Warehouse.id.in_(warehouse_ids))))
    return product_ids - products, warehouse_ids - warehouses
