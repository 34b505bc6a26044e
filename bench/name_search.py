"""Product name search (``GET /api/v1/products?q=``) at 1,000,000 rows, with the trigram index
of migration 0002 and without it (dropped in the same run: the baseline).

Loads the products of ``bench/products_listing.py`` (``Product <n>``) into a scratch database
and times the API's listing path (``catalog.products_query`` with ``name_contains`` +
``webapi.pagination.paginate``, first page, limit 50) for a rare term (a handful of matches:
without an index PostgreSQL reads every row) and a common one (the first page fills at once
either way), interleaved, then again after ``DROP INDEX ix_products_name_trgm``.

    python bench/name_search.py                 # 1,000,000 rows, about a minute
    python bench/name_search.py --rows 200000 --repeat 50
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from products_listing import LIMIT, prepared_database
from scratch import scratch_database
from sqlalchemy import text

from models import Database, catalog
from webapi.pagination import paginate
from webapi.product_listing import KEYSETS


def search_once(db: Database, term: str) -> tuple[float, int]:
    started = time.perf_counter()
    with db.session() as session, session.begin():
        items, _next = paginate(
            session,
            catalog.products_query(catalog.ProductFilter(name_contains=term)),
            KEYSETS["created_at"],
            cursor=None,
            limit=LIMIT,
        )
    return (time.perf_counter() - started) * 1000, len(items)


def timings(db: Database, terms: dict[str, str], repeat: int) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {label: [] for label in terms}
    for _ in range(3):
        for term in terms.values():
            search_once(db, term)  # warm up: connections, statement caches, shared buffers
    for _ in range(repeat):
        for label, term in terms.items():
            found[label].append(search_once(db, term)[0])
    return found


def plan(db: Database, term: str) -> str:
    query = KEYSETS["created_at"].order(
        catalog.products_query(catalog.ProductFilter(name_contains=term))
    )
    with db.primary.connect() as connection:
        compiled = query.limit(LIMIT + 1).compile(
            connection, compile_kwargs={"literal_binds": True}
        )
        # literal_binds doubles the % of the pattern for psycopg's paramstyle: sent without
        # parameters straight to psycopg, the pattern must be the one the search sends.
        sql = str(compiled).replace("%%", "%")
        rows = connection.connection.driver_connection.execute(f"EXPLAIN (ANALYZE) {sql}")
        return "\n".join("    " + row[0] for row in list(rows)[:6])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    rare = f"Product {args.rows * 9 // 10 + 1234}"  # itself only (unarchived)
    terms = {"rare term": rare, "common term": "Product 1"}
    with scratch_database(f"bench_search_{uuid.uuid4().hex[:8]}") as url:
        started = time.perf_counter()
        db = prepared_database(url, args.rows)
        print(f"loaded {args.rows:,} products in {time.perf_counter() - started:.1f} s")
        counts = {label: search_once(db, term)[1] for label, term in terms.items()}
        print(f"plan, trigram index, {rare!r}:\n{plan(db, rare)}")
        indexed = timings(db, terms, args.repeat)
        with db.primary.begin() as connection:
            connection.execute(text("DROP INDEX ix_products_name_trgm"))
        print(f"plan, no index, {rare!r}:\n{plan(db, rare)}")
        bare = timings(db, terms, args.repeat)
        db.dispose()

    print(f"\n{args.rows:,} products, first page (limit={LIMIT}), {args.repeat} runs each")
    print(f"{'search':<14} {'matches':>8} {'no index ms':>12} {'trigram ms':>11} {'speed-up':>9}")
    for label in terms:
        without, with_index = statistics.median(bare[label]), statistics.median(indexed[label])
        print(
            f"{label:<14} {counts[label]:>8} {without:>12.2f} {with_index:>11.2f}"
            f" {without / with_index:>8.1f}x"
        )


if __name__ == "__main__":
    main()
