"""Registration, login, tokens and their revocation, against PostgreSQL and Redis."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from flask.testing import FlaskClient

from tests.conftest import PASSWORD, Account

PROBLEM = "application/problem+json"


def login(client: FlaskClient, email: str, password: str = PASSWORD):
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def test_register_then_login_and_me(client: FlaskClient) -> None:
    created = client.post(
        "/api/v1/auth/register", json={"email": "New@Example.com", "password": PASSWORD}
    )
    assert created.status_code == 201
    assert created.json["role"] == "clerk"
    assert created.json["email"] == "new@example.com"
    tokens = login(client, "new@example.com").json
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 15 * 60
    me = client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json["email"] == "new@example.com"
    assert set(me.json) >= {"id", "email", "role"}


def test_register_twice_is_a_conflict(client: FlaskClient) -> None:
    body = {"email": "dup@example.com", "password": PASSWORD}
    assert client.post("/api/v1/auth/register", json=body).status_code == 201
    again = client.post("/api/v1/auth/register", json=body)
    assert again.status_code == 409
    assert again.content_type == PROBLEM
    assert again.json["type"] == "/problems/email-taken"


def test_registration_can_be_closed(settings, database) -> None:
    from webapi import create_app

    closed = create_app(settings.model_copy(update={"allow_registration": False})).test_client()
    answer = closed.post(
        "/api/v1/auth/register", json={"email": "x@example.com", "password": PASSWORD}
    )
    assert answer.status_code == 403
    assert answer.json["type"] == "/problems/registration-closed"


def test_wrong_password_is_401(client: FlaskClient, clerk: Account) -> None:
    answer = login(client, clerk.email, "not the password")
    assert answer.status_code == 401
    assert answer.json["type"] == "/problems/invalid-credentials"
    assert login(client, "nobody@example.com").status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": PASSWORD}, "email"),
        ({"email": "a@example.com"}, "password"),
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": 42, "password": PASSWORD}, "email"),
        ({"email": "a@example.com", "password": ["x"]}, "password"),
        ({"email": "a@example.com", "password": "short"}, "password"),
    ],
)
def test_register_bad_input_names_the_field(client: FlaskClient, body, field) -> None:
    answer = client.post("/api/v1/auth/register", json=body)
    assert answer.status_code == 400
    assert answer.content_type == PROBLEM
    assert answer.json["type"] == "/problems/validation-error"
    assert field in {error["field"] for error in answer.json["errors"]}


def test_malformed_json_and_wrong_media_type(client: FlaskClient) -> None:
    bad = client.post("/api/v1/auth/login", data="{not json", content_type="application/json")
    assert bad.status_code == 400
    assert bad.json["type"] == "/problems/malformed-json"
    form = client.post("/api/v1/auth/login", data={"email": "a", "password": "b"})
    assert form.status_code == 415
    assert form.json["type"] == "/problems/unsupported-media-type"
    not_object = client.post("/api/v1/auth/login", json=["a", "b"])
    assert not_object.status_code == 400


def test_oversized_body_is_413(client: FlaskClient, settings) -> None:
    huge = b'{"email": "' + b"a" * (settings.max_body_bytes + 10) + b'"}'
    answer = client.post("/api/v1/auth/login", data=huge, content_type="application/json")
    assert answer.status_code == 413
    assert answer.json["type"] == "/problems/payload-too-large"


def _forge(settings, **claims) -> str:
    payload = {"sub": "1", "type": "access", "jti": "x", "iat": 1, "nbf": 1, "exp": 4102444800}
    payload.update(claims)
    return jwt.encode(payload, settings.jwt_secret(), algorithm="HS256")


def test_bad_tokens_are_401(client: FlaskClient, clerk: Account, settings) -> None:
    tampered = clerk.token[:-4] + ("AAAA" if not clerk.token.endswith("AAAA") else "BBBB")
    expired = _forge(settings, sub=str(clerk.id), exp=1000, iat=900, nbf=900)
    other_key = jwt.encode(
        {"sub": str(clerk.id), "type": "access", "jti": "y", "exp": 4102444800},
        "another-secret-another-secret-another",
        algorithm="HS256",
    )
    unsigned = jwt.encode(
        {"sub": str(clerk.id), "type": "access", "jti": "z"}, None, algorithm="none"
    )
    hs512 = jwt.encode(
        {"sub": str(clerk.id), "type": "access", "jti": "w", "exp": 4102444800},
        settings.jwt_secret(),
        algorithm="HS512",
    )
    cases = {
        "tampered": tampered,
        "expired": expired,
        "other-key": other_key,
        "alg-none": unsigned,
        "alg-hs512": hs512,
        "garbage": "not.a.token",
        "refresh-as-access": clerk.refresh_token,
    }
    for name, token in cases.items():
        answer = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, name
        assert answer.content_type == PROBLEM, name
    expired_answer = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {expired}"})
    assert expired_answer.json["type"] == "/problems/expired-token"
    no_scheme = client.get("/api/v1/users/me", headers={"Authorization": clerk.token})
    assert no_scheme.status_code == 401


def test_logout_revokes_the_token(client: FlaskClient, clerk: Account) -> None:
    assert client.post("/api/v1/auth/logout", headers=clerk.headers).status_code == 204
    answer = client.get("/api/v1/users/me", headers=clerk.headers)
    assert answer.status_code == 401
    assert answer.json["type"] == "/problems/revoked-token"


def test_refresh_rotates_the_refresh_token(client: FlaskClient, clerk: Account) -> None:
    refresh_headers = {"Authorization": f"Bearer {clerk.refresh_token}"}
    fresh = client.post("/api/v1/auth/refresh", headers=refresh_headers)
    assert fresh.status_code == 200
    new_access = fresh.json["access_token"]
    assert (
        client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {new_access}"}
        ).status_code
        == 200
    )
    replay = client.post("/api/v1/auth/refresh", headers=refresh_headers)
    assert replay.status_code == 401
    access_as_refresh = client.post("/api/v1/auth/refresh", headers=clerk.headers)
    assert access_as_refresh.status_code == 401


def test_password_change_revokes_earlier_tokens(client: FlaskClient, clerk: Account) -> None:
    import time

    time.sleep(1.1)  # tokens carry whole-second iat; the change must be strictly later
    changed = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "a brand new password"},
        headers=clerk.headers,
    )
    assert changed.status_code == 204
    assert client.get("/api/v1/users/me", headers=clerk.headers).status_code == 401
    assert login(client, clerk.email).status_code == 401
    assert login(client, clerk.email, "a brand new password").status_code == 200


def test_password_change_needs_the_current_password(client: FlaskClient, clerk: Account) -> None:
    answer = client.post(
        "/api/v1/auth/password",
        json={"current_password": "wrong password", "new_password": "a brand new password"},
        headers=clerk.headers,
    )
    assert answer.status_code == 403
    assert client.get("/api/v1/users/me", headers=clerk.headers).status_code == 200


def test_login_is_rate_limited_per_account(settings, database, make_account) -> None:
    from webapi import create_app

    strict = create_app(settings.model_copy(update={"login_rate_limit": "3 per minute"}))
    client = strict.test_client()
    account = make_account()
    answers = [login(client, account.email, "wrong password").status_code for _ in range(3)]
    assert answers == [401, 401, 401]
    limited = login(client, account.email, "wrong password")
    assert limited.status_code == 429
    assert limited.content_type == PROBLEM
    assert limited.json["type"] == "/problems/rate-limited"
    assert int(limited.headers["Retry-After"]) > 0


def test_every_api_endpoint_needs_a_token(app, client: FlaskClient) -> None:
    open_paths = {"/healthz", "/readyz", "/api/v1/auth/login", "/api/v1/auth/register"}
    for rule in app.url_map.iter_rules():
        path = rule.rule
        if not path.startswith("/api/v1/") or path in open_paths or "openapi" in path:
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            url = path.replace("<int:", "<").replace("<", "").replace(">", "")
            url = "/".join(
                "1" if part.endswith("_id") or part == "id" else part for part in url.split("/")
            )
            answer = client.open(url, method=method, json={})
            assert answer.status_code == 401, (method, url, answer.status_code)


def test_deactivated_user_loses_access(client: FlaskClient, admin: Account, clerk: Account) -> None:
    answer = client.patch(
        f"/api/v1/users/{clerk.id}", json={"is_active": False}, headers=admin.headers
    )
    assert answer.status_code == 200
    assert client.get("/api/v1/users/me", headers=clerk.headers).status_code == 401
    assert login(client, clerk.email).status_code == 401


def test_access_token_lifetime_comes_from_settings(settings) -> None:
    assert timedelta(minutes=settings.access_token_minutes) == timedelta(minutes=15)


def test_revocation_survives_redis_losing_its_data(
    client: FlaskClient, clerk: Account, settings
) -> None:
    from tests.services import delete_redis_prefix

    assert client.post("/api/v1/auth/logout", headers=clerk.headers).status_code == 204
    delete_redis_prefix(settings.redis_prefix)  # Redis here keeps nothing on disk
    answer = client.get("/api/v1/users/me", headers=clerk.headers)
    assert answer.status_code == 401
    assert answer.json["type"] == "/problems/revoked-token"


def test_auth_works_and_revocation_holds_while_redis_is_down(
    settings, database, make_account
) -> None:
    from webapi import create_app

    account = make_account()
    other = make_account()
    down = create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    client = down.test_client()
    assert client.get("/api/v1/users/me", headers=account.headers).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=account.headers).status_code == 204
    assert client.get("/api/v1/users/me", headers=account.headers).status_code == 401
    assert client.get("/api/v1/users/me", headers=other.headers).status_code == 200
