"""Product extraction from fetched pages: pure functions, no crawling, no storage."""

from scrapers.extraction.listing import (
    ListingLinks,
    find_listing_links,
    find_product_links_by_selector,
)
from scrapers.extraction.product import ExtractionResult, extract_product

__all__ = [
    "ExtractionResult",
    "ListingLinks",
    "extract_product",
    "find_listing_links",
    "find_product_links_by_selector",
]
