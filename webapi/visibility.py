"""What the current user may see: all warehouses for admins, else its assigned ones.

The lookup is cached in Redis (``AssignmentCache``) and invalidated by every assignment change
through ``assignments_changed``, which the shells call after their transaction committed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from models import User
from models.assignments import AssignmentCache, assigned_warehouse_ids
from webapi.problems import Problem
from webapi.security import read_ahead_values
from webapi.services import Services, services

log = logging.getLogger(__name__)


def assignment_cache(svc: Services | None = None) -> AssignmentCache:
    svc = svc or services()
    return AssignmentCache(svc.redis, svc.settings.redis_prefix, svc.settings.cache_ttl_seconds)


def assignment_keys(user_id: int) -> tuple[str, ...]:
    """The Redis keys of the user's cached lookup: a view that checks assignments reads them
    in the auth round trip with ``@read_ahead(assignment_keys)``."""
    return assignment_cache().keys(user_id)


def visible_warehouse_ids(user: User) -> set[int] | None:
    """None means every warehouse (admins); otherwise the ids the user is assigned to."""
    if user.is_admin:
        return None

    def load() -> set[int]:
        with services().db.session() as session:
            return assigned_warehouse_ids(session, user.id)

    return assignment_cache().warehouse_ids(user.id, load, read_ahead_values())


def can_see_warehouse(user: User, warehouse_id: int) -> bool:
    visible = visible_warehouse_ids(user)
    return visible is None or warehouse_id in visible


def require_assigned(user: User, warehouse_ids: Iterable[int]) -> None:
    """403 unless the user is an admin or assigned to every one of ``warehouse_ids``."""
    refused = unassigned(visible_warehouse_ids(user), warehouse_ids)
    if refused:
        raise Problem(
            403,
            "not-assigned",
            f"You are not assigned to warehouse {', '.join(map(str, refused))}.",
            warehouse_ids=refused,
        )


def unassigned(visible: set[int] | None, warehouse_ids: Iterable[int]) -> list[int]:
    """The ids among ``warehouse_ids`` outside ``visible`` (None: every warehouse), sorted."""
    return [] if visible is None else sorted(set(warehouse_ids) - visible)


def assignments_changed(user_ids: Iterable[int]) -> None:
    """Forget the cached lookups of ``user_ids``; call after the change committed."""
    users = set(user_ids)
    if not assignment_cache().invalidate(users):
        log.warning("could not invalidate cached assignments of %d users", len(users))
