"""The spiders end to end: real local HTTP servers, a crawl in a subprocess, PostgreSQL."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from models import Database, PriceObservation, ScrapedProduct
from scrapers.spiders import SPIDERS
from shelfwatch.config import Settings
from tests.scrapers.servers import (
    ROOT,
    Route,
    Site,
    SiteServer,
    html_response,
    product_page,
    run_crawl,
)

pytestmark = pytest.mark.slow

LISTING = """<html><head><title>Shoes</title>{next}</head><body><ul>{items}</ul></body></html>"""


def listing_page(products: list[str], next_url: str | None = None) -> Route:
    items = "".join(
        f'<li class="product-card"><a href="{url}">Shoe</a> <span>9.99 EUR</span></li>'
        for url in products
    )
    link = f'<link rel="next" href="{next_url}">' if next_url else ""
    return html_response(LISTING.format(next=link, items=items))


def stored(database: Database) -> dict[str, ScrapedProduct]:
    with database.session() as session:
        return {p.canonical_url: p for p in session.scalars(select(ScrapedProduct))}


def test_product_spider_stores_products_and_counts_other_pages(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    site = Site(
        routes={
            "/p/1": html_response(product_page("Trail Shoe", "89.90")),
            "/p/2": html_response(product_page("Road Shoe", "1.234,56", sku="R-2")),
            "/category": listing_page([f"/p/{n}" for n in range(10, 16)]),
            "/feed.json": (200, {"Content-Type": "application/json"}, b'{"name": "x"}'),
            "/image.png": (200, {"Content-Type": "image/png"}, b"\x89PNG\r\n\x1a\n" + b"0" * 64),
        }
    )
    with SiteServer(site):
        paths = ["/p/1", "/p/2", "/category", "/feed.json", "/image.png", "/gone"]
        outcome = run_crawl(
            settings,
            "product",
            {"urls": [site.url(path) for path in paths]},
            tmp_path=tmp_path,
            job_id="job-product",
        )
    assert outcome.returncode == 0, outcome.log[-3000:]
    assert outcome.stat("pages/product") == 2
    assert outcome.stat("pages/not_product/listing_page") == 1
    assert outcome.stat("pages/not_product/not_html") == 2
    assert outcome.stat("pages/error/http_404") == 1
    assert sorted(item["name"] for item in outcome.items) == ["Road Shoe", "Trail Shoe"]
    rows = stored(database)
    assert {row.name: (str(row.price), row.job_id) for row in rows.values()} == {
        "Trail Shoe": ("89.9000", "job-product"),
        "Road Shoe": ("1234.5600", "job-product"),
    }


def test_robots_txt_disallow_is_obeyed_for_concurrent_requests(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    robots = (200, {"Content-Type": "text/plain"}, b"User-agent: *\nDisallow: /private\n")
    site = Site(routes={"/robots.txt": robots})
    for n in range(4):
        site.routes[f"/p/{n}"] = html_response(product_page(f"Open {n}", "1.00"))
        site.routes[f"/private/{n}"] = html_response(product_page(f"Hidden {n}", "1.00"))
    with SiteServer(site):
        urls = [site.url(f"/{kind}/{n}") for n in range(4) for kind in ("p", "private")]
        outcome = run_crawl(settings, "product", {"urls": urls}, tmp_path=tmp_path)
    assert outcome.stat("robotstxt/forbidden") == 4
    assert not [hit for hit in site.hits if hit.startswith("/private")]
    assert outcome.stat("pages/product") == 4


def test_5xx_and_429_are_retried_with_backoff(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    answers = {"/flaky": [500, 503], "/busy": [429]}

    def flaky(path: str) -> Route:
        if answers[path]:
            status = answers[path].pop(0)
            return status, {"Content-Type": "text/html", "Retry-After": "0"}, b"try later"
        return html_response(product_page(f"Product at {path}", "3.00"))

    site = Site(routes={"/flaky": flaky, "/busy": flaky, "/broken": html_response("no", 500)})
    with SiteServer(site):
        outcome = run_crawl(
            settings,
            "product",
            {"urls": [site.url("/flaky"), site.url("/busy"), site.url("/broken")]},
            tmp_path=tmp_path,
        )
    assert outcome.stat("pages/product") == 2
    assert site.hit_count("/flaky") == 3
    assert site.hit_count("/busy") == 2
    assert site.hit_count("/broken") == 4  # the first try and RETRY_TIMES (3) retries
    assert outcome.stat("pages/error/http_500") == 1
    assert outcome.stat("retry/backoff_seconds") > 0
    assert len(stored(database)) == 2


def test_redirect_loops_end_without_a_crash(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    site = Site()
    site.routes["/a"] = (302, {"Location": "/b"}, b"")
    site.routes["/b"] = (302, {"Location": "/a"}, b"")
    site.routes["/ok"] = html_response(product_page("Fine", "2.00"))
    with SiteServer(site):
        outcome = run_crawl(
            settings, "product", {"urls": [site.url("/a"), site.url("/ok")]}, tmp_path=tmp_path
        )
    assert outcome.returncode == 0
    assert outcome.stat("pages/product") == 1
    # The dupe filter or REDIRECT_MAX_TIMES ends the loop; nothing loops forever.
    assert site.hit_count("/a") + site.hit_count("/b") <= 12


def test_huge_responses_are_cancelled_at_download_maxsize(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    huge = product_page("Huge", "1.00") + "<!--" + "x" * 400_000 + "-->"
    site = Site(
        routes={"/huge": html_response(huge), "/ok": html_response(product_page("Ok", "2.00"))}
    )
    with SiteServer(site):
        outcome = run_crawl(
            settings,
            "product",
            {"urls": [site.url("/huge"), site.url("/ok")]},
            tmp_path=tmp_path,
            scrapy_settings={"DOWNLOAD_MAXSIZE": 100_000, "DOWNLOAD_WARNSIZE": 50_000},
        )
    assert [item["name"] for item in outcome.items] == ["Ok"]
    assert sum(v for k, v in outcome.stats.items() if k.startswith("pages/error/")) == 1


def test_sitemap_spider_follows_robots_indexes_and_gzip_with_patterns_and_limit(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    site = Site()
    urlset = "".join(
        f"<url><loc>{{base}}/{kind}/{n}</loc></url>" for n in range(6) for kind in ("p", "blog")
    )
    site.routes["/robots.txt"] = (200, {}, b"User-agent: *\nSitemap: /sitemap_index.xml\n")

    def sitemap_index(path: str) -> Route:
        body = (
            '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<sitemap><loc>{site.base}/products.xml.gz</loc></sitemap></sitemapindex>"
        )
        return 200, {"Content-Type": "application/xml"}, body.encode()

    def products(path: str) -> Route:
        body = (
            '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            + urlset.format(base=site.base)
            + "</urlset>"
        )
        return 200, {"Content-Type": "application/octet-stream"}, gzip.compress(body.encode())

    site.routes["/sitemap_index.xml"] = sitemap_index
    site.routes["/products.xml.gz"] = products
    for n in range(6):
        site.routes[f"/p/{n}"] = html_response(product_page(f"Item {n}", f"{n}.50"))
    with SiteServer(site):
        outcome = run_crawl(
            settings,
            "sitemap",
            {"urls": site.url("/robots.txt"), "include": r"/p/\d+$", "limit": "4"},
            tmp_path=tmp_path,
        )
    assert outcome.returncode == 0, outcome.log[-3000:]
    assert outcome.stat("pages/product") == 4
    assert not [hit for hit in site.hits if hit.startswith("/blog")]
    assert len(stored(database)) == 4


def test_catalog_spider_follows_pagination_and_product_links(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    site = Site()
    site.routes["/shoes"] = listing_page(["/p/1", "/p/2", "/p/3"], "/shoes?page=2")
    site.routes["/shoes?page=2"] = listing_page(["/p/4", "/p/5", "/p/6"], "/shoes?page=3")
    site.routes["/shoes?page=3"] = listing_page(["/p/7", "/p/8", "/p/9"])
    for n in range(1, 10):
        site.routes[f"/p/{n}"] = html_response(product_page(f"Shoe {n}", "10.00", sku=f"S{n}"))
    with SiteServer(site):
        outcome = run_crawl(
            settings, "catalog", {"urls": site.url("/shoes"), "max_depth": 1}, tmp_path=tmp_path
        )
    assert outcome.returncode == 0, outcome.log[-3000:]
    assert outcome.stat("pages/listing") == 2
    assert site.hit_count("/shoes?page=3") == 0
    assert sorted(stored(database)) == sorted(site.url(f"/p/{n}") for n in range(1, 7))


def test_catalog_spider_uses_css_selectors_given_as_arguments(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    page = (
        '<html><body><div class="grid"><a class="tile" href="/x/1">1</a>'
        '<a class="tile" href="/x/2">2</a><a href="/about">about</a></div>'
        '<a class="more" href="/list2">more</a></body></html>'
    )
    site = Site(
        routes={
            "/list": html_response(page),
            "/list2": html_response("<html><body><a class='tile' href='/x/3'>3</a></body></html>"),
        }
    )
    for n in (1, 2, 3):
        site.routes[f"/x/{n}"] = html_response(product_page(f"Tile {n}", "4.00"))
    with SiteServer(site):
        outcome = run_crawl(
            settings,
            "catalog",
            {"urls": site.url("/list"), "product_css": "a.tile", "next_css": "a.more", "limit": 2},
            tmp_path=tmp_path,
        )
    assert outcome.stat("pages/product") + outcome.stat("pages/listing") >= 3
    assert site.hit_count("/about") == 0
    assert len(stored(database)) == 2  # the page limit


def test_spider_arguments_are_validated_and_published_as_json_schema(tmp_path: Path) -> None:
    urls_file = tmp_path / "urls.txt"
    urls_file.write_text("# shop\nhttps://a.example/p/1\n\nhttps://b.example/p/2\n")
    spider = SPIDERS["product"](
        urls="https://a.example/p/0, https://a.example/p/1", urls_file=str(urls_file)
    )
    assert spider.start_urls == [
        "https://a.example/p/0",
        "https://a.example/p/1",
        "https://b.example/p/2",
    ]
    assert SPIDERS["catalog"](urls=["https://a.example/c"], limit="5").args.limit == 5
    schema = SPIDERS["sitemap"].args_json_schema()
    assert schema["properties"]["limit"]["title"] == "Page limit"
    assert "description" in schema["properties"]["urls"]
    with pytest.raises(ValueError, match="'limit'"):
        SPIDERS["catalog"](urls="https://a.example/c", limit="abc")
    with pytest.raises(ValueError, match="'urls'"):
        SPIDERS["product"](urls="ftp://a.example/x")
    with pytest.raises(ValueError, match="unknown argument"):
        SPIDERS["product"](urls="https://a.example/x", colour="red")


def _scrapy(*args: str, settings: Settings, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SHELFWATCH_MODE": "production",
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "REDIS_PREFIX": settings.redis_prefix,
        "SSRF_ALLOWED_NETWORKS": "127.0.0.0/8",
        "DOMAIN_RATE_PER_SECOND": "1000",
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-m", "scrapy", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_scrapy_crawl_prints_one_line_for_a_bad_argument(settings: Settings) -> None:
    completed = _scrapy(
        "crawl", "catalog", "-a", "urls=https://a.example/", "-a", "limit=abc", settings=settings
    )
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    errors = [line for line in completed.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "'limit'" in errors[0], completed.stderr


def test_scrapy_crawl_exports_the_items_it_stores(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    site = Site(routes={"/p/1": html_response(product_page("Exported", "12.00"))})
    out = tmp_path / "out.jsonl"
    with SiteServer(site):
        completed = _scrapy(
            "crawl", "product", "-a", f"urls={site.url('/p/1')}", "-O", str(out), settings=settings
        )
    assert completed.returncode == 0, completed.stderr[-3000:]
    item = json.loads(out.read_text().splitlines()[0])
    assert item["name"] == "Exported" and item["price"] == "12.00" and item["currency"] == "EUR"
    assert item["sources"]["price"] == "json-ld"
    row = stored(database)[item["canonical_url"]]
    with database.session() as session:
        history = session.scalars(
            select(PriceObservation).where(PriceObservation.product_id == row.id)
        ).all()
    assert str(row.price) == "12.0000" and len(history) == 1
