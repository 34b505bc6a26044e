"""The checks every way of requesting a crawl shares (jobs, schedules, watches)."""

from __future__ import annotations

from typing import Any

from shelfwatch.config import Settings
from webapi import spider_catalog
from webapi.problems import Problem, invalid_field
from webapi.services import services


def check_spider_request(
    spider: str, urls: list[str], args: dict[str, Any], settings: Settings | None = None
) -> None:
    """Known spider, valid arguments, and no URL the SSRF guard refuses (422), under
    ``settings`` (the app's by default)."""
    if spider not in spider_catalog.spider_names():
        raise invalid_field("spider", f"unknown spider; one of {spider_catalog.spider_names()}")
    try:
        spider_catalog.validate_args(spider, args, urls)
    except spider_catalog.SpiderArgsInvalid as error:
        raise invalid_field(error.field, error.message) from None
    settings = settings or services().settings
    refused = spider_catalog.refused_url(urls, settings.ssrf_allowed_networks)
    if refused is not None:
        index, url, reason = refused
        raise Problem(
            422,
            "url-refused",
            f"The URL {url} may not be crawled: {reason}.",
            errors=[{"field": f"urls.{index}", "message": reason}],
            url=url,
        )
