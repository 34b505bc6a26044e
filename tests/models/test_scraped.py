"""Batched upserts of scraped products and their price history, on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Text, cast, func, select, text
from sqlalchemy.orm import Session

from models import (
    Database,
    PriceObservation,
    ScrapedProduct,
    ScrapeJob,
    ScrapeJobProduct,
    ScrapingBase,
    create_database,
)
from models.scraped import (
    ScrapedRow,
    UpsertResult,
    _store_in_one_statement,
    _store_in_steps,
    fresh_products,
    upsert_scraped_products,
)
from shelfwatch import migrate
from shelfwatch.config import Settings

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
Store = Callable[[Session, Sequence[ScrapedRow]], UpsertResult]


def row(
    n: int | str,
    price: str | None = "10.00",
    *,
    at: datetime = T0,
    job: str | None = "job-1",
    **extra: object,
) -> ScrapedRow:
    values: dict[str, object] = {
        "canonical_url": f"https://shop.example/p/{n}",
        "url": f"https://shop.example/p/{n}?ref=x",
        "domain": "shop.example",
        "scraped_at": at,
        "name": f"Product {n}",
        "price": None if price is None else Decimal(price),
        "currency": "EUR",
        "availability": "in_stock",
        "job_id": job,
    }
    values.update(extra)
    return ScrapedRow(**values)  # type: ignore[arg-type]


def store(database: Database, rows: list[ScrapedRow]) -> tuple[int, int]:
    with database.transaction() as session:
        result = upsert_scraped_products(session, rows)
    return result.products, result.observations


def counts(database: Database) -> tuple[int, int]:
    with database.session() as session:
        products = session.scalar(select(func.count()).select_from(ScrapedProduct))
        observations = session.scalar(select(func.count()).select_from(PriceObservation))
    return products or 0, observations or 0


def test_a_batch_of_hundreds_is_stored_with_one_observation_each(database: Database) -> None:
    assert store(database, [row(n) for n in range(1200)]) == (1200, 1200)
    assert counts(database) == (1200, 1200)


def test_the_same_crawl_twice_adds_no_history(database: Database) -> None:
    rows = [row(n) for n in range(50)]
    store(database, rows)
    later = [row(n, at=T0 + timedelta(hours=1), job="job-2") for n in range(50)]
    assert store(database, later) == (50, 0)
    assert store(database, rows) == (0, 0)  # a late retry of the first job: older, skipped
    assert counts(database) == (50, 50)
    with database.session() as session:
        product = session.scalars(select(ScrapedProduct).limit(1)).one()
    assert product.job_id == "job-2"
    assert product.last_seen_at == T0 + timedelta(hours=1)
    assert product.first_seen_at == T0


def test_a_change_of_price_currency_or_availability_adds_one_observation(
    database: Database,
) -> None:
    store(database, [row(1, "10.00"), row(2, "10.00"), row(3, "10.00")])
    later = T0 + timedelta(minutes=5)
    changed = [
        row(1, "9.50", at=later),
        row(2, "10.00", at=later, currency="USD"),
        row(3, "10.0000", at=later, availability="out_of_stock"),
    ]
    assert store(database, changed) == (3, 3)
    assert store(database, [row(1, "9.5", at=later + timedelta(minutes=1))]) == (1, 0)
    with database.session() as session:
        history = session.execute(
            select(PriceObservation.price, PriceObservation.job_id)
            .join(ScrapedProduct, ScrapedProduct.id == PriceObservation.product_id)
            .where(ScrapedProduct.canonical_url == "https://shop.example/p/1")
            .order_by(PriceObservation.id)
        ).all()
    assert [(price, job) for price, job in history] == [
        (Decimal("10.0000"), "job-1"),
        (Decimal("9.5000"), "job-1"),
    ]


def test_concurrent_writers_of_the_same_change_add_it_once(database: Database) -> None:
    store(database, [row(n) for n in range(100)])
    changed = [row(n, "7.00", at=T0 + timedelta(minutes=1)) for n in range(100)]
    barrier = threading.Barrier(2)
    results: list[tuple[int, int]] = []

    def write() -> None:
        barrier.wait()
        results.append(store(database, changed))

    threads = [threading.Thread(target=write) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(observations for _, observations in results) == [0, 100]
    assert counts(database) == (100, 200)


def test_duplicates_within_a_batch_keep_the_latest(database: Database) -> None:
    rows = [row(1, "5.00"), row(1, "6.00", at=T0 + timedelta(seconds=1))]
    assert store(database, rows) == (1, 1)
    with database.session() as session:
        assert session.scalar(select(ScrapedProduct.price)) == Decimal("6.0000")


def test_fresh_products_are_those_seen_within_max_age(database: Database) -> None:
    now = datetime.now(UTC)
    store(database, [row(1, at=now - timedelta(minutes=5)), row(2, at=now - timedelta(hours=2))])
    with database.session() as session:
        fresh = fresh_products(
            session, ["https://shop.example/p/1", "https://shop.example/p/2"], 3600
        )
    assert list(fresh) == ["https://shop.example/p/1"]


def _job(database: Database, job_id: str) -> None:
    with database.transaction() as session:
        session.add(ScrapeJob(id=job_id, spider="product", status="running", urls=[], args={}))


def links(database: Database) -> list[tuple[str, int]]:
    with database.session() as session:
        found = session.execute(
            select(ScrapeJobProduct.job_id, ScrapedProduct.canonical_url)
            .join(ScrapedProduct, ScrapedProduct.id == ScrapeJobProduct.product_id)
            .order_by(ScrapeJobProduct.job_id, ScrapedProduct.canonical_url)
        )
        return [(job, url.rsplit("/", 1)[1]) for job, url in found]


def test_rows_of_a_job_become_its_items_older_scrapes_and_batch_duplicates_too(
    database: Database,
) -> None:
    for job_id in ("job-1", "job-2", "job-3"):
        _job(database, job_id)
    store(database, [row(1, at=T0 + timedelta(hours=1), job="job-2")])
    # job-1's scrape of product 1 is older (skipped: product 1 keeps job-2's values), and
    # product 2 comes twice in one batch, from job-1 and job-3: every pair is an item.
    store(database, [row(1, job="job-1"), row(2, job="job-1"), row(2, job="job-3")])
    assert links(database) == [("job-1", "1"), ("job-1", "2"), ("job-2", "1"), ("job-3", "2")]
    store(database, [row(1, job="job-1")])  # a redelivered batch links nothing twice
    assert len(links(database)) == 4


def test_rows_naming_no_existing_job_are_stored_without_links(database: Database) -> None:
    # A crawl outside any job, or a spider run by hand with a made-up job_id argument.
    assert store(database, [row(1, job="no-such-job"), row(2, job=None)]) == (2, 2)
    assert links(database) == []


# The one statement (PostgreSQL) against the step-by-step path it replaced: same rows left in
# the three tables, same results, batch after batch.
LATER = T0 + timedelta(hours=1)
SCENARIOS: dict[str, list[list[ScrapedRow]]] = {
    "new products": [[row(1), row(2, "3.00", job="job-2", sources={"price": "jsonld"})]],
    "the same offer again adds no observation": [[row(1)], [row(1, at=LATER)]],
    "a changed price": [[row(1)], [row(1, "11.00", at=LATER)]],
    "a changed currency or availability": [
        [row(1), row(2)],
        [row(1, at=LATER, currency="USD"), row(2, at=LATER, availability="out_of_stock")],
    ],
    "12.50 equals 12.5": [[row(1, "12.50")], [row(1, "12.5", at=LATER)]],
    "more decimals than stored": [[row(1, "1.23456")], [row(1, "1.23456", at=LATER)]],
    "a stale scrape is skipped but linked": [
        [row(1, at=LATER, job="job-2")],
        [row(1, "9.00", job="job-1"), row(2, job="job-1")],
    ],
    "an equally recent scrape overwrites": [[row(1, "4.00")], [row(1, "5.00", job="job-2")]],
    "duplicate URLs in one batch": [
        [
            row(1, "5.00", job="job-1"),
            row(1, "6.00", at=T0 + timedelta(seconds=1), job="job-3"),
            row(2),
            row(1, "4.00", job="job-2"),
        ]
    ],
    "rows of two jobs": [[row(1, job="job-1"), row(2, job="job-2"), row(3, job="job-1")]],
    "an unknown job id": [[row(1, job="no-such-job"), row(2)]],
    "no job id": [[row(1, job=None), row(2, job=None)], [row(1, "2.00", at=LATER, job=None)]],
    "no price or currency": [
        [row(1, None, currency=None), row(2)],
        [row(1, None, at=LATER, currency=None), row(2, None, at=LATER)],
        [row(2, "10.00", at=LATER + timedelta(hours=1))],
    ],
    "URLs that sort differently by collation": [
        [row(n, job="job-1") for n in ("B", "a", "ä", "Z", "_", "10", "9", "😀")],
    ],
    "text beyond ASCII": [
        [row(1, name='Crème brûlée 😀 \\ "x"', sources={"name": "microdata ✓", "n": "a\tb"})]
    ],
}


def _state(database: Database) -> dict[str, list[tuple[object, ...]]]:
    products, observations = ScrapedProduct.__table__, PriceObservation.__table__
    links = ScrapeJobProduct.__table__
    columns = [cast(c, Text) if c.name == "sources" else c for c in products.c]  # json's text
    with database.scraping.connect() as connection:
        return {
            "products": list(connection.execute(select(*columns).order_by(products.c.id))),
            "observations": list(connection.execute(select(observations).order_by("id"))),
            "links": list(connection.execute(select(links).order_by("job_id", "product_id"))),
        }


def _run(database: Database, store: Store, batches: list[list[ScrapedRow]]) -> list[object]:
    for job_id in ("job-1", "job-2", "job-3"):
        _job(database, job_id)
    results: list[object] = []
    for batch in batches:
        with database.transaction() as session:
            results.append(store(session, batch))
    results.append(_state(database))
    tables = [f"{t.schema}.{t.name}" for t in ScrapingBase.metadata.sorted_tables]
    with database.scraping.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    return results


@pytest.mark.parametrize("batches", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_one_statement_leaves_what_the_steps_leave(
    database: Database, batches: list[list[ScrapedRow]]
) -> None:
    steps = _run(database, _store_in_steps, batches)
    assert _run(database, _store_in_one_statement, batches) == steps


def _wait_for_a_lock_wait(database: Database) -> None:
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with database.scraping.connect() as connection:
            if connection.scalar(waiting):
                return
        time.sleep(0.01)
    raise AssertionError("the second writer never waited for the first")


def _second_writer_behind_the_first(
    database: Database, first: list[ScrapedRow], second: list[ScrapedRow]
) -> UpsertResult:
    """Store ``second`` while the transaction storing ``first`` holds its locks: the second
    statement's snapshot predates the first's commit."""
    results: list[UpsertResult] = []

    def write_second() -> None:
        with database.transaction() as session:
            results.append(upsert_scraped_products(session, second))

    with database.transaction() as session:
        upsert_scraped_products(session, first)
        writer = threading.Thread(target=write_second)
        writer.start()
        _wait_for_a_lock_wait(database)
    writer.join()
    return results[0]


@pytest.mark.parametrize("existing", [True, False], ids=["updated", "inserted"])
def test_a_writer_that_waited_for_another_adds_no_duplicate_history(
    database: Database, existing: bool
) -> None:
    if existing:
        store(database, [row(n) for n in range(3)])
    changed = [row(n, "7.00", at=T0 + timedelta(minutes=1)) for n in range(3)]
    result = _second_writer_behind_the_first(database, changed, changed)
    assert (result.products, result.observations) == (3, 0)
    assert counts(database) == (3, 6 if existing else 3)


def test_an_older_scrape_of_a_product_another_writer_inserts_is_linked(
    database: Database,
) -> None:
    _job(database, "job-1")
    _job(database, "job-2")
    newer, older = row(1, at=LATER, job="job-2"), row(1, "9.00", job="job-1")
    result = _second_writer_behind_the_first(database, [newer], [older])
    assert (result.products, result.observations) == (0, 0)
    assert links(database) == [("job-1", "1"), ("job-2", "1")]


def test_the_embedded_mode_stores_in_steps_on_sqlite(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    migrate.upgrade(settings)
    sqlite_database = create_database(settings)
    try:
        _job(sqlite_database, "job-1")
        assert store(sqlite_database, [row(1), row(2, job="no-such-job")]) == (2, 2)
        later = [row(1, "12.5", at=LATER), row(2, "10.0", at=LATER)]
        assert store(sqlite_database, later) == (2, 1)
        assert store(sqlite_database, [row(2, "1.00")]) == (0, 0)  # older: skipped, linked
        assert links(sqlite_database) == [("job-1", "1"), ("job-1", "2")]
    finally:
        sqlite_database.dispose()
