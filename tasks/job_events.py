"""Job-ended announcements: whoever completes a scrape job publishes its id on a Redis channel,
so API requests long-polling ``GET /scrape-jobs/{id}?wait=`` answer at once rather than at
their next read (``webapi/job_waits.py``).

Best effort on purpose: the message follows the commit (a crash between the two loses it) and
Redis pub/sub keeps nothing for a subscriber that is away. A waiting request still reads the
job again every few hundred milliseconds, so a lost message costs latency, never an answer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis

from tasks.product_cache import queue_generation_bump

log = logging.getLogger(__name__)

JOB_ENDED_CHANNEL = "scrape-jobs:ended"


def job_ended_channel(prefix: str) -> str:
    return prefix + JOB_ENDED_CHANNEL


def announce(
    client: redis.Redis | None, prefix: str, *, ended: Iterable[str], stored: bool = False
) -> None:
    """After a finish committed, in one round trip: bump the scraped-products listing cache
    when rows were stored, and publish the jobs that ended."""
    ended = list(ended)
    if client is None or not (ended or stored):
        return
    pipe = client.pipeline(transaction=False)
    if stored:
        queue_generation_bump(pipe, prefix)
    channel = job_ended_channel(prefix)
    for job_id in ended:
        pipe.publish(channel, job_id)
    try:
        pipe.execute()
    except redis.RedisError as error:
        # Listings expire on their own and waiting requests read the job again soon.
        log.warning("could not announce %d ended job(s) to Redis: %s", len(ended), error)
