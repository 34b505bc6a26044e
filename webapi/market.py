"""Market prices next to inventory products: watched URLs and what the scrapers found there.

Reading: every signed-in user (like the catalogue). Adding or removing watches: the
product's owner (a manager) or an admin. Each watched product gets one schedule that
crawls its watched URLs (see ``models.market``); a new watch makes it run at once.

``GET …/market`` is cached in Redis under two versions: the product's watches version
(bumped here after a watch change commits) and, in the entry key, the scraped-products
generation that workers bump after storing products (``tasks.product_cache``). New
observations therefore show up as soon as the job's chunk that stored them ends.
"""

from __future__ import annotations

import json
from typing import Any

import redis
from flask import url_for
from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import Session

from models import Product, Role, User, catalog
from models.market import (
    TooManyWatches,
    WatchedOffer,
    WatchNotFound,
    add_watch,
    list_watches,
    lowest_prices,
    market_of,
    remove_watch,
    sync_watch_schedule,
    watch_schedule,
)
from tasks.product_cache import generation_key
from webapi.api import Blueprint
from webapi.caching import CachedBody, VersionedCache, json_response
from webapi.problems import Problem
from webapi.schedules import ScheduleSchema
from webapi.scrape_schemas import price_text
from webapi.scraped_products import ObservationSchema
from webapi.security import current_user, require_role
from webapi.services import db_session, services
from webapi.spider_requests import check_spider_request

blp = Blueprint(
    "market",
    __name__,
    url_prefix="/api/v1/products",
    description="Market prices of inventory products (watched URLs)",
)

_PRODUCT = "/<int:product_id>"


class WatchCreate(Schema):
    url = fields.String(required=True, validate=validate.Length(min=1, max=2048))


class WatchSchema(Schema):
    id = fields.Integer()
    product_id = fields.Integer()
    url = fields.String()
    canonical_url = fields.String()
    created_by = fields.Integer(allow_none=True)
    created_at = fields.DateTime()


class WatchList(Schema):
    items = fields.List(fields.Nested(WatchSchema), required=True)
    schedule = fields.Nested(ScheduleSchema, allow_none=True, required=True)


class LowestPriceSchema(Schema):
    price = fields.String()
    currency = fields.String()
    url = fields.String()


class OfferSchema(Schema):
    watch_id = fields.Integer()
    url = fields.String()
    scraped_product_id = fields.Integer(allow_none=True)
    name = fields.String(allow_none=True)
    price = fields.String(allow_none=True)
    currency = fields.String(allow_none=True)
    availability = fields.String(allow_none=True)
    scraped_at = fields.DateTime(allow_none=True)
    history = fields.List(
        fields.Nested(ObservationSchema), metadata={"description": "newest first"}
    )


class MarketSchema(Schema):
    product_id = fields.Integer()
    offers = fields.List(fields.Nested(OfferSchema))
    lowest_prices = fields.List(
        fields.Nested(LowestPriceSchema),
        metadata={"description": "per currency, the lowest price of offers not out of stock"},
    )


# ---- cache ------------------------------------------------------------------------------------


def _watches_version(product_id: int | None = None) -> str:
    scope = "all" if product_id is None else product_id
    return services().key("market", "v", scope)


def _cache() -> VersionedCache:
    svc = services()
    return VersionedCache(svc.redis, svc.settings.cache_ttl_seconds)


def _invalidate(product_id: int) -> None:
    """After a watch change commits: this product's market and every listing's prices."""
    _cache().bump([_watches_version(product_id), _watches_version()])


def _scraped_generation() -> str | None:
    """The workers' scraped-products generation ("0" before the first); None: no Redis."""
    svc = services()
    if svc.redis is None:
        return None
    try:
        value = svc.redis.get(generation_key(svc.settings.redis_prefix))
    except redis.RedisError:
        return None
    return (value or b"0").decode()


def listing_token() -> str | None:
    """What the products listing adds to its cache key when it shows market prices: the
    scraped-products generation and the version of all watches (None: no Redis)."""
    svc = services()
    if svc.redis is None:
        return None
    try:
        generation, watches = svc.redis.mget(
            [generation_key(svc.settings.redis_prefix), _watches_version()]
        )
    except redis.RedisError:
        return None
    return f"market:{(generation or b'0').decode()}:{(watches or b'0').decode()}"


def add_market_prices(session: Session, items: list[dict[str, Any]]) -> None:
    """Add ``market_prices`` (lowest per currency) to products-listing items, in place."""
    prices = lowest_prices(session, [item["id"] for item in items])
    for item in items:
        item["market_prices"] = [
            {"price": price_text(low.price), "currency": low.currency, "url": low.url}
            for low in prices.get(item["id"], [])
        ]


# ---- views --------------------------------------------------------------------------------------


def _product(session: Session, product_id: int) -> Product:
    try:
        return catalog.get_product(session, product_id)
    except catalog.ProductNotFound:
        raise Problem(404, "not-found", f"No product {product_id}.") from None


def _require_editor(user: User, product: Product) -> None:
    if not user.is_admin and product.owner_id != user.id:
        raise Problem(403, "not-owner", "Only the product's owner or an admin may change it.")


def _sync(session: Session, product_id: int, user: User, *, run_now: bool) -> None:
    settings = services().settings
    sync_watch_schedule(
        session,
        product_id,
        spider=settings.market_watch_spider,
        interval_seconds=settings.market_watch_interval_seconds,
        created_by=user.id,
        run_now=run_now,
    )


@blp.route(f"{_PRODUCT}/watches", methods=["POST"])
@blp.arguments(WatchCreate)
@blp.response(201, WatchSchema)
@blp.alt_response(200, schema=WatchSchema, description="The URL was already watched")
def add(body: dict[str, Any], product_id: int) -> ResponseReturnValue:
    """Watch a product page URL for this product; its schedule crawls it at once."""
    user = require_role(Role.ADMIN, Role.MANAGER)
    check_spider_request(services().settings.market_watch_spider, [body["url"]], {})
    session = db_session()
    with session.begin():
        _require_editor(user, _product(session, product_id))
        try:
            watch, added = add_watch(session, product_id, body["url"], created_by=user.id)
        except TooManyWatches as error:
            raise Problem(409, "too-many-watches", str(error).capitalize() + ".") from None
        if added:
            _sync(session, product_id, user, run_now=True)
    _invalidate(product_id)
    location = url_for("market.list_product_watches", product_id=product_id)
    return watch, 201 if added else 200, {"Location": location}


@blp.route(f"{_PRODUCT}/watches")
@blp.response(200, WatchList)
def list_product_watches(product_id: int) -> ResponseReturnValue:
    """The product's watched URLs and the schedule that crawls them."""
    current_user()
    session = db_session()
    with session.begin():
        _product(session, product_id)
        return {
            "items": list_watches(session, product_id),
            "schedule": watch_schedule(session, product_id),
        }


@blp.route(f"{_PRODUCT}/watches/<int:watch_id>", methods=["DELETE"])
@blp.response(204)
def delete(product_id: int, watch_id: int) -> ResponseReturnValue:
    """Stop watching a URL (the last one removes the product's schedule)."""
    user = require_role(Role.ADMIN, Role.MANAGER)
    session = db_session()
    with session.begin():
        _require_editor(user, _product(session, product_id))
        try:
            remove_watch(session, product_id, watch_id)
        except WatchNotFound:
            raise Problem(404, "not-found", f"No watch {watch_id} on this product.") from None
        _sync(session, product_id, user, run_now=False)
    _invalidate(product_id)
    return ""


def _offer_json(offer: WatchedOffer) -> dict[str, Any]:
    scraped = offer.scraped
    return {
        "watch_id": offer.watch.id,
        "url": offer.watch.url,
        "scraped_product_id": scraped.id if scraped else None,
        "name": scraped.name if scraped else None,
        "price": price_text(scraped.price) if scraped else None,
        "currency": scraped.currency if scraped else None,
        "availability": scraped.availability if scraped else None,
        "scraped_at": scraped.scraped_at.isoformat() if scraped else None,
        "history": ObservationSchema(many=True).dump(offer.history),
    }


def _render_market(session: Session, product_id: int) -> dict[str, Any]:
    _product(session, product_id)
    offers = market_of(session, product_id, history_limit=services().settings.market_history_limit)
    market: dict[str, Any] = {"id": product_id}
    add_market_prices(session, [market])
    return {
        "product_id": product_id,
        "offers": [_offer_json(offer) for offer in offers],
        "lowest_prices": market["market_prices"],
    }


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


@blp.route(f"{_PRODUCT}/market")
@blp.response(200, MarketSchema)
@blp.alt_response(304, description="Not modified: the If-None-Match ETag is current")
def market(product_id: int) -> ResponseReturnValue:
    """Latest price, currency and availability per watched URL, with the price history."""
    current_user()
    cache = _cache()
    generation = _scraped_generation()
    entry_key = services().key("market", product_id, generation)
    read = cache.read(_watches_version(product_id), entry_key) if generation else None
    if read is not None and read.entry is not None:
        return json_response(read.entry)
    # The primary: a replica lagging behind the workers' writes must not fill the cache.
    session = db_session()
    with session.begin():
        cached = CachedBody.of(_dumps(_render_market(session, product_id)))
    if read is not None:
        cache.store(entry_key, read.version, cached)
    return json_response(cached)
