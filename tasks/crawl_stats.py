"""A crawl's Scrapy stats turned into a chunk's stats (see ``models.job_stats``).

Only per-crawler counters are used: Scrapy's ``log_count/*`` counts every record of the
process's root logger, so with several crawls in one worker it mixes them up.
"""

from __future__ import annotations

from typing import Any

from models.job_stats import empty_stats

_RESPONSE_PREFIX = "downloader/response_status_count/"
_DROP_PREFIX = "drop_item/product/"
_PAGE_ERROR_PREFIX = "pages/error/"
_NOT_PRODUCT_PREFIX = "pages/not_product/"
SSRF_REFUSED = ("ssrf/refused",)
CACHED = ("freshness/cached",)


def chunk_stats(scrapy_stats: dict[str, Any]) -> dict[str, Any]:
    stats = empty_stats()
    stats["requests"] = _int(scrapy_stats, "downloader/request_count")
    stats["items"] = _int(scrapy_stats, "item_scraped_count")
    stats["cached"] = _sum(scrapy_stats, CACHED)
    stats["ssrf_refused"] = _sum(scrapy_stats, SSRF_REFUSED)
    stats["not_product"] = sum(_breakdown(scrapy_stats, _NOT_PRODUCT_PREFIX).values())
    stats["responses"] = _breakdown(scrapy_stats, _RESPONSE_PREFIX)
    stats["dropped"] = _breakdown(scrapy_stats, _DROP_PREFIX)
    if failed_rows := _int(scrapy_stats, "storage/failed_rows"):
        stats["dropped"]["storage_failed"] = failed_rows
    stats["errors"] = _errors(scrapy_stats)
    return stats


def _errors(scrapy_stats: dict[str, Any]) -> int:
    """Pages that finally failed (the spiders' errbacks count ``pages/error/<kind>`` once per
    page, after retries) and exceptions raised by spider callbacks."""
    return sum(_breakdown(scrapy_stats, _PAGE_ERROR_PREFIX).values()) + _int(
        scrapy_stats, "spider_exceptions/count"
    )


def _int(stats: dict[str, Any], key: str) -> int:
    return int(stats.get(key) or 0)


def _sum(stats: dict[str, Any], keys: tuple[str, ...]) -> int:
    return sum(_int(stats, key) for key in keys)


def _breakdown(stats: dict[str, Any], prefix: str) -> dict[str, int]:
    start = len(prefix)
    return {key[start:]: int(value) for key, value in stats.items() if key.startswith(prefix)}
