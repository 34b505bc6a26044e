"""The shelfwatch spiders, by name (`SPIDERS` is what workers and the API look up)."""

from __future__ import annotations

from scrapers.spiders.args import SpiderArgumentError
from scrapers.spiders.catalog import CatalogSpider
from scrapers.spiders.product import ProductSpider, ShelfwatchSpider
from scrapers.spiders.sitemap import SitemapProductSpider

SPIDERS: dict[str, type[ShelfwatchSpider]] = {
    spider.name: spider for spider in (ProductSpider, SitemapProductSpider, CatalogSpider)
}

__all__ = [
    "SPIDERS",
    "CatalogSpider",
    "ProductSpider",
    "ShelfwatchSpider",
    "SitemapProductSpider",
    "SpiderArgumentError",
]
