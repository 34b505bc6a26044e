"""Request and response shapes of the stock endpoints."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from models import MovementKind
from models.stock import MovementRequest
from webapi.pagination import PageArgs, page_schema

MAX_ID = 2**63 - 1
MAX_QUANTITY = 1_000_000_000
MAX_BATCH = 1000

_ID = validate.Range(min=1, max=MAX_ID)
_KINDS = [kind.value for kind in MovementKind]


def _optional_id(description: str) -> fields.Integer:
    return fields.Integer(
        strict=True,
        validate=_ID,
        load_default=None,
        allow_none=True,
        metadata={"description": description},
    )


class MovementCreate(Schema):
    """A movement as clients send it; adjustments carry a signed quantity and a reason."""

    kind = fields.String(required=True, validate=validate.OneOf(_KINDS))
    product_id = fields.Integer(required=True, strict=True, validate=_ID)
    from_warehouse_id = _optional_id("shipment and transfer: where the stock leaves")
    to_warehouse_id = _optional_id("receipt and transfer: where the stock arrives")
    warehouse_id = _optional_id("adjustment only: the warehouse adjusted")
    quantity = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=-MAX_QUANTITY, max=MAX_QUANTITY),
        metadata={"description": "positive; signed (not 0) for adjustments"},
    )
    reference = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))
    reason = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=2000),
        metadata={"description": "adjustment only (required there); stored as the note"},
    )

    @validates_schema
    def _directions(self, data: dict[str, Any], **_kwargs: Any) -> None:
        errors = _direction_errors(data)
        if errors:
            raise ValidationError(errors)

    @post_load
    def _to_request(self, data: dict[str, Any], **_kwargs: Any) -> MovementRequest:
        return _movement_request(data)

    def load(self, data: Any, *, many: Any = None, partial: Any = None, unknown: Any = None) -> Any:
        # A plainly valid movement skips marshmallow's field machinery (most of a movement's
        # parsing cost); anything else goes through the schema, which reports what is wrong.
        if many is None and partial is None:
            plain = plainly_valid_movement(data)
            if plain is not None:
                return plain
        return super().load(data, many=many, partial=partial, unknown=unknown)


def _movement_request(data: dict[str, Any]) -> MovementRequest:
    if data["kind"] == MovementKind.ADJUSTMENT:
        return MovementRequest.adjustment(
            data["product_id"],
            data["warehouse_id"],
            data["quantity"],
            data["reason"] or data["note"],
            data["reference"],
        )
    return MovementRequest(
        MovementKind(data["kind"]),
        data["product_id"],
        data["quantity"],
        from_warehouse_id=data["from_warehouse_id"],
        to_warehouse_id=data["to_warehouse_id"],
        reference=data["reference"],
        note=data["note"],
    )


# What ``MovementCreate`` accepts, as plain checks: (name, required, type, low, high); for
# strings low/high bound the length. None is accepted wherever the schema loads a default.
_PLAIN_FIELDS = (
    ("kind", True, str, 1, 16),
    ("product_id", True, int, 1, MAX_ID),
    ("from_warehouse_id", False, int, 1, MAX_ID),
    ("to_warehouse_id", False, int, 1, MAX_ID),
    ("warehouse_id", False, int, 1, MAX_ID),
    ("quantity", True, int, -MAX_QUANTITY, MAX_QUANTITY),
    ("reference", False, str, 0, 200),
    ("note", False, str, 0, 2000),
    ("reason", False, str, 1, 2000),
)
_PLAIN_NAMES = frozenset(name for name, *_ in _PLAIN_FIELDS)


def plainly_valid_movement(body: Any) -> MovementRequest | None:
    """The movement ``MovementCreate`` would load from ``body``, or None unless ``body`` is
    plainly valid (then the schema decides, and words the errors)."""
    if type(body) is not dict or not _PLAIN_NAMES.issuperset(body):
        return None
    data: dict[str, Any] = {}
    for name, required, kind, low, high in _PLAIN_FIELDS:
        value = body.get(name)
        if value is None:
            if required:
                return None
        elif type(value) is not kind or not low <= (len(value) if kind is str else value) <= high:
            return None
        data[name] = value
    if data["kind"] not in _NEEDS or _direction_errors(data):
        return None
    return _movement_request(data)


_NEEDS = {
    "receipt": ({"to_warehouse_id"}, {"from_warehouse_id", "warehouse_id", "reason"}),
    "shipment": ({"from_warehouse_id"}, {"to_warehouse_id", "warehouse_id", "reason"}),
    "transfer": ({"from_warehouse_id", "to_warehouse_id"}, {"warehouse_id", "reason"}),
    "adjustment": ({"warehouse_id"}, {"from_warehouse_id", "to_warehouse_id"}),
}


def _direction_errors(data: dict[str, Any]) -> dict[str, list[str]]:
    kind = data.get("kind")
    if kind not in _NEEDS:
        return {}
    required, forbidden = _NEEDS[kind]
    errors = {name: [f"required for a {kind}"] for name in required if data.get(name) is None}
    errors.update({name: [f"not allowed for a {kind}"] for name in forbidden if data.get(name)})
    quantity = data.get("quantity")
    if kind == "adjustment":
        if quantity == 0:
            errors["quantity"] = ["must not be 0"]
        if not (data.get("reason") or data.get("note")):
            errors["reason"] = ["an adjustment needs a reason"]
    elif quantity is not None and quantity <= 0:
        errors["quantity"] = ["must be positive"]
    if kind == "transfer" and data.get("from_warehouse_id") == data.get("to_warehouse_id"):
        errors.setdefault("to_warehouse_id", []).append("must differ from from_warehouse_id")
    return errors


class AsyncArgs(Schema):
    async_ = fields.Boolean(
        data_key="async",
        load_default=False,
        metadata={"description": "queue the movement and answer 202 with a status URL"},
    )

    def load(self, data: Any, *, many: Any = None, partial: Any = None, unknown: Any = None) -> Any:
        if not data and many is None and partial is None:  # no query string: the default
            return {"async_": False}
        return super().load(data, many=many, partial=partial, unknown=unknown)


class BatchCreate(Schema):
    movements = fields.List(
        fields.Nested(MovementCreate),
        required=True,
        validate=validate.Length(min=1, max=MAX_BATCH),
    )


class MovementSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    product_id = fields.Integer()
    from_warehouse_id = fields.Integer(allow_none=True)
    to_warehouse_id = fields.Integer(allow_none=True)
    quantity = fields.Integer(metadata={"description": "always positive; direction from/to"})
    reference = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    created_by = fields.Integer()
    created_at = fields.DateTime()


class MovementFilter(PageArgs):
    product_id = fields.Integer(validate=_ID)
    warehouse_id = fields.Integer(validate=_ID, metadata={"description": "either side"})
    kind = fields.String(validate=validate.OneOf(_KINDS))
    created_after = fields.AwareDateTime(default_timezone=UTC)
    created_before = fields.AwareDateTime(default_timezone=UTC)


class LevelSchema(Schema):
    product_id = fields.Integer()
    warehouse_id = fields.Integer()
    quantity = fields.Integer()


MovementPage = page_schema(MovementSchema, "MovementPage")
LevelPage = page_schema(LevelSchema, "StockLevelPage")
