"""Read routing: read-only requests go to a replica, except a client's reads right after its
own write, which go to the primary for ``replica_read_own_writes_seconds``.

The "wrote recently" mark is a short-lived Redis key per user (not a cookie: API clients
holding bearer tokens do not necessarily keep cookies, and the mark must hold across all the
API processes). It is set after every successful write request of the API, whatever the
blueprint. When Redis cannot say, reads go to the primary: slower, never stale.
"""

from __future__ import annotations

import logging

import redis
from flask import Response, request
from flask_smorest import Blueprint
from sqlalchemy.orm import Session

from webapi.security import current_user_or_none
from webapi.services import Services, db_session, read_session, services

log = logging.getLogger(__name__)

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def replicas_configured() -> bool:
    return bool(services().db.replicas)


def own_write_key(user_id: int) -> str:
    return write_flag_key(services(), user_id)


def write_flag_key(svc: Services, user_id: int) -> str:
    """The "wrote recently" mark of ``user_id`` (``own_write_key`` outside a request)."""
    return svc.key("wrote", user_id)


def session_for_read(*, fresh: bool) -> Session:
    """The primary when the caller needs fresh data (or there is no replica), else a replica."""
    return db_session() if fresh or not replicas_configured() else read_session()


def wrote_recently(user_id: int) -> bool:
    """Whether the user wrote within the window; True when Redis cannot tell."""
    client = services().redis
    if not replicas_configured():
        return False
    if client is None:
        return True
    try:
        return bool(client.exists(own_write_key(user_id)))
    except redis.RedisError:
        return True


def _remember_write(response: Response) -> Response:
    if request.method not in _WRITE_METHODS or response.status_code >= 400:
        return response
    if not replicas_configured():
        return response
    user = current_user_or_none()
    if user is not None:
        remember_write(services(), user.id)
    return response


def remember_write(svc: Services, user_id: int) -> None:
    """Send the user's reads to the primary for a while (after a successful write; nothing
    to do without replicas)."""
    if not svc.db.replicas or svc.redis is None:
        return
    window = svc.settings.replica_read_own_writes_seconds
    try:
        svc.redis.set(write_flag_key(svc, user_id), 1, ex=max(window, 1))
    except redis.RedisError as error:
        log.warning("cannot mark user %s as a recent writer: %s", user_id, error)


def track_writes(blueprint: Blueprint) -> None:
    """Mark the writer after every successful write request of the whole app."""
    blueprint.after_app_request(_remember_write)
