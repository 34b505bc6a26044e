"""The per-domain token bucket: shared through Redis across processes, paced crawls."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import redis

from scrapers.middlewares.ratelimit import (
    LocalTokenBucket,
    RedisTokenBucket,
    parse_overrides,
    rate_for,
)
from shelfwatch.config import Settings
from tests.scrapers.servers import ROOT, Site, SiteServer, html_response, product_page, run_crawl

# Each process takes its tokens and sleeps as told; it prints when each request may go.
WORKER = """
import asyncio, json, sys, time
from scrapers.middlewares.ratelimit import RedisTokenBucket
url, prefix = sys.argv[1], sys.argv[2]
count, rate, start_at = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])

async def main():
    bucket = RedisTokenBucket(url, prefix)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    times = []
    for _ in range(count):
        wait = await bucket.reserve("shop.example", rate, 1.0)
        times.append(time.time() + wait)  # the instant the bucket granted, free of sleep jitter
        await asyncio.sleep(wait)
    await bucket.close()
    print(json.dumps(times))

asyncio.run(main())
"""


def test_two_processes_share_one_bucket_at_the_configured_rate(settings: Settings) -> None:
    assert settings.redis_url
    rate, per_process = 20.0, 15
    start_at = time.time() + 1.0
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                settings.redis_url,
                settings.redis_prefix,
                str(per_process),
                str(rate),
                str(start_at),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    times = sorted(t for p in processes for t in json.loads(p.communicate(timeout=30)[0]))
    redis.Redis.from_url(settings.redis_url).delete(
        f"{settings.redis_prefix}ratelimit:shop.example"
    )
    elapsed = times[-1] - times[0]
    expected = (2 * per_process - 1) / rate  # the first token is the burst
    assert expected * 0.9 <= elapsed <= expected * 1.2, (elapsed, expected)
    # No half-second window holds more than the rate allows plus the burst token
    # (and one for clock skew between the two processes).
    window = 0.5
    busiest = max(sum(1 for t in times if start <= t < start + window) for start in times)
    assert busiest <= rate * window + 2, (busiest, times)


def test_the_local_bucket_paces_at_the_rate() -> None:
    now = [100.0]
    bucket = LocalTokenBucket(clock=lambda: now[0])
    waits = [bucket.reserve("a.example", 4.0, 1.0) for _ in range(5)]
    assert waits == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert bucket.reserve("b.example", 4.0, 1.0) == 0.0  # per domain
    now[0] += 10
    assert bucket.reserve("a.example", 4.0, 1.0) == 0.0


def test_the_shared_bucket_falls_back_to_the_process_while_redis_is_away() -> None:
    bucket = RedisTokenBucket("redis://127.0.0.1:1/0", "nowhere:")

    async def waits() -> list[float]:
        taken = [await bucket.reserve("a.example", 4.0, 1.0) for _ in range(3)]
        await bucket.close()
        return taken

    first, second, third = asyncio.run(waits())
    # The process's own bucket at the same rate: 0, then a quarter second more each time.
    assert first == 0.0 and 0.2 < second <= 0.25 and 0.45 < third <= 0.5


def test_overrides_match_the_domain_and_its_subdomains() -> None:
    overrides = parse_overrides("example.com=5, slow.shop=0.5")
    assert rate_for("example.com", 2.0, overrides) == 5.0
    assert rate_for("www.example.com", 2.0, overrides) == 5.0
    assert rate_for("notexample.com", 2.0, overrides) == 2.0
    assert rate_for("slow.shop", 2.0, overrides) == 0.5


def test_a_crawl_honours_the_rate_and_robots_crawl_delay(
    settings: Settings, tmp_path: Path
) -> None:
    robots = (200, {"Content-Type": "text/plain"}, b"User-agent: *\nCrawl-delay: 0.5\n")
    site = Site(routes={"/robots.txt": robots})
    for n in range(4):
        site.routes[f"/p/{n}"] = html_response(product_page(f"P{n}", "1.00"))
    with SiteServer(site):
        started = time.monotonic()
        outcome = run_crawl(
            settings,
            "product",
            {"urls": [site.url(f"/p/{n}") for n in range(4)]},
            tmp_path=tmp_path,
            scrapy_settings={"STORAGE_ENABLED": False},
        )
        elapsed = time.monotonic() - started
    assert outcome.stat("pages/product") == 4
    # robots.txt and the first page go at once; then 3 pages 0.5 s apart.
    assert outcome.stat("ratelimit/waits") >= 3
    assert outcome.stat("ratelimit/wait_seconds") >= 1.2
    assert elapsed >= 1.4
