"""The ``product`` spider, and the base every shelfwatch spider shares: typed arguments, the
product-page callback and the error accounting."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar, Self

from scrapy import Request, Spider
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from scrapers.extraction import extract_product
from scrapers.items import ProductItem
from scrapers.spiders.args import CrawlArgs, ProductArgs, parse_arguments

# Responses whose Content-Type is one of these may hold a product page.
_HTML_TYPES = (b"text/html", b"application/xhtml+xml")


class ShelfwatchSpider(Spider):
    """Validates its keyword arguments with ``Params`` (raising `SpiderArgumentError`).

    Attributes a runner may read after the crawl: ``job_id``, ``max_age``, ``cached_urls``
    (URLs not fetched because their stored copy was fresh) and ``cached_products`` (those URLs
    mapped to the stored product's id).
    """

    Params: ClassVar[type[CrawlArgs]] = CrawlArgs

    def __init__(self, name: str | None = None, **kwargs: Any) -> None:
        self.args = parse_arguments(self.Params, kwargs)
        super().__init__(name)
        self.start_urls = self.args.start_urls()
        self.job_id: str | None = self.args.job_id
        self.max_age: int | None = self.args.max_age
        self.cached_urls: list[str] = []
        self.cached_products: dict[str, int] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        # An argument wins over the crawl's settings (a worker passes both the same way).
        if spider.job_id is None:
            spider.job_id = crawler.settings.get("SHELFWATCH_JOB_ID")
        if spider.max_age is None and crawler.settings.get("FRESHNESS_MAX_AGE") is not None:
            spider.max_age = crawler.settings.getint("FRESHNESS_MAX_AGE")
        return spider

    @classmethod
    def args_json_schema(cls) -> dict[str, Any]:
        """The JSON Schema of this spider's arguments (for the API to publish)."""
        return cls.Params.model_json_schema()

    def count(self, key: str) -> None:
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(key)

    def product_request(self, url: str) -> Request:
        """A request for a product page; the freshness middleware may answer it from storage."""
        return Request(
            url, callback=self.parse_product, errback=self.on_error, meta={"product_page": True}
        )

    def parse_product(self, response: Response) -> Iterator[ProductItem]:
        """One item for a product page; other pages are counted as ``pages/not_product/*``."""
        if not is_html(response):
            self.count("pages/not_product/not_html")
            return
        assert isinstance(response, TextResponse)
        result = extract_product(response.body, response.url, encoding=response.encoding)
        if result.item is None:
            self.count(f"pages/not_product/{result.not_product_reason}")
            self.logger.debug("not a product (%s): %s", result.not_product_reason, response.url)
            return
        self.count("pages/product")
        yield result.item

    def on_error(self, failure: Failure) -> None:
        """Count a failed request as ``pages/error/<kind>`` (HTTP status or exception name)."""
        if failure.check(IgnoreRequest) and not failure.check(HttpError):
            return  # robots.txt, SSRF and freshness count their own refusals
        if failure.check(HttpError):
            kind = f"http_{failure.value.response.status}"
        else:
            kind = type(failure.value).__name__
        self.count(f"pages/error/{kind}")
        request = getattr(failure, "request", None)
        self.logger.warning("failed %s: %s", getattr(request, "url", "?"), kind)


def is_html(response: Response) -> bool:
    if not isinstance(response, TextResponse):
        return False
    content_type = response.headers.get(b"Content-Type", b"") or b""
    return not content_type or content_type.split(b";")[0].strip().lower() in _HTML_TYPES


class ProductSpider(ShelfwatchSpider):
    """Product page URLs (``urls`` or ``urls_file``) → one product item per page."""

    name = "product"
    Params = ProductArgs

    async def start(self) -> AsyncIterator[Request]:
        for url in self.start_urls:
            yield self.product_request(url)
