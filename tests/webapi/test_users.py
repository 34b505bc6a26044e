"""User management: admins list, create, change roles and deactivate; others see themselves."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.conftest import PASSWORD, Account


def test_admin_creates_users_with_roles(client: FlaskClient, admin: Account) -> None:
    body = {"email": "m@example.com", "password": PASSWORD, "role": "manager"}
    created = client.post("/api/v1/users", json=body, headers=admin.headers)
    assert created.status_code == 201
    assert created.json["role"] == "manager"
    duplicate = client.post("/api/v1/users", json=body, headers=admin.headers)
    assert duplicate.status_code == 409
    assert duplicate.json["type"] == "/problems/email-taken"
    bad_role = client.post(
        "/api/v1/users",
        json={**body, "email": "x@example.com", "role": "root"},
        headers=admin.headers,
    )
    assert bad_role.status_code == 400
    assert bad_role.json["errors"][0]["field"] == "role"


def test_only_admins_manage_users(client: FlaskClient, manager: Account, clerk: Account) -> None:
    for account in (manager, clerk):
        assert client.get("/api/v1/users", headers=account.headers).status_code == 403
        created = client.post(
            "/api/v1/users",
            json={"email": "z@example.com", "password": PASSWORD},
            headers=account.headers,
        )
        assert created.status_code == 403
        patched = client.patch(
            f"/api/v1/users/{clerk.id}", json={"role": "admin"}, headers=account.headers
        )
        assert patched.status_code == 403
    assert client.get(f"/api/v1/users/{manager.id}", headers=clerk.headers).status_code == 404
    assert client.get(f"/api/v1/users/{clerk.id}", headers=clerk.headers).status_code == 200


def test_role_change_takes_effect_on_the_next_request(
    client: FlaskClient, admin: Account, clerk: Account
) -> None:
    assert client.get("/api/v1/users/me", headers=clerk.headers).json["role"] == "clerk"
    promoted = client.patch(
        f"/api/v1/users/{clerk.id}", json={"role": "manager"}, headers=admin.headers
    )
    assert promoted.status_code == 200
    assert client.get("/api/v1/users/me", headers=clerk.headers).json["role"] == "manager"


def test_admins_cannot_demote_themselves(client: FlaskClient, admin: Account) -> None:
    answer = client.patch(
        f"/api/v1/users/{admin.id}", json={"role": "clerk"}, headers=admin.headers
    )
    assert answer.status_code == 409
    assert client.get("/api/v1/users/me", headers=admin.headers).json["role"] == "admin"


def test_listing_pages_and_filters(client: FlaskClient, admin: Account, make_account) -> None:
    for _ in range(5):
        make_account("clerk")
    make_account("manager")
    seen: list[int] = []
    cursor = None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/users", query_string=query, headers=admin.headers).json
        seen.extend(user["id"] for user in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 7
    assert seen == sorted(seen)
    managers = client.get("/api/v1/users?role=manager", headers=admin.headers).json["items"]
    assert [user["role"] for user in managers] == ["manager"]


def test_bad_input_on_user_endpoints(client: FlaskClient, admin: Account) -> None:
    cases = [
        client.get("/api/v1/users?limit=0", headers=admin.headers),
        client.get("/api/v1/users?limit=abc", headers=admin.headers),
        client.get("/api/v1/users?cursor=%%%", headers=admin.headers),
        client.get("/api/v1/users?role=emperor", headers=admin.headers),
        client.patch("/api/v1/users/1", json={"role": 5}, headers=admin.headers),
        client.patch("/api/v1/users/1", json={"is_active": "maybe"}, headers=admin.headers),
        client.post("/api/v1/users", json={"email": "a@b.co"}, headers=admin.headers),
    ]
    for answer in cases:
        assert answer.status_code == 400, answer.json
        assert answer.content_type == "application/problem+json"
    missing = client.patch("/api/v1/users/999999", json={"role": "clerk"}, headers=admin.headers)
    assert missing.status_code == 404
    too_big = client.get(f"/api/v1/users/{2**63}", headers=admin.headers)
    assert too_big.status_code == 404
