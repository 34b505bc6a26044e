"""How many messages wait in each of the platform's broker queues.

One code path for every broker: a passive ``queue_declare`` answers the message count on
RabbitMQ and on kombu's virtual transports (Redis sums its priority lists, the filesystem
transport counts files). A queue the broker does not know holds nothing: Redis drops an
empty list, RabbitMQ has not declared a queue no worker has consumed yet.
"""

from __future__ import annotations

from kombu import Connection
from kombu.exceptions import ChannelError

from shelfwatch.config import Settings
from tasks.config import QUEUES, celery_settings


def queue_depths(settings: Settings, *, timeout: float = 1.0) -> dict[str, int]:
    """Messages waiting per logical queue (``default``, ``scrape``, ``stock``)."""
    options = celery_settings(settings)["broker_transport_options"]
    with Connection(
        settings.celery_broker_url, connect_timeout=timeout, transport_options=options
    ) as connection:
        connection.ensure_connection(max_retries=1, timeout=timeout)
        return {name: _depth(connection, settings.queue(name)) for name in QUEUES}


def _depth(connection: Connection, queue: str) -> int:
    # A channel per queue: RabbitMQ closes the channel that asked for an unknown queue.
    with connection.channel() as channel:
        try:
            return int(channel.queue_declare(queue=queue, passive=True).message_count)
        except ChannelError:
            return 0
