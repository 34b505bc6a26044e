"""The stock movements API and the stock level listings, against PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from models import Database, Role
from shelfwatch.config import Settings
from tasks.app import create_celery_app
from tests.conftest import Account
from tests.inventory_factories import (
    levels_and_ledger,
    make_assignment,
    make_product,
    make_warehouse,
    movement_count,
)

URL = "/api/v1/stock-movements"
PROBLEM = "application/problem+json"


@dataclass
class Stockroom:
    product_id: int
    w1: int
    w2: int
    w3: int


@pytest.fixture
def room(database: Database, admin: Account) -> Stockroom:
    product_id = make_product(database, admin.id)
    return Stockroom(
        product_id, make_warehouse(database), make_warehouse(database), make_warehouse(database)
    )


@pytest.fixture
def assign_to(database: Database, settings: Settings) -> Callable[[int, int], None]:
    return lambda user_id, warehouse_id: make_assignment(database, user_id, warehouse_id, settings)


def post(client: FlaskClient, who: Account, body: Any, **headers: str):
    return client.post(URL, json=body, headers={**who.headers, **headers})


def receipt(room: Stockroom, warehouse: int, quantity: int) -> dict[str, Any]:
    return {
        "kind": "receipt",
        "product_id": room.product_id,
        "to_warehouse_id": warehouse,
        "quantity": quantity,
    }


def stocked(client: FlaskClient, admin: Account, room: Stockroom, quantity: int = 10) -> None:
    assert post(client, admin, receipt(room, room.w1, quantity)).status_code == 201


def test_every_kind_of_movement(
    client: FlaskClient, admin: Account, room: Stockroom, database: Database
) -> None:
    created = post(client, admin, {**receipt(room, room.w1, 10), "reference": "PO-7"})
    assert created.status_code == 201
    body = created.json
    assert set(body) == {
        "id",
        "kind",
        "product_id",
        "from_warehouse_id",
        "to_warehouse_id",
        "quantity",
        "reference",
        "note",
        "created_by",
        "created_at",
    }
    assert (body["kind"], body["to_warehouse_id"], body["from_warehouse_id"]) == (
        "receipt",
        room.w1,
        None,
    )
    assert (body["quantity"], body["reference"], body["created_by"]) == (10, "PO-7", admin.id)
    assert created.headers["Location"] == f"{URL}/{body['id']}"
    shipped = post(
        client,
        admin,
        {
            "kind": "shipment",
            "product_id": room.product_id,
            "from_warehouse_id": room.w1,
            "quantity": 3,
        },
    )
    assert shipped.status_code == 201
    moved = post(
        client,
        admin,
        {
            "kind": "transfer",
            "product_id": room.product_id,
            "from_warehouse_id": room.w1,
            "to_warehouse_id": room.w2,
            "quantity": 4,
        },
    )
    assert moved.status_code == 201
    adjusted = post(
        client,
        admin,
        {
            "kind": "adjustment",
            "product_id": room.product_id,
            "warehouse_id": room.w2,
            "quantity": -1,
            "reason": "dropped",
        },
    )
    assert adjusted.status_code == 201
    assert (adjusted.json["from_warehouse_id"], adjusted.json["quantity"]) == (room.w2, 1)
    assert adjusted.json["note"] == "dropped"
    assert levels_and_ledger(database, room.product_id) == {room.w1: (3, 3), room.w2: (3, 3)}
    assert client.get(f"{URL}/{moved.json['id']}", headers=admin.headers).json == moved.json


def test_insufficient_stock_is_409_and_changes_nothing(
    client: FlaskClient, admin: Account, room: Stockroom, database: Database
) -> None:
    stocked(client, admin, room, 5)
    refused = post(
        client,
        admin,
        {
            "kind": "transfer",
            "product_id": room.product_id,
            "from_warehouse_id": room.w1,
            "to_warehouse_id": room.w2,
            "quantity": 6,
        },
    )
    assert refused.status_code == 409
    assert refused.content_type == PROBLEM
    assert refused.json["type"] == "/problems/insufficient-stock"
    assert (refused.json["requested"], refused.json["available"]) == (6, 5)
    assert levels_and_ledger(database, room.product_id) == {room.w1: (5, 5)}
    assert movement_count(database) == 1


@pytest.mark.parametrize("role", [Role.MANAGER, Role.CLERK])
@pytest.mark.parametrize("assigned", [True, False], ids=["assigned", "not-assigned"])
def test_who_may_move_stock(
    client: FlaskClient,
    make_account: Callable[..., Account],
    admin: Account,
    room: Stockroom,
    database: Database,
    assign_to: Callable[[int, int], None],
    role: Role,
    assigned: bool,
) -> None:
    user = make_account(role)
    if assigned:
        assign_to(user.id, room.w1)
    answer = post(client, user, receipt(room, room.w1, 2))
    assert answer.status_code == (201 if assigned else 403)
    if not assigned:
        assert answer.json["type"] == "/problems/not-assigned"
    assert post(client, admin, receipt(room, room.w2, 2)).status_code == 201
    levels = client.get(f"/api/v1/warehouses/{room.w1}/stock", headers=user.headers)
    assert levels.status_code == (200 if assigned else 404)
    listing = client.get(URL, headers=user.headers).json["items"]
    assert [m["to_warehouse_id"] for m in listing] == ([room.w1] if assigned else [])
    product_levels = client.get(
        f"/api/v1/products/{room.product_id}/stock", headers=user.headers
    ).json["items"]
    assert [level["warehouse_id"] for level in product_levels] == ([room.w1] if assigned else [])


def test_a_transfer_needs_both_warehouses(
    client: FlaskClient,
    clerk: Account,
    admin: Account,
    room: Stockroom,
    database: Database,
    assign_to: Callable[[int, int], None],
) -> None:
    assign_to(clerk.id, room.w1)
    stocked(client, admin, room)
    body = {
        "kind": "transfer",
        "product_id": room.product_id,
        "from_warehouse_id": room.w1,
        "to_warehouse_id": room.w2,
        "quantity": 1,
    }
    refused = post(client, clerk, body)
    assert refused.status_code == 403
    assert refused.json["warehouse_ids"] == [room.w2]
    assign_to(clerk.id, room.w2)
    assert post(client, clerk, body).status_code == 201


def test_a_removed_assignment_refuses_the_very_next_movement(
    client: FlaskClient,
    clerk: Account,
    admin: Account,
    room: Stockroom,
    assign_to: Callable[[int, int], None],
) -> None:
    # The lookup is read ahead in the auth round trip (cached after the first movement): the
    # removal must still be seen by the next request.
    assign_to(clerk.id, room.w1)
    assert post(client, clerk, receipt(room, room.w1, 1)).status_code == 201
    assert post(client, clerk, receipt(room, room.w1, 1)).status_code == 201
    membership = f"/api/v1/warehouses/{room.w1}/users/{clerk.id}"
    assert client.delete(membership, headers=admin.headers).status_code == 204
    refused = post(client, clerk, receipt(room, room.w1, 1))
    assert refused.status_code == 403
    assert refused.json["type"] == "/problems/not-assigned"
    assert client.put(membership, headers=admin.headers).status_code == 201
    assert post(client, clerk, receipt(room, room.w1, 1)).status_code == 201


def test_admins_see_everything_and_others_only_their_movements(
    client: FlaskClient,
    clerk: Account,
    admin: Account,
    room: Stockroom,
    database: Database,
    assign_to: Callable[[int, int], None],
) -> None:
    assign_to(clerk.id, room.w2)
    stocked(client, admin, room)
    hidden = post(client, admin, receipt(room, room.w3, 1)).json
    moved = post(
        client,
        admin,
        {
            "kind": "transfer",
            "product_id": room.product_id,
            "from_warehouse_id": room.w1,
            "to_warehouse_id": room.w2,
            "quantity": 1,
        },
    ).json
    assert client.get(f"{URL}/{moved['id']}", headers=clerk.headers).status_code == 200
    unseen = client.get(f"{URL}/{hidden['id']}", headers=clerk.headers)
    assert unseen.status_code == 404
    assert unseen.content_type == PROBLEM
    assert len(client.get(URL, headers=admin.headers).json["items"]) == 3
    assert [m["id"] for m in client.get(URL, headers=clerk.headers).json["items"]] == [moved["id"]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"quantity": 0}, "quantity"),
        ({"quantity": -3}, "quantity"),
        ({"quantity": 1.5}, "quantity"),
        ({"quantity": "5"}, "quantity"),
        ({"quantity": 10**12}, "quantity"),
        ({"quantity": None}, "quantity"),
        ({"kind": "theft"}, "kind"),
        ({"to_warehouse_id": None}, "to_warehouse_id"),
        ({"from_warehouse_id": 1}, "from_warehouse_id"),
        ({"product_id": 2**70}, "product_id"),
        ({"product_id": "one"}, "product_id"),
        ({"unexpected": True}, "unexpected"),
    ],
)
def test_bad_movements_are_400(
    client: FlaskClient,
    admin: Account,
    room: Stockroom,
    change: dict,
    field: str,
    database: Database,
) -> None:
    answer = post(client, admin, {**receipt(room, room.w1, 1), **change})
    assert answer.status_code == 400, answer.json
    assert answer.content_type == PROBLEM
    assert answer.json["type"] == "/problems/validation-error"
    assert field in {error["field"] for error in answer.json["errors"]}
    assert movement_count(database) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"kind": "transfer", "from_warehouse_id": "w1", "to_warehouse_id": "w1"},
            "to_warehouse_id",
        ),
        ({"kind": "transfer", "from_warehouse_id": "w1"}, "to_warehouse_id"),
        ({"kind": "shipment"}, "from_warehouse_id"),
        ({"kind": "adjustment", "warehouse_id": "w1"}, "reason"),
        ({"kind": "adjustment", "warehouse_id": "w1", "reason": "x", "quantity": 0}, "quantity"),
        ({"kind": "adjustment", "reason": "x"}, "warehouse_id"),
    ],
)
def test_bad_directions_are_400(
    client: FlaskClient, admin: Account, room: Stockroom, body: dict, field: str
) -> None:
    resolved = {k: getattr(room, v) if v in ("w1", "w2") else v for k, v in body.items()}
    answer = post(client, admin, {"product_id": room.product_id, "quantity": 1, **resolved})
    assert answer.status_code == 400
    assert field in {error["field"] for error in answer.json["errors"]}


def test_unknown_references(
    client: FlaskClient,
    admin: Account,
    clerk: Account,
    room: Stockroom,
    database: Database,
    assign_to: Callable[[int, int], None],
) -> None:
    assign_to(clerk.id, room.w1)
    no_product = post(client, clerk, {**receipt(room, room.w1, 1), "product_id": 987_654})
    assert no_product.status_code == 422
    assert no_product.json["type"] == "/problems/unknown-product"
    no_warehouse = post(client, admin, receipt(room, 987_654, 1))
    assert no_warehouse.status_code == 422
    assert no_warehouse.json["type"] == "/problems/unknown-warehouse"
    # a non-admin learns nothing about warehouses outside its assignments
    assert post(client, clerk, receipt(room, 987_654, 1)).status_code == 403
    assert client.get("/api/v1/warehouses/987654/stock", headers=admin.headers).status_code == 404
    assert client.get("/api/v1/products/987654/stock", headers=admin.headers).status_code == 404
    assert client.get(f"{URL}/987654", headers=admin.headers).status_code == 404


def test_malformed_and_non_json_bodies(client: FlaskClient, admin: Account) -> None:
    broken = client.post(
        URL, data="{not json", content_type="application/json", headers=admin.headers
    )
    assert broken.status_code == 400
    assert broken.json["type"] == "/problems/malformed-json"
    text = client.post(URL, data="kind=receipt", content_type="text/plain", headers=admin.headers)
    assert text.status_code == 415
    listed = client.post(URL, json=[1, 2], headers=admin.headers)
    assert listed.status_code == 400


def test_the_ledger_is_immutable(client: FlaskClient, admin: Account, room: Stockroom) -> None:
    movement = post(client, admin, receipt(room, room.w1, 1)).json
    for method in (client.put, client.patch, client.delete):
        answer = method(f"{URL}/{movement['id']}", json={"quantity": 2}, headers=admin.headers)
        assert answer.status_code == 405
        assert "GET" in answer.headers["Allow"]


def test_idempotency_key_replays_the_first_answer(
    client: FlaskClient, admin: Account, room: Stockroom, database: Database
) -> None:
    body = receipt(room, room.w1, 4)
    first = post(client, admin, body, **{"Idempotency-Key": "order-1"})
    again = post(client, admin, body, **{"Idempotency-Key": "order-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    other = post(client, admin, {**body, "quantity": 5}, **{"Idempotency-Key": "order-1"})
    assert other.status_code == 422
    assert other.json["type"] == "/problems/idempotency-key-reused"
    assert levels_and_ledger(database, room.product_id) == {room.w1: (4, 4)}
    fresh = post(client, admin, body, **{"Idempotency-Key": "order-2"})
    assert fresh.status_code == 201 and fresh.json["id"] != first.json["id"]


def test_keys_belong_to_their_user(
    client: FlaskClient,
    admin: Account,
    make_account: Callable[..., Account],
    room: Stockroom,
    database: Database,
) -> None:
    other_admin = make_account(Role.ADMIN)
    body = receipt(room, room.w1, 1)
    assert post(client, admin, body, **{"Idempotency-Key": "k"}).status_code == 201
    second = post(client, other_admin, body, **{"Idempotency-Key": "k"})
    assert second.status_code == 201 and "Idempotent-Replayed" not in second.headers
    assert movement_count(database) == 2


@pytest.mark.parametrize("key", ["", "x" * 201, "batch:1:0"])
def test_invalid_idempotency_keys(
    client: FlaskClient, admin: Account, room: Stockroom, key: str
) -> None:
    answer = post(client, admin, receipt(room, room.w1, 1), **{"Idempotency-Key": key})
    assert answer.status_code == 400
    assert answer.json["type"] == "/problems/invalid-idempotency-key"


def test_a_failed_request_is_not_replayed(
    client: FlaskClient, admin: Account, room: Stockroom
) -> None:
    ship = {
        "kind": "shipment",
        "product_id": room.product_id,
        "from_warehouse_id": room.w1,
        "quantity": 2,
    }
    assert post(client, admin, ship, **{"Idempotency-Key": "s"}).status_code == 409
    stocked(client, admin, room, 2)
    assert post(client, admin, ship, **{"Idempotency-Key": "s"}).status_code == 201


def test_listing_filters_and_pages(
    client: FlaskClient, admin: Account, room: Stockroom, database: Database
) -> None:
    other_product = make_product(database, admin.id)
    for _ in range(5):
        stocked(client, admin, room, 1)
    post(client, admin, {**receipt(room, room.w2, 1), "product_id": other_product})
    post(
        client,
        admin,
        {
            "kind": "transfer",
            "product_id": room.product_id,
            "from_warehouse_id": room.w1,
            "to_warehouse_id": room.w3,
            "quantity": 1,
        },
    )

    def ids(**query: Any) -> list[int]:
        answer = client.get(URL, query_string=query, headers=admin.headers)
        assert answer.status_code == 200, answer.json
        return [m["id"] for m in answer.json["items"]]

    everything = ids()
    assert everything == sorted(everything, reverse=True)  # newest first
    assert len(everything) == 7
    assert len(ids(product_id=room.product_id)) == 6
    assert len(ids(warehouse_id=room.w3)) == 1
    assert len(ids(warehouse_id=room.w1)) == 6  # receipts in and the transfer out
    assert len(ids(kind="transfer")) == 1
    assert ids(created_after=(datetime.now(UTC) + timedelta(minutes=1)).isoformat()) == []
    assert len(ids(created_before=(datetime.now(UTC) + timedelta(minutes=1)).isoformat())) == 7
    seen, cursor = [], None
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get(URL, query_string=query, headers=admin.headers).json
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything
    assert client.get(URL, query_string={"kind": "theft"}, headers=admin.headers).status_code == 400
    bad_cursor = client.get(URL, query_string={"cursor": "nope"}, headers=admin.headers)
    assert bad_cursor.status_code == 400


def test_stock_level_listings(
    client: FlaskClient, admin: Account, room: Stockroom, database: Database
) -> None:
    products = [room.product_id] + [make_product(database, admin.id) for _ in range(2)]
    for product_id in products:
        post(client, admin, {**receipt(room, room.w1, 3), "product_id": product_id})
    post(client, admin, receipt(room, room.w2, 7))
    page = client.get(
        f"/api/v1/warehouses/{room.w1}/stock", query_string={"limit": 2}, headers=admin.headers
    ).json
    assert page["items"] == [
        {"product_id": products[0], "warehouse_id": room.w1, "quantity": 3},
        {"product_id": products[1], "warehouse_id": room.w1, "quantity": 3},
    ]
    rest = client.get(
        f"/api/v1/warehouses/{room.w1}/stock",
        query_string={"cursor": page["next_cursor"]},
        headers=admin.headers,
    ).json
    assert [item["product_id"] for item in rest["items"]] == [products[2]]
    assert rest["next_cursor"] is None
    per_product = client.get(
        f"/api/v1/products/{room.product_id}/stock", headers=admin.headers
    ).json["items"]
    assert [(i["warehouse_id"], i["quantity"]) for i in per_product] == [
        (room.w1, 3),
        (room.w2, 7),
    ]


def test_movements_need_a_token(client: FlaskClient, room: Stockroom) -> None:
    assert client.get(URL).status_code == 401
    assert client.post(URL, json=receipt(room, room.w1, 1)).status_code == 401


def test_batch_idempotency_key(
    client: FlaskClient, admin: Account, room: Stockroom, settings: Settings
) -> None:
    url = f"{URL}/batch"
    body = {"movements": [receipt(room, room.w1, 2), receipt(room, room.w2, 3)]}
    headers = {**admin.headers, "Idempotency-Key": "nightly-1"}
    first = client.post(url, json=body, headers=headers)
    again = client.post(url, json=body, headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json["id"] == first.json["id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = client.post(url, json={"movements": body["movements"][:1]}, headers=headers)
    assert other.status_code == 422
    assert other.json["type"] == "/problems/idempotency-key-reused"
    create_celery_app(settings).control.purge()  # no worker in this test
