"""One PostgreSQL statement that stores a batch of scraped rows (see ``models/scraped.py``).

The batch goes in as one JSON document (``json_to_recordset``) and its data-modifying CTEs do
in one round trip what the step-by-step path does in four: upsert the products, add the changed
offers to the price history, link the rows of jobs to their products. The statement text is
the same for every batch, so psycopg prepares it and PostgreSQL settles on a generic plan: no
batch length shows in it (arrays per column let the planner see it, and then it planned every
call again, which took longer than running the statement).

All CTEs read one snapshot, taken before any lock is held. The step-by-step path compares
offers after the upsert has locked the products, so it sees a concurrent writer's committed
observation; here ``locked`` locks the existing products first and returns the version it
locked, which ``recheck`` compares with the snapshot's. A product written by another
transaction since the snapshot gets no observation here: the caller compares it again in a
statement of its own (rare: two writers of one product at once).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    CTE,
    JSON,
    Boolean,
    DateTime,
    Integer,
    Numeric,
    Text,
    any_,
    case,
    cast,
    column,
    false,
    func,
    literal_column,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy import bindparam as bind
from sqlalchemy.dialects.postgresql import insert

from models.scraping import PriceObservation, ScrapedProduct, ScrapeJob, ScrapeJobProduct

if TYPE_CHECKING:
    from models.scraped import ScrapedRow

PRODUCTS = ScrapedProduct.__table__
OBSERVATIONS = PriceObservation.__table__
LINKS = ScrapeJobProduct.__table__
JOBS = ScrapeJob.__table__

ROW_COLUMNS = (
    "canonical_url", "url", "domain", "name", "price", "currency", "availability", "sku",
    "gtin", "mpn", "brand", "image_url", "description", "sources", "job_id", "scraped_at",
)  # fmt: skip
UPDATED_COLUMNS = ROW_COLUMNS[1:]
TEXT_COLUMNS = tuple(name for name in ROW_COLUMNS if name not in ("price", "sources", "scraped_at"))


def store_parameters(
    rows: Sequence[ScrapedRow], pairs: Iterable[tuple[str, str]]
) -> dict[str, str]:
    """The statement's two parameters, each one JSON document: ``rows`` in order, and the
    (job id, URL) links."""
    batch = [
        {
            **{name: getattr(row, name) for name in TEXT_COLUMNS},
            "price": None if row.price is None else str(row.price),  # exact, as NUMERIC reads it
            "sources": row.sources,
            "scraped_at": _utc(row.scraped_at).isoformat(),
            "position": position,
        }
        for position, row in enumerate(rows)
    ]
    links = [{"job_id": job_id, "canonical_url": url} for job_id, url in sorted(pairs)]
    # json.dumps, as SQLAlchemy's JSON type writes ``sources`` on the step-by-step path: a
    # json column keeps the very text it is given.
    return {"rows": json.dumps(batch), "links": json.dumps(links)}


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC)


def _records(name: str, parameter: str, columns: dict[str, Any]) -> Any:
    """``json_to_recordset(:parameter) AS name(column type, …)``."""
    records = func.json_to_recordset(cast(bind(parameter, type_=Text()), JSON()))
    table = records.table_valued(*(column(key, value) for key, value in columns.items()))
    return table.render_derived(name=name, with_types=True)


@cache
def store_statement() -> Any:
    """Per batch row, in batch order: ``canonical_url``; ``product_id`` (None when an older
    scrape was skipped); ``observed`` (an observation was added); ``recheck`` (written by
    another transaction since the snapshot: compare its offer again); ``stored`` (the product
    existed in the snapshot)."""
    batch = _batch()
    stored = PRODUCTS.alias("stored")
    # ``= ANY(ARRAY(…))``, not a join: the generic plan knows no batch size and, joining,
    # would rather read a small table whole than look each URL up in the unique index.
    in_batch = stored.c.canonical_url == any_(
        func.array(select(batch.c.canonical_url).scalar_subquery())
    )
    version = literal_column("stored.xmin")
    seen = select(stored.c.id, stored.c.canonical_url, version.label("version"))
    seen = seen.where(in_batch).cte("seen")
    # Locks the existing products in canonical-URL order as Python sorts it (the order of the
    # upsert's inserts: code points, i.e. bytewise) and, under READ COMMITTED, returns the
    # latest committed version of each.
    locked = select(stored.c.id, version.label("version")).where(in_batch)
    locked = locked.order_by(stored.c.canonical_url.collate("C")).with_for_update()
    locked = locked.cte("locked")
    upserted = _upsert(batch, locked)
    written = _written(batch, upserted, seen, locked)
    observed = _observe(written)
    return (
        select(
            batch.c.canonical_url,
            upserted.c.id.label("product_id"),
            observed.c.product_id.is_not(None).label("observed"),
            func.coalesce(written.c.recheck, false()).label("recheck"),
            seen.c.id.is_not(None).label("stored"),
        )
        .select_from(
            batch.outerjoin(upserted, upserted.c.canonical_url == batch.c.canonical_url)
            .outerjoin(written, written.c.id == upserted.c.id)
            .outerjoin(observed, observed.c.product_id == upserted.c.id)
            .outerjoin(seen, seen.c.canonical_url == batch.c.canonical_url)
        )
        .order_by(batch.c.position)
        .add_cte(_link(upserted, seen))
    )


def _batch() -> CTE:
    # Types as the rows carry the values: a cast to VARCHAR(n) would cut a long value (the
    # insert must reject it), one to NUMERIC(14, 4) would round a price before it is compared
    # with the stored one (the step-by-step path compares the scraped value).
    types: dict[str, Any] = {name: Text() for name in TEXT_COLUMNS}
    types |= {"price": Numeric(), "sources": JSON(), "scraped_at": DateTime(timezone=True)}
    types["position"] = Integer()
    return select(_records("batch", "rows", types)).cte("batch")


def _upsert(batch: CTE, locked: CTE) -> CTE:
    values = select(
        *(batch.c[name] for name in ROW_COLUMNS),
        batch.c.scraped_at.label("first_seen_at"),
        batch.c.scraped_at.label("last_seen_at"),
    )
    # The count is an InitPlan, run before the first row is inserted: every lock is taken
    # before the upsert starts (the upsert never references ``locked`` otherwise).
    values = values.where(select(func.count()).select_from(locked).scalar_subquery() >= 0)
    names = [*ROW_COLUMNS, "first_seen_at", "last_seen_at"]
    statement = insert(PRODUCTS).from_select(names, values.order_by(batch.c.position))
    excluded = statement.excluded
    updated: dict[str, Any] = {name: excluded[name] for name in UPDATED_COLUMNS}
    updated["last_seen_at"] = func.greatest(PRODUCTS.c.last_seen_at, excluded.last_seen_at)
    inserted = literal_column("xmax = 0", Boolean)  # 0 on a new row; set on a locked one
    return (
        statement.on_conflict_do_update(
            index_elements=[PRODUCTS.c.canonical_url],
            set_=updated,
            where=excluded.scraped_at >= PRODUCTS.c.scraped_at,
        )
        .returning(PRODUCTS.c.id, PRODUCTS.c.canonical_url, inserted.label("inserted"))
        .cte("upserted")
    )


def _written(batch: CTE, upserted: CTE, seen: CTE, locked: CTE) -> CTE:
    """The upserted rows with their offer and whether another writer got there first."""
    recheck = case(
        (seen.c.id.is_(None), not_(upserted.c.inserted)),  # inserted by another since
        else_=locked.c.version.is_distinct_from(seen.c.version),  # updated by another since
    )
    return (
        select(
            upserted.c.id,
            batch.c.position,
            batch.c.price,
            batch.c.currency,
            batch.c.availability,
            batch.c.job_id,
            batch.c.scraped_at,
            recheck.label("recheck"),
        )
        .select_from(
            upserted.join(batch, batch.c.canonical_url == upserted.c.canonical_url)
            .outerjoin(seen, seen.c.canonical_url == upserted.c.canonical_url)
            .outerjoin(locked, locked.c.id == seen.c.id)
        )
        .cte("written")
    )


def _observe(written: CTE) -> CTE:
    """Insert the offers that differ from their product's latest observation."""
    history = OBSERVATIONS.alias("history")
    latest = (
        select(history.c.id, history.c.price, history.c.currency, history.c.availability)
        .where(history.c.product_id == written.c.id)
        .order_by(history.c.id.desc())
        .limit(1)
        .lateral("latest")
    )
    changed = (
        select(
            written.c.id,
            written.c.price,
            written.c.currency,
            written.c.availability,
            written.c.job_id,
            written.c.scraped_at,
        )
        .select_from(written.outerjoin(latest, true()))
        .where(
            not_(written.c.recheck),
            # Numeric comparison: 12.5 equals 12.50 (what ``_normal_price`` does in Python).
            or_(
                latest.c.id.is_(None),
                written.c.price.is_distinct_from(latest.c.price),
                written.c.currency.is_distinct_from(latest.c.currency),
                written.c.availability.is_distinct_from(latest.c.availability),
            ),
        )
        .order_by(written.c.position)
    )
    names = ["product_id", "price", "currency", "availability", "job_id", "observed_at"]
    statement = insert(OBSERVATIONS).from_select(names, changed)
    return statement.returning(OBSERVATIONS.c.product_id).cte("observed")


def _link(upserted: CTE, seen: CTE) -> CTE:
    """Link (job, URL) pairs of existing jobs to their products, older scrapes' included."""
    pairs = _records("pairs", "links", {"job_id": Text(), "canonical_url": Text()})
    product_id = func.coalesce(upserted.c.id, seen.c.id)
    matches = (
        select(pairs.c.job_id, product_id)
        .select_from(
            pairs.join(JOBS, JOBS.c.id == pairs.c.job_id)
            .outerjoin(upserted, upserted.c.canonical_url == pairs.c.canonical_url)
            .outerjoin(seen, seen.c.canonical_url == pairs.c.canonical_url)
        )
        .where(product_id.is_not(None))
        .order_by(pairs.c.job_id, pairs.c.canonical_url)
    )
    statement = insert(LINKS).from_select(["job_id", "product_id"], matches)
    return statement.on_conflict_do_nothing().cte("linked")
