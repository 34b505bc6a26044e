"""The zero-configuration mode: SQLite files and the filesystem transport under a data folder."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from models import create_database
from shelfwatch import migrate
from shelfwatch.config import Settings
from webapi import create_app

PASSWORD = "embedded password"


def test_embedded_platform_registers_and_signs_in(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    migrate.upgrade(settings)
    client = create_app(settings).test_client()

    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json
    assert ready.json["checks"] == {"database": "ok", "redis": "ok", "broker": "ok"}

    created = client.post("/api/v1/auth/register", json={"email": "e@x.io", "password": PASSWORD})
    assert created.status_code == 201
    tokens = client.post("/api/v1/auth/login", json={"email": "e@x.io", "password": PASSWORD}).json
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.get("/api/v1/users/me", headers=headers).json["role"] == "clerk"

    # Without Redis the revocation list is a table: logout still works.
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/v1/users/me", headers=headers).status_code == 401

    assert (tmp_path / "shelfwatch.sqlite3").exists()
    assert (tmp_path / "shelfwatch-scraping.sqlite3").exists()
    assert (tmp_path / "secret_key").exists()
    db = create_database(settings)
    try:
        assert "scrape_jobs" in inspect(db.primary).get_table_names(schema="scraping")
    finally:
        db.dispose()


def test_readyz_names_the_dependency_that_is_down(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0")
    migrate.upgrade(settings)
    answer = create_app(settings).test_client().get("/readyz")
    assert answer.status_code == 503
    assert answer.content_type == "application/problem+json"
    assert answer.json["type"] == "/problems/dependency-unavailable"
    assert answer.json["checks"]["redis"] == "unavailable"
    assert answer.json["checks"]["database"] == "ok"
