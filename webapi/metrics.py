"""``/metrics`` for Prometheus: HTTP requests of the API, scrape jobs by state, queue depths.

Request counts and latencies are labelled by method, endpoint (the URL rule's shape,
``/api/v1/products/<product_id>``, never the raw path: the label set stays bounded) and
status. Job counts and queue depths are read when Prometheus scrapes, so every process
reports the same figures.

Under gunicorn with several workers set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory
before the API starts: each worker then writes its counters there and whichever worker
answers ``/metrics`` adds them all up. Without it, each scrape sees one worker's counters.

Public, like Flower's ``/metrics``: it tells no user data; keep it off the internet with the
reverse proxy if its operational figures are sensitive.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Flask, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from werkzeug.routing import Rule

from models import Database
from models.scraping import JobStatus, ScrapeJob
from shelfwatch.config import Settings
from webapi.api import Blueprint
from webapi.queue_depth import queue_depths
from webapi.ratelimit import limiter
from webapi.security import public
from webapi.services import EXTENSION_KEY, Services, services

log = logging.getLogger(__name__)

blp = Blueprint("metrics", __name__, description="Prometheus metrics")

_EXTENSION_KEY = "shelfwatch_metrics"
_STARTED = "shelfwatch.request_started"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# ``<int(max=...):product_id>`` → ``<product_id>``: the label shows the path's shape only.
_CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_TEXT = {"text/plain": {"schema": {"type": "string"}}}


class RequestMetrics:
    """The API's request counter and latency histogram, in a registry of the app's own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("method", "endpoint", "status")
        self.requests = Counter(
            "shelfwatch_http_requests",
            "HTTP requests answered by the API.",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "shelfwatch_http_request_duration_seconds",
            "Time from receiving a request to returning its response.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

        # Each label set's counter and histogram, looked up once (``labels()`` validates and
        # locks on every call).
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        series = self._series.get((method, endpoint, status))
        if series is None:
            labels = (method, endpoint, str(status))
            series = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._series[(method, endpoint, status)] = series
        series[0].inc()
        series[1].observe(seconds)


class PlatformCollector(Collector):
    """Jobs by state and broker queue depths, read at scrape time; a source that does not
    answer is reported as ``shelfwatch_metrics_source_up 0`` instead of failing the scrape."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "shelfwatch_metrics_source_up",
            "1 if the source answered this scrape.",
            labels=["source"],
        )
        jobs = GaugeMetricFamily(
            "shelfwatch_scrape_jobs", "Scrape jobs by status.", labels=["status"]
        )
        queues = GaugeMetricFamily(
            "shelfwatch_queue_messages", "Messages waiting in a broker queue.", labels=["queue"]
        )
        up.add_metric(["database"], self._read(self._job_counts, jobs))
        up.add_metric(["broker"], self._read(self._queue_depths, queues))
        yield from (jobs, queues, up)

    def _read(self, source: Callable[[], dict[str, int]], family: GaugeMetricFamily) -> int:
        try:
            values = source()
        except Exception as error:  # any outage of the source: the scrape still succeeds
            log.warning("metrics source %s unavailable: %s", source.__name__, error)
            return 0
        for label, value in values.items():
            family.add_metric([label], value)
        return 1

    def _job_counts(self) -> dict[str, int]:
        counts = dict.fromkeys((status.value for status in JobStatus), 0)
        with self.db.read_session() as session:
            rows = session.execute(
                select(ScrapeJob.status, func.count()).group_by(ScrapeJob.status)
            )
            counts.update({status: count for status, count in rows})
        return counts

    def _queue_depths(self) -> dict[str, int]:
        return queue_depths(self.settings)


def _install(state: BlueprintSetupState) -> None:
    app = state.app
    metrics = RequestMetrics()
    svc: Services = app.extensions[EXTENSION_KEY]
    metrics.registry.register(PlatformCollector(svc.settings, svc.db))
    app.extensions[_EXTENSION_KEY] = metrics
    app.wsgi_app = _Timed(app.wsgi_app)  # type: ignore[method-assign]
    app.after_request(_observe)


blp.record_once(_install)


class _Timed:
    """Stamps each request on arrival, before any Flask hook can answer it (429, 401)."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ[_STARTED] = time.perf_counter()
        return self.wsgi_app(environ, start_response)


def _observe(response: Response) -> Response:
    record_request(
        current_app, request.environ, request.method, request.url_rule, response.status_code
    )
    return response


def record_request(
    app: Flask, environ: dict[str, Any], method: str, rule: Rule | None, status: int
) -> None:
    """Count a request answered by ``app`` (also for answers given before Flask's hooks)."""
    started = environ.get(_STARTED)
    metrics = app.extensions.get(_EXTENSION_KEY)
    if started is None or metrics is None:
        return
    endpoint = _endpoint_label(rule.rule) if rule is not None else "<unmatched>"
    metrics.observe(method, endpoint, status, time.perf_counter() - started)


@functools.lru_cache(maxsize=1024)
def _endpoint_label(rule: str) -> str:
    return _CONVERTER.sub(r"<\1>", rule)


def _app_metrics() -> RequestMetrics:
    return current_app.extensions[_EXTENSION_KEY]


def exposition_registry(app_registry: CollectorRegistry, settings: Settings) -> CollectorRegistry:
    """The app's registry, or every worker process's counters plus the platform gauges."""
    if settings.prometheus_multiproc_dir is None:
        return app_registry
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(settings.prometheus_multiproc_dir))
    svc = services()
    registry.register(PlatformCollector(svc.settings, svc.db))
    return registry


@blp.route("/metrics")
@blp.doc(
    security=[], responses={"200": {"description": "Prometheus text format", "content": _TEXT}}
)
@limiter.exempt
@public
def metrics() -> ResponseReturnValue:
    """Prometheus metrics of the API (text exposition format)."""
    registry = exposition_registry(_app_metrics().registry, services().settings)
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
