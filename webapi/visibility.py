"""What the current user may see: all warehouses for admins, else its assigned ones."""

from __future__ import annotations

from models import User
from models.assignments import assigned_warehouse_ids
from webapi.services import services


def visible_warehouse_ids(user: User) -> set[int] | None:
    """None means every warehouse (admins); otherwise the ids the user is assigned to."""
    if user.is_admin:
        return None
    with services().db.session() as session:
        return assigned_warehouse_ids(session, user.id)
