"""One typed settings object, read from the environment, shared by the API, Celery and Scrapy.

Nothing else in the code base reads ``os.environ``: components receive a ``Settings``.
With no variables at all the platform runs in *embedded* mode: SQLite files and a
filesystem Celery transport under ``SHELFWATCH_DATA_DIR``, and no external server.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Mode = Literal["embedded", "production"]


class ConfigurationError(RuntimeError):
    """The environment describes a configuration the platform refuses to start with."""


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every setting of the platform; field names are the environment variables in lower case."""

    model_config = SettingsConfigDict(
        env_prefix="", extra="ignore", frozen=True, populate_by_name=True
    )

    mode: Mode | None = Field(default=None, alias="SHELFWATCH_MODE")
    data_dir: Path = Field(default=Path("data"), alias="SHELFWATCH_DATA_DIR")
    database_url: str | None = None
    scraped_database_url: str | None = None
    database_replica_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    scraping_schema: str = "scraping"
    redis_url: str | None = None
    redis_prefix: str = "sw:"
    broker_url: str | None = None
    queue_namespace: str = ""
    secret_key: SecretStr | None = None
    allow_registration: bool | None = None
    port: int = 8000
    host: str = "127.0.0.1"

    access_token_minutes: int = 15
    refresh_token_days: int = 14
    login_rate_limit: str = "10 per minute"
    scrape_submit_rate_limit: str = "60 per minute"
    assignment_rate_limit: str = "120 per minute"
    max_body_bytes: int = 2 * 1024 * 1024
    cache_ttl_seconds: int = 300
    replica_read_own_writes_seconds: int = 5

    flower_port: int = 5555
    flower_basic_auth: str | None = None
    # Set for the API under gunicorn with several workers: prometheus_client keeps each
    # process's request metrics in files there and /metrics adds them up (empty it on start).
    prometheus_multiproc_dir: Path | None = Field(default=None, alias="PROMETHEUS_MULTIPROC_DIR")
    scrape_task_rate_limit: str | None = "50/s"
    # URLs per chunk. Each worker process reserves up to ``worker_concurrency`` chunk messages
    # at once, so a job spreads over the workers only with more chunks than that: keep chunks
    # small (they cost little once they join the batch crawl, see scrape_batch_max_urls).
    scrape_chunk_size: int = 50
    scrape_soft_time_limit: int = 600
    scrape_hard_time_limit: int = 660
    worker_heartbeat_seconds: int = 10
    # A running chunk whose heartbeat is older than this many intervals is re-queued.
    scrape_stale_heartbeats: int = 3
    scrape_max_attempts: int = 3
    # Queued chunks not started after this long are sent again (a lost message).
    scrape_redispatch_seconds: int = 900
    # Chunks of at most this many URLs (product spider, no arguments or max_age) join the
    # worker's long-lived batch crawl instead of starting a crawl of their own (0: never).
    # As large as scrape_chunk_size: a crawl of its own costs ~70 ms of set-up and close.
    scrape_batch_max_urls: int = 50
    # The API sends one-chunk jobs of at most scrape_batch_max_urls URLs submitted close
    # together as one run_chunks message (tasks/coalescer.py) of up to this many chunks
    # (1: one run_chunk message per job, as before); a message costs a worker as much as a
    # one-URL crawl. A job waits at most the linger, and only when its process sent a
    # message less than the linger ago.
    scrape_coalesce_max_chunks: int = 8
    scrape_coalesce_linger_ms: float = 20.0
    # A batch crawl takes new chunks this long, then closes when idle (robots.txt TTL).
    scrape_batch_crawl_seconds: int = 300
    # How soon beat notices schedule changes made in the database (its longest sleep).
    beat_poll_seconds: float = 5.0
    # The per-product schedule that scrapes a product's watched market URLs.
    market_watch_spider: str = "product"
    market_watch_interval_seconds: int = 6 * 3600
    market_history_limit: int = 100
    # Threads of one worker process; crawls share the process's one reactor.
    worker_concurrency: int = 8
    ssrf_allowed_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    domain_rate_per_second: float = 2.0
    domain_rate_overrides: Annotated[list[str], NoDecode] = Field(default_factory=list)
    domain_rate_burst: float = 1.0
    scrape_download_timeout: int = 30
    scrape_download_maxsize: int = 10 * 1024 * 1024
    scrape_download_warnsize: int = 2 * 1024 * 1024
    scrape_retry_times: int = 3
    scrape_retry_backoff_base: float = 1.0
    scrape_retry_backoff_max: float = 60.0
    scrape_concurrent_requests: int = 16
    scrape_concurrent_requests_per_domain: int = 8
    scrape_autothrottle: bool = False
    scrape_httpcache: bool = False
    user_agent_contact_url: str = "https://github.com/shelfwatch/shelfwatch"
    robotstxt_obey: bool = True
    log_level: str = "INFO"

    @field_validator(
        "database_replica_urls", "ssrf_allowed_networks", "domain_rate_overrides", mode="before"
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("database_url", "scraped_database_url", "redis_url", "broker_url")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @property
    def effective_mode(self) -> Mode:
        """Embedded unless told otherwise or pointed at an external database."""
        if self.mode is not None:
            return self.mode
        return "production" if self.database_url else "embedded"

    @property
    def embedded(self) -> bool:
        return self.effective_mode == "embedded"

    @property
    def registration_open(self) -> bool:
        if self.allow_registration is not None:
            return self.allow_registration
        return self.embedded

    @cached_property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.resolve()

    @property
    def sqlalchemy_url(self) -> str:
        url = self.database_url or f"sqlite:///{self.resolved_data_dir / 'shelfwatch.sqlite3'}"
        return normalize_database_url(url)

    @property
    def scraping_sqlalchemy_url(self) -> str | None:
        """The scraping schema's own database, or None when it shares the main one."""
        if self.scraped_database_url:
            return normalize_database_url(self.scraped_database_url)
        return None

    @property
    def replica_sqlalchemy_urls(self) -> list[str]:
        return [normalize_database_url(url) for url in self.database_replica_urls]

    @property
    def celery_broker_url(self) -> str:
        if self.broker_url:
            return self.broker_url
        if self.redis_url and not self.embedded:
            return self.redis_url
        return "filesystem://localhost/"

    @property
    def broker_folder(self) -> Path:
        return self.resolved_data_dir / "broker"

    def jwt_secret(self) -> str:
        """The signing key; the embedded mode makes one once and keeps it in the data folder."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        if not self.embedded:
            raise ConfigurationError(
                "SECRET_KEY must be set outside the embedded mode "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
        key_file = self.resolved_data_dir / "secret_key"
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(secrets.token_urlsafe(48))
            key_file.chmod(0o600)
        return key_file.read_text().strip()

    @property
    def chunk_lease(self) -> timedelta:
        """How long a running chunk stays its worker's without a heartbeat."""
        return timedelta(seconds=self.worker_heartbeat_seconds * self.scrape_stale_heartbeats)

    def queue(self, name: str) -> str:
        """The broker queue name for a logical queue (namespaced so test runs cannot collide)."""
        return f"{self.queue_namespace}{name}" if self.queue_namespace else name


def normalize_database_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use psycopg 3 for both."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def load_settings(**overrides: object) -> Settings:
    """Read the environment; keyword overrides win (tests and tools pass explicit values)."""
    return Settings(**overrides)
