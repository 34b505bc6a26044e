"""Freshness: pages stored more recently than max_age are not fetched again."""

from __future__ import annotations

from pathlib import Path

from models import Database
from scrapers.middlewares.freshness import url_keys
from shelfwatch.config import Settings
from tests.scrapers.servers import Site, SiteServer, html_response, product_page, run_crawl


def test_url_keys_include_the_canonical_form() -> None:
    assert url_keys("https://shop.example/p/1?utm_source=x&b=2&a=1#top") == [
        "https://shop.example/p/1?utm_source=x&b=2&a=1#top",
        "https://shop.example/p/1?a=1&b=2",
    ]


def test_fresh_pages_are_reused_and_counted_as_cached(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    site = Site()
    for n in (1, 2):
        site.routes[f"/p/{n}"] = html_response(product_page(f"Fresh {n}", "5.00"))
    with SiteServer(site):
        first = run_crawl(settings, "product", {"urls": site.url("/p/1")}, tmp_path=tmp_path)
        assert first.stat("pages/product") == 1
        urls = [site.url("/p/1"), site.url("/p/2")]
        second = run_crawl(settings, "product", {"urls": urls}, tmp_path=tmp_path, max_age=3600)
        as_argument = run_crawl(
            settings, "product", {"urls": urls, "max_age": "3600"}, tmp_path=tmp_path
        )
        expired = run_crawl(settings, "product", {"urls": urls, "max_age": "0"}, tmp_path=tmp_path)
    assert second.stat("freshness/cached") == 1
    assert second.cached_urls == [site.url("/p/1")]
    assert second.stat("pages/product") == 1  # only /p/2 was fetched
    assert as_argument.stat("freshness/cached") == 2
    assert expired.stat("freshness/cached") == 0
    assert site.hit_count("/p/1") == 2 and site.hit_count("/p/2") == 2
