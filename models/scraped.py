"""Storing scraped products: batched upserts, price history on change, freshness look-ups.

`upsert_scraped_products` stores a batch inside the caller's transaction. Its effects, in order:

1. an ``INSERT … ON CONFLICT (canonical_url) DO UPDATE … RETURNING`` that keeps the latest
   values, moves ``last_seen_at`` and tags ``job_id``; an older scrape (a late retry) never
   overwrites a newer one;
2. an ``INSERT`` of price observations for the products whose price, currency or availability
   differ from their latest observation;
3. (rows of a job) an ``INSERT … ON CONFLICT DO NOTHING`` of the job ↔ product links that make
   the job's items, older scrapes included (their product keeps newer values).

On PostgreSQL the three are one statement (``models/scraped_statement.py``): one round trip.
Elsewhere (SQLite, the embedded mode) they are separate statements, the second preceded by a
look-up of the latest observations.

The products are locked (in canonical-URL order, so two batches cannot deadlock) until the
transaction ends, and the offers are compared with the history as it stands once those locks
are held: under READ COMMITTED that includes every observation a concurrent writer of the same
products committed. So concurrent writers, retried jobs and repeated crawls add no duplicate
history. (The one statement locks the products its snapshot sees first, then the new ones,
each in that order: two batches can deadlock when a third writer commits one of their products
between their snapshots. PostgreSQL then cancels one of them, 40P01, and the pipeline retries.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import bindparam, func, insert, select, true, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models.base import utcnow
from models.scraped_statement import store_parameters, store_statement
from models.scraping import PriceObservation, ScrapedProduct, ScrapeJob, ScrapeJobProduct

# Core statements (no ORM entity in them) find the scraping engine through this.
_SCRAPING: dict[str, Any] = {"mapper": ScrapedProduct}
# Rows per statement: 16 bound parameters a row stays far below PostgreSQL's 65,535 limit.
STATEMENT_ROWS = 1000


@dataclass(frozen=True)
class ScrapedRow:
    """One scraped product page, ready to store (the pipeline converts items to these)."""

    canonical_url: str
    url: str
    domain: str
    scraped_at: datetime
    name: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    availability: str = "unknown"
    sku: str | None = None
    gtin: str | None = None
    mpn: str | None = None
    brand: str | None = None
    image_url: str | None = None
    description: str | None = None
    sources: dict[str, str] = field(default_factory=dict)
    job_id: str | None = None

    @property
    def offer(self) -> tuple[Decimal | None, str | None, str]:
        return (_normal_price(self.price), self.currency, self.availability)


@dataclass
class UpsertResult:
    products: int = 0
    observations: int = 0
    product_ids: dict[str, int] = field(default_factory=dict)


def upsert_scraped_products(session: Session, rows: Iterable[ScrapedRow]) -> UpsertResult:
    """Store ``rows`` (latest values per canonical URL), their price changes and, for rows of a
    job, that the job has the product among its items."""
    rows = list(rows)
    if session.get_bind(ScrapedProduct).dialect.name == "postgresql":
        return _store_in_one_statement(session, rows)
    return _store_in_steps(session, rows)


def _latest_per_url(rows: Sequence[ScrapedRow]) -> list[ScrapedRow]:
    """One row per canonical URL, its latest scrape, in canonical-URL order (the lock order)."""
    latest = {row.canonical_url: row for row in sorted(rows, key=lambda r: r.scraped_at)}
    return [latest[key] for key in sorted(latest)]


def _store_in_one_statement(session: Session, rows: Sequence[ScrapedRow]) -> UpsertResult:
    ordered = _latest_per_url(rows)
    pairs = {(row.job_id, row.canonical_url) for row in rows if row.job_id}
    result = UpsertResult()
    for start in range(0, len(ordered), STATEMENT_ROWS):
        chunk = ordered[start : start + STATEMENT_ROWS]
        urls = {row.canonical_url for row in chunk}
        chunk_pairs = {(job_id, url) for job_id, url in pairs if url in urls}
        outcomes = session.execute(
            store_statement(), store_parameters(chunk, chunk_pairs), bind_arguments=_SCRAPING
        ).all()
        ids = {
            each.canonical_url: each.product_id for each in outcomes if each.product_id is not None
        }
        result.product_ids.update(ids)
        result.products += len(ids)
        result.observations += sum(1 for each in outcomes if each.observed)
        result.observations += _recheck_offers(session, chunk, outcomes, ids)
        if any(each.product_id is None and not each.stored for each in outcomes):
            # An older scrape of a product another writer inserted after the statement's
            # snapshot: the statement could not see its id; this statement can.
            link_job_products(session, chunk_pairs)
    return result


def _recheck_offers(
    session: Session, rows: Sequence[ScrapedRow], outcomes: Sequence[Any], ids: dict[str, int]
) -> int:
    """Compare again, in a statement of their own, the offers of the products another writer
    changed after the one statement's snapshot (it left them alone)."""
    recheck = {each.canonical_url for each in outcomes if each.recheck}
    if not recheck:
        return 0
    rechecked = [row for row in rows if row.canonical_url in recheck]
    return _insert_changed_offers(session, rechecked, {url: ids[url] for url in recheck})


def _store_in_steps(session: Session, rows: Sequence[ScrapedRow]) -> UpsertResult:
    ordered = _latest_per_url(rows)
    result = UpsertResult()
    for start in range(0, len(ordered), STATEMENT_ROWS):
        chunk = ordered[start : start + STATEMENT_ROWS]
        ids = _upsert_products(session, chunk)
        result.product_ids.update(ids)
        result.products += len(ids)
        result.observations += _insert_changed_offers(session, chunk, ids)
    link_job_products(session, {(row.job_id, row.canonical_url) for row in rows if row.job_id})
    return result


def link_job_products(session: Session, pairs: set[tuple[str, str]]) -> None:
    """Record (job id, canonical URL) pairs as job items: stored products of existing jobs only
    (a crawl outside any job, or a spider given a made-up ``job_id``, links nothing)."""
    ordered = sorted(pairs)  # one lock order for concurrent writers of the same links
    for start in range(0, len(ordered), STATEMENT_ROWS):
        part = ordered[start : start + STATEMENT_ROWS]
        session.execute(
            _link_statement(session.get_bind(ScrapedProduct).dialect.name),
            {
                "jobs": sorted({job for job, _url in part}),
                "urls": sorted({url for _job, url in part}),
                "pairs": part,
            },
            bind_arguments=_SCRAPING,
        )


@cache
def _link_statement(dialect: str) -> Any:
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    jobs, products = ScrapeJob.__table__, ScrapedProduct.__table__
    # The IN lists let each side use its unique index; the pairs then keep only real links.
    matches = (
        select(jobs.c.id, products.c.id)
        .select_from(jobs.join(products, true()))  # a cross join, narrowed by the pairs
        .where(
            jobs.c.id.in_(bindparam("jobs", expanding=True)),
            products.c.canonical_url.in_(bindparam("urls", expanding=True)),
            tuple_(jobs.c.id, products.c.canonical_url).in_(bindparam("pairs", expanding=True)),
        )
    )
    links = ScrapeJobProduct.__table__
    statement = upsert(links).from_select([links.c.job_id, links.c.product_id], matches)
    return statement.on_conflict_do_nothing()


def _upsert_products(session: Session, rows: Sequence[ScrapedRow]) -> dict[str, int]:
    """Insert or update the rows; the ids of those written (older scrapes are skipped)."""
    statement = _upsert_statement(session.get_bind(ScrapedProduct).dialect.name)
    # A list of parameter sets: SQLAlchemy sends them as multi-row VALUES ("insertmanyvalues",
    # in the given order) from one compiled, cached statement instead of compiling a new
    # statement for every batch (that compilation was most of a small batch's CPU).
    found = session.execute(
        statement, [_product_values(row) for row in rows], bind_arguments=_SCRAPING
    )
    return {url: product_id for url, product_id in found}


@cache
def _upsert_statement(dialect: str) -> Any:
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    greatest = func.greatest if dialect == "postgresql" else func.max
    products = ScrapedProduct.__table__
    statement = upsert(products)
    excluded = statement.excluded
    updated = {
        column: excluded[column]
        for column in (
            "url", "domain", "name", "price", "currency", "availability", "sku", "gtin", "mpn",
            "brand", "image_url", "description", "sources", "job_id", "scraped_at",
        )
    }  # fmt: skip
    updated["last_seen_at"] = greatest(products.c.last_seen_at, excluded.last_seen_at)
    return statement.on_conflict_do_update(
        index_elements=[products.c.canonical_url],
        set_=updated,
        where=excluded.scraped_at >= products.c.scraped_at,
    ).returning(products.c.canonical_url, products.c.id)


def _product_values(row: ScrapedRow) -> dict[str, object]:
    return {
        "canonical_url": row.canonical_url,
        "url": row.url,
        "domain": row.domain,
        "name": row.name,
        "price": row.price,
        "currency": row.currency,
        "availability": row.availability,
        "sku": row.sku,
        "gtin": row.gtin,
        "mpn": row.mpn,
        "brand": row.brand,
        "image_url": row.image_url,
        "description": row.description,
        "sources": row.sources,
        "job_id": row.job_id,
        "scraped_at": row.scraped_at,
        "first_seen_at": row.scraped_at,
        "last_seen_at": row.scraped_at,
    }


def _insert_changed_offers(
    session: Session, rows: Sequence[ScrapedRow], ids: dict[str, int]
) -> int:
    previous = latest_offers(session, list(ids.values()))
    changed = [
        {
            "product_id": ids[row.canonical_url],
            "price": row.price,
            "currency": row.currency,
            "availability": row.availability,
            "job_id": row.job_id,
            "observed_at": row.scraped_at,
        }
        for row in rows
        if row.canonical_url in ids and previous.get(ids[row.canonical_url]) != row.offer
    ]
    if changed:
        session.execute(_INSERT_OBSERVATIONS, changed, bind_arguments=_SCRAPING)
    return len(changed)


_INSERT_OBSERVATIONS = insert(PriceObservation.__table__)
_NEWEST_OBSERVATIONS = (
    select(func.max(PriceObservation.id))
    .where(PriceObservation.product_id.in_(bindparam("product_ids", expanding=True)))
    .group_by(PriceObservation.product_id)
)
# Built once: its compiled form is cached, the ids go in as one expanding parameter.
_LATEST_OFFERS = select(
    PriceObservation.product_id,
    PriceObservation.price,
    PriceObservation.currency,
    PriceObservation.availability,
).where(PriceObservation.id.in_(_NEWEST_OBSERVATIONS))


def latest_offers(
    session: Session, product_ids: Sequence[int]
) -> dict[int, tuple[Decimal | None, str | None, str]]:
    """The latest observed (price, currency, availability) of each product that has one."""
    if not product_ids:
        return {}
    found = session.execute(
        _LATEST_OFFERS, {"product_ids": list(product_ids)}, bind_arguments=_SCRAPING
    )
    return {
        product_id: (_normal_price(price), currency, availability)
        for product_id, price, currency, availability in found
    }


def fresh_products(
    session: Session, urls: Iterable[str], max_age_seconds: int, *, now: datetime | None = None
) -> dict[str, int]:
    """Of ``urls`` (canonical URLs), those seen within ``max_age_seconds``: url -> product id."""
    candidates = sorted(set(urls))
    if not candidates:
        return {}
    cutoff = (now or utcnow()) - timedelta(seconds=max_age_seconds)
    query = select(ScrapedProduct.canonical_url, ScrapedProduct.id).where(
        ScrapedProduct.canonical_url.in_(candidates), ScrapedProduct.last_seen_at > cutoff
    )
    return {url: product_id for url, product_id in session.execute(query)}


def _normal_price(price: Decimal | None) -> Decimal | None:
    """Prices compare by value: 19.9 and 19.9000 (as NUMERIC(14,4) returns it) are equal."""
    return None if price is None else price.normalize()
