"""Which warehouses a user is assigned to (and so may see and move stock in), and changing it.

Bulk changes run one statement per chunk of pairs (``INSERT … ON CONFLICT DO NOTHING`` for
assignments, ``DELETE … WHERE (user_id, warehouse_id) IN (…)`` for removals), never one per
pair, inside the caller's transaction: a bulk request is atomic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models.base import utcnow
from models.users import User
from models.warehouses import Warehouse, WarehouseAssignment

T = TypeVar("T")
Action = Literal["assign", "remove"]
CHUNK_SIZE = 1000


@dataclass(frozen=True)
class PairChange:
    user_id: int
    warehouse_id: int
    action: Action


@dataclass(frozen=True)
class PairOutcome:
    """``assigned``/``already_assigned`` for assign, ``removed``/``not_assigned`` for remove."""

    user_id: int
    warehouse_id: int
    action: Action
    outcome: str


def assigned_warehouse_ids(session: Session, user_id: int) -> set[int]:
    query = select(WarehouseAssignment.warehouse_id).where(WarehouseAssignment.user_id == user_id)
    return set(session.scalars(query))


def missing_ids(session: Session, user_ids: set[int], warehouse_ids: set[int]) -> tuple[set, set]:
    """The user ids and warehouse ids among those given that do not exist."""
    users = _existing(session, User.id, user_ids)
    warehouses = _existing(session, Warehouse.id, warehouse_ids)
    return user_ids - users, warehouse_ids - warehouses


def _existing(session: Session, column: Any, ids: set[int]) -> set[int]:
    found: set[int] = set()
    for chunk in chunked(sorted(ids), CHUNK_SIZE):
        found.update(session.scalars(select(column).where(column.in_(chunk))))
    return found


def assign(session: Session, user_id: int, warehouse_id: int, assigned_by: int | None) -> bool:
    """Assign; True if the assignment is new (assigning twice is harmless)."""
    change = PairChange(user_id, warehouse_id, "assign")
    return apply_changes(session, [change], assigned_by)[0].outcome == "assigned"


def unassign(session: Session, user_id: int, warehouse_id: int) -> bool:
    """Remove; True if there was an assignment to remove."""
    change = PairChange(user_id, warehouse_id, "remove")
    return apply_changes(session, [change], None)[0].outcome == "removed"


def apply_changes(
    session: Session, changes: Sequence[PairChange], assigned_by: int | None
) -> list[PairOutcome]:
    """Apply every change (each pair at most once) in chunked statements; outcomes in order."""
    assigns = [(c.user_id, c.warehouse_id) for c in changes if c.action == "assign"]
    removes = [(c.user_id, c.warehouse_id) for c in changes if c.action == "remove"]
    created = _insert_pairs(session, assigns, assigned_by)
    deleted = _delete_pairs(session, removes)
    return [_outcome(change, created, deleted) for change in changes]


def _outcome(change: PairChange, created: set, deleted: set) -> PairOutcome:
    pair = (change.user_id, change.warehouse_id)
    if change.action == "assign":
        outcome = "assigned" if pair in created else "already_assigned"
    else:
        outcome = "removed" if pair in deleted else "not_assigned"
    return PairOutcome(change.user_id, change.warehouse_id, change.action, outcome)


def _insert_pairs(
    session: Session, pairs: list[tuple[int, int]], assigned_by: int | None
) -> set[tuple[int, int]]:
    dialect_insert = (
        postgresql.insert
        if session.get_bind(WarehouseAssignment).dialect.name == "postgresql"
        else sqlite.insert
    )
    created: set[tuple[int, int]] = set()
    now = utcnow()
    for chunk in chunked(pairs, CHUNK_SIZE):
        rows = [
            {"user_id": u, "warehouse_id": w, "assigned_by": assigned_by, "created_at": now}
            for u, w in chunk
        ]
        statement = (
            dialect_insert(WarehouseAssignment)
            .values(rows)
            .on_conflict_do_nothing(
                index_elements=[WarehouseAssignment.user_id, WarehouseAssignment.warehouse_id]
            )
            .returning(WarehouseAssignment.user_id, WarehouseAssignment.warehouse_id)
        )
        created.update((u, w) for u, w in session.execute(statement))
    return created


def _delete_pairs(session: Session, pairs: list[tuple[int, int]]) -> set[tuple[int, int]]:
    deleted: set[tuple[int, int]] = set()
    pair_column = tuple_(WarehouseAssignment.user_id, WarehouseAssignment.warehouse_id)
    for chunk in chunked(pairs, CHUNK_SIZE):
        statement = (
            delete(WarehouseAssignment)
            .where(pair_column.in_(chunk))
            .returning(WarehouseAssignment.user_id, WarehouseAssignment.warehouse_id)
            .execution_options(synchronize_session=False)
        )
        deleted.update((u, w) for u, w in session.execute(statement))
    return deleted


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class AssignmentCache:
    """Assigned warehouse ids per user, cached in Redis and checked against a version number.

    Each user has a version counter, bumped by every change *after* its transaction committed,
    and one cached entry ``<version>|<ids>``. A lookup reads both in one round trip (MGET) and
    trusts the entry only if it was computed for the current version, so a reader that loaded
    the old rows just before a commit can only store an entry that no reader will trust.
    Redis errors fall back to the database (a Redis outage costs speed, not correctness).
    """

    def __init__(self, redis: Any, prefix: str, ttl_seconds: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds

    def keys(self, user_id: int) -> tuple[str, str]:
        """The user's version and entry keys (a caller may read them ahead, see below)."""
        return (
            f"{self.prefix}assignments:version:{user_id}",
            f"{self.prefix}assignments:data:{user_id}",
        )

    def warehouse_ids(
        self,
        user_id: int,
        load: Callable[[], set[int]],
        read_ahead: Mapping[str, bytes | None] | None = None,
    ) -> set[int]:
        """The user's warehouse ids; ``read_ahead`` may hold both keys' values, read by the
        caller in an earlier round trip of the same request (then no round trip here)."""
        if self.redis is None:
            return load()
        version_key, data_key = self.keys(user_id)
        if read_ahead is not None and version_key in read_ahead and data_key in read_ahead:
            raw_version, cached = read_ahead[version_key], read_ahead[data_key]
        else:
            try:
                raw_version, cached = self.redis.mget(version_key, data_key)
            except _redis_errors():
                return load()
        current = self.current_ids(raw_version, cached)
        if current is not None:
            return current
        version = int(raw_version or 0)
        found = load()
        entry = f"{version}|{','.join(map(str, sorted(found)))}"
        try:
            self.redis.set(data_key, entry, ex=self.ttl_seconds)
        except _redis_errors():
            pass  # the next read simply goes to the database again
        return found

    @staticmethod
    def current_ids(raw_version: bytes | None, cached: bytes | None) -> set[int] | None:
        """The ids in a cached entry if it was computed for the current version, else None
        (from the values of the two ``keys``)."""
        if cached is None:
            return None
        cached_version, _, ids = cached.partition(b"|")
        if int(cached_version) != int(raw_version or 0):
            return None
        return {int(part) for part in ids.split(b",") if part}

    def invalidate(self, user_ids: Iterable[int]) -> bool:
        """Bump the versions of ``user_ids``; False if Redis could not be reached."""
        if self.redis is None:
            return True
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                for user_id in set(user_ids):
                    # No expiry: a version that restarted at 0 could meet an old entry.
                    pipe.incr(self.keys(user_id)[0])
                pipe.execute()
        except _redis_errors():
            return False
        return True


def _redis_errors() -> tuple[type[Exception], ...]:
    import redis  # imported lazily: the domain does not need Redis to run

    return (redis.RedisError, OSError)
