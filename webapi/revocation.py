"""The token revocation list.

The database table is the source of truth; Redis holds a copy for the hot path. Redis here
may lose its data (it keeps nothing on disk) or be unreachable, so a Redis answer is only
trusted while a sentinel key says the copy is complete; otherwise the table answers and the
copy is rebuilt. Reads and writes therefore keep working, and revocations keep holding,
while Redis is down.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import redis
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from models import Database, RevokedToken
from models.base import utcnow
from webapi.auth_cache import revoked_key, sentinel_key

log = logging.getLogger(__name__)


class RevocationList:
    def __init__(self, db: Database, client: redis.Redis | None, prefix: str) -> None:
        self._db = db
        self._redis = client
        self._prefix = prefix

    def revoke(self, jti: str, expires_at: datetime) -> None:
        if expires_at <= datetime.now(UTC):
            return
        with self._db.transaction() as session:
            insert = pg_insert if self._db.primary.dialect.name == "postgresql" else sqlite_insert
            session.execute(
                insert(RevokedToken).values(jti=jti, expires_at=expires_at).on_conflict_do_nothing()
            )
            session.execute(delete(RevokedToken).where(RevokedToken.expires_at < utcnow()))
        self._copy_to_redis({jti: expires_at})

    def is_revoked(self, jti: str) -> bool:
        """The table's answer; used when Redis could not vouch for its copy."""
        with self._db.session() as session:
            found = session.scalar(select(RevokedToken.jti).where(RevokedToken.jti == jti))
        self.rebuild_copy()
        return found is not None

    def rebuild_copy(self) -> None:
        """Copy every live revocation to Redis, then mark the copy complete."""
        if self._redis is None:
            return
        with self._db.session() as session:
            rows = session.execute(
                select(RevokedToken.jti, RevokedToken.expires_at).where(
                    RevokedToken.expires_at > utcnow()
                )
            ).all()
        if self._copy_to_redis(dict(rows)):
            try:
                self._redis.set(sentinel_key(self._prefix), 1)
            except redis.RedisError as error:
                log.warning("revocation copy not marked complete: %s", error)

    def _copy_to_redis(self, entries: dict[str, datetime]) -> bool:
        if self._redis is None:
            return False
        now = datetime.now(UTC)
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                for jti, expires_at in entries.items():
                    ttl = int((expires_at - now).total_seconds()) + 1
                    if ttl > 0:
                        pipe.set(revoked_key(self._prefix, jti), 1, ex=ttl)
                pipe.execute()
            return True
        except redis.RedisError as error:
            # The copy may now miss this revocation: stop trusting it until rebuilt.
            log.error("revocation not copied to Redis (%s); falling back to the table", error)
            self._distrust_copy()
            return False

    def _distrust_copy(self) -> None:
        try:
            self._redis.delete(sentinel_key(self._prefix))  # type: ignore[union-attr]
        except redis.RedisError:
            log.error("could not mark the Redis revocation copy stale; it expires with Redis")
