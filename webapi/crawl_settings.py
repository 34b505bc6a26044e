"""The Scrapy settings a client may set for its own job (Scrapyd's ``setting=NAME=VALUE``).

Only settings that make one crawl gentler or shorter: anything else (pipelines, middlewares,
feeds writing files, the DNS resolver) could switch off the SSRF guard or storage, so it is
refused rather than passed to the worker's crawler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class SettingRefused(ValueError):
    """The setting is not one a client may set, or its value is out of range."""


@dataclass(frozen=True)
class Allowed:
    parse: Callable[[str], Any]
    low: float
    high: float


ALLOWED: dict[str, Allowed] = {
    "DOWNLOAD_DELAY": Allowed(float, 0, 60),
    "DOWNLOAD_TIMEOUT": Allowed(int, 1, 300),
    "CONCURRENT_REQUESTS_PER_DOMAIN": Allowed(int, 1, 16),
    "RETRY_TIMES": Allowed(int, 0, 10),
    "DEPTH_LIMIT": Allowed(int, 0, 1000),
    "CLOSESPIDER_ITEMCOUNT": Allowed(int, 0, 10**9),
    "CLOSESPIDER_PAGECOUNT": Allowed(int, 0, 10**9),
    "CLOSESPIDER_TIMEOUT": Allowed(int, 0, 86_400),
}


def parse_setting(pair: str) -> tuple[str, Any]:
    """``"NAME=VALUE"`` → ``(NAME, typed value)``; raises ``SettingRefused``."""
    name, equals, raw = pair.partition("=")
    if not equals:
        raise SettingRefused(f"setting {pair!r} is not NAME=VALUE")
    rule = ALLOWED.get(name)
    if rule is None:
        raise SettingRefused(f"setting {name!r} may not be set; allowed: {', '.join(ALLOWED)}")
    try:
        value = rule.parse(raw)
    except ValueError:
        raise SettingRefused(f"setting {name!r}: {raw!r} is not a number") from None
    if not rule.low <= value <= rule.high:
        raise SettingRefused(f"setting {name!r} must be between {rule.low} and {rule.high}")
    return name, value
