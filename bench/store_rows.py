"""CPU and wall per ``upsert_scraped_products`` call on PostgreSQL: one statement vs the steps.

A worker stores a single-URL job's row in a transaction of its own, so the one-row call is the
hot case; 50-row calls stand for a bigger job's batches. Each call stores rows of existing
products of a running job, half of them with a changed price (an observation), on a scratch
database. Rounds alternate between the step-by-step path (``_store_in_steps``, the baseline)
and the one statement (``_store_in_one_statement``) and change which goes first, so both see
the same machine load; each figure is the median of the rounds' means.

    python bench/store_rows.py [--rounds 6] [--calls 300] [--products 2000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from pathlib import Path

from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models import Database, ScrapeJob, create_database  # noqa: E402
from models.scraped import (  # noqa: E402
    ScrapedRow,
    UpsertResult,
    _store_in_one_statement,
    _store_in_steps,
)
from shelfwatch import migrate  # noqa: E402
from tests.services import postgres_database, test_settings, unique_name  # noqa: E402

Store = Callable[[Session, Sequence[ScrapedRow]], UpsertResult]
PATHS: dict[str, Store] = {"steps": _store_in_steps, "one statement": _store_in_one_statement}
T0 = datetime(2026, 1, 1, tzinfo=UTC)
WARM_UP_CALLS = 20  # past psycopg's prepare threshold and PostgreSQL's five custom plans


class Rows:
    """Rows of existing products, each scraped later than the one before."""

    def __init__(self, products: int) -> None:
        self.products = products
        self.clock = count(1)

    def row(self, n: int, price: str) -> ScrapedRow:
        return ScrapedRow(
            canonical_url=f"https://shop.example/p/{n}",
            url=f"https://shop.example/p/{n}?ref=bench",
            domain="shop.example",
            scraped_at=T0 + timedelta(seconds=next(self.clock)),
            name=f"Product {n}",
            price=Decimal(price),
            currency="EUR",
            availability="in_stock",
            sku=f"SKU-{n}",
            brand="Brand",
            sources={"price": "jsonld"},
            job_id="bench-job",
        )

    def batch(self, rng: random.Random, size: int) -> list[ScrapedRow]:
        # Two prices per product: about half the offers change.
        return [
            self.row(rng.randrange(self.products), rng.choice(("10.00", "12.50")))
            for _ in range(size)
        ]


def mean_call(
    database: Database, store: Store, rows: Rows, rng: random.Random, size: int, calls: int
) -> tuple[float, float]:
    """Mean CPU and wall milliseconds of ``calls`` calls, each in a transaction of its own."""
    cpu = wall = 0.0
    for _ in range(calls):
        batch = rows.batch(rng, size)
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        with database.transaction() as session:
            store(session, batch)
        cpu += time.process_time() - cpu_start
        wall += time.perf_counter() - wall_start
    return cpu * 1000 / calls, wall * 1000 / calls


def compare(database: Database, rows: Rows, size: int, rounds: int, calls: int) -> None:
    means: dict[str, list[tuple[float, float]]] = {label: [] for label in PATHS}
    for round_number in range(rounds):
        labels = list(PATHS) if round_number % 2 == 0 else list(reversed(PATHS))
        for label in labels:
            mean_call(database, PATHS[label], rows, random.Random(0), size, WARM_UP_CALLS)
            rng = random.Random(round_number)
            means[label].append(mean_call(database, PATHS[label], rows, rng, size, calls))
    medians = {
        label: tuple(statistics.median(values) for values in zip(*rounds_means, strict=True))
        for label, rounds_means in means.items()
    }
    for label, (cpu, wall) in medians.items():
        print(f"{size:>3} rows, {label:<13}  cpu {cpu:6.2f} ms  wall {wall:6.2f} ms per call")
    (steps_cpu, steps_wall), (one_cpu, one_wall) = medians.values()
    print(f"{size:>3} rows, ratio one/steps   cpu {one_cpu / steps_cpu:.2f}x  "
          f"wall {one_wall / steps_wall:.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 50])
    args = parser.parse_args()
    name = unique_name("bench_store")
    with postgres_database(name) as url:
        settings = test_settings(url, name)
        migrate.upgrade(settings)
        database = create_database(settings)
        try:
            rows = Rows(args.products)
            with database.transaction() as session:
                session.add(ScrapeJob(id="bench-job", spider="product", status="running", urls=[]))
            with database.transaction() as session:
                _store_in_steps(session, [rows.row(n, "10.00") for n in range(args.products)])
            with database.scraping.connect() as connection:
                connection.exec_driver_sql("ANALYZE")
                connection.commit()
            for size in args.sizes:
                compare(database, rows, size, args.rounds, args.calls)
        finally:
            database.dispose()


if __name__ == "__main__":
    main()
