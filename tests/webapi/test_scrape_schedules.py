"""The scrape-schedules API (webapi/schedules.py; named apart from tests/models/test_schedules.py,
as pytest needs unique basenames): the lifecycle, the timing shown, bad input, who sees what."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient

from models import Role
from tests.conftest import Account

URL = "http://127.0.0.1:9/p/1"
BASE = "/api/v1/scrape-schedules"


def _body(**overrides: Any) -> dict[str, Any]:
    return {"spider": "product", "urls": [URL], "interval_seconds": 600, **overrides}


def _create(client: FlaskClient, account: Account, **overrides: Any) -> dict[str, Any]:
    response = client.post(BASE, json=_body(**overrides), headers=account.headers)
    assert response.status_code == 201, response.json
    assert response.headers["Location"] == f"{BASE}/{response.json['id']}"
    return response.json


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_create_read_and_list(client: FlaskClient, manager: Account) -> None:
    before = datetime.now().astimezone()
    created = _create(client, manager, name="shop", spider="catalog", args={"max_depth": 2})
    assert created["enabled"] is True
    assert (created["cron"], created["interval_seconds"], created["timezone"]) == (None, 600, "UTC")
    assert created["last_run_at"] is None and created["last_job_id"] is None
    next_run = _time(created["next_run_at"])
    assert before + timedelta(seconds=599) <= next_run <= before + timedelta(seconds=660)

    read = client.get(f"{BASE}/{created['id']}", headers=manager.headers)
    assert read.status_code == 200 and read.json == created

    cron = _create(client, manager, cron="0 6 * * *", interval_seconds=None, timezone="Asia/Tokyo")
    in_tokyo = _time(cron["next_run_at"]).astimezone(ZoneInfo("Asia/Tokyo"))
    assert (in_tokyo.hour, in_tokyo.minute) == (6, 0)
    assert before < in_tokyo <= before + timedelta(days=1)


def test_listing_pages_with_a_cursor(client: FlaskClient, manager: Account) -> None:
    ids = [_create(client, manager)["id"] for _ in range(5)]
    seen: list[int] = []
    cursor = None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(BASE, query_string=query, headers=manager.headers).json
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    paused = client.post(f"{BASE}/{ids[0]}/pause", headers=manager.headers)
    assert paused.status_code == 200
    only_paused = client.get(BASE, query_string={"enabled": "false"}, headers=manager.headers)
    assert [item["id"] for item in only_paused.json["items"]] == [ids[0]]


def test_editing_the_interval_moves_the_next_run(client: FlaskClient, manager: Account) -> None:
    created = _create(client, manager)
    response = client.patch(
        f"{BASE}/{created['id']}", json={"interval_seconds": 7200}, headers=manager.headers
    )
    assert response.status_code == 200, response.json
    moved = _time(response.json["next_run_at"]) - _time(created["next_run_at"])
    assert timedelta(seconds=6599) < moved < timedelta(seconds=6660)

    to_cron = client.patch(
        f"{BASE}/{created['id']}",
        json={"cron": "*/15 * * * *", "timezone": "Europe/Berlin"},
        headers=manager.headers,
    )
    assert to_cron.status_code == 200, to_cron.json
    assert (to_cron.json["cron"], to_cron.json["interval_seconds"]) == ("*/15 * * * *", None)
    assert _time(to_cron.json["next_run_at"]).minute % 15 == 0


def test_pause_resume_and_delete(client: FlaskClient, manager: Account) -> None:
    created = _create(client, manager)
    paused = client.post(f"{BASE}/{created['id']}/pause", headers=manager.headers).json
    assert (paused["enabled"], paused["next_run_at"]) == (False, None)
    resumed = client.post(f"{BASE}/{created['id']}/resume", headers=manager.headers).json
    assert resumed["enabled"] is True and resumed["next_run_at"] is not None
    assert client.delete(f"{BASE}/{created['id']}", headers=manager.headers).status_code == 204
    assert client.get(f"{BASE}/{created['id']}", headers=manager.headers).status_code == 404


def _problem(response: Any, status: int, type_: str, field: str | None = None) -> None:
    assert response.status_code == status, response.json
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == f"/problems/{type_}"
    if field is not None:
        assert field in [error["field"] for error in response.json["errors"]], response.json


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"cron": "*/15 * * * *"}, "cron"),  # both cron and interval
        ({"interval_seconds": None}, "cron"),  # neither
        ({"cron": "61 * * * *", "interval_seconds": None}, "cron"),
        ({"cron": "* * * * * *", "interval_seconds": None}, "cron"),
        ({"cron": 15, "interval_seconds": None}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"interval_seconds": 5}, "interval_seconds"),
        ({"interval_seconds": "600"}, "interval_seconds"),
        ({"interval_seconds": 1.5}, "interval_seconds"),
        ({"spider": "nope"}, "spider"),
        ({"urls": []}, "urls"),
        ({"urls": "http://127.0.0.1/"}, "urls"),
        ({"args": {"urls_file": "/etc/passwd"}}, "args.urls_file"),
        ({"args": []}, "args"),
        ({"spider": "catalog", "args": {"max_depth": -1}}, "args.max_depth"),
        ({"args": {"max_depth": 1}}, "args.max_depth"),
        ({"enabled": "maybe"}, "enabled"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    client: FlaskClient, manager: Account, overrides: dict[str, Any], field: str
) -> None:
    response = client.post(BASE, json=_body(**overrides), headers=manager.headers)
    _problem(response, 400, "validation-error", field)


def test_malformed_json_and_wrong_body_types(client: FlaskClient, manager: Account) -> None:
    headers = {**manager.headers, "Content-Type": "application/json"}
    _problem(client.post(BASE, data=b'{"spider": ', headers=headers), 400, "malformed-json")
    _problem(client.post(BASE, json=[1, 2], headers=manager.headers), 400, "validation-error")
    created = _create(client, manager)
    one = f"{BASE}/{created['id']}"
    _problem(client.patch(one, data=b"{", headers=headers), 400, "malformed-json")
    _problem(
        client.patch(one, json={"cron": "nope"}, headers=manager.headers),
        400,
        "validation-error",
        "cron",
    )
    _problem(
        client.patch(
            one, json={"cron": "0 * * * *", "interval_seconds": 60}, headers=manager.headers
        ),
        400,
        "validation-error",
        "cron",
    )
    _problem(
        client.patch(one, json={"urls": [1]}, headers=manager.headers), 400, "validation-error"
    )
    _problem(
        client.get(BASE, query_string={"cursor": "%%%"}, headers=manager.headers),
        400,
        "invalid-cursor",
    )
    _problem(client.get(f"{BASE}/99999999999999999999", headers=manager.headers), 404, "not-found")


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://[::ffff:10.0.0.1]/"],
)
def test_urls_refused_by_the_ssrf_guard_are_422(
    client: FlaskClient, manager: Account, url: str
) -> None:
    response = client.post(BASE, json=_body(urls=[URL, url]), headers=manager.headers)
    _problem(response, 422, "url-refused", "urls.1")
    created = _create(client, manager)
    patched = client.patch(f"{BASE}/{created['id']}", json={"urls": [url]}, headers=manager.headers)
    _problem(patched, 422, "url-refused", "urls.0")


def test_others_schedules_are_not_found_and_admins_see_all(
    client: FlaskClient, make_account: Callable[..., Account], admin: Account
) -> None:
    owner, other = make_account(Role.MANAGER), make_account(Role.MANAGER)
    created = _create(client, owner)
    one = f"{BASE}/{created['id']}"
    for method, path in [
        ("get", one),
        ("patch", one),
        ("delete", one),
        ("post", f"{one}/pause"),
        ("post", f"{one}/resume"),
    ]:
        kwargs: dict[str, Any] = {"json": {}} if method == "patch" else {}
        response = getattr(client, method)(path, headers=other.headers, **kwargs)
        _problem(response, 404, "not-found")
    assert client.get(BASE, headers=other.headers).json["items"] == []
    assert client.get(one, headers=admin.headers).status_code == 200
    assert [item["id"] for item in client.get(BASE, headers=admin.headers).json["items"]] == [
        created["id"]
    ]
    assert client.post(f"{one}/pause", headers=admin.headers).json["enabled"] is False


def test_clerks_may_not_create_or_change_schedules(
    client: FlaskClient, clerk: Account, manager: Account
) -> None:
    _problem(client.post(BASE, json=_body(), headers=clerk.headers), 403, "forbidden")
    created = _create(client, manager)
    _problem(client.delete(f"{BASE}/{created['id']}", headers=clerk.headers), 403, "forbidden")
    assert client.get(BASE, headers=clerk.headers).json["items"] == []
    _problem(client.get(BASE), 401, "missing-token")
