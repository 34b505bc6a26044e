"""The caller checks of ``security``, for answers given before Flask (``cache_hits``,
``movement_shortcut``).

One ``AuthCache.lookup`` MGET clears the caller when it shows exactly what ``security`` would
accept without asking anything else: a valid access token (the app's memo of verified
tokens), the user's auth record in Redis, the user active, the token not revoked (with the
revocation copy vouched for) and issued after the user's cut-off. Anything else is None, and
the request goes to Flask, which decides and refuses. After a Redis error the shortcuts leave
Redis to Flask for a second: a hung Redis then costs one timeout per request, not two.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask

from webapi.auth_cache import AuthCache, AuthRead
from webapi.ratelimit import limits_on_every_route
from webapi.security import issued_before_cut_off, verified_access_token
from webapi.services import Services

PAUSE_AFTER_REDIS_ERROR_SECONDS = 1.0


@dataclass(frozen=True)
class Caller:
    """A caller cleared before Flask: its user id, auth read, and the values read ahead."""

    user_id: int
    read: AuthRead

    @property
    def is_admin(self) -> bool:
        assert self.read.record is not None
        return self.read.record.is_admin


class EarlyAuth:
    """Clears callers with ``security``'s rules; one per shortcut (each has its pause)."""

    def __init__(self, app: Flask) -> None:
        self._app = app
        self.paused_until = 0.0

    def usable(self, svc: Services) -> bool:
        """Whether an answer before Flask may be tried at all: Redis configured and not
        failing lately, and no rate limit on every route (the shortcuts count none)."""
        return (
            svc.redis is not None
            and time.monotonic() >= self.paused_until
            and not limits_on_every_route()
        )

    def claims(self, environ: Mapping[str, Any]) -> dict[str, Any] | None:
        """The claims of the request's valid access token, checked as ``security`` does."""
        token = verified_access_token(self._app, environ.get("HTTP_AUTHORIZATION", ""))
        return token[1] if token is not None else None

    def clear(
        self, svc: Services, claims: Mapping[str, Any], ahead: Sequence[str] = ()
    ) -> Caller | None:
        """The caller, if the auth round trip (reading ``ahead`` too) clears it the way
        ``security`` would; None leaves the request to Flask."""
        user_id = user_id_of(claims)
        if user_id is None:
            return None
        read = AuthCache(svc.redis, svc.settings.redis_prefix).lookup(
            user_id, str(claims.get("jti")), ahead
        )
        if not read.answered:
            self.paused_until = time.monotonic() + PAUSE_AFTER_REDIS_ERROR_SECONDS
            return None
        record = read.record
        if record is None or not record.is_active or read.revoked is not False:
            return None
        if issued_before_cut_off(claims, record.tokens_valid_after):
            return None
        return Caller(user_id, read)


def user_id_of(claims: Mapping[str, Any]) -> int | None:
    try:
        return int(claims["sub"])
    except (KeyError, TypeError, ValueError):
        return None
