"""With Redis as the broker, a namespaced deployment keeps its unacknowledged messages under
its own keys (like its queues), not in kombu's one ``unacked`` hash shared by everything on
that Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from shelfwatch.config import Settings
from tasks.app import create_celery_app
from tests.services import REDIS_URL, delete_redis_prefix, test_settings, unique_name


@pytest.fixture
def namespaced() -> Iterator[Settings]:
    prefix = unique_name("keys")
    # No database is opened: publishing and fetching a message need only the broker.
    yield test_settings("postgresql://127.0.0.1:1/unused", prefix)
    delete_redis_prefix(prefix)


def test_unacked_message_is_kept_under_the_namespace(namespaced: Settings) -> None:
    app = create_celery_app(namespaced)
    server = redis.Redis.from_url(REDIS_URL)
    queue = app.amqp.queues[namespaced.queue("default")]
    app.send_task("shelfwatch.test.nothing", args=[1], queue=queue.name)

    with app.connection_for_read() as connection:
        channel = connection.default_channel
        message = queue.bind(channel).get(no_ack=False)
        assert message is not None
        tag = message.delivery_tag
        assert server.hexists(f"{namespaced.queue_namespace}unacked", tag)
        assert not server.hexists("unacked", tag)
        assert server.zscore(f"{namespaced.queue_namespace}unacked_index", tag) is not None

        message.ack()
        assert not server.hexists(f"{namespaced.queue_namespace}unacked", tag)


def test_without_a_namespace_kombu_defaults_stay(namespaced: Settings) -> None:
    plain = namespaced.model_copy(update={"queue_namespace": ""})
    options = create_celery_app(plain).conf.broker_transport_options
    assert "unacked_key" not in options
    assert options["visibility_timeout"] > plain.scrape_hard_time_limit
