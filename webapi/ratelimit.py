"""Request rate limits (Flask-Limiter): Redis-backed so they hold across API processes."""

from __future__ import annotations

from flask import Flask, request
from flask_jwt_extended import get_jwt_identity
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from shelfwatch.config import Settings


def user_or_ip() -> str:
    """The signed-in user's id, or the client address for anonymous requests."""
    try:
        identity = get_jwt_identity()
    except RuntimeError:
        identity = None
    return f"user:{identity}" if identity else f"ip:{get_remote_address()}"


def login_account() -> str:
    """The account a login attempt names (limits guessing one account's password)."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    return f"account:{str(email).strip().lower()}" if email else f"ip:{get_remote_address()}"


limiter = Limiter(key_func=user_or_ip, headers_enabled=True)


def configure_limiter(app: Flask, settings: Settings) -> None:
    app.config.update(
        RATELIMIT_STORAGE_URI=settings.redis_url or "memory://",
        RATELIMIT_KEY_PREFIX=settings.redis_prefix + "ratelimit",
        RATELIMIT_STORAGE_OPTIONS={"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
        # A Redis outage must not turn into 500s: fall back to per-process counters.
        RATELIMIT_SWALLOW_ERRORS=True,
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_HEADERS_ENABLED=True,
    )
    limiter.init_app(app)


def limits_on_every_route() -> bool:
    """Whether default or application-wide limits are set (every route is then limited)."""
    manager = limiter.limit_manager
    return bool(manager.default_limits or manager.application_limits)
