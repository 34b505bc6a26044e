"""The scraped-products listing cache's generation counter, shared by the API and workers.

Listings are cached under the current generation; a job that stores new data bumps it, so
every cached page is stale at once without scanning keys.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import redis

log = logging.getLogger(__name__)

GENERATION_KEY = "scraped-products:version"


def generation_key(prefix: str) -> str:
    return prefix + GENERATION_KEY


def queue_generation_bump(pipe: Any, prefix: str) -> None:
    """Add the bump to a pipeline (so it can share a round trip with other commands)."""
    key = generation_key(prefix)
    # A random start when the counter is missing (evicted), as the API's reader does.
    pipe.set(key, secrets.randbits(48), nx=True)
    pipe.incr(key)


def invalidate_scraped_products(ctx: Any) -> None:
    client = ctx.redis
    if client is None:
        return
    pipe = client.pipeline(transaction=False)
    queue_generation_bump(pipe, ctx.settings.redis_prefix)
    try:
        pipe.execute()
    except redis.RedisError as error:
        # Listings expire on their own (cache_ttl_seconds); a missed bump only delays them.
        log.warning("could not invalidate the scraped-products cache: %s", error)
