"""The per-application services (settings, database, Redis) and per-request sessions."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from models import Database
from shelfwatch.config import Settings

EXTENSION_KEY = "shelfwatch"


@dataclass
class Services:
    settings: Settings
    db: Database
    redis: redis.Redis | None

    def key(self, *parts: object) -> str:
        """A Redis key under this deployment's prefix."""
        return self.settings.redis_prefix + ":".join(str(part) for part in parts)


def make_redis(settings: Settings) -> redis.Redis | None:
    """A client with short timeouts: a Redis outage must slow requests, never hang them."""
    if not settings.redis_url:
        return None
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        health_check_interval=30,
    )


def install(app: Flask, services: Services) -> None:
    app.extensions[EXTENSION_KEY] = services

    @app.teardown_appcontext
    def _close_sessions(_error: BaseException | None) -> None:
        for name in ("db_session", "read_session"):
            session = g.pop(name, None)
            if session is not None:
                session.close()


def services() -> Services:
    return current_app.extensions[EXTENSION_KEY]


def db_session() -> Session:
    """The request's session on the primary database."""
    if "db_session" not in g:
        g.db_session = services().db.session()
    return g.db_session


def read_session() -> Session:
    """The request's session for reads that may come from a replica."""
    if "read_session" not in g:
        g.read_session = services().db.read_session()
    return g.read_session
