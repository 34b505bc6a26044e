"""Warehouse assignments over the API: who may change them, listings, bulk, cache, rate limit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from models import Database, Role
from shelfwatch.config import Settings
from tasks.app import create_celery_app
from tests.conftest import Account
from tests.inventory_factories import make_assignment, make_product, make_warehouse
from tests.services import REDIS_URL
from webapi import create_app


def membership(warehouse_id: int, user_id: int) -> str:
    return f"/api/v1/warehouses/{warehouse_id}/users/{user_id}"


@pytest.fixture
def assign_to(database: Database, settings: Settings) -> Callable[[int, int], None]:
    return lambda user_id, warehouse_id: make_assignment(database, user_id, warehouse_id, settings)


def warehouses_of(client: FlaskClient, who: Account, user_id: int) -> list[int]:
    answer = client.get(f"/api/v1/users/{user_id}/warehouses", headers=who.headers)
    assert answer.status_code == 200, answer.json
    return [item["warehouse_id"] for item in answer.json["items"]]


def test_admin_assigns_and_removes(
    client: FlaskClient, admin: Account, clerk: Account, database: Database
) -> None:
    warehouse = make_warehouse(database)
    created = client.put(membership(warehouse, clerk.id), headers=admin.headers)
    assert created.status_code == 201
    assert created.json["user_id"] == clerk.id
    assert created.json["warehouse_id"] == warehouse
    assert created.json["assigned_by"] == admin.id
    assert created.json["role"] == "clerk"
    again = client.put(membership(warehouse, clerk.id), headers=admin.headers)
    assert again.status_code == 200
    assert again.json["assigned_at"] == created.json["assigned_at"]
    assert warehouses_of(client, clerk, clerk.id) == [warehouse]
    assert client.delete(membership(warehouse, clerk.id), headers=admin.headers).status_code == 204
    assert client.delete(membership(warehouse, clerk.id), headers=admin.headers).status_code == 204
    assert warehouses_of(client, admin, clerk.id) == []


def test_unknown_ids_are_404(
    client: FlaskClient, admin: Account, clerk: Account, database: Database
) -> None:
    warehouse = make_warehouse(database)
    for url in (
        membership(warehouse, 999_999),
        membership(999_999, clerk.id),
        membership(2**70, clerk.id),
    ):
        for method in (client.put, client.delete):
            answer = method(url, headers=admin.headers)
            assert answer.status_code == 404, url
            assert answer.json["type"] == "/problems/not-found"
    assert client.get("/api/v1/warehouses/999999/users", headers=admin.headers).status_code == 404
    assert client.get("/api/v1/users/999999/warehouses", headers=admin.headers).status_code == 404


@pytest.mark.parametrize(
    ("actor_role", "actor_assigned", "target_role", "allowed"),
    [
        (Role.ADMIN, False, Role.CLERK, True),
        (Role.ADMIN, False, Role.MANAGER, True),
        (Role.MANAGER, True, Role.CLERK, True),
        (Role.MANAGER, True, Role.MANAGER, False),
        (Role.MANAGER, False, Role.CLERK, False),
        (Role.CLERK, True, Role.CLERK, False),
        (Role.CLERK, False, Role.CLERK, False),
    ],
)
def test_who_may_change_assignments(
    client: FlaskClient,
    make_account: Callable[..., Account],
    database: Database,
    assign_to: Callable[[int, int], None],
    actor_role: Role,
    actor_assigned: bool,
    target_role: Role,
    allowed: bool,
) -> None:
    warehouse = make_warehouse(database)
    actor, target = make_account(actor_role), make_account(target_role)
    if actor_assigned:
        assign_to(actor.id, warehouse)
    put = client.put(membership(warehouse, target.id), headers=actor.headers)
    assert put.status_code == (201 if allowed else 403)
    if not allowed:
        assign_to(target.id, warehouse)
    delete = client.delete(membership(warehouse, target.id), headers=actor.headers)
    assert delete.status_code == (204 if allowed else 403)
    if not allowed:
        assert delete.json["type"] == "/problems/forbidden"


@pytest.mark.parametrize("role", [Role.MANAGER, Role.CLERK])
@pytest.mark.parametrize("assigned", [True, False], ids=["assigned", "not-assigned"])
def test_who_sees_a_warehouses_users(
    client: FlaskClient,
    make_account: Callable[..., Account],
    admin: Account,
    database: Database,
    assign_to: Callable[[int, int], None],
    role: Role,
    assigned: bool,
) -> None:
    warehouse = make_warehouse(database)
    colleague, viewer = make_account(Role.CLERK), make_account(role)
    assign_to(colleague.id, warehouse)
    if assigned:
        assign_to(viewer.id, warehouse)
    answer = client.get(f"/api/v1/warehouses/{warehouse}/users", headers=viewer.headers)
    assert answer.status_code == (200 if assigned else 404)
    expected = {colleague.id, viewer.id} if assigned else set()
    if assigned:
        assert {item["user_id"] for item in answer.json["items"]} == expected
    full = client.get(f"/api/v1/warehouses/{warehouse}/users", headers=admin.headers).json
    assert len(full["items"]) == (2 if assigned else 1)
    # users see their own assignments, never someone else's
    assert (
        client.get(f"/api/v1/users/{colleague.id}/warehouses", headers=viewer.headers).status_code
        == 404
    )


def test_listings_page(
    client: FlaskClient,
    admin: Account,
    clerk: Account,
    database: Database,
    assign_to: Callable[[int, int], None],
) -> None:
    warehouses = [make_warehouse(database) for _ in range(5)]
    for warehouse in warehouses:
        assign_to(clerk.id, warehouse)
    first = client.get(
        f"/api/v1/users/{clerk.id}/warehouses", query_string={"limit": 3}, headers=clerk.headers
    ).json
    assert [item["warehouse_id"] for item in first["items"]] == warehouses[:3]
    assert {"code", "name", "assigned_at"} <= set(first["items"][0])
    rest = client.get(
        f"/api/v1/users/{clerk.id}/warehouses",
        query_string={"limit": 3, "cursor": first["next_cursor"]},
        headers=clerk.headers,
    ).json
    assert [item["warehouse_id"] for item in rest["items"]] == warehouses[3:]
    assert rest["next_cursor"] is None


def test_a_removed_assignment_holds_on_the_very_next_request(
    client: FlaskClient, admin: Account, clerk: Account, database: Database, settings: Settings
) -> None:
    warehouse = make_warehouse(database)
    product = make_product(database, admin.id)
    assert client.put(membership(warehouse, clerk.id), headers=admin.headers).status_code == 201
    stock_url = f"/api/v1/warehouses/{warehouse}/stock"
    assert client.get(stock_url, headers=clerk.headers).status_code == 200
    cache = redis.Redis.from_url(REDIS_URL)
    cached = list(cache.scan_iter(match=f"{settings.redis_prefix}assignments:data:{clerk.id}"))
    assert cached, "the lookup was not cached in Redis"
    assert client.get(stock_url, headers=clerk.headers).status_code == 200  # from the cache
    assert client.delete(membership(warehouse, clerk.id), headers=admin.headers).status_code == 204
    assert client.get(stock_url, headers=clerk.headers).status_code == 404
    receipt = {
        "kind": "receipt",
        "product_id": product,
        "to_warehouse_id": warehouse,
        "quantity": 1,
    }
    assert (
        client.post("/api/v1/stock-movements", json=receipt, headers=clerk.headers).status_code
        == 403
    )
    # and a bulk assignment is seen at once too
    bulk = {"pairs": [{"user_id": clerk.id, "warehouse_id": warehouse, "action": "assign"}]}
    assert (
        client.post("/api/v1/assignments/bulk", json=bulk, headers=admin.headers).status_code == 200
    )
    assert client.get(stock_url, headers=clerk.headers).status_code == 200


def pairs(users: list[int], warehouses: list[int], action: str = "assign") -> list[dict[str, Any]]:
    return [{"user_id": u, "warehouse_id": w, "action": action} for u in users for w in warehouses]


def test_bulk_reports_each_pair(
    client: FlaskClient,
    admin: Account,
    make_account: Callable[..., Account],
    database: Database,
    assign_to: Callable[[int, int], None],
) -> None:
    clerks = [make_account(Role.CLERK) for _ in range(3)]
    warehouses = [make_warehouse(database) for _ in range(2)]
    assign_to(clerks[0].id, warehouses[0])
    assign_to(clerks[2].id, warehouses[1])
    body = {
        "pairs": [
            *pairs([clerks[0].id, clerks[1].id], warehouses),
            {"user_id": clerks[2].id, "warehouse_id": warehouses[1], "action": "remove"},
            {"user_id": clerks[2].id, "warehouse_id": warehouses[0], "action": "remove"},
        ]
    }
    answer = client.post("/api/v1/assignments/bulk", json=body, headers=admin.headers)
    assert answer.status_code == 200, answer.json
    assert answer.json["summary"] == {
        "assigned": 3,
        "already_assigned": 1,
        "removed": 1,
        "not_assigned": 1,
    }
    assert [r["outcome"] for r in answer.json["results"]] == [
        "already_assigned",
        "assigned",
        "assigned",
        "assigned",
        "removed",
        "not_assigned",
    ]
    assert warehouses_of(client, admin, clerks[1].id) == warehouses
    assert warehouses_of(client, admin, clerks[2].id) == []


def test_bulk_is_atomic_and_validated(
    client: FlaskClient, admin: Account, clerk: Account, database: Database
) -> None:
    warehouse = make_warehouse(database)
    url = "/api/v1/assignments/bulk"
    unknown = {"pairs": pairs([clerk.id], [warehouse]) + pairs([999_999], [warehouse])}
    answer = client.post(url, json=unknown, headers=admin.headers)
    assert answer.status_code == 422
    assert answer.json["type"] == "/problems/unknown-reference"
    assert answer.json["errors"] == [{"field": "pairs.1", "message": "unknown user or warehouse"}]
    assert warehouses_of(client, admin, clerk.id) == []
    twice = {"pairs": pairs([clerk.id], [warehouse]) * 2}
    assert client.post(url, json=twice, headers=admin.headers).status_code == 400
    bad_action = {"pairs": pairs([clerk.id], [warehouse], action="toggle")}
    assert client.post(url, json=bad_action, headers=admin.headers).status_code == 400
    assert client.post(url, json={"pairs": []}, headers=admin.headers).status_code == 400
    too_many = {"pairs": pairs(list(range(1, 10_002)), [warehouse])}
    oversized = client.post(url, json=too_many, headers=admin.headers)
    assert oversized.status_code == 400
    assert oversized.json["errors"][0]["field"] == "pairs"
    assert (
        client.post(
            url, json={"pairs": pairs([clerk.id], [warehouse])}, headers=clerk.headers
        ).status_code
        == 403
    )


def test_managers_bulk_only_their_clerks_in_their_warehouses(
    client: FlaskClient,
    manager: Account,
    make_account: Callable[..., Account],
    database: Database,
    assign_to: Callable[[int, int], None],
) -> None:
    mine, other = make_warehouse(database), make_warehouse(database)
    assign_to(manager.id, mine)
    clerk, peer = make_account(Role.CLERK), make_account(Role.MANAGER)
    url = "/api/v1/assignments/bulk"
    ok = client.post(url, json={"pairs": pairs([clerk.id], [mine])}, headers=manager.headers)
    assert ok.status_code == 200
    refused = client.post(
        url,
        json={"pairs": pairs([clerk.id], [other]) + pairs([peer.id], [mine])},
        headers=manager.headers,
    )
    assert refused.status_code == 403
    assert [e["field"] for e in refused.json["errors"]] == ["pairs.0", "pairs.1"]


def test_large_bulk_is_queued(
    client: FlaskClient,
    admin: Account,
    make_account: Callable[..., Account],
    database: Database,
    settings: Settings,
) -> None:
    clerks = [make_account(Role.CLERK) for _ in range(26)]
    warehouses = [make_warehouse(database) for _ in range(20)]
    body = {"pairs": pairs([c.id for c in clerks], warehouses)}  # 520 pairs
    answer = client.post("/api/v1/assignments/bulk", json=body, headers=admin.headers)
    assert answer.status_code == 202, answer.json
    assert answer.json["status"] == "queued"
    assert answer.json["total"] == 520
    status = client.get(answer.headers["Location"], headers=admin.headers)
    assert status.status_code == 200
    assert status.json["id"] == answer.json["id"]
    other = make_account(Role.MANAGER)
    assert client.get(answer.headers["Location"], headers=other.headers).status_code == 404
    create_celery_app(settings).control.purge()  # no worker here: drop the queued message


def test_assignment_changes_are_rate_limited(
    settings: Settings,
    database: Database,
    make_account: Callable[..., Account],
) -> None:
    limited = create_app(settings.model_copy(update={"assignment_rate_limit": "3 per minute"}))
    client = limited.test_client()
    admin = make_account(Role.ADMIN)
    warehouse = make_warehouse(database)
    clerk = make_account(Role.CLERK)
    answers = [
        client.put(membership(warehouse, clerk.id), headers=admin.headers).status_code,
        client.delete(membership(warehouse, clerk.id), headers=admin.headers).status_code,
        client.post(
            "/api/v1/assignments/bulk",
            json={"pairs": pairs([clerk.id], [warehouse])},
            headers=admin.headers,
        ).status_code,
        client.put(membership(warehouse, clerk.id), headers=admin.headers).status_code,
    ]
    assert answers == [201, 204, 200, 429]
    # the budget is per user
    other = make_account(Role.ADMIN)
    assert client.put(membership(warehouse, clerk.id), headers=other.headers).status_code == 200
