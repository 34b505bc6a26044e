"""The per-user limit on scrape submissions (``scrape_submit_rate_limit``), kept in Redis.

Checked in the view (and by ``job_shortcut`` in its place), after authentication, so that the
key is the user and not the address.
"""

from __future__ import annotations

import logging
import math
import time
from functools import cache

import redis
from limits import RateLimitItem, parse

from shelfwatch.config import Settings
from webapi.problems import Problem
from webapi.ratelimit import limiter
from webapi.services import services

log = logging.getLogger(__name__)


def check_submit_rate(user_id: int) -> None:
    """Count one submission; a 429 with ``Retry-After`` when the user is over the limit."""
    problem = counted_submission(services().settings, user_id)
    if problem is not None:
        raise problem


def counted_submission(settings: Settings, user_id: int) -> Problem | None:
    """Count one submission of the user; the 429 to answer if it is over the limit.

    While Redis fails, submissions are let through (logged), as the API's other rate limits
    are (Flask-Limiter's ``RATELIMIT_SWALLOW_ERRORS``): a limit is no reason to refuse work.
    """
    strategy = limiter.limiter
    # Called directly, the strategy knows no key prefix: the deployment's goes in the key.
    identifiers = (settings.redis_prefix + "scrape-submit", str(user_id))
    try:
        item = _parsed(settings.scrape_submit_rate_limit)
        if strategy.hit(item, *identifiers):
            return None
        reset_at, _remaining = strategy.get_window_stats(item, *identifiers)
    except redis.RedisError as error:
        log.warning("submit rate limit not checked (Redis failing): %s", error)
        return None
    retry_after = max(1, math.ceil(reset_at - time.time()))
    return Problem(
        429,
        "rate-limited",
        f"Too many scrape jobs submitted; at most {item}.",
        headers={"Retry-After": str(retry_after)},
    )


@cache
def _parsed(limit: str) -> RateLimitItem:
    """The limit string parsed once per process (it is a setting, so a handful at most)."""
    return parse(limit)
