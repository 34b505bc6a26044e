"""Products over HTTP: the catalogue's shapes, who may do what, bad input, paging, caching."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update

from models import Database, Product, catalog
from tests.conftest import Account

PROBLEM = "application/problem+json"
URL = "/api/v1/products"
FIELDS = {
    "id",
    "owner_id",
    "sku",
    "name",
    "description",
    "price",
    "currency",
    "created_at",
    "updated_at",
    "archived_at",
}


@pytest.fixture
def make_product(client: FlaskClient) -> Callable[..., dict[str, Any]]:
    counter = iter(range(1, 100_000))

    def make(account: Account, **overrides: Any) -> dict[str, Any]:
        number = next(counter)
        body = {"sku": f"SKU-{number}", "name": f"Widget {number}", "price": "9.99"}
        body |= {"currency": "EUR", **overrides}
        answer = client.post(URL, json=body, headers=account.headers)
        assert answer.status_code == 201, answer.json
        return answer.json

    return make


def walk(client: FlaskClient, account: Account, query: str) -> list[dict[str, Any]]:
    """Every item of a listing, following next_cursor to the end."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        url = f"{URL}?{query}" + (f"&cursor={cursor}" if cursor else "")
        answer = client.get(url, headers=account.headers)
        assert answer.status_code == 200, answer.json
        items.extend(answer.json["items"])
        cursor = answer.json["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the listing never ended")


# ---- create ---------------------------------------------------------------------------------


def test_manager_creates_a_product_it_owns(client: FlaskClient, manager: Account) -> None:
    body = {
        "sku": "TEA-1",
        "name": "Green tea",
        "description": "Loose leaf",
        "price": "12.5",
        "currency": "EUR",
    }
    answer = client.post(URL, json=body, headers=manager.headers)
    assert answer.status_code == 201
    product = answer.json
    assert set(product) == FIELDS
    assert product["owner_id"] == manager.id
    assert product["price"] == "12.50"
    assert product["archived_at"] is None
    assert answer.headers["Location"].endswith(f"{URL}/{product['id']}")
    again = client.get(answer.headers["Location"], headers=manager.headers)
    assert again.json == product


def test_price_keeps_four_places_and_never_a_float(client, manager, make_product) -> None:
    assert make_product(manager, price="0.0001")["price"] == "0.0001"
    assert make_product(manager, price="1000000000")["price"] == "1000000000.00"
    assert make_product(manager, price="0")["price"] == "0.00"


def test_admin_may_create_for_another_owner(client, admin: Account, manager: Account) -> None:
    body = {"sku": "A", "name": "n", "price": "1", "currency": "USD", "owner_id": manager.id}
    answer = client.post(URL, json=body, headers=admin.headers)
    assert answer.status_code == 201
    assert answer.json["owner_id"] == manager.id


def test_admin_naming_an_unknown_owner_is_422(client, admin: Account) -> None:
    body = {"sku": "A", "name": "n", "price": "1", "currency": "USD", "owner_id": 999_999}
    answer = client.post(URL, json=body, headers=admin.headers)
    assert answer.status_code == 422
    assert answer.json["type"] == "/problems/unknown-owner"


def test_manager_cannot_create_for_someone_else(client, manager, make_account) -> None:
    other = make_account("manager")
    body = {"sku": "A", "name": "n", "price": "1", "currency": "USD", "owner_id": other.id}
    answer = client.post(URL, json=body, headers=manager.headers)
    assert answer.status_code == 403
    body["owner_id"] = manager.id
    assert client.post(URL, json=body, headers=manager.headers).status_code == 201


def test_clerk_cannot_create(client, clerk: Account) -> None:
    body = {"sku": "A", "name": "n", "price": "1", "currency": "USD"}
    answer = client.post(URL, json=body, headers=clerk.headers)
    assert answer.status_code == 403
    assert answer.content_type == PROBLEM


def test_anonymous_cannot_read_or_write(client) -> None:
    assert client.get(URL).status_code == 401
    assert client.get(f"{URL}/1").status_code == 401
    assert client.post(URL, json={}).status_code == 401


def test_sku_is_unique_per_owner(client, manager, make_account, make_product) -> None:
    make_product(manager, sku="DUP")
    answer = client.post(
        URL,
        json={"sku": "DUP", "name": "x", "price": "1", "currency": "EUR"},
        headers=manager.headers,
    )
    assert answer.status_code == 409
    assert answer.content_type == PROBLEM
    assert answer.json["type"] == "/problems/sku-taken"
    other = make_account("manager")
    assert make_product(other, sku="DUP")["owner_id"] == other.id


def test_concurrent_creates_of_one_sku_give_one_product(app, manager: Account) -> None:
    """No check-then-insert: racing requests meet the unique constraint, none answers 500."""
    body = {"sku": "RACE", "name": "x", "price": "1", "currency": "EUR"}
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        client = app.test_client()
        barrier.wait()
        statuses.append(client.post(URL, json=body, headers=manager.headers).status_code)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] + [409] * 7


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "n", "price": "1", "currency": "EUR"}, "sku"),
        ({"sku": "A", "price": "1", "currency": "EUR"}, "name"),
        ({"sku": "A", "name": "n", "currency": "EUR"}, "price"),
        ({"sku": "A", "name": "n", "price": "1"}, "currency"),
        ({"sku": "A", "name": "n", "price": 19.99, "currency": "EUR"}, "price"),
        ({"sku": "A", "name": "n", "price": "-1", "currency": "EUR"}, "price"),
        ({"sku": "A", "name": "n", "price": "1.23456", "currency": "EUR"}, "price"),
        ({"sku": "A", "name": "n", "price": "abc", "currency": "EUR"}, "price"),
        ({"sku": "A", "name": "n", "price": "1e3", "currency": "EUR"}, "price"),
        ({"sku": "A", "name": "n", "price": "NaN", "currency": "EUR"}, "price"),
        ({"sku": "A", "name": "n", "price": "1000000000.01", "currency": "EUR"}, "price"),
        ({"sku": "A", "name": "n", "price": None, "currency": "EUR"}, "price"),
        ({"sku": "A", "name": "n", "price": "1", "currency": "eur"}, "currency"),
        ({"sku": "A", "name": "n", "price": "1", "currency": "EURO"}, "currency"),
        ({"sku": "A", "name": "n", "price": "1", "currency": 978}, "currency"),
        ({"sku": "A B", "name": "n", "price": "1", "currency": "EUR"}, "sku"),
        ({"sku": "A" * 65, "name": "n", "price": "1", "currency": "EUR"}, "sku"),
        ({"sku": 7, "name": "n", "price": "1", "currency": "EUR"}, "sku"),
        ({"sku": "A", "name": "", "price": "1", "currency": "EUR"}, "name"),
        ({"sku": "A", "name": "   ", "price": "1", "currency": "EUR"}, "name"),
        ({"sku": "A", "name": "a\x00b", "price": "1", "currency": "EUR"}, "name"),
        ({"sku": "A", "name": "n" * 301, "price": "1", "currency": "EUR"}, "name"),
        ({"sku": "A", "name": "n", "price": "1", "currency": "EUR", "colour": "red"}, "colour"),
        ({"sku": "A", "name": "n", "price": "1", "currency": "EUR", "owner_id": "1"}, "owner_id"),
        ({"sku": "A", "name": "n", "price": "1", "currency": "EUR", "id": 5}, "id"),
    ],
)
def test_create_bad_input_names_the_field(client, admin: Account, body, field) -> None:
    answer = client.post(URL, json=body, headers=admin.headers)
    assert answer.status_code == 400, answer.json
    assert answer.content_type == PROBLEM
    assert answer.json["type"] == "/problems/validation-error"
    assert field in {error["field"] for error in answer.json["errors"]}


def test_malformed_json_and_wrong_media_type(client, manager: Account) -> None:
    headers = {**manager.headers, "Content-Type": "application/json"}
    answer = client.post(URL, data='{"sku": "A",', headers=headers)
    assert answer.status_code == 400
    assert answer.json["type"] == "/problems/malformed-json"
    answer = client.post(
        URL, data="sku=A", headers={**manager.headers, "Content-Type": "text/plain"}
    )
    assert answer.status_code == 415
    for not_an_object in ([], "text", 5):
        assert client.post(URL, json=not_an_object, headers=manager.headers).status_code == 400


# ---- read -----------------------------------------------------------------------------------


def test_every_role_reads_any_product(client, manager, clerk, admin, make_product) -> None:
    product = make_product(manager)
    for reader in (clerk, admin, manager):
        answer = client.get(f"{URL}/{product['id']}", headers=reader.headers)
        assert answer.status_code == 200
        assert answer.json == product


def test_unknown_product_is_404(client, clerk: Account) -> None:
    for product_id in ("424242", str(2**63 - 1), str(2**64), "-1", "abc"):
        answer = client.get(f"{URL}/{product_id}", headers=clerk.headers)
        assert answer.status_code == 404, product_id
        assert answer.content_type == PROBLEM


# ---- update ---------------------------------------------------------------------------------


def test_owner_updates_its_product(client, manager: Account, make_product) -> None:
    product = make_product(manager)
    changes = {"name": "Renamed", "price": "5.25", "description": None, "currency": "GBP"}
    answer = client.patch(f"{URL}/{product['id']}", json=changes, headers=manager.headers)
    assert answer.status_code == 200
    assert {key: answer.json[key] for key in changes} == changes
    assert answer.json["updated_at"] > product["updated_at"]
    assert answer.json["created_at"] == product["created_at"]


def test_update_authorization_matrix(client, admin, manager, clerk, make_account, make_product):
    product = make_product(manager)
    other_manager = make_account("manager")
    path = f"{URL}/{product['id']}"
    assert client.patch(path, json={"name": "x"}, headers=clerk.headers).status_code == 403
    refused = client.patch(path, json={"name": "x"}, headers=other_manager.headers)
    assert refused.status_code == 403
    assert refused.json["type"] == "/problems/not-owner"
    assert client.patch(path, json={"name": "by admin"}, headers=admin.headers).status_code == 200
    assert client.patch(path, json={"name": "by owner"}, headers=manager.headers).status_code == 200
    assert client.get(path, headers=clerk.headers).json["name"] == "by owner"


def test_only_admins_move_a_product_to_another_owner(
    client, admin, manager, make_account, make_product
):
    product = make_product(manager)
    other = make_account("manager")
    path = f"{URL}/{product['id']}"
    assert (
        client.patch(path, json={"owner_id": other.id}, headers=manager.headers).status_code == 403
    )
    moved = client.patch(path, json={"owner_id": other.id}, headers=admin.headers)
    assert moved.status_code == 200
    assert moved.json["owner_id"] == other.id
    assert client.patch(path, json={"name": "x"}, headers=manager.headers).status_code == 403


def test_update_into_a_taken_sku_is_409(client, manager: Account, make_product) -> None:
    make_product(manager, sku="ONE")
    two = make_product(manager, sku="TWO")
    answer = client.patch(f"{URL}/{two['id']}", json={"sku": "ONE"}, headers=manager.headers)
    assert answer.status_code == 409
    assert answer.json["type"] == "/problems/sku-taken"
    assert client.get(f"{URL}/{two['id']}", headers=manager.headers).json["sku"] == "TWO"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"price": "-0.01"}, "price"),
        ({"price": 3}, "price"),
        ({"name": None}, "name"),
        ({"currency": "usd"}, "currency"),
        ({"sku": ""}, "sku"),
        ({"archived_at": None}, "archived_at"),
        ({"owner_id": "two"}, "owner_id"),
    ],
)
def test_update_bad_input(client, manager: Account, make_product, body, field) -> None:
    product = make_product(manager)
    answer = client.patch(f"{URL}/{product['id']}", json=body, headers=manager.headers)
    assert answer.status_code == 400
    assert field in {error["field"] for error in answer.json["errors"]}


def test_update_of_unknown_product_is_404(client, admin: Account) -> None:
    assert client.patch(f"{URL}/999", json={"name": "x"}, headers=admin.headers).status_code == 404
    assert client.delete(f"{URL}/999", headers=admin.headers).status_code == 404


# ---- archive --------------------------------------------------------------------------------


def test_archive_hides_from_listings_but_not_from_reads(client, manager, clerk, make_product):
    kept = make_product(manager)
    gone = make_product(manager)
    answer = client.delete(f"{URL}/{gone['id']}", headers=manager.headers)
    assert answer.status_code == 204
    assert answer.data == b""
    read = client.get(f"{URL}/{gone['id']}", headers=clerk.headers).json
    assert read["archived_at"] is not None
    assert [p["id"] for p in walk(client, clerk, "limit=50")] == [kept["id"]]
    everything = walk(client, clerk, "archived=true")
    assert [p["id"] for p in everything] == [kept["id"], gone["id"]]
    again = client.delete(f"{URL}/{gone['id']}", headers=manager.headers)
    assert again.status_code == 204
    assert client.get(f"{URL}/{gone['id']}", headers=clerk.headers).json == read


def test_archive_authorization(client, admin, manager, clerk, make_account, make_product) -> None:
    product = make_product(manager)
    path = f"{URL}/{product['id']}"
    assert client.delete(path, headers=clerk.headers).status_code == 403
    assert client.delete(path, headers=make_account("manager").headers).status_code == 403
    assert client.delete(path, headers=admin.headers).status_code == 204


# ---- listing --------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["created_at", "-created_at"])
def test_walking_all_pages_has_no_duplicates_or_gaps(client, manager, make_product, order):
    created = [make_product(manager)["id"] for _ in range(23)]
    seen = walk(client, manager, f"limit=5&order={order}")
    expected = created if order == "created_at" else created[::-1]
    assert [p["id"] for p in seen] == expected


def test_rows_with_the_same_timestamp_are_paged_by_id(
    client, manager, make_product, database: Database
) -> None:
    created = [make_product(manager)["id"] for _ in range(7)]
    instant = datetime(2030, 1, 1, tzinfo=UTC)
    with database.transaction() as session:
        session.execute(update(Product).values(created_at=instant))
    for order, expected in (("created_at", created), ("-created_at", created[::-1])):
        seen = walk(client, manager, f"limit=2&order={order}")
        assert [p["id"] for p in seen] == expected


def test_limit_defaults_to_50_and_stops_at_200(client, manager: Account, database) -> None:
    with database.transaction() as session:
        session.add_all(
            Product(owner_id=manager.id, sku=f"S{i}", name="n", price=1, currency="EUR")
            for i in range(205)
        )
    first = client.get(URL, headers=manager.headers).json
    assert len(first["items"]) == 50
    assert first["next_cursor"]
    assert len(client.get(f"{URL}?limit=200", headers=manager.headers).json["items"]) == 200
    assert len(walk(client, manager, "limit=200")) == 205


def test_filters(client, manager, make_account, make_product, database) -> None:
    other = make_account("manager")
    tea = make_product(manager, name="Green TEA 100% organic", sku="TEA")
    make_product(manager, name="Coffee", sku="COF")
    theirs = make_product(other, name="Black tea", sku="TEA")

    def ids(query: str) -> list[int]:
        return [p["id"] for p in walk(client, manager, query)]

    assert ids(f"owner_id={other.id}") == [theirs["id"]]
    assert ids("sku=TEA") == [tea["id"], theirs["id"]]
    assert ids("q=tea") == [tea["id"], theirs["id"]]
    assert ids("q=100%25") == [tea["id"]]
    assert ids("q=_") == []
    past = datetime.now(UTC) - timedelta(days=1)
    with database.transaction() as session:
        session.execute(update(Product).where(Product.id != tea["id"]).values(updated_at=past))
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert ids(f"updated_since={since.replace('+', '%2B')}") == [tea["id"]]


def _cursor_of(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=201",
        "limit=abc",
        "cursor=not-a-cursor",
        "cursor=" + _cursor_of([1]),
        "cursor=" + _cursor_of(["x", "y"]),
        "cursor=" + _cursor_of([{"dt": "2020-01-01T00:00:00"}, 1]),
        "cursor=" + _cursor_of([{"dt": "2020-01-01T00:00:00+00:00"}, 2**70]),
        "cursor=" + _cursor_of([{"dt": "2020-01-01T00:00:00+00:00"}, True]),
        "cursor=" + _cursor_of([{"dt": "not a date"}, 1]),
        # Nested past Python's recursion limit: once a 500 (RecursionError).
        "cursor=" + base64.urlsafe_b64encode(b"[" * 2000).decode().rstrip("="),
        "order=price",
        "owner_id=abc",
        f"owner_id={2**63}",
        "updated_since=yesterday",
        "archived=maybe",
        "q=",
        "q=%00",
    ],
)
def test_listing_bad_input_is_400(client, clerk: Account, query: str) -> None:
    answer = client.get(f"{URL}?{query}", headers=clerk.headers)
    assert answer.status_code == 400, answer.json
    assert answer.content_type == PROBLEM


# ---- ETags and the cache --------------------------------------------------------------------


def test_etag_gives_304_until_the_product_changes(client, manager, clerk, make_product) -> None:
    product = make_product(manager)
    for path in (URL, f"{URL}/{product['id']}"):
        first = client.get(path, headers=clerk.headers)
        etag = first.headers["ETag"]
        assert first.headers["Cache-Control"] == "private, no-cache"
        same = client.get(path, headers={**clerk.headers, "If-None-Match": etag})
        assert same.status_code == 304
        assert same.data == b""
        other = client.get(path, headers={**clerk.headers, "If-None-Match": '"stale"'})
        assert other.status_code == 200
    etags = {path: client.get(path, headers=clerk.headers).headers["ETag"] for path in (URL,)}
    client.patch(f"{URL}/{product['id']}", json={"name": "new"}, headers=manager.headers)
    changed = client.get(URL, headers={**clerk.headers, "If-None-Match": etags[URL]})
    assert changed.status_code == 200
    assert changed.json["items"][0]["name"] == "new"


def _rename_behind_the_apis_back(database: Database, product_id: int, name: str) -> None:
    with database.transaction() as session:
        session.execute(update(Product).where(Product.id == product_id).values(name=name))


def test_reads_are_cached_and_a_write_through_the_api_invalidates(
    client, manager, clerk, make_product, database
) -> None:
    product = make_product(manager)
    path = f"{URL}/{product['id']}"
    assert client.get(path, headers=clerk.headers).json["name"] == product["name"]
    assert client.get(URL, headers=clerk.headers).json["items"][0]["name"] == product["name"]
    # A change the API did not make is not seen: the answers come from the cache.
    _rename_behind_the_apis_back(database, product["id"], "changed in SQL")
    assert client.get(path, headers=clerk.headers).json["name"] == product["name"]
    assert client.get(URL, headers=clerk.headers).json["items"][0]["name"] == product["name"]
    # A write through the API is seen on the very next read, by anyone.
    client.patch(path, json={"price": "1.00"}, headers=manager.headers)
    assert client.get(path, headers=clerk.headers).json["name"] == "changed in SQL"
    assert client.get(URL, headers=clerk.headers).json["items"][0]["price"] == "1.00"


def test_each_write_kind_invalidates_listings(client, manager, clerk, make_product) -> None:
    assert client.get(URL, headers=clerk.headers).json["items"] == []
    product = make_product(manager)
    assert [p["id"] for p in client.get(URL, headers=clerk.headers).json["items"]] == [
        product["id"]
    ]
    client.patch(f"{URL}/{product['id']}", json={"name": "v2"}, headers=manager.headers)
    assert client.get(URL, headers=clerk.headers).json["items"][0]["name"] == "v2"
    client.delete(f"{URL}/{product['id']}", headers=manager.headers)
    assert client.get(URL, headers=clerk.headers).json["items"] == []


def test_owner_listings_survive_writes_to_other_owners(
    client, manager, clerk, make_account, make_product, database
) -> None:
    """Per-owner versions: one manager's writes do not evict another owner's listings."""
    mine = make_product(manager)
    other = make_account("manager")
    own_listing = f"{URL}?owner_id={manager.id}"
    assert client.get(own_listing, headers=clerk.headers).json["items"][0]["name"] == mine["name"]
    _rename_behind_the_apis_back(database, mine["id"], "changed in SQL")
    make_product(other)
    assert client.get(own_listing, headers=clerk.headers).json["items"][0]["name"] == mine["name"]
    everything = client.get(URL, headers=clerk.headers).json["items"]
    assert everything[0]["name"] == "changed in SQL"


def test_the_fast_serializer_matches_the_documented_schema(
    client, manager, make_product, database
) -> None:
    from webapi.product_schemas import ProductSchema, product_json, product_rows_json
    from webapi.products import _dumps

    kept = make_product(manager, description="d", price="0.0001")
    gone = make_product(manager)
    client.delete(f"{URL}/{gone['id']}", headers=manager.headers)
    with database.session() as session:
        for product_id in (kept["id"], gone["id"]):
            product = session.get(Product, product_id)
            assert product_json(product) == ProductSchema().dump(product)
        narrowing = catalog.ProductFilter(include_archived=True)
        products = session.scalars(catalog.products_query(narrowing).order_by(Product.id)).all()
        rows = session.execute(
            catalog.product_rows_query(narrowing).order_by(Product.id),
            bind_arguments={"mapper": Product},
        ).all()
        assert _dumps(product_rows_json(rows)) == _dumps([product_json(p) for p in products])


@pytest.mark.parametrize(
    "text",
    [
        "".join(map(chr, range(128))),
        'quote " backslash \\ slash / tab \t',
        "caf\u00e9 \u2028 \u2029 \ufeff \U0001f600 \u00a0 \u0000",
    ],
)
def test_bodies_are_encoded_as_json_dumps_encodes_them(text: str) -> None:
    from webapi.products import _dumps

    data = {"items": [{"id": 2**63 - 1, "name": text, "description": None}], "next": "x"}
    expected = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    assert _dumps(data) == expected


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 26, 21, 5, 7, 123456, tzinfo=UTC),
        datetime(2026, 11, 26, 21, 5, 7, tzinfo=UTC),  # no microseconds: none written
        datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_timestamps_are_encoded_as_isoformat_writes_them(moment: datetime) -> None:
    """Listing pages hand datetimes to the encoder instead of ``isoformat()`` strings."""
    from webapi.products import _dumps

    expected = json.dumps({"created_at": moment.isoformat()}, separators=(",", ":")).encode()
    assert _dumps({"created_at": moment}) == expected
