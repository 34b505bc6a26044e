"""What tasks receive: the settings and the database of the worker process.

Built lazily per process (after the prefork pool forks), never at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import redis

from models import Database, create_database
from shelfwatch.config import Settings


@dataclass
class TaskContext:
    settings: Settings
    _db: Database | None = field(default=None, repr=False)

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = create_database(self.settings)
        return self._db

    @cached_property
    def redis(self) -> redis.Redis | None:
        if not self.settings.redis_url:
            return None
        return redis.Redis.from_url(
            self.settings.redis_url, socket_timeout=2, socket_connect_timeout=2
        )

    def reset(self) -> None:
        """Forget connections inherited across a fork."""
        if self._db is not None:
            self._db.dispose()
        self._db = None
        self.__dict__.pop("redis", None)
