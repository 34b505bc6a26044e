"""The ``catalog`` spider: category pages → their product pages and next pages.

Product links come from selectors given as arguments, else from structured data (ItemList,
Product nodes) and link heuristics; next pages from ``next_css``, else ``rel=next`` and
pagination links (see `scrapers.extraction.find_listing_links`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from scrapy import Request
from scrapy.http import Response, TextResponse

from scrapers.extraction import find_listing_links, find_product_links_by_selector
from scrapers.spiders.args import CatalogArgs
from scrapers.spiders.product import ShelfwatchSpider, is_html


class CatalogSpider(ShelfwatchSpider):
    """Category page URLs (``urls``) → product pages, within depth and page limits."""

    name = "catalog"
    Params = CatalogArgs
    args: CatalogArgs

    def __init__(self, name: str | None = None, **kwargs: object) -> None:
        super().__init__(name, **kwargs)
        self.listings_requested: set[str] = set()
        self.products_requested: set[str] = set()

    async def start(self) -> AsyncIterator[Request]:
        for url in self.start_urls:
            if len(self.listings_requested) < self.args.max_pages:
                yield self.listing_request(url, depth=0)

    def listing_request(self, url: str, depth: int) -> Request:
        self.listings_requested.add(url)
        return Request(
            url, callback=self.parse_listing, errback=self.on_error, cb_kwargs={"depth": depth}
        )

    def parse_listing(self, response: Response, depth: int) -> Iterator[Request]:
        if not is_html(response):
            self.count("pages/not_listing/not_html")
            return
        assert isinstance(response, TextResponse)
        self.count("pages/listing")
        products, next_pages = self.links(response)
        if not products:
            self.count("pages/listing_without_products")
        for url in products:
            if len(self.products_requested) >= self.args.limit:
                break
            if url not in self.products_requested:
                self.products_requested.add(url)
                yield self.product_request(url)
        if depth >= self.args.max_depth or len(self.products_requested) >= self.args.limit:
            return
        for url in next_pages:
            if len(self.listings_requested) >= self.args.max_pages:
                break
            if url not in self.listings_requested:
                yield self.listing_request(url, depth + 1)

    def links(self, response: TextResponse) -> tuple[list[str], list[str]]:
        """(product URLs, next-page URLs) of a listing page."""
        body, url = response.body, response.url
        found = None
        if self.args.product_css or self.args.product_xpath:
            products = find_product_links_by_selector(
                body, url, css=self.args.product_css, xpath=self.args.product_xpath
            )
        else:
            found = find_listing_links(body, url)
            products = found.product_urls
        if self.args.next_css:
            next_pages = find_product_links_by_selector(body, url, css=self.args.next_css)
        else:
            next_pages = (found or find_listing_links(body, url)).next_page_urls
        return products, next_pages
