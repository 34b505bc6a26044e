"""Real HTTP servers on 127.0.0.1 for the crawl tests, and a way to run a crawl in a
subprocess (a Twisted reactor cannot be restarted inside one pytest process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from shelfwatch.config import Settings

ROOT = Path(__file__).resolve().parents[2]

Route = tuple[int, dict[str, str], bytes]
Handler = Callable[[str], Route]


def html_response(body: str, status: int = 200) -> Route:
    return status, {"Content-Type": "text/html; charset=utf-8"}, body.encode()


def product_page(
    name: str, price: str, currency: str = "EUR", sku: str = "SKU-1", **extra: str
) -> str:
    """A product page with JSON-LD, the markup most shops use."""
    availability = extra.get("availability", "https://schema.org/InStock")
    canonical = extra.get("canonical", "")
    link = f'<link rel="canonical" href="{canonical}">' if canonical else ""
    return f"""<!doctype html><html><head><title>{name}</title>{link}
<script type="application/ld+json">
{{"@context": "https://schema.org", "@type": "Product", "name": "{name}", "sku": "{sku}",
  "offers": {{"@type": "Offer", "price": "{price}", "priceCurrency": "{currency}",
              "availability": "{availability}"}}}}
</script></head><body><h1>{name}</h1><p>{price} {currency}</p></body></html>"""


@dataclass
class Site:
    """A programmable site: ``routes`` maps a path (with query) to a response or a handler."""

    routes: dict[str, Route | Handler] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def hit_count(self, path: str) -> int:
        return sum(1 for hit in self.hits if hit == path)

    def respond(self, path: str) -> Route:
        self.hits.append(path)
        route = self.routes.get(path)
        if route is None:
            return html_response("<html><head><title>Not found</title></head></html>", 404)
        return route(path) if callable(route) else route


def _handler_for(site: Site) -> type[BaseHTTPRequestHandler]:
    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status, headers, body = site.respond(self.path)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return RequestHandler


class SiteServer:
    """Serves a `Site` from a thread on 127.0.0.1 (port 0: any free port)."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(site))
        self.server.daemon_threads = True
        site.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Site:
        self.thread.start()
        return self.site

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class CrawlOutcome:
    returncode: int
    stats: dict[str, Any]
    items: list[dict[str, Any]]
    cached_urls: list[str]
    log: str

    def stat(self, key: str) -> Any:
        return self.stats.get(key, 0)


def settings_values(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """The Settings fields a crawl subprocess needs, as JSON-able values."""
    values: dict[str, Any] = {
        "mode": "production",
        "database_url": settings.database_url,
        "redis_url": settings.redis_url,
        "redis_prefix": settings.redis_prefix,
        "ssrf_allowed_networks": list(settings.ssrf_allowed_networks),
        "domain_rate_per_second": 1000.0,
        "scrape_retry_backoff_base": 0.05,
        "log_level": "INFO",
    }
    values.update(overrides)
    return values


def run_crawl(
    settings: Settings,
    spider: str,
    args: dict[str, Any],
    *,
    tmp_path: Path,
    scrapy_settings: dict[str, Any] | None = None,
    job_id: str | None = None,
    max_age: int | None = None,
    timeout: float = 90,
    **settings_overrides: Any,
) -> CrawlOutcome:
    """Run one crawl in a fresh Python process through the workers' entry points
    (`build_crawler_settings` + `SPIDERS`) and collect its stats and items."""
    spec = {
        "settings": settings_values(settings, **settings_overrides),
        "spider": spider,
        "args": args,
        "job_id": job_id,
        "max_age": max_age,
        "scrapy_settings": scrapy_settings or {},
        "items_file": str(tmp_path / f"items-{spider}.jsonl"),
        "result_file": str(tmp_path / f"result-{spider}.json"),
    }
    completed = subprocess.run(
        [sys.executable, "-m", "tests.scrapers.crawl_process", json.dumps(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    result_file = Path(spec["result_file"])
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    items_file = Path(spec["items_file"])
    items = (
        [json.loads(line) for line in items_file.read_text().splitlines()]
        if items_file.exists()
        else []
    )
    return CrawlOutcome(
        completed.returncode,
        result.get("stats", {}),
        items,
        result.get("cached_urls", []),
        completed.stderr,
    )
