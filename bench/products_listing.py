"""Product listing latency: does a page cost the same at 10,000 and 1,000,000 rows, on page 1
and on page 10,000?

Creates a scratch PostgreSQL database, applies the migrations, bulk-loads products with
generate_series (10,000 first, then up to --rows), and times the API's own listing path
(``catalog.products_query`` + ``webapi.pagination.paginate``, ORM rows included) for the
first page and a deep page reached through a cursor. Prints the median and p95 of each and
the ratios against page 1 of the 10,000-row table measured in the same run; drops the
database at the end. The products belong to --owners managers in turn, so every partition of
the owner-partitioned table holds some (one owner's listing, ``?owner_id=``, is timed too).

    python bench/products_listing.py            # 1,000,000 rows, about a minute
    python bench/products_listing.py --rows 200000 --repeat 100
    python bench/products_listing.py --owners 1    # every product in one owner's partition
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from scratch import add_owners, scratch_database
from sqlalchemy import text

from models import Database, catalog, create_database
from shelfwatch import migrate
from shelfwatch.config import Settings
from webapi.pagination import decode_cursor, encode_cursor, paginate
from webapi.product_listing import KEYSETS

SMALL = 10_000
LIMIT = 50
DEEP_PAGE = 10_000


def load_products(engine: Any, first: int, last: int, owners: list[int]) -> None:
    """Products ``first..last``, one second apart, owned by ``owners`` in turn (every 10th
    archived)."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO products (owner_id, sku, name, price, currency, created_at,"
                " updated_at, archived_at)"
                " SELECT owners[1 + g % cardinality(owners)], 'SKU-' || g, 'Product ' || g,"
                " (g % 100000) / 100.0, 'EUR',"
                " timestamptz '2020-01-01' + g * interval '1 second',"
                " timestamptz '2020-01-01' + g * interval '1 second',"
                " CASE WHEN g % 10 = 0 THEN now() END"
                " FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g,"
                " CAST(:owners AS bigint[]) AS owners"
            ),
            {"first": first, "last": last, "owners": owners},
        )
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("VACUUM ANALYZE products")
        )


def cursor_before_page(
    engine: Any, page: int, order: str, narrowing: catalog.ProductFilter
) -> str | None:
    """The cursor a client holds after following ``page - 1`` pages (setup, not timed)."""
    if page == 1:
        return None
    keyset = KEYSETS[order]
    query = keyset.order(catalog.products_query(narrowing))
    query = query.with_only_columns(*keyset.columns).offset((page - 1) * LIMIT - 1).limit(1)
    with engine.connect() as connection:
        row = connection.execute(query).one()
    return encode_cursor(list(row))


@dataclass
class Case:
    label: str
    db: Database
    cursor: str | None
    order: str
    narrowing: catalog.ProductFilter = field(default_factory=catalog.ProductFilter)
    timings: list[float] = field(default_factory=list)

    def run_once(self) -> float:
        started = time.perf_counter()
        with self.db.session() as session, session.begin():
            items, _next = paginate(
                session,
                catalog.products_query(self.narrowing),
                KEYSETS[self.order],
                cursor=self.cursor,
                limit=LIMIT,
            )
        assert len(items) == LIMIT
        return (time.perf_counter() - started) * 1000


def run_interleaved(cases: list[Case], repeat: int) -> None:
    """Round-robin over the cases so that load from elsewhere hits them all alike."""
    for case in cases:
        for _ in range(20):
            case.run_once()  # warm up: connections, statement caches, shared buffers
    for _ in range(repeat):
        for case in cases:
            case.timings.append(case.run_once())


def summary(timings: list[float]) -> tuple[float, float]:
    ordered = sorted(timings)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1]


def explain(db: Any, cursor: str | None) -> str:
    query = catalog.products_query(catalog.ProductFilter())
    keyset = KEYSETS["created_at"]
    if cursor:
        query = query.where(keyset.after(decode_cursor(cursor, 2)))
    statement = keyset.order(query).limit(LIMIT + 1)
    with db.primary.connect() as connection:
        compiled = statement.compile(connection, compile_kwargs={"literal_binds": True})
        plan = connection.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}")).scalars()
        return "\n".join("    " + line for line in list(plan)[:4])


def prepared_database(url: str, rows: int, owners: int) -> tuple[Database, int]:
    """The migrated database with its products; and the owner of every ``owners``-th one."""
    settings = Settings(mode="production", database_url=url, secret_key="x" * 32)
    migrate.upgrade(settings)
    db = create_database(settings)
    with db.primary.begin() as connection:
        owner_ids = add_owners(connection, owners)
    load_products(db.primary, 1, rows, owner_ids)
    return db, owner_ids[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--owners", type=int, default=16, help="managers owning the products")
    args = parser.parse_args()
    deep_page = min(DEEP_PAGE, int(args.rows * 0.9) // LIMIT)
    small_last = SMALL * 9 // 10 // LIMIT
    run = f"bench_listing_{uuid.uuid4().hex[:8]}"
    with scratch_database(f"{run}_small") as small_url, scratch_database(f"{run}_big") as big_url:
        started = time.perf_counter()
        small, _ = prepared_database(small_url, SMALL, args.owners)
        big, first_owner = prepared_database(big_url, args.rows, args.owners)
        print(f"loaded {SMALL:,} + {args.rows:,} products in {time.perf_counter() - started:.1f} s")

        def case(
            label: str, db: Database, page: int, order: str = "created_at", owner: int | None = None
        ) -> Case:
            narrowing = catalog.ProductFilter(owner_id=owner)
            cursor = cursor_before_page(db.primary, page, order, narrowing)
            return Case(label, db, cursor, order, narrowing)

        # (the first owner holds every 16th product, a fifth of them archived at 16 owners)
        owner_page = min(DEEP_PAGE, int(args.rows / args.owners * 0.7) // LIMIT)

        big_label = f"{args.rows:>9,} rows"
        cases = [
            case(f"{SMALL:>9,} rows, page 1", small, 1),
            case(f"{SMALL:>9,} rows, page {small_last:,} (last)", small, small_last),
            case(f"{big_label}, page 1", big, 1),
            case(f"{big_label}, page {deep_page:,}", big, deep_page),
            case(f"{big_label}, page 1, newest first", big, 1, "-created_at"),
            case(f"{big_label}, page {deep_page:,}, newest first", big, deep_page, "-created_at"),
            case(f"{big_label}, owner 1, page 1", big, 1, owner=first_owner),
            case(f"{big_label}, owner 1, page {owner_page:,}", big, owner_page, owner=first_owner),
        ]
        run_interleaved(cases, args.repeat)
        print(f"plan of page {deep_page:,}:\n{explain(big, cases[3].cursor)}")
        small.dispose()
        big.dispose()

    baseline = statistics.median(cases[0].timings)
    print(
        f"\nlimit={LIMIT}, {args.repeat} interleaved runs each; baseline = {cases[0].label.strip()}"
    )
    print(f"{'listing':<42} {'median ms':>10} {'p95 ms':>8} {'vs baseline':>12}")
    for each in cases:
        median, p95 = summary(each.timings)
        print(f"{each.label:<42} {median:>10.3f} {p95:>8.3f} {median / baseline:>11.2f}x")
    deep_vs_first = statistics.median(cases[3].timings) / statistics.median(cases[2].timings)
    big_vs_small = statistics.median(cases[3].timings) / baseline
    print(f"\npage {deep_page:,} / page 1, {args.rows:,} rows: {deep_vs_first:.2f} (target <= 1.2)")
    print(f"page {deep_page:,} of {args.rows:,} rows / page 1 of {SMALL:,}: {big_vs_small:.2f}")
    print(f"products spread over {args.owners} owners")


if __name__ == "__main__":
    main()
