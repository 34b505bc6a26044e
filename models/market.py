"""Market prices of inventory products: watched URLs, their latest offers and price history.

A watch links an inventory product (by id: the catalogue may live in another database) to
a product page URL. A watch finds its scraped product through ``scraped_products``'
unique ``canonical_url``: the watched URL in w3lib's canonical form, or as given. A page
whose ``<link rel=canonical>`` names another URL is found by watching that URL.

Each watched product has one schedule (``ScrapeSchedule.watch_product_id``) that crawls all
its watched URLs with one spider at one interval. Adding a watch creates or refreshes it and
makes it run at once; removing the last watch deletes it. Its timing can be edited through
the schedules API like any other.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from w3lib.url import canonicalize_url

from models.base import utcnow
from models.schedule_timing import Timing
from models.schedules import create_schedule
from models.scraping import PriceObservation, ProductWatch, ScrapedProduct, ScrapeSchedule

MAX_WATCHES_PER_PRODUCT = 100
# Availabilities whose price is no offer one could buy at (left out of the lowest price).
_NOT_FOR_SALE = ("out_of_stock", "discontinued")
_LOCK_CLASS = 0x5357  # pg_advisory_xact_lock(class, key): the product's watches


class WatchNotFound(LookupError):
    """No such watch on this product."""


class TooManyWatches(Exception):
    """The product already watches ``MAX_WATCHES_PER_PRODUCT`` URLs."""


@dataclass(frozen=True)
class WatchedOffer:
    """A watched URL, the scraped product it found (None until crawled), newest history first."""

    watch: ProductWatch
    scraped: ScrapedProduct | None
    history: list[PriceObservation] = field(default_factory=list)


@dataclass(frozen=True)
class LowestPrice:
    price: Decimal
    currency: str
    url: str


def _lock_watches(session: Session, product_id: int) -> None:
    """Serialize changes to one product's watches (and its schedule) on PostgreSQL."""
    connection = session.connection(bind_arguments={"mapper": ProductWatch})
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(_LOCK_CLASS, product_id % 2**31)))


def add_watch(
    session: Session, product_id: int, url: str, *, created_by: int | None
) -> tuple[ProductWatch, bool]:
    """The product's watch of ``url``, and whether it was added now (False: already there)."""
    _lock_watches(session, product_id)
    existing = session.scalar(
        select(ProductWatch).where(ProductWatch.product_id == product_id, ProductWatch.url == url)
    )
    if existing is not None:
        return existing, False
    if len(list_watches(session, product_id)) >= MAX_WATCHES_PER_PRODUCT:
        raise TooManyWatches(f"product {product_id} watches {MAX_WATCHES_PER_PRODUCT} URLs")
    watch = ProductWatch(
        product_id=product_id,
        url=url,
        canonical_url=canonicalize_url(url),
        created_by=created_by,
        created_at=utcnow(),
    )
    session.add(watch)
    session.flush()
    return watch, True


def list_watches(session: Session, product_id: int) -> list[ProductWatch]:
    query = select(ProductWatch).where(ProductWatch.product_id == product_id)
    return list(session.scalars(query.order_by(ProductWatch.id)))


def remove_watch(session: Session, product_id: int, watch_id: int) -> None:
    _lock_watches(session, product_id)
    watch = session.get(ProductWatch, watch_id)
    if watch is None or watch.product_id != product_id:
        raise WatchNotFound(f"no watch {watch_id} on product {product_id}")
    session.delete(watch)
    session.flush()


def watch_schedule(session: Session, product_id: int) -> ScrapeSchedule | None:
    return session.scalar(
        select(ScrapeSchedule).where(ScrapeSchedule.watch_product_id == product_id)
    )


def sync_watch_schedule(
    session: Session,
    product_id: int,
    *,
    spider: str,
    interval_seconds: int,
    created_by: int | None,
    run_now: bool,
) -> ScrapeSchedule | None:
    """Make the product's schedule crawl exactly its watched URLs (None: no watch left)."""
    urls = [watch.url for watch in list_watches(session, product_id)]
    schedule = watch_schedule(session, product_id)
    now = utcnow()
    if not urls:
        if schedule is not None:
            session.delete(schedule)
            session.flush()
        return None
    if schedule is None:
        return create_schedule(
            session,
            spider=spider,
            urls=urls,
            timing=Timing(None, "UTC", interval_seconds),
            name=f"market prices of product {product_id}",
            created_by=created_by,
            watch_product_id=product_id,
            first_run_at=now,
            now=now,
        )
    schedule.urls = urls
    if run_now and schedule.enabled:
        schedule.next_run_at = now
    session.flush()
    return schedule


def _scraped_by_watch(
    session: Session, watches: Sequence[ProductWatch]
) -> dict[int, ScrapedProduct]:
    keys = {key for watch in watches for key in (watch.canonical_url, watch.url)}
    if not keys:
        return {}
    found = {
        product.canonical_url: product
        for product in session.scalars(
            select(ScrapedProduct).where(ScrapedProduct.canonical_url.in_(sorted(keys)))
        )
    }
    matched = {}
    for watch in watches:
        product = found.get(watch.canonical_url) or found.get(watch.url)
        if product is not None:
            matched[watch.id] = product
    return matched


def _histories(
    session: Session, scraped_ids: Sequence[int], limit: int
) -> dict[int, list[PriceObservation]]:
    """The newest ``limit`` observations of each product, in one query."""
    if not scraped_ids or limit <= 0:
        return {}
    rank = (
        func.row_number()
        .over(
            partition_by=PriceObservation.product_id,
            order_by=(PriceObservation.observed_at.desc(), PriceObservation.id.desc()),
        )
        .label("rank")
    )
    ranked = (
        select(PriceObservation.id, rank)
        .where(PriceObservation.product_id.in_(sorted(set(scraped_ids))))
        .subquery()
    )
    query = (
        select(PriceObservation)
        .join(ranked, ranked.c.id == PriceObservation.id)
        .where(ranked.c.rank <= limit)
        .order_by(PriceObservation.observed_at.desc(), PriceObservation.id.desc())
    )
    histories: dict[int, list[PriceObservation]] = defaultdict(list)
    for observation in session.scalars(query):
        histories[observation.product_id].append(observation)
    return histories


def market_of(session: Session, product_id: int, *, history_limit: int) -> list[WatchedOffer]:
    """Each watched URL of the product with its latest offer and its price history."""
    watches = list_watches(session, product_id)
    scraped = _scraped_by_watch(session, watches)
    histories = _histories(session, [p.id for p in scraped.values()], history_limit)
    return [
        WatchedOffer(
            watch,
            scraped.get(watch.id),
            histories.get(scraped[watch.id].id, []) if watch.id in scraped else [],
        )
        for watch in watches
    ]


def lowest_prices(session: Session, product_ids: Sequence[int]) -> dict[int, list[LowestPrice]]:
    """Per product, the lowest current price of its watched offers for sale, per currency."""
    if not product_ids:
        return {}
    watches = list(
        session.scalars(select(ProductWatch).where(ProductWatch.product_id.in_(product_ids)))
    )
    scraped = _scraped_by_watch(session, watches)
    lowest: dict[int, dict[str, LowestPrice]] = defaultdict(dict)
    for watch in sorted(watches, key=lambda w: w.id):
        product = scraped.get(watch.id)
        if not _for_sale(product):
            continue
        assert product is not None and product.price is not None and product.currency
        best = lowest[watch.product_id].get(product.currency)
        if best is None or product.price < best.price:
            offer = LowestPrice(product.price, product.currency, watch.url)
            lowest[watch.product_id][product.currency] = offer
    return {
        product_id: [by_currency[c] for c in sorted(by_currency)]
        for product_id, by_currency in lowest.items()
    }


def _for_sale(product: ScrapedProduct | None) -> bool:
    return (
        product is not None
        and product.price is not None
        and bool(product.currency)
        and product.availability not in _NOT_FOR_SALE
    )
