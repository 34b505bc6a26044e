"""kombu's Redis transport, with one Redis client per channel instead of one per command.

kombu's Redis channel builds a new ``redis.Redis`` for every publish, acknowledgement and
unacked-index update (``Channel.conn_or_acquire``), on the channel's shared connection pool.
Building one costs ~0.5 ms of CPU with redis-py 8 (it fills a case-insensitive table of ~170
response callbacks), more than the command it sends: a one-URL submission paid it twice (the
task and its ``task-sent`` event), a worker twice or more per message (the unacked index, the
ack, the event flush). The client holds no connection of its own, only the pool, and redis-py
clients are safe to share between threads (each command takes a connection from the pool), so
the channel keeps one for as long as its pool lives. Chosen by ``tasks.config`` for
``redis://`` and ``rediss://`` brokers; everything else is kombu's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis

TRANSPORT = "tasks.redis_transport:Transport"


class Channel(kombu_redis.Channel):
    _shared_client: tuple[Any, Any] | None = None  # (the pool it was built on, the client)

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        yield client or self._client_for_pool()

    def _client_for_pool(self) -> Any:
        pool = self.pool
        shared = self._shared_client
        # A reconnect replaces the pool (kombu drops it on disconnect): build a new client.
        if shared is None or shared[0] is not pool:
            shared = self._shared_client = (pool, self._create_client())
        return shared[1]


class Transport(kombu_redis.Transport):
    Channel = Channel
