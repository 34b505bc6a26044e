"""The product catalogue: every signed-in user reads it; managers and admins write it.

Reads are cached in Redis (see ``webapi.caching``) and served from a replica when one is
configured; writes go to the primary and then bump the cache versions they affect.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from hashlib import blake2b
from typing import Any

import orjson
from flask import Response, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import Connection
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from models import Product, Role, User, catalog
from webapi import market
from webapi.api import Blueprint
from webapi.cache_hits import CachedRead, CacheKeys, CacheKeysFinder, Render
from webapi.caching import VersionedCache, json_response
from webapi.problems import Problem
from webapi.product_listing import check_cursor, listing_page, plain_listing_args
from webapi.product_schemas import (
    MAX_ID,
    ProductCreate,
    ProductListArgs,
    ProductPage,
    ProductSchema,
    ProductUpdate,
    product_json,
)
from webapi.read_through import AUTOCOMMIT, reads_primary, render_and_store
from webapi.replicas import replicas_configured, session_for_read, track_writes, write_flag_key
from webapi.security import current_user, read_ahead, read_ahead_values, require_role
from webapi.services import Services, db_session, services

blp = Blueprint("products", __name__, url_prefix="/api/v1/products", description="Products")
track_writes(blp)  # once for the whole app: reads after any write go to the primary

_ONE_PRODUCT = f"/<int(max={MAX_ID}):product_id>"


# ---- cache keys: one version for all listings, one per owner, one per product -------------


def _all_version(svc: Services) -> str:
    return svc.key("products", "v", "all")


def _owner_version(svc: Services, owner_id: int) -> str:
    return svc.key("products", "v", "owner", owner_id)


def _item_version(svc: Services, product_id: int) -> str:
    return svc.key("products", "v", "item", product_id)


def _recent_write_flag(svc: Services) -> str:
    return svc.key("products", "recent-write")


def _cache() -> VersionedCache:
    svc = services()
    return VersionedCache(svc.redis, svc.settings.cache_ttl_seconds)


def _invalidate(product_id: int, owner_ids: set[int]) -> None:
    """After commit: listings (all, and each owner's) and the product itself are stale."""
    svc = services()
    owners = [_owner_version(svc, owner_id) for owner_id in owner_ids]
    keys = [_all_version(svc), _item_version(svc, product_id), *owners]
    flags = None
    if replicas_configured():
        # While replicas may lag behind this write, nothing read from them is cached.
        flags = {_recent_write_flag(svc): svc.settings.replica_read_own_writes_seconds}
    _cache().bump(keys, flags)


def _dumps(data: Any) -> bytes:
    """Compact UTF-8 JSON, byte for byte what ``json.dumps(data, separators=(",", ":"),
    ensure_ascii=False).encode()`` gives for these bodies (a test holds that), in a tenth of
    the time."""
    return orjson.dumps(data)


def flag_keys(svc: Services, user_id: int) -> list[str]:
    """Who wrote recently, whom replicas may lag behind: only read when replicas serve reads."""
    if not svc.db.replicas:
        return []
    return [write_flag_key(svc, user_id), _recent_write_flag(svc)]


def _cached_read(
    version_key: str, entry_key: str, user: User, render: Callable[[Session], Any]
) -> Response:
    """Serve from the cache, else render from a replica (or the primary for a recent writer)."""
    cache = _cache()
    with_replicas = replicas_configured()
    read = cache.read(version_key, entry_key, flag_keys(services(), user.id), read_ahead_values())
    if read is not None and read.entry is not None:
        return json_response(read.entry)
    session = session_for_read(fresh=reads_primary(read, with_replicas))

    def body() -> bytes:
        with session.begin():
            _products_connection(session, execution_options=AUTOCOMMIT)
            return _dumps(render(session))

    return json_response(render_and_store(cache, read, entry_key, with_replicas, body))


def _products_connection(session: Session, **options: Any) -> Connection:
    """The session's connection for the products table (its binds go by mapped class)."""
    return session.connection(bind_arguments={"mapper": Product}, **options)


# ---- authorization and errors ---------------------------------------------------------------


def _require_editor(user: User, product: Product) -> None:
    if not user.is_admin and product.owner_id != user.id:
        raise Problem(403, "not-owner", "Only the product's owner or an admin may change it.")


def _owner_for(user: User, requested: int | None, default: int) -> int:
    if requested is None or requested == default:
        return default
    if not user.is_admin:
        raise Problem(403, "forbidden", "Only admins may choose a product's owner.")
    return requested


@contextmanager
def _catalog_errors() -> Iterator[None]:
    """The catalogue's refusals as problems, in one place."""
    try:
        yield
    except catalog.SkuTaken as error:
        raise Problem(
            409,
            "sku-taken",
            "This owner already has a product with this SKU.",
            errors=[{"field": "sku", "message": "already used by this owner"}],
        ) from error
    except catalog.UnknownOwner as error:
        raise Problem(
            422,
            "unknown-owner",
            "The owner is not a user.",
            errors=[{"field": "owner_id", "message": "no such user"}],
        ) from error
    except catalog.ProductNotFound as error:
        raise Problem(404, "not-found", str(error).capitalize() + ".") from error


# ---- views -----------------------------------------------------------------------------------


def _listing_entry_key(svc: Services, args: MultiDict[str, str]) -> str:
    """Keyed by the query string as sent: the same query always parses to the same page."""
    query = sorted(args.items(multi=True))
    digest = blake2b(json.dumps(query).encode(), digest_size=16)
    return svc.key("products", "list", digest.hexdigest())


def _item_entry_key(svc: Services, product_id: int) -> str:
    return svc.key("products", "item", product_id)


def listing_cache_keys(
    svc: Services, args: MultiDict[str, str], _view_args: Mapping[str, Any]
) -> CacheKeys | None:
    """The keys ``list_products`` reads, when the raw query names them plainly (else None)."""
    owners = args.getlist("owner_id")
    if args.get("include") == "market_price" or len(owners) > 1:
        return None
    if owners and not (owners[0].isascii() and owners[0].isdigit() and owners[0][0] != "0"):
        return None
    version_key = _owner_version(svc, int(owners[0])) if owners else _all_version(svc)
    return CacheKeys(version_key, _listing_entry_key(svc, args))


def item_cache_keys(
    svc: Services, _args: MultiDict[str, str], view_args: Mapping[str, Any]
) -> CacheKeys | None:
    """The keys ``get_product`` reads."""
    product_id = view_args.get("product_id")
    if not isinstance(product_id, int):
        return None
    return CacheKeys(_item_version(svc, product_id), _item_entry_key(svc, product_id))


def _keys_ahead(find: CacheKeysFinder) -> Callable[[int], list[str]]:
    def keys_for(user_id: int) -> list[str]:
        svc = services()
        if not _cache().stores_entries:
            return flag_keys(svc, user_id)  # entries off: the read needs the flags only
        keys = find(svc, request.args, request.view_args or {})
        return [keys.version, keys.entry, *flag_keys(svc, user_id)] if keys is not None else []

    return keys_for


@blp.route("")
@blp.arguments(ProductListArgs(), location="query")
@blp.response(200, ProductPage)
@blp.alt_response(304, description="Not modified: the If-None-Match ETag is current")
@read_ahead(_keys_ahead(listing_cache_keys))
def list_products(args: dict[str, Any]) -> ResponseReturnValue:
    """Products, oldest first (``order=-created_at``: newest first); archived ones left out
    unless ``archived=true``. Pages follow ``next_cursor``."""
    user = current_user()
    check_cursor(args["cursor"])
    owner_id = args.get("owner_id")
    svc = services()
    version_key = _all_version(svc) if owner_id is None else _owner_version(svc, owner_id)
    entry_key = _listing_entry_key(svc, request.args)
    with_market = args.get("include") == "market_price"  # webapi.market owns this part
    if with_market:
        entry_key = f"{entry_key}:{market.listing_token()}"

    def render(session: Session) -> dict[str, Any]:
        page = listing_page(_products_connection(session), args)
        if with_market:
            market.add_market_prices(session, page["items"])
        return page

    return _cached_read(version_key, entry_key, user, render)


@blp.route(_ONE_PRODUCT)
@blp.response(200, ProductSchema)
@blp.alt_response(304, description="Not modified: the If-None-Match ETag is current")
@read_ahead(_keys_ahead(item_cache_keys))
def get_product(product_id: int) -> ResponseReturnValue:
    """One product, archived or not."""
    user = current_user()

    def render(session: Session) -> dict[str, Any]:
        with _catalog_errors():
            return product_json(catalog.get_product(session, product_id))

    svc = services()
    version_key, entry_key = _item_version(svc, product_id), _item_entry_key(svc, product_id)
    return _cached_read(version_key, entry_key, user, render)


@blp.route("", methods=["POST"])
@blp.arguments(ProductCreate())
@blp.response(201, ProductSchema)
def create_product(body: dict[str, Any]) -> ResponseReturnValue:
    """Create a product (managers and admins); its owner is you unless an admin names one."""
    user = require_role(Role.ADMIN, Role.MANAGER)
    owner_id = _owner_for(user, body.pop("owner_id", None), default=user.id)
    session = db_session()
    with session.begin(), _catalog_errors():
        product = catalog.create_product(session, owner_id, body)
    _invalidate(product.id, {owner_id})
    location = url_for("products.get_product", product_id=product.id)
    return product, 201, {"Location": location}


@blp.route(_ONE_PRODUCT, methods=["PATCH"])
@blp.arguments(ProductUpdate())
@blp.response(200, ProductSchema)
def update_product(body: dict[str, Any], product_id: int) -> ResponseReturnValue:
    """Change a product (its owner, or an admin); admins may also move it to another owner."""
    user = require_role(Role.ADMIN, Role.MANAGER)
    session = db_session()
    with session.begin(), _catalog_errors():
        product = catalog.get_product(session, product_id)
        _require_editor(user, product)
        owners = {product.owner_id}
        if "owner_id" in body:
            body["owner_id"] = _owner_for(user, body["owner_id"], default=product.owner_id)
            owners.add(body["owner_id"])
        catalog.update_product(session, product, body)
    _invalidate(product.id, owners)
    return product


@blp.route(_ONE_PRODUCT, methods=["DELETE"])
@blp.response(204)
def archive_product(product_id: int) -> ResponseReturnValue:
    """Archive (soft-delete) a product: it leaves listings but stays readable by id."""
    user = require_role(Role.ADMIN, Role.MANAGER)
    session = db_session()
    with session.begin(), _catalog_errors():
        product = catalog.get_product(session, product_id)
        _require_editor(user, product)
        catalog.archive_product(session, product)
    _invalidate(product.id, {product.owner_id})
    return ""


def plain_listing_render(
    query: MultiDict[str, str], _view_args: Mapping[str, Any]
) -> Render | None:
    """How ``list_products`` renders a miss of a plain query (``plain_listing_args``), for the
    shortcut to call outside Flask; None for any other query (Flask answers it)."""
    args = plain_listing_args(query)
    if args is None:
        return None
    return lambda connection: _dumps(listing_page(connection, args))


# Answered before Flask when the entry is in Redis, and a plain listing also on a miss
# (``webapi.cache_hits``).
CACHED_READS: dict[str, CachedRead] = {
    f"{blp.name}.{list_products.__name__}": CachedRead(
        listing_cache_keys, flag_keys, plain_listing_render
    ),
    f"{blp.name}.{get_product.__name__}": CachedRead(item_cache_keys, flag_keys),
}
