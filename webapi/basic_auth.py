"""HTTP basic auth with a platform user's email and password (for Scrapyd's clients).

Argon2 costs tens of milliseconds on purpose, and Scrapyd dashboards poll every few
seconds: a successful check is remembered in Redis for ``CACHE_SECONDS`` under an HMAC of
the credentials keyed with the app's secret (a Redis dump reveals no password and cannot be
brute-forced offline without the secret). The user row is still read on every request, so
a deactivated user is refused at once, and a password change (``tokens_valid_after``) voids
the remembered check.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from datetime import UTC, datetime

import redis
from flask import request

from models.accounts import authenticate, normalize_email
from models.users import User
from webapi.services import services

log = logging.getLogger(__name__)

CACHE_SECONDS = 60


def basic_auth_user() -> User | None:
    """The active user named by the request's basic credentials, or None."""
    credentials = request.authorization
    if credentials is None or credentials.type != "basic":
        return None
    email, password = credentials.username or "", credentials.password or ""
    if not email or not password:
        return None
    key = _cache_key(email, password)
    user = _remembered(key, email)
    if user is None:
        with services().db.session() as session, session.begin():
            user = authenticate(session, email, password)
            if user is not None:
                session.expunge(user)
        if user is not None:
            _remember(key, user.id)
    return user


def account_key() -> str:
    """The rate-limit key of a basic-auth attempt: the account it names, else the address."""
    credentials = request.authorization
    if credentials is not None and credentials.username:
        return f"basic-account:{normalize_email(credentials.username)}"
    return f"ip:{request.remote_addr}"


def _cache_key(email: str, password: str) -> str:
    secret = services().settings.jwt_secret().encode()
    message = f"{normalize_email(email)}\0{password}".encode()
    return services().key("basic-auth", hmac.new(secret, message, hashlib.sha256).hexdigest())


def _remembered(key: str, email: str) -> User | None:
    client = services().redis
    if client is None:
        return None
    try:
        entry = client.get(key)
    except redis.RedisError as error:
        log.warning("basic auth cache unavailable: %s", error)
        return None
    if entry is None:
        return None
    user_id, checked_at = entry.decode().split(":")
    with services().db.session() as session:
        user = session.get(User, int(user_id))
        if user is not None:
            session.expunge(user)
    if user is None or not user.is_active or user.email != normalize_email(email):
        return None
    voided = user.tokens_valid_after
    if voided is not None and voided >= datetime.fromtimestamp(float(checked_at), UTC):
        return None
    return user


def _remember(key: str, user_id: int) -> None:
    client = services().redis
    if client is None:
        return
    try:
        client.set(key, f"{user_id}:{time.time()}", ex=CACHE_SECONDS)
    except redis.RedisError as error:
        log.warning("basic auth cache unavailable: %s", error)
