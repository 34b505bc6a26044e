"""The Redis broker transport: kombu's, with one Redis client per channel.

Messages must go and come as with kombu's own transport; what changes is that a channel no
longer builds a Redis client for every command, and builds a new one when its pool is replaced.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kombu import Connection
from kombu.transport import redis as kombu_redis

from shelfwatch.config import Settings
from tasks.app import create_celery_app
from tasks.config import celery_settings
from tasks.redis_transport import Channel, Transport
from tests.services import RABBITMQ_URL, REDIS_URL, unique_name


@pytest.fixture
def connection(base_settings: Settings) -> Iterator[Connection]:
    app = create_celery_app(base_settings)
    with app.connection_for_write() as connection:
        yield connection


def test_redis_brokers_use_it_and_others_do_not(base_settings: Settings) -> None:
    redis_conf = celery_settings(base_settings)
    rabbit_conf = celery_settings(base_settings.model_copy(update={"broker_url": RABBITMQ_URL}))

    assert redis_conf["broker_transport"] == "tasks.redis_transport:Transport"
    assert rabbit_conf["broker_transport"] is None


def test_the_app_connects_through_it(connection: Connection) -> None:
    assert isinstance(connection.transport, Transport)
    assert isinstance(connection.default_channel, Channel)


def test_a_channel_reuses_one_client_until_its_pool_is_replaced(connection: Connection) -> None:
    channel = connection.default_channel
    with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
        assert first is second
        assert first.connection_pool is channel.pool
    # What kombu does after a fork or a lost connection: the next command needs a new client.
    channel._disconnect_pools()
    with channel.conn_or_acquire() as third:
        assert third is not first
        assert third.connection_pool is channel.pool
        assert third.ping()


def test_a_given_client_is_used_as_given(connection: Connection) -> None:
    channel = connection.default_channel
    own = channel._create_client()
    with channel.conn_or_acquire(own) as client:
        assert client is own


def test_messages_go_and_come_back_with_acks() -> None:
    name = unique_name("transport")
    with Connection(REDIS_URL, transport=Transport) as connection:
        queue = connection.SimpleQueue(name)
        try:
            for n in range(3):
                queue.put({"n": n})
            received = []
            for _ in range(3):
                message = queue.get(timeout=5)
                received.append(message.payload["n"])
                message.ack()
            assert sorted(received) == [0, 1, 2]
            with pytest.raises(queue.Empty):
                queue.get(block=False)
        finally:
            queue.close()


def test_it_is_kombus_redis_transport_otherwise() -> None:
    assert issubclass(Transport, kombu_redis.Transport)
    assert Transport.driver_name == "redis"
