"""Request and response shapes of the assignment endpoints."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from models.assignments import PairChange
from webapi.pagination import page_schema
from webapi.stock_schemas import MAX_ID

MAX_PAIRS = 10_000
# Above this many pairs a bulk request is queued (202) instead of applied in the request.
ASYNC_THRESHOLD = 500

_ID = validate.Range(min=1, max=MAX_ID)


class PairSchema(Schema):
    user_id = fields.Integer(required=True, strict=True, validate=_ID)
    warehouse_id = fields.Integer(required=True, strict=True, validate=_ID)
    action = fields.String(required=True, validate=validate.OneOf(["assign", "remove"]))

    @post_load
    def _to_change(self, data: dict[str, Any], **_kwargs: Any) -> PairChange:
        return PairChange(data["user_id"], data["warehouse_id"], data["action"])


class BulkCreate(Schema):
    pairs = fields.List(
        fields.Nested(PairSchema),
        required=True,
        validate=validate.Length(min=1, max=MAX_PAIRS),
    )

    @validates_schema(skip_on_field_errors=True)
    def _each_pair_once(self, data: dict[str, Any], **_kwargs: Any) -> None:
        seen: set[tuple[int, int]] = set()
        for index, change in enumerate(data["pairs"]):
            pair = (change.user_id, change.warehouse_id)
            if pair in seen:
                raise ValidationError(
                    {f"pairs.{index}": ["this (user_id, warehouse_id) pair appears twice"]}
                )
            seen.add(pair)


class AssignmentSchema(Schema):
    user_id = fields.Integer()
    warehouse_id = fields.Integer()
    assigned_by = fields.Integer(allow_none=True)
    assigned_at = fields.DateTime()
    email = fields.String(metadata={"description": "the assigned user's"})
    role = fields.String(metadata={"description": "the assigned user's"})


class UserWarehouseSchema(AssignmentSchema):
    code = fields.String(metadata={"description": "the warehouse's"})
    name = fields.String(metadata={"description": "the warehouse's"})


class PairOutcomeSchema(Schema):
    user_id = fields.Integer()
    warehouse_id = fields.Integer()
    action = fields.String()
    outcome = fields.String(
        metadata={"description": "assigned, already_assigned, removed or not_assigned"}
    )


class BulkReport(Schema):
    summary = fields.Dict(keys=fields.String(), values=fields.Integer())
    results = fields.List(fields.Nested(PairOutcomeSchema))


WarehouseAssignmentPage = page_schema(AssignmentSchema, "WarehouseAssignmentPage")
UserAssignmentPage = page_schema(UserWarehouseSchema, "UserAssignmentPage")
