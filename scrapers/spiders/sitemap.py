"""The ``sitemap`` spider: sitemaps (XML or gzip, sitemap indexes, or robots.txt ``Sitemap:``
lines) → product pages whose URL matches the patterns, up to a page limit.

Built on Scrapy's public sitemap utilities rather than ``SitemapSpider``, whose product
requests could not carry the errback and freshness marker every product request needs.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

from scrapy import Request
from scrapy.http import Response, XmlResponse
from scrapy.utils.gz import gunzip, gzip_magic_number
from scrapy.utils.sitemap import Sitemap, sitemap_urls_from_robots

from scrapers.spiders.args import SitemapArgs
from scrapers.spiders.product import ShelfwatchSpider


class SitemapProductSpider(ShelfwatchSpider):
    """Sitemap URLs (``urls``) → product pages matching ``include`` and not ``exclude``."""

    name = "sitemap"
    Params = SitemapArgs
    args: SitemapArgs

    def __init__(self, name: str | None = None, **kwargs: object) -> None:
        super().__init__(name, **kwargs)
        self.include = [re.compile(pattern) for pattern in self.args.include]
        self.exclude = [re.compile(pattern) for pattern in self.args.exclude]
        self.products_requested: set[str] = set()

    async def start(self) -> AsyncIterator[Request]:
        for url in self.start_urls:
            yield self.sitemap_request(url)

    def sitemap_request(self, url: str) -> Request:
        return Request(url, callback=self.parse_sitemap, errback=self.on_error)

    def parse_sitemap(self, response: Response) -> Iterator[Request]:
        self.count("pages/sitemap")
        if response.url.endswith("/robots.txt"):
            for url in sitemap_urls_from_robots(response.body, base_url=response.url):
                yield self.sitemap_request(url)
            return
        sitemap = self._read(response)
        if sitemap is None:
            self.count("pages/not_sitemap")
            self.logger.warning("not a sitemap: %s", response.url)
            return
        for entry in sitemap:
            if self.limit_reached:
                return
            location = entry.get("loc", "").strip()
            if sitemap.type == "sitemapindex":
                yield self.sitemap_request(location)
            elif self.wanted(location):
                self.products_requested.add(location)
                yield self.product_request(location)

    @property
    def limit_reached(self) -> bool:
        return len(self.products_requested) >= self.args.limit

    def wanted(self, url: str) -> bool:
        if not url or url in self.products_requested:
            return False
        if self.include and not any(pattern.search(url) for pattern in self.include):
            return False
        return not any(pattern.search(url) for pattern in self.exclude)

    def _read(self, response: Response) -> Sitemap | None:
        body = self._body(response)
        if not body:
            return None
        sitemap = Sitemap(body)
        return sitemap if sitemap.type in ("sitemapindex", "urlset") else None

    def _body(self, response: Response) -> bytes | None:
        """The XML of a sitemap response, gunzipped within DOWNLOAD_MAXSIZE."""
        if gzip_magic_number(response):
            try:
                return gunzip(response.body, max_size=self.settings.getint("DOWNLOAD_MAXSIZE"))
            except (OSError, ValueError):  # ValueError: larger than DOWNLOAD_MAXSIZE
                self.count("pages/error/bad_gzip")
                return None
        if isinstance(response, XmlResponse) or response.body.lstrip()[:5] == b"<?xml":
            return response.body
        return None
