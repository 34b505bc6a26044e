"""One Redis round trip per authenticated request: the user's auth record and the token's
revocation flag are read together (``MGET``).

The record holds what authorisation needs (role, active flag, token cut-off) for a short
time; every change to a user through the API forgets it, and the TTL bounds staleness for
changes made elsewhere (the CLI). Without Redis the database answers every time.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import redis

from models import User

log = logging.getLogger(__name__)

USER_RECORD_SECONDS = 60
_FIELDS = ("id", "email", "role", "is_active")


def revoked_key(prefix: str, jti: str) -> str:
    return f"{prefix}revoked:{jti}"


def sentinel_key(prefix: str) -> str:
    """Present while Redis holds a complete copy of the revocation table."""
    return f"{prefix}revoked-copy-complete"


def user_key(prefix: str, user_id: int) -> str:
    return f"{prefix}auth-user:{user_id}"


def _encode(user: User) -> str:
    record: dict[str, Any] = {name: getattr(user, name) for name in _FIELDS}
    for name in ("tokens_valid_after", "created_at"):
        value = getattr(user, name)
        record[name] = value.isoformat() if value else None
    return json.dumps(record)


def _decode(raw: bytes) -> User:
    record = json.loads(raw)
    for name in ("tokens_valid_after", "created_at"):
        if record[name]:
            record[name] = datetime.fromisoformat(record[name])
    # A transient object: views read attributes; writes reload the row in their session.
    return User(**record)


class AuthCache:
    def __init__(self, client: redis.Redis | None, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def lookup(self, user_id: int, jti: str) -> tuple[User | None, bool | None]:
        """(cached user or None, revoked flag or None when Redis cannot vouch for it)."""
        if self._redis is None:
            return None, None
        try:
            raw_user, raw_revoked, complete = self._redis.mget(
                user_key(self._prefix, user_id),
                revoked_key(self._prefix, jti),
                sentinel_key(self._prefix),
            )
        except redis.RedisError as error:
            log.warning("auth cache unreachable: %s", error)
            return None, None
        user = _decode(raw_user) if raw_user else None
        if raw_revoked is not None:
            return user, True
        return user, (False if complete else None)

    def remember(self, user: User) -> None:
        if self._redis is None:
            return
        try:
            self._redis.set(user_key(self._prefix, user.id), _encode(user), ex=USER_RECORD_SECONDS)
        except redis.RedisError as error:
            log.warning("auth cache unreachable: %s", error)

    def forget(self, user_id: int) -> None:
        if self._redis is None:
            return
        try:
            self._redis.delete(user_key(self._prefix, user_id))
        except redis.RedisError as error:
            log.error("could not forget cached auth record of user %s: %s", user_id, error)
