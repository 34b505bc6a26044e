"""The token revocation list: Redis when configured, else a database table."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import redis
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from models import Database, RevokedToken
from models.base import utcnow
from webapi.auth_cache import revoked_key

log = logging.getLogger(__name__)


class RevocationList:
    def __init__(self, db: Database, client: redis.Redis | None, prefix: str) -> None:
        self._db = db
        self._redis = client
        self._prefix = prefix

    def revoke(self, jti: str, expires_at: datetime) -> None:
        ttl = int((expires_at - datetime.now(UTC)).total_seconds()) + 1
        if ttl <= 0:
            return
        if self._redis is not None:
            self._redis.set(revoked_key(self._prefix, jti), 1, ex=ttl)
            return
        with self._db.transaction() as session:
            insert = pg_insert if self._db.primary.dialect.name == "postgresql" else sqlite_insert
            session.execute(
                insert(RevokedToken).values(jti=jti, expires_at=expires_at).on_conflict_do_nothing()
            )
            session.execute(delete(RevokedToken).where(RevokedToken.expires_at < utcnow()))

    def is_revoked(self, jti: str) -> bool:
        if self._redis is not None:
            # Fail closed: if Redis cannot say, the token is not trusted.
            try:
                return bool(self._redis.exists(revoked_key(self._prefix, jti)))
            except redis.RedisError:
                log.warning("revocation list unreachable; refusing token %s", jti)
                return True
        with self._db.session() as session:
            return (
                session.scalar(select(RevokedToken.jti).where(RevokedToken.jti == jti)) is not None
            )
