"""Warehouses: admins create, change and delete them; everyone lists the ones they may see.

(Stock levels per warehouse and its assigned users live in their own modules.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import url_for
from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields, validate

from models import Role, Warehouse
from models import warehouse_admin as admin_ops
from webapi.api import Blueprint
from webapi.caching import CachedBody, json_response
from webapi.pagination import Keyset, PageArgs, decode_cursor, page_schema, paginate
from webapi.problems import Problem
from webapi.product_schemas import MAX_ID, no_nul, not_blank
from webapi.replicas import session_for_read, wrote_recently
from webapi.security import current_user, require_role
from webapi.services import db_session
from webapi.visibility import visible_warehouse_ids

blp = Blueprint("warehouses", __name__, url_prefix="/api/v1/warehouses", description="Warehouses")

_ONE_WAREHOUSE = f"/<int(max={MAX_ID}):warehouse_id>"
_BY_ID = Keyset((Warehouse.id,))
_CODE = validate.Regexp(
    r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}\Z", error="1 to 32 letters, digits, '.', '_' or '-'"
)


class WarehouseSchema(Schema):
    id = fields.Integer(dump_only=True)
    code = fields.String(required=True, validate=_CODE)
    name = fields.String(
        required=True, validate=[validate.Length(min=1, max=200), not_blank, no_nul]
    )
    address = fields.String(
        allow_none=True, load_default=None, validate=[validate.Length(max=2000), no_nul]
    )


class WarehouseUpdate(Schema):
    code = fields.String(validate=_CODE)
    name = fields.String(validate=[validate.Length(min=1, max=200), not_blank, no_nul])
    address = fields.String(allow_none=True, validate=[validate.Length(max=2000), no_nul])


WarehousePage = page_schema(WarehouseSchema, "WarehousePage")
_ITEM = WarehouseSchema()
_ITEMS = WarehouseSchema(many=True)


@contextmanager
def _warehouse_errors() -> Iterator[None]:
    try:
        yield
    except admin_ops.WarehouseCodeTaken as error:
        raise Problem(
            409,
            "warehouse-code-taken",
            "Another warehouse has this code.",
            errors=[{"field": "code", "message": "already used"}],
        ) from error
    except admin_ops.WarehouseInUse as error:
        raise Problem(
            409,
            "warehouse-in-use",
            "Stock levels or movements refer to this warehouse; it cannot be deleted.",
        ) from error
    except admin_ops.WarehouseNotFound as error:
        raise Problem(404, "not-found", str(error).capitalize() + ".") from error


def _checked_cursor(cursor: str | None) -> None:
    if cursor is None:
        return
    (warehouse_id,) = decode_cursor(cursor, 1)
    if type(warehouse_id) is not int or not 0 < warehouse_id <= MAX_ID:
        raise Problem(
            400,
            "invalid-cursor",
            "The cursor is not valid for this listing.",
            errors=[{"field": "cursor", "message": "not a cursor issued by this listing"}],
        )


def _json(data: Any) -> CachedBody:
    return CachedBody.of(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


@blp.route("")
@blp.arguments(PageArgs, location="query")
@blp.response(200, WarehousePage)
@blp.alt_response(304, description="Not modified: the If-None-Match ETag is current")
def list_warehouses(args: dict[str, Any]) -> ResponseReturnValue:
    """Warehouses by id: all of them for admins, the assigned ones for everyone else."""
    user = current_user()
    _checked_cursor(args["cursor"])
    query = admin_ops.warehouses_query(visible_warehouse_ids(user))
    session = session_for_read(fresh=wrote_recently(user.id))
    with session.begin():
        items, next_cursor = paginate(
            session, query, _BY_ID, cursor=args["cursor"], limit=args["limit"]
        )
        return json_response(_json({"items": _ITEMS.dump(items), "next_cursor": next_cursor}))


@blp.route(_ONE_WAREHOUSE)
@blp.response(200, WarehouseSchema)
@blp.alt_response(304, description="Not modified: the If-None-Match ETag is current")
def get_warehouse(warehouse_id: int) -> ResponseReturnValue:
    """One warehouse; a warehouse you are not assigned to does not exist for you."""
    user = current_user()
    visible = visible_warehouse_ids(user)
    if visible is not None and warehouse_id not in visible:
        raise Problem(404, "not-found", f"No warehouse {warehouse_id}.")
    session = session_for_read(fresh=wrote_recently(user.id))
    with session.begin(), _warehouse_errors():
        return json_response(_json(_ITEM.dump(admin_ops.get_warehouse(session, warehouse_id))))


@blp.route("", methods=["POST"])
@blp.arguments(WarehouseSchema)
@blp.response(201, WarehouseSchema)
def create_warehouse(body: dict[str, Any]) -> ResponseReturnValue:
    """Create a warehouse (admins)."""
    require_role(Role.ADMIN)
    session = db_session()
    with session.begin(), _warehouse_errors():
        warehouse = admin_ops.create_warehouse(session, body)
    location = url_for("warehouses.get_warehouse", warehouse_id=warehouse.id)
    return warehouse, 201, {"Location": location}


@blp.route(_ONE_WAREHOUSE, methods=["PATCH"])
@blp.arguments(WarehouseUpdate)
@blp.response(200, WarehouseSchema)
def update_warehouse(body: dict[str, Any], warehouse_id: int) -> ResponseReturnValue:
    """Change a warehouse's code, name or address (admins)."""
    require_role(Role.ADMIN)
    session = db_session()
    with session.begin(), _warehouse_errors():
        warehouse = admin_ops.get_warehouse(session, warehouse_id)
        return admin_ops.update_warehouse(session, warehouse, body)


@blp.route(_ONE_WAREHOUSE, methods=["DELETE"])
@blp.response(204)
def delete_warehouse(warehouse_id: int) -> ResponseReturnValue:
    """Delete a warehouse (admins); 409 while stock levels or movements refer to it."""
    require_role(Role.ADMIN)
    session = db_session()
    with session.begin(), _warehouse_errors():
        admin_ops.delete_warehouse(session, admin_ops.get_warehouse(session, warehouse_id))
    return ""
