"""Per-domain rate limit shared by every crawling process and machine: a token bucket in Redis.

The bucket is a *reservation* bucket: each request takes a token at once, and when the bucket
is empty the balance goes negative and the caller is told how long to wait for its turn. One
atomic Lua script (clocked by Redis's ``TIME``, so machines need no synchronised clocks) does
the arithmetic; requests then wait without blocking the reactor (``deferLater``). Without Redis
(the embedded mode) the same bucket lives in the process.

Rates: ``DOMAIN_RATE_PER_SECOND`` by default, ``DOMAIN_RATE_OVERRIDES`` (``example.com=5``,
matching the domain and its subdomains), and never faster than robots.txt's ``Crawl-delay``.
Stats: ``ratelimit/waits`` and ``ratelimit/wait_seconds``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, Protocol, Self

import redis
from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet import defer, task, threads

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


class TokenBucket(Protocol):
    def reserve(self, domain: str, rate: float, burst: float) -> float:
        """Take a token for ``domain``; the seconds to wait before using it."""
        ...


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
    """The shared bucket: one Redis hash per domain, updated by one atomic script."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.script = client.register_script(RESERVE_SCRIPT)
        self.fallback = LocalTokenBucket()

    def reserve(self, domain: str, rate: float, burst: float) -> float:
        key = f"{self.prefix}ratelimit:{domain}"
        try:
            return float(self.script(keys=[key], args=[rate, burst]))
        except redis.RedisError as error:
            # Still polite while Redis is away: this process keeps its own bucket meanwhile.
            logger.warning("rate limit falls back to this process (Redis: %s)", error)
            return self.fallback.reserve(domain, rate, burst)


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
        bucket: TokenBucket,
        *,
        default_rate: float,
        overrides: dict[str, float],
        burst: float,
        threaded: bool,
    ) -> None:
        self.crawler = crawler
        self.bucket = bucket
        self.default_rate = default_rate
        self.overrides = overrides
        self.burst = burst
        self.threaded = threaded
        self.crawl_delays: dict[str, float] = {}
        crawler.signals.connect(self.robots_parsed, signal=signals.robots_parsed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = shelfwatch_settings(crawler.settings)
        bucket: TokenBucket = LocalTokenBucket()
        if settings.redis_url:
            bucket = RedisTokenBucket(
                redis.Redis.from_url(settings.redis_url), settings.redis_prefix
            )
        return cls(
            crawler,
            bucket,
            default_rate=crawler.settings.getfloat("DOMAIN_RATE_PER_SECOND", 2.0),
            overrides=parse_overrides(crawler.settings.getlist("DOMAIN_RATE_OVERRIDES")),
            burst=crawler.settings.getfloat("DOMAIN_RATE_BURST", 1.0),
            threaded=settings.redis_url is not None,
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
        wait = await maybe_deferred_to_future(self._reserve(domain, rate))
        if wait > 0:
            assert self.crawler.stats is not None
            self.crawler.stats.inc_value("ratelimit/waits")
            self.crawler.stats.inc_value("ratelimit/wait_seconds", wait)
            from twisted.internet import reactor

            await maybe_deferred_to_future(task.deferLater(reactor, wait))  # type: ignore[arg-type]

    def _reserve(self, domain: str, rate: float) -> defer.Deferred[float]:
        burst = max(self.burst, 1.0)
        if self.threaded:
            # A Redis round trip stays off the reactor thread.
            return threads.deferToThread(self.bucket.reserve, domain, rate, burst)
        return defer.succeed(self.bucket.reserve(domain, rate, burst))
