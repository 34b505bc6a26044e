"""Plain stock movements applied before Flask (``webapi.movement_shortcut``): the same answers
and effects as the Flask path, and every unusual request or refusal left to Flask."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask, request
from flask.testing import FlaskClient
from sqlalchemy.exc import OperationalError
from werkzeug.test import Client, TestResponse

from models import Database
from models.assignments import AssignmentCache
from shelfwatch import migrate
from shelfwatch.config import Settings
from tests import services as test_services
from tests.conftest import Account
from tests.inventory_factories import (
    levels_and_ledger,
    make_assignment,
    make_product,
    make_warehouse,
    movement_count,
)
from tests.services import REDIS_URL
from tests.webapi.test_cache_hits import layer_of, watch_flask
from tests.webapi.test_metrics import scrape, value
from tests.webapi.test_stock_movements import Stockroom
from webapi import create_app, movement_shortcut
from webapi.auth_cache import sentinel_key
from webapi.movement_shortcut import MovementShortcut
from webapi.ratelimit import limits_on_every_route
from webapi.replicas import wrote_recently

URL = "/api/v1/stock-movements"
PROBLEM = "application/problem+json"


@pytest.fixture
def through_flask(app: Flask) -> list[str]:
    return watch_flask(app)


@pytest.fixture
def room(database: Database, admin: Account) -> Stockroom:
    warehouses = [make_warehouse(database) for _ in range(3)]
    return Stockroom(make_product(database, admin.id), *warehouses)


@pytest.fixture(scope="module")
def replica_url() -> Iterator[str]:
    with test_services.postgres_database(test_services.unique_name("swreplica")) as url:
        migrate.upgrade(test_services.test_settings(url, "unused"))
        yield url


@pytest.fixture
def mover(
    client: FlaskClient, make_account, admin: Account, room: Stockroom, database, settings
) -> Account:
    """A manager assigned to w1 and w2 (not w3), w1 holding 100 units, the manager's
    assignments cached in Redis (its first movement went through Flask, which cached them)."""
    manager = make_account("manager")
    make_assignment(database, manager.id, room.w1, settings)
    make_assignment(database, manager.id, room.w2, settings)
    assert post(client, admin, receipt(room, room.w1, 90)).status_code == 201
    assert post(client, manager, receipt(room, room.w1, 10)).status_code == 201
    return manager


def post(client: FlaskClient | Client, who: Account, body: Any, **headers: str) -> TestResponse:
    return client.post(URL, json=body, headers={**who.headers, **headers})


def receipt(room: Stockroom, warehouse: int, quantity: int) -> dict[str, Any]:
    return {
        "kind": "receipt",
        "product_id": room.product_id,
        "to_warehouse_id": warehouse,
        "quantity": quantity,
    }


def transfer(room: Stockroom, quantity: int, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "transfer",
        "product_id": room.product_id,
        "from_warehouse_id": room.w1,
        "to_warehouse_id": room.w2,
        "quantity": quantity,
        **extra,
    }


def shortcut_of(app: Flask) -> MovementShortcut:
    return layer_of(app, MovementShortcut)


def flask_path(app: Flask) -> Client:
    """A client of the app behind the shortcut: the answer the shortcut's must equal."""
    return Client(shortcut_of(app).wsgi_app)


def without_new_values(answer: TestResponse) -> tuple[Any, ...]:
    """An answer to a fresh movement without what differs between two movements."""
    body = dict(answer.json)
    del body["id"], body["created_at"]
    headers = {k: v for k, v in answer.headers.items() if k not in ("Location", "Content-Length")}
    return answer.status, headers, body, answer.headers["Location"].rsplit("/", 1)[0]


BODIES = [
    lambda room: transfer(room, 3),
    lambda room: transfer(room, 2, reference="PO-1", note='élan \u2028 "quoted"'),
    lambda room: {
        "kind": "shipment",
        "product_id": room.product_id,
        "from_warehouse_id": room.w1,
        "quantity": 1,
        "to_warehouse_id": None,
    },
    lambda room: receipt(room, room.w2, 4),
    lambda room: {
        "kind": "adjustment",
        "product_id": room.product_id,
        "warehouse_id": room.w1,
        "quantity": -2,
        "reason": "counted",
    },
]


@pytest.mark.parametrize("make_body", BODIES)
def test_a_plain_movement_is_applied_before_flask_as_flask_applies_it(
    through_flask, app, client, mover, room, database, make_body
) -> None:
    body = make_body(room)
    seen = len(through_flask)
    early = post(client, mover, body)
    assert len(through_flask) == seen, "a plain movement went through Flask"
    assert early.status_code == 201
    late = post(flask_path(app), mover, body)
    assert len(through_flask) == seen + 1
    assert without_new_values(early) == without_new_values(late)
    assert early.headers["Location"] == f"{URL}/{early.json['id']}"
    stored = client.get(early.headers["Location"], headers=mover.headers)
    assert stored.json == early.json
    assert all(
        level == ledger for level, ledger in levels_and_ledger(database, room.product_id).values()
    )


def test_keyed_movements_and_replays_are_byte_identical_to_flask(
    through_flask, app, client, mover, room, database
) -> None:
    key = {"Idempotency-Key": "order-7"}
    seen = len(through_flask)
    first = post(client, mover, transfer(room, 5), **key)
    replay = post(client, mover, transfer(room, 5), **key)
    assert len(through_flask) == seen
    flask_replay = post(flask_path(app), mover, transfer(room, 5), **key)
    assert (replay.status, replay.get_data()) == (flask_replay.status, flask_replay.get_data())
    assert list(replay.headers.items()) == list(flask_replay.headers.items())
    assert replay.headers["Idempotent-Replayed"] == "true"
    # The fresh answer, rendered from the request, is the stored row's rendering.
    assert first.get_data() == replay.get_data()
    assert "Idempotent-Replayed" not in first.headers
    assert movement_count(database) == 3  # the two receipts and this transfer, once


def test_a_fresh_answer_has_flasks_headers_in_flasks_order(app, client, mover, room) -> None:
    early = post(client, mover, transfer(room, 1))
    late = post(flask_path(app), mover, transfer(room, 1))
    assert [name for name, _ in early.headers.items()] == [name for name, _ in late.headers.items()]
    assert early.content_type == "application/json"
    assert early.get_data().endswith(b"}\n")


def test_short_stock_is_refused_by_flask_and_changes_nothing(
    through_flask, client, mover, room, database
) -> None:
    before = levels_and_ledger(database, room.product_id)
    seen = len(through_flask)
    refused = post(client, mover, transfer(room, 101))
    assert len(through_flask) == seen + 1
    assert refused.status_code == 409
    assert refused.content_type == PROBLEM
    assert refused.json["type"] == "/problems/insufficient-stock"
    assert refused.json["available"] == 100
    assert levels_and_ledger(database, room.product_id) == before


def test_a_key_reused_with_another_body_is_refused_by_flask(
    through_flask, client, mover, room
) -> None:
    assert post(client, mover, transfer(room, 1), **{"Idempotency-Key": "k"}).status_code == 201
    seen = len(through_flask)
    other = post(client, mover, transfer(room, 2), **{"Idempotency-Key": "k"})
    assert len(through_flask) == seen + 1
    assert other.status_code == 422
    assert other.json["type"] == "/problems/idempotency-key-reused"


@pytest.mark.parametrize(
    ("change", "status", "type_"),
    [
        (lambda room: ({**transfer(room, 1), "to_warehouse_id": room.w3}, {}), 403, "not-assigned"),
        (lambda room: ({**transfer(room, 1), "product_id": 999_999}, {}), 422, "unknown-product"),
        (lambda room: ({**transfer(room, 1), "quantity": 0}, {}), 400, "validation-error"),
        (lambda room: ({**transfer(room, 1), "extra": 1}, {}), 400, "validation-error"),
        (lambda room: ({**transfer(room, 1), "quantity": "1"}, {}), 400, "validation-error"),
        (lambda room: ([transfer(room, 1)], {}), 400, "validation-error"),
        (
            lambda room: (transfer(room, 1), {"Idempotency-Key": "batch:1"}),
            400,
            "invalid-idempotency-key",
        ),
        (lambda room: (transfer(room, 1), {"Authorization": "Bearer nope"}), 401, "invalid-token"),
    ],
)
def test_refusals_are_left_to_flask(
    through_flask, client, mover, room, database, change, status, type_
) -> None:
    body, headers = change(room)
    before = movement_count(database)
    seen = len(through_flask)
    answer = post(client, mover, body, **headers)
    assert len(through_flask) == seen + 1
    assert answer.status_code == status, answer.json
    assert answer.json["type"] == f"/problems/{type_}"
    assert movement_count(database) == before


def test_unusual_requests_are_left_to_flask(through_flask, client, mover, room) -> None:
    body = transfer(room, 1)
    raw = json.dumps(body).encode()
    cases = [
        ({"data": raw, "content_type": "text/plain"}, 415),
        ({"data": raw, "content_type": "application/json; charset=utf-8"}, 201),
        ({"data": b"{not json", "content_type": "application/json"}, 400),
        ({"data": raw, "content_type": "application/json", "query_string": "async=false"}, 201),
        ({"data": raw + b" " * 20_000, "content_type": "application/json"}, 201),
    ]
    for options, status in cases:
        seen = len(through_flask)
        answer = client.post(URL, headers=mover.headers, **options)
        assert len(through_flask) == seen + 1, options
        assert answer.status_code == status, (options, answer.json)


def test_assignments_not_in_redis_are_read_by_flask_then_cached(
    through_flask, client, mover, room, settings: Settings
) -> None:
    keys = AssignmentCache(None, settings.redis_prefix, 60).keys(mover.id)
    redis.Redis.from_url(REDIS_URL).delete(keys[1])
    seen = len(through_flask)
    assert post(client, mover, transfer(room, 1)).status_code == 201
    assert post(client, mover, transfer(room, 1)).status_code == 201
    assert len(through_flask) == seen + 1  # the first read them and cached them again


def test_a_removed_assignment_refuses_the_next_movement(client, admin, mover, room) -> None:
    assert post(client, mover, transfer(room, 1)).status_code == 201
    removed = client.delete(f"/api/v1/warehouses/{room.w2}/users/{mover.id}", headers=admin.headers)
    assert removed.status_code == 204, removed.json
    answer = post(client, mover, transfer(room, 1))
    assert answer.status_code == 403
    assert answer.json["type"] == "/problems/not-assigned"


def test_a_logged_out_token_is_refused_on_the_next_movement(client, mover, room) -> None:
    assert post(client, mover, transfer(room, 1)).status_code == 201
    assert client.post("/api/v1/auth/logout", headers=mover.headers).status_code == 204
    answer = post(client, mover, transfer(room, 1))
    assert answer.status_code == 401
    assert answer.json["type"] == "/problems/revoked-token"


def test_an_unvouched_revocation_copy_sends_the_movement_to_flask(
    through_flask, client, mover, room, settings: Settings
) -> None:
    redis.Redis.from_url(REDIS_URL).delete(sentinel_key(settings.redis_prefix))
    seen = len(through_flask)
    assert post(client, mover, transfer(room, 1)).status_code == 201
    assert len(through_flask) == seen + 1


def test_admins_move_stock_anywhere_before_flask(through_flask, client, admin, room) -> None:
    assert post(client, admin, receipt(room, room.w3, 5)).status_code == 201
    seen = len(through_flask)
    assert post(client, admin, receipt(room, room.w3, 5)).status_code == 201
    assert len(through_flask) == seen


def test_movements_work_while_redis_is_down(settings: Settings, database, admin, room) -> None:
    down = create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    client = down.test_client()
    for _ in range(2):
        assert post(client, admin, receipt(room, room.w1, 1)).status_code == 201
    assert shortcut_of(down).auth.paused_until > 0
    assert levels_and_ledger(database, room.product_id) == {room.w1: (2, 2)}


def test_a_database_error_is_answered_by_flask_without_a_second_run(
    through_flask, client, mover, room, monkeypatch
) -> None:
    calls = []

    def failing(*args: Any, **kwargs: Any) -> None:
        calls.append(args)
        raise OperationalError("SELECT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(movement_shortcut, "move_stock", failing)
    seen = len(through_flask)
    answer = post(client, mover, transfer(room, 1))
    assert answer.status_code == 503
    assert answer.content_type == PROBLEM
    assert answer.json["type"] == "/problems/database-unavailable"
    assert answer.headers["Retry-After"] == "1"
    assert len(calls) == 1
    assert len(through_flask) == seen  # the view did not run


def test_movements_are_counted_in_the_metrics(client, mover, room) -> None:
    labels = {"method": "POST", "endpoint": URL, "status": "201"}
    name = "shelfwatch_http_requests_total"
    before = value(scrape(client), name, **labels) or 0
    for _ in range(3):
        assert post(client, mover, transfer(room, 1)).status_code == 201
    assert value(scrape(client), name, **labels) == before + 3


def test_movements_carry_no_rate_limit(app, mover, room) -> None:
    """The shortcut counts no request against a limit: it relies on the route having none
    (a limit on it needs the shortcut to leave the route to Flask)."""
    assert not limits_on_every_route()
    answer = post(flask_path(app), mover, transfer(room, 1))
    assert answer.status_code == 201
    assert not [name for name, _ in answer.headers.items() if name.startswith("X-RateLimit")]


def test_a_movement_makes_the_writer_read_from_the_primary(
    settings: Settings,
    database: Database,
    mover,
    room,
    replica_url: str,
) -> None:
    routed = create_app(settings.model_copy(update={"database_replica_urls": [replica_url]}))
    dispatched: list[str] = []
    routed.url_value_preprocessor(lambda _endpoint, _values: dispatched.append(request.path))
    assert post(routed.test_client(), mover, transfer(room, 1)).status_code == 201
    assert dispatched == []  # answered before Flask
    with routed.test_request_context():
        assert wrote_recently(mover.id)


def test_an_untrusted_host_is_refused_by_flask(through_flask, app, client, mover, room) -> None:
    assert post(client, mover, transfer(room, 1)).status_code == 201  # the rule remembered
    app.config["TRUSTED_HOSTS"] = ["localhost"]
    seen = len(through_flask)
    assert post(client, mover, transfer(room, 1)).status_code == 201
    assert len(through_flask) == seen
    refused = client.post(
        URL, json=transfer(room, 1), headers={**mover.headers, "Host": "elsewhere.example"}
    )
    assert refused.status_code == 400
    assert refused.content_type == PROBLEM


def test_a_database_that_cannot_be_reached_is_a_503(
    settings: Settings, database, admin, room, client
) -> None:
    assert post(client, admin, receipt(room, room.w1, 1)).status_code == 201  # caches the user
    unreachable = settings.database_url.replace(":5432/", ":1/")
    down = create_app(settings.model_copy(update={"database_url": unreachable}))
    answer = post(down.test_client(), admin, receipt(room, room.w1, 1))
    assert answer.status_code == 503
    assert answer.content_type == PROBLEM
    assert answer.json["type"] == "/problems/database-unavailable"
