"""Helpers for scrape job tests: a local shop on 127.0.0.1 and real worker subprocesses."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from shelfwatch.config import Settings

ROOT = Path(__file__).resolve().parents[2]
_PRODUCT = re.compile(r"^/(p|slow|broken)/(\d+)$")


def product_page(n: int, url: str) -> bytes:
    data = {
        "@context": "https://schema.org",
        "@type": "Product",
        "name": f"Test product {n}",
        "sku": f"SKU-{n}",
        "brand": {"@type": "Brand", "name": "Acme"},
        "offers": {
            "@type": "Offer",
            "price": f"{n}.99",
            "priceCurrency": "EUR",
            "availability": "https://schema.org/InStock",
        },
    }
    return (
        f"<!doctype html><html><head><title>Test product {n}</title>"
        f'<link rel="canonical" href="{url}">'
        f'<script type="application/ld+json">{json.dumps(data)}</script></head>'
        f"<body><h1>Test product {n}</h1><p>{n}.99 EUR</p></body></html>"
    ).encode()


class Shop:
    """A shop on 127.0.0.1: ``/p/N`` product pages, ``/slow/N`` after ``delay`` seconds,
    ``/broken/N`` answering 500. Counts hits per path."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        shop = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                shop.serve(self)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Shop:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, n: int, kind: str = "p") -> str:
        return f"http://127.0.0.1:{self.port}/{kind}/{n}"

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path.split("?")[0]
        with self._lock:
            self.hits[path] += 1
        match = _PRODUCT.match(path)
        if match is None:
            self._send(request, 404, b"not found")
            return
        kind, n = match.group(1), int(match.group(2))
        if kind == "broken":
            self._send(request, 500, b"broken")
            return
        if kind == "slow":
            time.sleep(self.delay)
        self._send(request, 200, product_page(n, self.url(n, kind)), "text/html; charset=utf-8")

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str = "text/plain"
    ) -> None:
        try:
            request.send_response(status)
            request.send_header("Content-Type", ctype)
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            request.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


# What worker tests share: fast heartbeats (quick recovery; the same everywhere, since a worker
# takes another's chunk for stale by its own interval), no politeness delays, no retries.
FAST_WORKER_SETTINGS: dict[str, Any] = {
    "worker_heartbeat_seconds": 1,
    "domain_rate_per_second": 1000.0,
    "domain_rate_burst": 1000.0,
    "scrape_task_rate_limit": None,
    "scrape_retry_times": 0,
}


def worker_test_settings(base: Settings, **overrides: Any) -> Settings:
    return base.model_copy(update={**FAST_WORKER_SETTINGS, **overrides})


# Settings whose None is sent to a subprocess as an empty value (their default is not None).
EMPTY_MEANS_NONE = ("scrape_task_rate_limit",)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment variables that make a subprocess read these same ``Settings``."""
    env: dict[str, str] = {}
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        if value is None:
            # None has no spelling in the environment; left out, the subprocess would take
            # the default instead (a worker rate-limited at 50 tasks/s when the test or bench
            # asked for none). An empty value stands for "none" where the code reads it so.
            if name in EMPTY_MEANS_NONE:
                env[(field.alias or name).upper()] = ""
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, list):
            value = ",".join(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[(field.alias or name).upper()] = str(value)
    return env


class WorkerProcess:
    """``celery -A tasks worker`` with no flags, configured by the environment."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {**os.environ, **settings_env(self.settings), "PYTHONUNBUFFERED": "1"}
        self.log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tasks", "worker"],
            cwd=ROOT,
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown, no acks, no cleanup."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log_file.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)
