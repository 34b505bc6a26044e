"""A cached read's miss: rendered from a replica or the primary, then stored unless a replica
may lag behind a recent write. One implementation for the Flask views and for the WSGI
shortcut of ``webapi.cache_hits``, which both call ``reads_primary`` and ``render_and_store``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection

from models import Database
from webapi.caching import CachedBody, CacheRead, VersionedCache

# Reads only: each statement commits on its own (no BEGIN/COMMIT round trips); under READ
# COMMITTED every statement has its own snapshot in a transaction too.
AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


def reads_primary(read: CacheRead | None, with_replicas: bool) -> bool:
    """Whether the miss must read the primary: the reader wrote recently (replicas may lag
    behind its own write), or Redis is down and nobody can tell who wrote recently."""
    return read is None or (with_replicas and read.flags[0])


@contextmanager
def read_connection(db: Database, *, fresh: bool) -> Iterator[Connection]:
    """An autocommit connection to the inventory's primary when ``fresh`` (or there is no
    replica), else to a replica: the choice ``webapi.replicas.session_for_read`` makes for
    the request's sessions, without a session (a plain read needs none)."""
    engine = db.primary if fresh or not db.replicas else random.choice(db.replicas)
    with engine.connect() as connection:
        yield connection.execution_options(**AUTOCOMMIT)


def render_and_store(
    cache: VersionedCache,
    read: CacheRead | None,
    entry_key: str,
    with_replicas: bool,
    render: Callable[[], bytes],
) -> CachedBody:
    """The body ``render`` reads (from where ``reads_primary(read, with_replicas)`` says),
    stored under ``entry_key`` at the version ``read`` saw before the query, unless it came
    from a replica while someone's write may not have reached it yet (flag 1 of ``read``)."""
    cached = CachedBody.of(render())
    from_replica = with_replicas and not reads_primary(read, with_replicas)
    if read is not None and not (from_replica and read.flags[1]):
        cache.store(entry_key, read.version, cached)
    return cached
