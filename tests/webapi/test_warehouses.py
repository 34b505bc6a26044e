"""Warehouses over HTTP: admin CRUD, visibility by assignment, paging, ETags, safe deletes."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from models import Database, Product, StockLevel, StockMovement, WarehouseAssignment
from tests.conftest import Account

PROBLEM = "application/problem+json"
URL = "/api/v1/warehouses"


@pytest.fixture
def make_warehouse(client: FlaskClient, admin: Account) -> Callable[..., dict[str, Any]]:
    counter = iter(range(1, 100_000))

    def make(**overrides: Any) -> dict[str, Any]:
        number = next(counter)
        body = {"code": f"WH-{number}", "name": f"Warehouse {number}", **overrides}
        answer = client.post(URL, json=body, headers=admin.headers)
        assert answer.status_code == 201, answer.json
        return answer.json

    return make


def assign(database: Database, user: Account, *warehouses: dict[str, Any]) -> None:
    with database.transaction() as session:
        session.add_all(
            WarehouseAssignment(user_id=user.id, warehouse_id=warehouse["id"])
            for warehouse in warehouses
        )


def ids_of(client: FlaskClient, account: Account, limit: int = 50) -> list[int]:
    found: list[int] = []
    cursor = None
    for _ in range(1000):
        query = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        answer = client.get(URL + query, headers=account.headers)
        assert answer.status_code == 200, answer.json
        found.extend(item["id"] for item in answer.json["items"])
        cursor = answer.json["next_cursor"]
        if cursor is None:
            return found
    raise AssertionError("the listing never ended")


def test_admin_creates_reads_updates_and_deletes(client, admin: Account) -> None:
    body = {"code": "BER-1", "name": "Berlin", "address": "Alexanderplatz 1"}
    created = client.post(URL, json=body, headers=admin.headers)
    assert created.status_code == 201
    warehouse = created.json
    assert set(warehouse) == {"id", "code", "name", "address"}
    assert {key: warehouse[key] for key in body} == body
    path = created.headers["Location"]
    assert client.get(path, headers=admin.headers).json == warehouse
    changed = client.patch(
        path, json={"name": "Berlin Mitte", "address": None}, headers=admin.headers
    )
    assert changed.status_code == 200
    assert changed.json == {**warehouse, "name": "Berlin Mitte", "address": None}
    assert client.delete(path, headers=admin.headers).status_code == 204
    assert client.get(path, headers=admin.headers).status_code == 404
    assert client.delete(path, headers=admin.headers).status_code == 404


def test_only_admins_write(client, manager, clerk, make_warehouse) -> None:
    warehouse = make_warehouse()
    path = f"{URL}/{warehouse['id']}"
    for account in (manager, clerk):
        assert (
            client.post(URL, json={"code": "X", "name": "x"}, headers=account.headers).status_code
            == 403
        )
        assert client.patch(path, json={"name": "x"}, headers=account.headers).status_code == 403
        assert client.delete(path, headers=account.headers).status_code == 403
    assert client.get(URL, headers=manager.headers).status_code == 200


def test_code_is_unique(client, admin: Account, make_warehouse) -> None:
    make_warehouse(code="DUP")
    other = make_warehouse(code="OTHER")
    answer = client.post(URL, json={"code": "DUP", "name": "n"}, headers=admin.headers)
    assert answer.status_code == 409
    assert answer.content_type == PROBLEM
    assert answer.json["type"] == "/problems/warehouse-code-taken"
    renamed = client.patch(f"{URL}/{other['id']}", json={"code": "DUP"}, headers=admin.headers)
    assert renamed.status_code == 409
    assert client.get(f"{URL}/{other['id']}", headers=admin.headers).json["code"] == "OTHER"


def test_non_admins_see_only_their_assigned_warehouses(
    client, admin, manager, clerk, make_warehouse, database
) -> None:
    first, second, third = make_warehouse(), make_warehouse(), make_warehouse()
    assign(database, clerk, first, third)
    assign(database, manager, second)
    assert ids_of(client, admin) == [first["id"], second["id"], third["id"]]
    assert ids_of(client, clerk) == [first["id"], third["id"]]
    assert ids_of(client, manager) == [second["id"]]
    assert client.get(f"{URL}/{first['id']}", headers=clerk.headers).status_code == 200
    hidden = client.get(f"{URL}/{second['id']}", headers=clerk.headers)
    assert hidden.status_code == 404
    assert hidden.json["type"] == "/problems/not-found"


def test_unassigned_user_sees_an_empty_list(client, clerk, make_warehouse) -> None:
    make_warehouse()
    answer = client.get(URL, headers=clerk.headers)
    assert answer.json == {"items": [], "next_cursor": None}


def test_paging_walks_every_warehouse_once(client, admin, clerk, make_warehouse, database) -> None:
    created = [make_warehouse() for _ in range(11)]
    assign(database, clerk, *created[::2])
    assert ids_of(client, admin, limit=3) == [w["id"] for w in created]
    assert ids_of(client, clerk, limit=2) == [w["id"] for w in created[::2]]


def test_etag_and_304(client, admin, make_warehouse) -> None:
    warehouse = make_warehouse()
    for path in (URL, f"{URL}/{warehouse['id']}"):
        first = client.get(path, headers=admin.headers)
        etag = first.headers["ETag"]
        same = client.get(path, headers={**admin.headers, "If-None-Match": etag})
        assert same.status_code == 304
        assert same.data == b""
    client.patch(f"{URL}/{warehouse['id']}", json={"name": "new"}, headers=admin.headers)
    changed = client.get(URL, headers={**admin.headers, "If-None-Match": etag})
    assert changed.status_code == 200


def _product(database: Database, owner: Account) -> int:
    with database.transaction() as session:
        product = Product(owner_id=owner.id, sku="S", name="n", price=1, currency="EUR")
        session.add(product)
        session.flush()
        return product.id


def _level(owner: Account, product_id: int, warehouse_id: int, quantity: int) -> StockLevel:
    return StockLevel(
        product_id=product_id,
        product_owner_id=owner.id,
        warehouse_id=warehouse_id,
        quantity=quantity,
    )


def test_a_warehouse_with_stock_cannot_be_deleted(client, admin, make_warehouse, database) -> None:
    warehouse = make_warehouse()
    product_id = _product(database, admin)
    with database.transaction() as session:
        session.add(_level(admin, product_id, warehouse["id"], 3))
    answer = client.delete(f"{URL}/{warehouse['id']}", headers=admin.headers)
    assert answer.status_code == 409
    assert answer.content_type == PROBLEM
    assert answer.json["type"] == "/problems/warehouse-in-use"
    assert client.get(f"{URL}/{warehouse['id']}", headers=admin.headers).status_code == 200


def test_a_warehouse_in_the_ledger_cannot_be_deleted(
    client, admin, clerk, make_warehouse, database
) -> None:
    warehouse = make_warehouse()
    product_id = _product(database, admin)
    assign(database, clerk, warehouse)
    with database.transaction() as session:
        session.add(_level(admin, product_id, warehouse["id"], 0))  # the ledger row names it
        session.flush()
        session.add(
            StockMovement(
                kind="receipt",
                product_id=product_id,
                to_warehouse_id=warehouse["id"],
                quantity=1,
                created_by=admin.id,
            )
        )
    answer = client.delete(f"{URL}/{warehouse['id']}", headers=admin.headers)
    assert answer.status_code == 409
    assert answer.json["type"] == "/problems/warehouse-in-use"
    assert ids_of(client, clerk) == [warehouse["id"]]


def test_deleting_a_warehouse_drops_its_assignments(
    client, admin, make_warehouse, database
) -> None:
    warehouse = make_warehouse()
    with database.transaction() as session:
        session.add(WarehouseAssignment(user_id=admin.id, warehouse_id=warehouse["id"]))
    assert client.delete(f"{URL}/{warehouse['id']}", headers=admin.headers).status_code == 204


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "n"}, "code"),
        ({"code": "A"}, "name"),
        ({"code": "", "name": "n"}, "code"),
        ({"code": "has space", "name": "n"}, "code"),
        ({"code": "X" * 33, "name": "n"}, "code"),
        ({"code": 12, "name": "n"}, "code"),
        ({"code": "A", "name": "  "}, "name"),
        ({"code": "A", "name": "n", "address": 5}, "address"),
        ({"code": "A", "name": "n", "address": "a\x00b"}, "address"),
        ({"code": "A", "name": "n", "id": 3}, "id"),
    ],
)
def test_create_bad_input(client, admin: Account, body, field) -> None:
    answer = client.post(URL, json=body, headers=admin.headers)
    assert answer.status_code == 400
    assert answer.json["type"] == "/problems/validation-error"
    assert field in {error["field"] for error in answer.json["errors"]}


def test_update_bad_input_and_malformed_json(client, admin: Account, make_warehouse) -> None:
    path = f"{URL}/{make_warehouse()['id']}"
    assert client.patch(path, json={"name": None}, headers=admin.headers).status_code == 400
    assert client.patch(path, json={"code": "a b"}, headers=admin.headers).status_code == 400
    malformed = client.patch(
        path, data="{", headers={**admin.headers, "Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    assert malformed.json["type"] == "/problems/malformed-json"
    assert (
        client.patch(f"{URL}/99999", json={"name": "x"}, headers=admin.headers).status_code == 404
    )


def _cursor_of(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=201",
        "limit=x",
        "cursor=zzz",
        "cursor=" + _cursor_of(["a"]),
        "cursor=" + _cursor_of([2**64]),
        "cursor=" + _cursor_of([1, 2]),
    ],
)
def test_listing_bad_input(client, clerk: Account, query: str) -> None:
    answer = client.get(f"{URL}?{query}", headers=clerk.headers)
    assert answer.status_code == 400
    assert answer.content_type == PROBLEM


def test_ids_out_of_range_are_404(client, admin: Account) -> None:
    for warehouse_id in (str(2**64), "-3", "x"):
        assert client.get(f"{URL}/{warehouse_id}", headers=admin.headers).status_code == 404
