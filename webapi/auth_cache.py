"""One Redis round trip per authenticated request: the user's auth record and the token's
revocation flag are read together (``MGET``), with any keys the view asked to read ahead
(``webapi.security.read_ahead``), so a cached read costs one round trip in all.

The record holds what authorisation needs (role, active flag, token cut-off) for a short
time; every change to a user through the API forgets it, and the TTL bounds staleness for
changes made elsewhere (the CLI). Without Redis the database answers every time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis

from models import Role, User

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


@dataclass(frozen=True)
class AuthRecord:
    """A user's cached auth record: what the token checks read, without an ORM object."""

    fields: dict[str, Any]

    @classmethod
    def decode(cls, raw: bytes) -> AuthRecord:
        return cls(json.loads(raw))

    @property
    def is_active(self) -> bool:
        return bool(self.fields["is_active"])

    @property
    def is_admin(self) -> bool:
        """As ``User.is_admin``."""
        return self.fields["role"] == Role.ADMIN.value

    @property
    def tokens_valid_after(self) -> datetime | None:
        value = self.fields["tokens_valid_after"]
        return datetime.fromisoformat(value) if value else None

    def to_user(self) -> User:
        record = dict(self.fields)
        for name in ("tokens_valid_after", "created_at"):
            if record[name]:
                record[name] = datetime.fromisoformat(record[name])
        # A transient object: views read attributes; writes reload the row in their session.
        return User(**record)


@dataclass
class AuthRead:
    """What the auth round trip told: the cached user's record, whether the token is revoked
    (None when Redis cannot vouch for it) and the values of the keys read ahead (empty if
    Redis did not answer)."""

    record: AuthRecord | None = None
    revoked: bool | None = None
    ahead: dict[str, bytes | None] = field(default_factory=dict)
    answered: bool = False

    @property
    def user(self) -> User | None:
        return self.record.to_user() if self.record is not None else None


class AuthCache:
    def __init__(self, client: redis.Redis | None, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def lookup(self, user_id: int, jti: str, ahead: Sequence[str] = ()) -> AuthRead:
        """The user's record, the token's revocation flag and ``ahead`` in one ``MGET``."""
        if self._redis is None:
            return AuthRead()
        try:
            raw_user, raw_revoked, complete, *values = self._redis.mget(
                user_key(self._prefix, user_id),
                revoked_key(self._prefix, jti),
                sentinel_key(self._prefix),
                *ahead,
            )
        except redis.RedisError as error:
            log.warning("auth cache unreachable: %s", error)
            return AuthRead()
        record = AuthRecord.decode(raw_user) if raw_user else None
        revoked = True if raw_revoked is not None else (False if complete else None)
        return AuthRead(record, revoked, dict(zip(ahead, values, strict=True)), answered=True)

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
