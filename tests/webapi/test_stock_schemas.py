"""The plain fast path of ``MovementCreate`` loads exactly what the full schema loads."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import Schema, ValidationError

from webapi.stock_schemas import MAX_ID, AsyncArgs, MovementCreate, plainly_valid_movement

RECEIPT = {"kind": "receipt", "product_id": 1, "to_warehouse_id": 2, "quantity": 1}
VALID = [
    {"kind": "receipt", "product_id": 1, "to_warehouse_id": 2, "quantity": 5},
    {"kind": "shipment", "product_id": 1, "from_warehouse_id": 2, "quantity": 1},
    {"kind": "transfer", "product_id": 7, "from_warehouse_id": 2, "to_warehouse_id": 3,
     "quantity": 4, "reference": "PO-1", "note": "n"},
    {"kind": "adjustment", "product_id": 1, "warehouse_id": 2, "quantity": -3, "reason": "lost"},
    {"kind": "adjustment", "product_id": 1, "warehouse_id": 2, "quantity": 3, "note": "count"},
    {"kind": "receipt", "product_id": MAX_ID, "to_warehouse_id": 2, "quantity": 10**9,
     "reference": None, "note": None, "reason": None, "from_warehouse_id": None},
    {"kind": "receipt", "product_id": 1, "to_warehouse_id": 2, "quantity": 1, "reference": ""},
]  # fmt: skip
INVALID = [
    [],
    "receipt",
    {"kind": "receipt", "product_id": 1, "to_warehouse_id": 2},
    {"kind": "receipt", "product_id": 1, "to_warehouse_id": 2, "quantity": 0},
    {"kind": "receipt", "product_id": 1, "to_warehouse_id": 2, "quantity": True},
    {"kind": "receipt", "product_id": 1, "to_warehouse_id": 2, "quantity": 1.0},
    {"kind": "receipt", "product_id": 1, "to_warehouse_id": 2, "quantity": "1"},
    {"kind": "receipt", "product_id": 1, "to_warehouse_id": 2, "quantity": 10**9 + 1},
    {"kind": "receipt", "product_id": 0, "to_warehouse_id": 2, "quantity": 1},
    {"kind": "receipt", "product_id": MAX_ID + 1, "to_warehouse_id": 2, "quantity": 1},
    {"kind": "receipt", "product_id": None, "to_warehouse_id": 2, "quantity": 1},
    {"kind": "receipt", "product_id": 1, "to_warehouse_id": 2, "quantity": 1, "extra": 1},
    {"kind": "receipt", "product_id": 1, "from_warehouse_id": 2, "quantity": 1},
    {"kind": "receipt", "product_id": 1, "to_warehouse_id": 2, "quantity": 1, "reason": "x"},
    {**RECEIPT, "reference": "r" * 201},
    {"kind": "sale", "product_id": 1, "to_warehouse_id": 2, "quantity": 1},
    {"kind": None, "product_id": 1, "to_warehouse_id": 2, "quantity": 1},
    {**RECEIPT, "kind": "transfer", "from_warehouse_id": 2},
    {"kind": "transfer", "product_id": 1, "from_warehouse_id": 2, "quantity": 1},
    {"kind": "shipment", "product_id": 1, "from_warehouse_id": 2, "quantity": -1},
    {"kind": "adjustment", "product_id": 1, "warehouse_id": 2, "quantity": 0, "reason": "x"},
    {"kind": "adjustment", "product_id": 1, "warehouse_id": 2, "quantity": 1},
    {"kind": "adjustment", "product_id": 1, "warehouse_id": 2, "quantity": 1, "reason": ""},
    {"kind": "adjustment", "product_id": 1, "to_warehouse_id": 2, "quantity": 1, "reason": "x"},
]  # fmt: skip


def full_load(body: Any) -> Any:
    """What the schema loads through marshmallow's own machinery (the fast path bypassed)."""
    return Schema.load(MovementCreate(), body)


@pytest.mark.parametrize("body", VALID)
def test_valid_movements_take_the_fast_path_with_the_same_result(body: dict[str, Any]) -> None:
    fast = plainly_valid_movement(body)
    assert fast is not None
    assert fast == full_load(body) == MovementCreate().load(body)


@pytest.mark.parametrize("body", INVALID)
def test_invalid_movements_are_left_to_the_schema(body: Any) -> None:
    assert plainly_valid_movement(body) is None
    with pytest.raises(ValidationError) as by_schema:
        full_load(body)
    with pytest.raises(ValidationError) as by_load:
        MovementCreate().load(body)
    assert by_load.value.messages == by_schema.value.messages


def test_async_flag_defaults_without_a_query_string() -> None:
    assert AsyncArgs().load({}) == {"async_": False}
    assert AsyncArgs().load({"async": "true"}) == {"async_": True}
