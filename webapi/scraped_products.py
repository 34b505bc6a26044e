"""Scraped products: a searchable listing (cached in Redis) and one product's price history.

Listing pages are cached under a version that workers bump when a job stores products
(``tasks.product_cache``), so a new scrape shows up at once and unchanged data is served
from Redis.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import json as flask_json
from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields, validate
from sqlalchemy import Select, select

from models import PriceObservation, ScrapedProduct
from tasks.product_cache import generation_key
from webapi.api import Blueprint
from webapi.caching import CachedBody, VersionedCache, json_response
from webapi.pagination import Keyset, PageArgs, page_schema, paginate
from webapi.problems import Problem
from webapi.scrape_schemas import ScrapedItemSchema, price_text
from webapi.services import read_session, services

blp = Blueprint(
    "scraped_products",
    __name__,
    url_prefix="/api/v1/scraped-products",
    description="Products found by the scrapers",
)

AVAILABILITY = validate.OneOf(
    ["in_stock", "out_of_stock", "preorder", "backorder", "discontinued", "unknown"]
)
HISTORY_LIMIT = 1000


class ProductFilter(PageArgs):
    name = fields.String(validate=validate.Length(min=1, max=200))
    domain = fields.String(validate=validate.Length(min=1, max=255))
    min_price = fields.Decimal(validate=validate.Range(min=0))
    max_price = fields.Decimal(validate=validate.Range(min=0))
    availability = fields.String(validate=AVAILABILITY)


class ObservationSchema(Schema):
    price = fields.Method("_price", allow_none=True, metadata={"type": "string"})
    currency = fields.String(allow_none=True)
    availability = fields.String()
    job_id = fields.String(allow_none=True)
    observed_at = fields.DateTime()

    def _price(self, observation: Any) -> str | None:
        return price_text(observation.price)


class ProductDetailSchema(ScrapedItemSchema):
    domain = fields.String()
    first_seen_at = fields.DateTime()
    last_seen_at = fields.DateTime()
    price_history = fields.List(fields.Nested(ObservationSchema))


ProductPage = page_schema(ScrapedItemSchema, "ScrapedProductPage")
_BY_ID = Keyset((ScrapedProduct.id,))


def _filtered(args: dict[str, Any]) -> Select[Any]:
    query = select(ScrapedProduct)
    if "name" in args:
        escaped = args["name"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(ScrapedProduct.name.ilike(f"%{escaped}%", escape="\\"))
    if "domain" in args:
        query = query.where(ScrapedProduct.domain == args["domain"].lower())
    if "min_price" in args:
        query = query.where(ScrapedProduct.price >= args["min_price"])
    if "max_price" in args:
        query = query.where(ScrapedProduct.price <= args["max_price"])
    if "availability" in args:
        query = query.where(ScrapedProduct.availability == args["availability"])
    return query


def _cache_key(args: dict[str, Any]) -> str:
    canonical = json.dumps(args, sort_keys=True, default=str)
    digest = hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()
    return services().key("scraped-products", "page", digest)


def _page_body(args: dict[str, Any]) -> bytes:
    session = read_session()
    with session.begin():
        items, next_cursor = paginate(
            session, _filtered(args), _BY_ID, cursor=args["cursor"], limit=args["limit"]
        )
        page = ProductPage().dump({"items": items, "next_cursor": next_cursor})
    return flask_json.dumps(page).encode()


@blp.route("")
@blp.arguments(ProductFilter, location="query")
@blp.response(200, ProductPage)
def list_products(args: dict[str, Any]) -> ResponseReturnValue:
    """Search stored products by name, domain, price range and availability."""
    svc = services()
    cache = VersionedCache(svc.redis, svc.settings.cache_ttl_seconds)
    version_key = generation_key(svc.settings.redis_prefix)
    entry_key = _cache_key(args)
    read = cache.read(version_key, entry_key)
    if read is not None and read.entry is not None:
        response = json_response(read.entry)
        response.headers["X-Cache"] = "hit"
        return response
    cached = CachedBody.of(_page_body(args))
    if read is not None:
        cache.store(entry_key, read.version, cached)
    response = json_response(cached)
    response.headers["X-Cache"] = "miss"
    return response


@blp.route("/<int:product_id>")
@blp.response(200, ProductDetailSchema)
def get_product(product_id: int) -> ResponseReturnValue:
    """One product with its price history (newest first; changes only, not every visit)."""
    session = read_session()
    with session.begin():
        product = session.get(ScrapedProduct, product_id)
        if product is None:
            raise Problem(404, "not-found", f"No scraped product {product_id}.")
        history = session.scalars(
            select(PriceObservation)
            .where(PriceObservation.product_id == product_id)
            .order_by(PriceObservation.observed_at.desc(), PriceObservation.id.desc())
            .limit(HISTORY_LIMIT)
        ).all()
        product.price_history = history  # type: ignore[attr-defined]
        return product
