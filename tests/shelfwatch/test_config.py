"""The shared settings: modes, secrets, URL forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from shelfwatch.config import ConfigurationError, Settings, normalize_database_url


def test_no_configuration_is_the_embedded_mode(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.embedded
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path / 'shelfwatch.sqlite3'}"
    assert settings.celery_broker_url.startswith("filesystem://")
    assert settings.registration_open


def test_a_database_url_means_production(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql://db/app")
    assert settings.effective_mode == "production"
    assert not settings.registration_open
    assert settings.sqlalchemy_url == "postgresql+psycopg://db/app"


def test_production_refuses_to_run_without_a_secret(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql://db/app")
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        settings.jwt_secret()
    assert not (tmp_path / "secret_key").exists()


def test_embedded_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).jwt_secret()
    second = Settings(data_dir=tmp_path).jwt_secret()
    assert first == second
    assert len(first) >= 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHELFWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h/d")
    monkeypatch.setenv("DATABASE_REPLICA_URLS", "postgresql://r1/d, postgresql://r2/d")
    monkeypatch.setenv("SSRF_ALLOWED_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("ALLOW_REGISTRATION", "true")
    monkeypatch.setenv("PORT", "9001")
    settings = Settings()
    assert settings.data_dir == tmp_path
    assert settings.replica_sqlalchemy_urls == [
        "postgresql+psycopg://r1/d",
        "postgresql+psycopg://r2/d",
    ]
    assert settings.ssrf_allowed_networks == ["127.0.0.0/8"]
    assert settings.registration_open
    assert settings.port == 9001


def test_broker_defaults_to_redis_outside_embedded_mode(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, database_url="postgresql://h/d", redis_url="redis://h:6379/0"
    )
    assert settings.celery_broker_url == "redis://h:6379/0"
    explicit = settings.model_copy(update={"broker_url": "amqp://guest:guest@h//"})
    assert explicit.celery_broker_url == "amqp://guest:guest@h//"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://h/d", "postgresql+psycopg://h/d"),
        ("postgres://h/d", "postgresql+psycopg://h/d"),
        ("postgresql+psycopg://h/d", "postgresql+psycopg://h/d"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_database_url_forms(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected
