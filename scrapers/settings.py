"""Scrapy settings, built from the one shared ``Settings`` so that ``scrapy crawl``, the
``shelfwatch crawl`` command and the Celery workers run crawls configured the same way.

``scrapy crawl`` reads this module's upper-case names; they are computed on first access
(PEP 562), so importing the module for :func:`scrapy_settings` or
:func:`build_crawler_settings` does no work and reads no environment.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from shelfwatch.config import Settings, load_settings

_DOWNLOADER_MIDDLEWARES = {
    # Engine side first: a fresh stored copy means no request at all (not even robots.txt).
    "scrapers.middlewares.freshness.FreshnessMiddleware": 60,
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "scrapers.middlewares.robots.RobotsTxtMiddleware": 100,
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "scrapers.middlewares.retry.BackoffRetryMiddleware": 550,
    # After the retry middleware: its process_exception runs first, so refusals are not retried.
    "scrapers.middlewares.ssrf.SSRFGuardMiddleware": 560,
    # Refused requests take no token; every request that will be sent waits for one.
    "scrapers.middlewares.ratelimit.DomainRateLimitMiddleware": 570,
}
_RETRY_HTTP_CODES = [408, 429, 500, 502, 503, 504, 522, 524]


class SettingsRef:
    """Carries the ``Settings`` inside Scrapy settings; its repr hides URLs with passwords
    from Scrapy's "Overridden settings" log line."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __repr__(self) -> str:
        return "<shelfwatch Settings>"

    def __deepcopy__(self, memo: dict[int, Any]) -> SettingsRef:
        return self


def shelfwatch_settings(scrapy_settings_: Any) -> Settings:
    """The ``Settings`` a crawl was configured with (the environment's when absent)."""
    ref = scrapy_settings_.get("SHELFWATCH_SETTINGS")
    return ref.settings if isinstance(ref, SettingsRef) else load_settings()


def _user_agent(settings: Settings) -> str:
    try:
        release = version("shelfwatch")
    except PackageNotFoundError:
        release = "dev"
    return f"shelfwatch/{release} (price monitoring; +{settings.user_agent_contact_url})"


def scrapy_settings(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """The Scrapy settings of a crawl configured by ``settings``; ``overrides`` win."""
    values: dict[str, Any] = {
        "BOT_NAME": "shelfwatch",
        "SPIDER_MODULES": ["scrapers.spiders"],
        "NEWSPIDER_MODULE": "scrapers.spiders",
        "COMMANDS_MODULE": "scrapers.commands",
        "SHELFWATCH_SETTINGS": SettingsRef(settings),
        "LOG_LEVEL": settings.log_level,
        "USER_AGENT": _user_agent(settings),
        "ROBOTSTXT_OBEY": settings.robotstxt_obey,
        # Off: a shared worker must not listen on a local port that accepts commands or code.
        "TELNETCONSOLE_ENABLED": False,
        "REMOTE_CONTROL_ENABLED": False,
        "COOKIES_ENABLED": False,
        "COMPRESSION_ENABLED": True,
        "DOWNLOAD_TIMEOUT": settings.scrape_download_timeout,
        "DOWNLOAD_MAXSIZE": settings.scrape_download_maxsize,
        "DOWNLOAD_WARNSIZE": settings.scrape_download_warnsize,
        # Only HTTP(S), through the Twisted handler whose connections the SSRF resolver guards.
        "DOWNLOAD_HANDLERS": {
            "http": "scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler",
            "https": "scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler",
            "file": None,
            "s3": None,
            "ftp": None,
            "data": None,
        },
        "RETRY_ENABLED": True,
        "RETRY_TIMES": settings.scrape_retry_times,
        "RETRY_HTTP_CODES": _RETRY_HTTP_CODES,
        "RETRY_BACKOFF_BASE": settings.scrape_retry_backoff_base,
        "RETRY_BACKOFF_MAX": settings.scrape_retry_backoff_max,
        "REDIRECT_MAX_TIMES": 10,
        "CONCURRENT_REQUESTS": settings.scrape_concurrent_requests,
        "CONCURRENT_REQUESTS_PER_DOMAIN": settings.scrape_concurrent_requests_per_domain,
        # Pacing is the token bucket's job (shared across processes), not DOWNLOAD_DELAY's.
        "DOWNLOAD_DELAY": 0,
        "AUTOTHROTTLE_ENABLED": settings.scrape_autothrottle,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": 2.0,
        "HTTPCACHE_ENABLED": settings.scrape_httpcache,
        "HTTPCACHE_DIR": str(settings.resolved_data_dir / "httpcache"),
        "HTTPCACHE_EXPIRATION_SECS": 24 * 3600,
        "HTTPCACHE_IGNORE_HTTP_CODES": _RETRY_HTTP_CODES,
        "DOWNLOADER_MIDDLEWARES": dict(_DOWNLOADER_MIDDLEWARES),
        "TWISTED_DNS_RESOLVER": "scrapers.middlewares.ssrf.SSRFGuardResolver",
        "ITEM_PIPELINES": {
            "scrapers.pipelines.ValidationPipeline": 100,
            "scrapers.pipelines.StoragePipeline": 800,
        },
        "SSRF_ALLOWED_NETWORKS": list(settings.ssrf_allowed_networks),
        "DOMAIN_RATE_PER_SECOND": settings.domain_rate_per_second,
        "DOMAIN_RATE_OVERRIDES": list(settings.domain_rate_overrides),
        "DOMAIN_RATE_BURST": settings.domain_rate_burst,
        "STORAGE_ENABLED": True,
        "STORAGE_BATCH_SIZE": 500,
        "STORAGE_FLUSH_SECONDS": 1.0,
        "FEED_EXPORT_ENCODING": "utf-8",
        "LOGSTATS_INTERVAL": 60.0,
    }
    values.update(overrides)
    return values


def build_crawler_settings(
    settings: Settings,
    *,
    job_id: str | None = None,
    max_age: int | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Settings for one crawl run by a worker: its job id and freshness bound, plus ``extra``.

    Pass the result to ``Crawler``/``CrawlerRunner``; the job id lands on every stored row.
    """
    values = scrapy_settings(settings)
    values["SHELFWATCH_JOB_ID"] = job_id
    values["FRESHNESS_MAX_AGE"] = max_age
    values.update(extra or {})
    return values


def __getattr__(name: str) -> Any:
    if not name.isupper():
        raise AttributeError(name)
    values = _project_settings()
    if name not in values:
        raise AttributeError(name)
    return values[name]


def __dir__() -> list[str]:
    return sorted([*(name for name in globals() if not name.isupper()), *_project_settings()])


_cache: dict[str, Any] = {}


def _project_settings() -> dict[str, Any]:
    """The settings ``scrapy crawl`` uses: the environment's ``Settings``, read once."""
    if not _cache:
        _cache.update(scrapy_settings(load_settings()))
    return _cache
