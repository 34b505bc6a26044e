"""The application factory."""

from __future__ import annotations

import logging

from flask import Flask, Response, request

from models import create_database
from shelfwatch.config import Settings, load_settings
from shelfwatch.logging import configure_logging
from webapi import assignments, auth, health, metrics, products, stock, users, warehouses
from webapi.api import ShelfwatchApi, configure_openapi
from webapi.cache_hits import CacheHitShortcut
from webapi.job_shortcut import ScrapeJobShortcut
from webapi.market import blp as market_blp
from webapi.movement_shortcut import MovementShortcut
from webapi.problems import Problem, register_problem_handlers
from webapi.ratelimit import configure_limiter
from webapi.routing import DatabaseIdConverter
from webapi.schedules import blp as schedules_blp
from webapi.scrape_jobs import blp as scrape_jobs_blp
from webapi.scraped_products import blp as scraped_products_blp
from webapi.scrapyd import blp as scrapyd_blp
from webapi.security import configure_jwt, require_token_by_default
from webapi.services import Services, install, make_redis

log = logging.getLogger(__name__)

BLUEPRINTS = (
    health.blp,
    metrics.blp,
    auth.blp,
    users.blp,
    products.blp,
    warehouses.blp,
    stock.blp,
    assignments.blp,
    scrape_jobs_blp,
    scraped_products_blp,
    scrapyd_blp,
    schedules_blp,
    market_blp,
)
_BODY_METHODS = {"POST", "PUT", "PATCH"}


def create_app(config: Settings | None = None) -> Flask:
    """Build the API; with no argument the settings come from the environment."""
    settings = config or load_settings()
    configure_logging(settings.log_level)
    app = Flask(__name__)
    app.url_map.converters["int"] = DatabaseIdConverter
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes, JSON_SORT_KEYS=False)
    app.config.update(configure_openapi(app))
    install(
        app, Services(settings=settings, db=create_database(settings), redis=make_redis(settings))
    )
    configure_jwt(app, settings)
    configure_limiter(app, settings)
    # Before the blueprints: the metrics middleware they install then times its answers too.
    cache_hits = CacheHitShortcut(app, app.wsgi_app, products.CACHED_READS)
    movements = MovementShortcut(app, cache_hits)
    app.wsgi_app = ScrapeJobShortcut(app, movements)  # type: ignore[method-assign]
    api = ShelfwatchApi(app)  # one per app: the OpenAPI document is the app's own
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)
    register_problem_handlers(app)
    require_json_bodies(app)
    require_token_by_default(app)
    return app


def require_json_bodies(app: Flask) -> None:
    """Answer 415 to a body the JSON API cannot read, before anything parses it."""

    @app.before_request
    def _json_only() -> Response | None:
        if request.method not in _BODY_METHODS or not request.path.startswith("/api/"):
            return None
        has_body = (request.content_length or 0) > 0 or request.headers.get("Transfer-Encoding")
        if has_body and not request.is_json:
            raise Problem(
                415, "unsupported-media-type", "Send the request body as application/json."
            )
        return None
