"""Per-domain rate limit shared by every crawling process and machine: a token bucket in Redis.

The bucket is a *reservation* bucket: each request takes a token at once, and when the bucket
is empty the balance goes negative and the caller is told how long to wait for its turn. One
atomic Lua script (clocked by Redis's ``TIME``, so machines need no synchronised clocks) does
the arithmetic; requests then wait without blocking the reactor (``deferLater``). Without Redis
(the embedded mode) the same bucket lives in the process.

Inside a crawl the script runs through redis-py's asyncio client on the reactor's own asyncio
loop (Scrapy runs the ``AsyncioSelectorReactor``): no thread hop per request, which cost a
small job's page more than the Redis round trip itself.

Rates: ``DOMAIN_RATE_PER_SECOND`` by default, ``DOMAIN_RATE_OVERRIDES`` (``example.com=5``,
matching the domain and its subdomains), and never faster than robots.txt's ``Crawl-delay``.
Stats: ``ratelimit/waits`` and ``ratelimit/wait_seconds``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, Self

import redis
import redis.asyncio
from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet import defer, task

from scrapers.settings import shelfwatch_settings

logger = logging.getLogger(__name__)

RESERVE_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local stamp = tonumber(state[2])
if tokens == nil or stamp == nil then
  tokens = burst
  stamp = now
end
tokens = math.min(burst, tokens + (now - stamp) * rate / 1000000) - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
local wait = 0
if tokens < 0 then wait = -tokens / rate end
redis.call('PEXPIRE', KEYS[1], math.ceil((wait + burst / rate) * 1000) + 60000)
return tostring(wait)
"""


class LocalTokenBucket:
    """The same bucket in this process only (embedded mode, no Redis)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.state: dict[str, tuple[float, float]] = {}

    def reserve(self, domain: str, rate: float, burst: float) -> float:
        now = self.clock()
        tokens, stamp = self.state.get(domain, (burst, now))
        tokens = min(burst, tokens + (now - stamp) * rate) - 1
        self.state[domain] = (tokens, now)
        return -tokens / rate if tokens < 0 else 0.0


class RedisTokenBucket:
    """The shared bucket: one Redis hash per domain, updated by one atomic script, called
    from a coroutine on the crawl's asyncio loop.

    The client is made on first use, inside that loop (an asyncio connection belongs to the
    loop that opened it), and closed with the crawl.
    """

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.client: redis.asyncio.Redis | None = None
        self.script: Any = None
        self.fallback = LocalTokenBucket()  # still polite while Redis is away

    async def reserve(self, domain: str, rate: float, burst: float) -> float:
        if self.client is None:
            self.client = redis.asyncio.Redis.from_url(self.url)
            self.script = self.client.register_script(RESERVE_SCRIPT)
        key = f"{self.prefix}ratelimit:{domain}"
        try:
            return float(await self.script(keys=[key], args=[rate, burst]))
        except redis.RedisError as error:
            logger.warning("rate limit falls back to this process (Redis: %s)", error)
            return self.fallback.reserve(domain, rate, burst)

    async def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            await client.aclose()


def parse_overrides(values: Iterable[str] | str) -> dict[str, float]:
    """``["example.com=5", "shop.test=0.5"]`` (or one comma-separated string) → rates."""
    if isinstance(values, str):
        values = values.split(",")
    rates: dict[str, float] = {}
    for value in values:
        if value.strip():
            domain, _, rate = value.partition("=")
            rates[domain.strip().lower().lstrip(".")] = float(rate)
    return rates


def rate_for(domain: str, default: float, overrides: dict[str, float]) -> float:
    """The override of ``domain`` or of its nearest parent domain, else ``default``."""
    labels = domain.split(".")
    for start in range(len(labels)):
        candidate = ".".join(labels[start:])
        if candidate in overrides:
            return overrides[candidate]
    return default


class DomainRateLimitMiddleware:
    """Holds each request until its domain's shared bucket grants it a token."""

    def __init__(
        self,
        crawler: Crawler,
        bucket: LocalTokenBucket | RedisTokenBucket,
        *,
        default_rate: float,
        overrides: dict[str, float],
        burst: float,
    ) -> None:
        self.crawler = crawler
        self.bucket = bucket
        self.default_rate = default_rate
        self.overrides = overrides
        self.burst = burst
        self.crawl_delays: dict[str, float] = {}
        crawler.signals.connect(self.robots_parsed, signal=signals.robots_parsed)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = shelfwatch_settings(crawler.settings)
        bucket: LocalTokenBucket | RedisTokenBucket = LocalTokenBucket()
        if settings.redis_url:
            bucket = RedisTokenBucket(settings.redis_url, settings.redis_prefix)
        return cls(
            crawler,
            bucket,
            default_rate=crawler.settings.getfloat("DOMAIN_RATE_PER_SECOND", 2.0),
            overrides=parse_overrides(crawler.settings.getlist("DOMAIN_RATE_OVERRIDES")),
            burst=crawler.settings.getfloat("DOMAIN_RATE_BURST", 1.0),
        )

    def robots_parsed(self, robotparser: Any, request: Request) -> None:
        agent = self.crawler.settings.get("ROBOTSTXT_USER_AGENT") or self.crawler.settings.get(
            "USER_AGENT"
        )
        delay = robotparser.crawl_delay(agent)
        if delay:
            domain = (urlparse_cached(request).hostname or "").lower()
            self.crawl_delays[domain] = float(delay)
            logger.info("robots.txt of %s asks for a Crawl-delay of %ss", domain, delay)

    def rate(self, domain: str) -> float:
        rate = rate_for(domain, self.default_rate, self.overrides)
        delay = self.crawl_delays.get(domain)
        return min(rate, 1.0 / delay) if delay else rate

    async def process_request(self, request: Request) -> None:
        if request.meta.get("dont_rate_limit"):
            return
        domain = (urlparse_cached(request).hostname or "").lower()
        rate = self.rate(domain)
        if rate <= 0:
            return
        burst = max(self.burst, 1.0)
        if isinstance(self.bucket, RedisTokenBucket):
            wait = await self.bucket.reserve(domain, rate, burst)
        else:
            wait = self.bucket.reserve(domain, rate, burst)
        if wait > 0:
            assert self.crawler.stats is not None
            self.crawler.stats.inc_value("ratelimit/waits")
            self.crawler.stats.inc_value("ratelimit/wait_seconds", wait)
            from twisted.internet import reactor

            await maybe_deferred_to_future(task.deferLater(reactor, wait))  # type: ignore[arg-type]

    def spider_closed(self) -> defer.Deferred[None] | None:
        if isinstance(self.bucket, RedisTokenBucket):
            return deferred_from_coro(self.bucket.close())
        return None
