"""Run one crawl the way a worker does and write its stats as JSON (used by servers.run_crawl).

Usage: python -m tests.scrapers.crawl_process '<json spec>'
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from scrapy import signals
from scrapy.crawler import CrawlerProcess

from scrapers.settings import build_crawler_settings
from scrapers.spiders import SPIDERS
from shelfwatch.config import load_settings


def main(spec: dict[str, Any]) -> None:
    settings = load_settings(**spec["settings"])
    extra = {
        "FEEDS": {spec["items_file"]: {"format": "jsonlines", "overwrite": True}},
        **spec["scrapy_settings"],
    }
    crawler_settings = build_crawler_settings(
        settings, job_id=spec["job_id"], max_age=spec["max_age"], extra=extra
    )
    process = CrawlerProcess(crawler_settings, install_root_handler=True)
    crawler = process.create_crawler(SPIDERS[spec["spider"]])
    outcome: dict[str, Any] = {}

    def closed(spider: Any, reason: str) -> None:
        outcome["cached_urls"] = list(spider.cached_urls)
        outcome["reason"] = reason

    crawler.signals.connect(closed, signal=signals.spider_closed)
    process.crawl(crawler, **spec["args"])
    process.start()
    assert crawler.stats is not None
    stats = {key: _jsonable(value) for key, value in crawler.stats.get_stats().items()}
    Path(spec["result_file"]).write_text(json.dumps({"stats": stats, **outcome}))


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, int | float | str | bool | type(None)) else str(value)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
