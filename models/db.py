"""Engines and sessions: the primary, optional read replicas, and the scraping schema's home.

``Database`` is built once per process by the shells (app factory, Celery app, Scrapy
pipeline) from a ``Settings``; nothing here is global.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from models.base import SCRAPING_SCHEMA, InventoryBase, ScrapingBase
from shelfwatch.config import Settings

# A pooled connection unused for longer than this is pinged before it is handed out; one in
# steady use is not (``pool_pre_ping`` pinged every checkout: a round trip, ~8% of a write).
PING_AFTER_IDLE_SECONDS = 5.0


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


def _configure_sqlite(engine: Engine, scraping_file: Path, schema: str) -> None:
    """Foreign keys on, WAL for concurrent readers, and the scraping schema attached."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's implicit BEGIN is turned off so that SQLAlchemy's BEGIN is the one used.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute(f"ATTACH DATABASE '{scraping_file}' AS \"{schema}\"")
        cursor.execute(f'PRAGMA "{schema}".journal_mode=WAL')
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: no deadlock-prone lock upgrades.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, settings: Settings, *, scraping_file: Path | None = None) -> Engine:
    """An engine for ``url``; SQLite engines get the scraping schema attached."""
    translate = (
        {SCRAPING_SCHEMA: settings.scraping_schema}
        if settings.scraping_schema != SCRAPING_SCHEMA
        else None
    )
    sqlite_file = _sqlite_path(url)
    if sqlite_file is not None:
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        attached = scraping_file or sqlite_file.with_name(sqlite_file.stem + "-scraping.sqlite3")
        _configure_sqlite(engine, attached, settings.scraping_schema)
    else:
        engine = create_engine(url, pool_size=10, max_overflow=20)
        ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
        _session_time_zone_utc(engine)
    if translate:
        # Set on the engine, not per connection: a per-connection map is lost after commit.
        engine = engine.execution_options(schema_translate_map=translate)
    return engine


def _session_time_zone_utc(engine: Engine) -> None:
    """Every value is stored and compared in UTC (``UTCDateTime``); a session in UTC also lets
    psycopg build result datetimes with ``timezone.utc`` instead of a ``ZoneInfo`` (a server
    default such as ``Etc/UTC``): about half the CPU of a listing's 150 timestamps."""

    @event.listens_for(engine, "connect")
    def _utc(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("SET TIME ZONE 'UTC'")
        dbapi_connection.commit()  # a session setting outside any transaction of the app


def ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Ping a connection that sat in the pool for ``idle_seconds`` before handing it out.

    Idle connections are the ones a server restart, a failover or a firewall's idle timeout
    leave dead. A dead one raises ``DisconnectionError``: the pool discards it and connects
    again. A connection that dies while in steady use fails its statement instead; SQLAlchemy
    then invalidates the whole pool, and the API answers that request 503."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError(str(error)) from error


@dataclass
class Database:
    """The engines of one process and the sessionmakers bound to them."""

    primary: Engine
    scraping: Engine
    replicas: list[Engine] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.session = sessionmaker(binds=self._binds(self.primary), expire_on_commit=False)
        self._replica_sessions = [
            sessionmaker(binds=self._binds(replica), expire_on_commit=False)
            for replica in self.replicas
        ]

    def _binds(self, inventory_engine: Engine) -> dict[Any, Engine]:
        return {InventoryBase: inventory_engine, ScrapingBase: self.scraping}

    @property
    def separate_scraping(self) -> bool:
        return self.scraping is not self.primary

    def read_session(self) -> Session:
        """A session for read-only work: a replica when there is one, else the primary."""
        if not self._replica_sessions:
            return self.session()
        return random.choice(self._replica_sessions)()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session inside one transaction, committed on success and rolled back on error."""
        with self.session() as session, session.begin():
            yield session

    def dispose(self) -> None:
        for engine in {self.primary, self.scraping, *self.replicas}:
            engine.dispose()


def create_database(settings: Settings) -> Database:
    primary_url = settings.sqlalchemy_url
    scraping_url = settings.scraping_sqlalchemy_url
    scraping_file = _sqlite_path(scraping_url) if scraping_url else None
    if _sqlite_path(primary_url) is not None and scraping_file is not None:
        # On SQLite a separate scraping database is simply the attached file.
        scraping_url = None
    primary = make_engine(primary_url, settings, scraping_file=scraping_file)
    scraping = make_engine(scraping_url, settings) if scraping_url else primary
    replicas = [make_engine(url, settings) for url in settings.replica_sqlalchemy_urls]
    return Database(primary=primary, scraping=scraping, replicas=replicas)
