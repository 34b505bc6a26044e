"""Crawl speed: the full ``product`` spider (every extraction layer) vs a bare Scrapy spider.

A local site of N generated product pages (default 5,000) is served by an aiohttp server in a
subprocess on 127.0.0.1. Both crawls run in their own process with the same Scrapy settings
(all middlewares: SSRF guard, Redis token bucket with a rate high enough not to throttle,
robots.txt, freshness off) and the same storage pipeline writing every product to PostgreSQL
(fresh tables for each crawl). The bare spider does no extraction: it takes each product's
values from the site's own generator (`product_values`, by the number in the URL), so both
crawls store the very same rows; the full one runs `extract_product`. After each crawl the
stored values are fingerprinted and the two crawls must agree. Printed: pages/s of each and
the ratio full/bare (target >= 0.9).

    python bench/crawl_speed.py [--pages 1000] [--rounds 1] [--spider product|catalog]

The default (1,000 pages) keeps a run under about three minutes here; `--pages 5000` is the
issue's site size.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = "postgresql://127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
PRODUCTS_PER_LISTING = 50


# ---- the site -------------------------------------------------------------------------------


def product_values(n: int) -> dict[str, str]:
    """What product `n`'s page says, as the full spider extracts it and the bare one stores it."""
    return {
        "name": f"Bench Product {n}",
        "price": f"{(n % 500) + 9}.{n % 100:02d}",
        "currency": "EUR",
        "availability": "in_stock",
        "sku": f"BP-{n:05d}",
        "brand": "Benchco",
        "image_url": f"/img/{n}.jpg",
        "description": f"Product {n}",
    }


def product_html(n: int) -> str:
    """A product page as shops serve them: JSON-LD, OpenGraph, navigation, a description."""
    price = product_values(n)["price"]
    nav = "".join(f'<li><a href="/c/{c}">Category {c}</a></li>' for c in range(25))
    text = " ".join(f"Feature {k} of product {n} keeps you going." for k in range(30))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Bench Product {n} | Shop</title>
<link rel="canonical" href="/p/{n}">
<meta property="og:type" content="product"><meta property="og:title" content="Bench Product {n}">
<meta property="og:image" content="/img/{n}.jpg">
<script type="application/ld+json">{{"@context":"https://schema.org","@type":"Product",
"name":"Bench Product {n}","sku":"BP-{n:05d}","brand":{{"@type":"Brand","name":"Benchco"}},
"image":"/img/{n}.jpg","description":"Product {n}",
"offers":{{"@type":"Offer","price":"{price}","priceCurrency":"EUR",
"availability":"https://schema.org/InStock","url":"/p/{n}"}}}}</script>
</head><body><header><nav><ul>{nav}</ul></nav></header>
<main><h1>Bench Product {n}</h1><div class="price">{price} €</div>
<button class="add-to-cart">Add to cart</button><section>{text}</section></main>
<footer><a href="/about">About</a> <a href="/contact">Contact</a></footer></body></html>"""


def listing_html(page: int, pages: int, products: int) -> str:
    first = page * PRODUCTS_PER_LISTING
    cards = "".join(
        f'<li class="product-card"><a href="/p/{n}">Bench Product {n}</a></li>'
        for n in range(first, min(first + PRODUCTS_PER_LISTING, products))
    )
    following = f'<link rel="next" href="/list/{page + 1}">' if page + 1 < pages else ""
    head = f"<head><title>List {page}</title>{following}</head>"
    return f"<html>{head}<body><ul>{cards}</ul></body></html>"


SERVER = """
import sys
from aiohttp import web
sys.path.insert(0, {root!r})
from bench.crawl_speed import listing_html, product_html
products = {products}
pages = -(-products // {per_listing})
bodies = {{f"/p/{{n}}": product_html(n).encode() for n in range(products)}}
bodies.update({{f"/list/{{p}}": listing_html(p, pages, products).encode() for p in range(pages)}})
bodies["/robots.txt"] = b"User-agent: *\\nDisallow: /private\\n"

async def handle(request):
    body = bodies.get(request.path)
    if body is None:
        return web.Response(status=404, text="not found")
    kind = "text/plain" if request.path.endswith(".txt") else "text/html"
    return web.Response(body=body, content_type=kind, charset="utf-8")

app = web.Application()
app.router.add_get("/{{tail:.*}}", handle)
web.run_app(app, host="127.0.0.1", port={port}, print=None, access_log=None)
"""


def start_server(products: int) -> tuple[subprocess.Popen[bytes], int]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = SERVER.format(
        root=str(ROOT), products=products, per_listing=PRODUCTS_PER_LISTING, port=port
    )
    server = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server, port
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the bench server did not start")


# ---- the crawls (each in its own process: one reactor per process) --------------------------


def bare_spider_class() -> type:
    """A spider with no extraction layers that stores the same products as the full one.

    Product pages: the values come from `product_values` (the number in the URL), not from the
    page. Listing pages (catalog mode): product and next links by regex, as a bare spider would.
    """
    from datetime import UTC, datetime
    from urllib.parse import urljoin

    from scrapy import Request

    from scrapers.items import ProductItem
    from scrapers.spiders.product import ShelfwatchSpider

    product_number = re.compile(r"/p/(\d+)$")
    links = re.compile(rb'<a href="(/p/\d+)"|<link rel="next" href="([^"]+)"')

    class BareSpider(ShelfwatchSpider):
        name = "bare"

        async def start(self) -> AsyncIterator[Request]:
            for url in self.start_urls:
                yield Request(url, callback=self.parse_page)

        def parse_page(self, response: Any) -> Iterator[ProductItem | Request]:
            found = product_number.search(response.url)
            if found is None:
                for product, following in links.findall(response.body):
                    yield Request(
                        response.urljoin((product or following).decode()), self.parse_page
                    )
                return
            values = product_values(int(found.group(1)))
            now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            yield ProductItem(
                url=response.url,
                canonical_url=response.url,
                **(values | {"image_url": urljoin(response.url, values["image_url"])}),
                scraped_at=now,
                sources=dict.fromkeys(values, "bare"),
            )

    return BareSpider


def crawl_process(spec: dict[str, Any]) -> None:
    """Child process: run one crawl and print its stats as JSON on the last line.

    Besides Scrapy's stats: ``cpu_seconds``, the process's CPU time (every thread, so the
    storage writes too) from spider open to spider close, the span of ``elapsed_time_seconds``.
    """
    from scrapy import signals
    from scrapy.crawler import CrawlerProcess

    from scrapers.settings import build_crawler_settings
    from scrapers.spiders import SPIDERS
    from shelfwatch.config import load_settings

    settings = load_settings(**spec["settings"])
    extra = {"LOG_LEVEL": "ERROR", "CONCURRENT_REQUESTS": 32, "CONCURRENT_REQUESTS_PER_DOMAIN": 32}
    process = CrawlerProcess(build_crawler_settings(settings, job_id="bench", extra=extra))
    spider = bare_spider_class() if spec["spider"] == "bare" else SPIDERS[spec["spider"]]
    crawler = process.create_crawler(spider)
    cpu: dict[str, float] = {}

    def opened() -> None:
        cpu["open"] = time.process_time()

    def closed() -> None:
        cpu["close"] = time.process_time()

    # Kept referenced until the crawl ends: Scrapy's signals hold receivers weakly.
    crawler.signals.connect(opened, signals.spider_opened)
    crawler.signals.connect(closed, signals.spider_closed)
    process.crawl(crawler, **spec["args"])
    process.start()
    stats = crawler.stats.get_stats()  # type: ignore[union-attr]
    stats["cpu_seconds"] = cpu["close"] - cpu["open"]
    print(json.dumps({k: v for k, v in stats.items() if isinstance(v, int | float)}))


def run_crawl(spider: str, args: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    spec = {"spider": spider, "args": args, "settings": settings}
    completed = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    if completed.returncode != 0:
        raise SystemExit(f"{spider} crawl failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def pages_per_second(stats: dict[str, Any]) -> float:
    return stats.get("response_received_count", 0) / stats["elapsed_time_seconds"]


def cpu_ms_per_page(stats: dict[str, Any]) -> float:
    return 1000 * stats["cpu_seconds"] / stats.get("response_received_count", 1)


def truncate(database_url: str) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "TRUNCATE scraping.scraped_products, scraping.price_observations,"
            " scraping.scrape_job_products"
        )


STORED_VALUES = """
SELECT count(*), (SELECT count(*) FROM scraping.price_observations), md5(string_agg(concat_ws(
    '|', canonical_url, url, name, price, currency, availability, sku, gtin, mpn, brand,
    image_url, description), ',' ORDER BY canonical_url))
FROM scraping.scraped_products
"""


def stored_fingerprint(database_url: str) -> tuple[int, int, str]:
    """(products, price observations, digest of every stored value but times and sources)."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        row = connection.execute(STORED_VALUES).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def crawl_and_store(
    spider: str, args: dict[str, Any], settings: dict[str, Any], database_url: str
) -> tuple[dict[str, Any], tuple[int, int, str]]:
    """One crawl into emptied tables: its stats and the fingerprint of what it stored."""
    truncate(database_url)
    stats = run_crawl(spider, args, settings)
    return stats, stored_fingerprint(database_url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000, help="5000 for the issue figure")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--spider", choices=("product", "catalog"), default="product")
    options = parser.parse_args()

    import psycopg

    from shelfwatch import migrate
    from shelfwatch.config import load_settings

    name = f"bench_crawl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database_url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    settings = {
        "mode": "production",
        "database_url": database_url,
        "redis_url": REDIS_URL,
        "redis_prefix": f"{name}:",
        "ssrf_allowed_networks": ["127.0.0.0/8"],
        "domain_rate_overrides": ["127.0.0.1=1000000"],
        "log_level": "ERROR",
    }
    migrate.upgrade(load_settings(**settings))
    server, port = start_server(options.pages)
    try:
        with tempfile.TemporaryDirectory() as folder:
            urls_file = Path(folder) / "urls.txt"
            urls_file.write_text(
                "\n".join(f"http://127.0.0.1:{port}/p/{n}" for n in range(options.pages))
            )
            full_args: dict[str, Any] = {"urls_file": str(urls_file)}
            bare_args = full_args
            if options.spider == "catalog":
                bare_args = {"urls": f"http://127.0.0.1:{port}/list/0"}
                full_args = {
                    **bare_args,
                    "max_depth": 1000,
                    "max_pages": 100_000,
                    "limit": options.pages,
                }
            bare_rates, full_rates, bare_cpu, full_cpu = [], [], [], []
            for round_number in range(options.rounds):
                # Alternate which crawl goes first, so a drift in the machine's load (shared
                # here) does not always favour the same one.
                crawls = [("bare", bare_args), (options.spider, full_args)]
                if round_number % 2:
                    crawls.reverse()
                results = {
                    spider: crawl_and_store(spider, args, settings, database_url)
                    for spider, args in crawls
                }
                (bare, bare_stored), (full, full_stored) = results["bare"], results[options.spider]
                assert full.get("storage/products", 0) == options.pages, full
                assert bare.get("storage/products", 0) == options.pages, bare
                # Same crawl, same writes: both stored the very same product values.
                assert bare_stored == full_stored, (bare_stored, full_stored)
                assert bare["response_received_count"] == full["response_received_count"]
                bare_rates.append(pages_per_second(bare))
                full_rates.append(pages_per_second(full))
                bare_cpu.append(cpu_ms_per_page(bare))
                full_cpu.append(cpu_ms_per_page(full))
                print(
                    f"round: bare {bare_rates[-1]:.0f} pages/s "
                    f"({bare['elapsed_time_seconds']:.1f} s, {bare_cpu[-1]:.2f} ms CPU/page), "
                    f"{options.spider} {full_rates[-1]:.0f} pages/s "
                    f"({full['elapsed_time_seconds']:.1f} s, {full_cpu[-1]:.2f} ms CPU/page)"
                )
    finally:
        server.terminate()
        server.wait(10)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    report(options, (max(bare_rates), min(bare_cpu)), (max(full_rates), min(full_cpu)))


def report(
    options: argparse.Namespace, bare: tuple[float, float], full: tuple[float, float]
) -> None:
    """Best of the rounds: pages/s (the issue's measure) and CPU per page (steady under load)."""
    print(
        f"pages: {options.pages} products, each stored in PostgreSQL by both crawls "
        "(identical stored values checked)"
    )
    print(f"bare Scrapy spider (no extraction): {bare[0]:8.1f} pages/s  {bare[1]:6.2f} ms CPU/page")
    print(
        f"full {options.spider} spider (all layers):   {full[0]:8.1f} pages/s  "
        f"{full[1]:6.2f} ms CPU/page"
    )
    print(f"ratio full/bare: {full[0] / bare[0]:.2f} pages/s (target >= 0.90)")
    print(
        f"ratio by crawl-process CPU per page: {bare[1] / full[1]:.2f} "
        "(the same ratio where the crawl has the CPU to itself; steadier on a shared machine)"
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        crawl_process(json.loads(sys.argv[2]))
    else:
        main()
