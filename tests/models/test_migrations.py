"""Migrations: up, down and up again on both backends, and agreement with the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from models import InventoryBase, ScrapingBase, create_database
from models.products import partition_names
from shelfwatch import migrate
from shelfwatch.config import Settings
from tests.services import postgres_database, test_settings, unique_name

SCRAPING_TABLES = {
    "scrape_jobs",
    "scrape_chunks",
    "scraped_products",
    "price_observations",
    "scrape_schedules",
    "product_watches",
    "scrape_job_products",
}


@pytest.fixture
def scratch_pg() -> Settings:
    with postgres_database(unique_name("swmig")) as url:
        yield test_settings(url, unique_name("mig"))


@pytest.fixture
def scratch_sqlite(tmp_path: Path) -> Settings:
    return Settings(mode="embedded", data_dir=tmp_path)


def _tables(settings: Settings) -> tuple[set[str], set[str]]:
    db = create_database(settings)
    try:
        inspector = inspect(db.primary)
        main = set(inspector.get_table_names()) - {"alembic_version"}
        scraping = set(inspect(db.scraping).get_table_names(schema="scraping"))
        return main, scraping
    finally:
        db.dispose()


def _differences(settings: Settings) -> list[object]:
    """What autogenerate would change, per part, looking only at that part's schema."""
    db = create_database(settings)
    parts = (
        (db.primary, InventoryBase.metadata, None),
        (db.scraping, ScrapingBase.metadata, "scraping"),
    )
    try:
        diffs: list[object] = []
        for engine, metadata, schema in parts:

            def only_this_schema(name, type_, _parents, schema=schema):
                return type_ != "schema" or name == schema

            def no_version_table(obj, name, type_, _reflected, _compare_to):
                # A partition of products is products itself to the models; only the
                # partitioning test looks at them.
                # PostgreSQL also lists a foreign key per partition it refers to.
                tables = {name} if type_ == "table" else {obj.table.name}
                if type_ == "foreign_key_constraint":
                    tables.add(obj.referred_table.name)
                return not (type_ == "table" and name == "alembic_version") and not (
                    tables & set(partition_names())
                )

            with engine.connect() as connection:
                context = MigrationContext.configure(
                    connection,
                    opts={
                        "include_schemas": True,
                        "include_name": only_this_schema,
                        "include_object": no_version_table,
                        "compare_type": True,
                        "target_metadata": metadata,
                    },
                )
                diffs.extend(compare_metadata(context, metadata))
        return diffs
    finally:
        db.dispose()


@pytest.mark.parametrize("backend", ["scratch_pg", "scratch_sqlite"])
def test_upgrade_downgrade_upgrade(backend: str, request: pytest.FixtureRequest) -> None:
    settings: Settings = request.getfixturevalue(backend)
    migrate.upgrade(settings)
    main, scraping = _tables(settings)
    assert {"users", "products", "stock_levels", "stock_movements", "warehouses"} <= main
    assert scraping >= SCRAPING_TABLES
    migrate.downgrade(settings, "base")
    assert _tables(settings) == (set(), set())
    migrate.upgrade(settings)
    assert _tables(settings)[1] >= SCRAPING_TABLES


@pytest.mark.parametrize("backend", ["scratch_pg", "scratch_sqlite"])
def test_models_and_migrations_agree(backend: str, request: pytest.FixtureRequest) -> None:
    settings: Settings = request.getfixturevalue(backend)
    migrate.upgrade(settings)
    assert _differences(settings) == []


def test_scraping_schema_in_its_own_database() -> None:
    with (
        postgres_database(unique_name("swmain")) as main_url,
        postgres_database(unique_name("swscr")) as scraping_url,
    ):
        settings = test_settings(main_url, unique_name("sep"), scraped_database_url=scraping_url)
        migrate.upgrade(settings)
        db = create_database(settings)
        try:
            assert db.separate_scraping
            assert "products" in inspect(db.primary).get_table_names()
            assert "scrape_jobs" not in inspect(db.primary).get_table_names(schema="scraping")
            assert set(inspect(db.scraping).get_table_names(schema="scraping")) >= SCRAPING_TABLES
            assert "products" not in inspect(db.scraping).get_table_names()
        finally:
            db.dispose()
        assert _differences(settings) == []
        migrate.downgrade(settings, "base")
        migrate.upgrade(settings)


def test_schema_translation_renames_the_scraping_schema() -> None:
    with postgres_database(unique_name("swtr")) as url:
        settings = test_settings(url, unique_name("tr"), scraping_schema="market")
        migrate.upgrade(settings)
        db = create_database(settings)
        try:
            assert set(inspect(db.primary).get_table_names(schema="market")) >= SCRAPING_TABLES
            assert inspect(db.primary).get_table_names(schema="scraping") == []
        finally:
            db.dispose()


@pytest.mark.parametrize("backend", ["scratch_pg", "scratch_sqlite"])
def test_job_items_are_kept_across_the_upgrade_to_job_links(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """0003 links each stored product to the job that last wrote it, as /items listed before;
    a product naming a job that no longer exists is left unlinked."""
    settings: Settings = request.getfixturevalue(backend)
    migrate.upgrade(settings, "0002")
    db = create_database(settings)
    try:
        with db.scraping.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO scraping.scrape_jobs (id, spider, status, urls, args, settings,"
                    " priority, stats, chunks_total, chunks_done, cancel_requested, created_at)"
                    " VALUES ('job-1', 'product', 'succeeded', '[]', '{}', '{}', 0, '{}', 1, 1,"
                    " false, CURRENT_TIMESTAMP)"
                )
            )
            for n, job in ((1, "job-1"), (2, "job-1"), (3, "gone"), (4, None)):
                connection.execute(
                    text(
                        "INSERT INTO scraping.scraped_products (id, canonical_url, url, domain,"
                        " availability, sources, job_id, scraped_at, first_seen_at, last_seen_at)"
                        " VALUES (:n, :url, :url, 'shop.test', 'unknown', '{}', :job,"
                        " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"n": n, "url": f"http://shop.test/p/{n}", "job": job},
                )
        migrate.upgrade(settings)
        with db.scraping.connect() as connection:
            links = connection.execute(
                text("SELECT job_id, product_id FROM scraping.scrape_job_products ORDER BY 2")
            ).all()
        assert [tuple(link) for link in links] == [("job-1", 1), ("job-1", 2)]
    finally:
        db.dispose()


@pytest.mark.parametrize("backend", ["scratch_pg", "scratch_sqlite"])
def test_products_and_stock_are_kept_across_partitioning_by_owner(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """0005 rebuilds products (partitioned by owner on PostgreSQL), gives stock levels their
    product's owner and the ledger its references to the levels; down and up again keeps every
    row and the id sequence."""
    settings: Settings = request.getfixturevalue(backend)
    migrate.upgrade(settings, "0004")
    db = create_database(settings)
    try:
        with db.primary.begin() as connection:
            for user in (1, 2):
                connection.execute(
                    text(
                        "INSERT INTO users (id, email, password_hash, role, is_active,"
                        " created_at, updated_at) VALUES (:id, :email, 'x', 'manager', true,"
                        " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"id": user, "email": f"u{user}@example.test"},
                )
            connection.execute(
                text(
                    "INSERT INTO warehouses (id, code, name, created_at, updated_at)"
                    " VALUES (1, 'W1', 'w', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            for product in range(1, 7):
                connection.execute(
                    text(
                        "INSERT INTO products (id, owner_id, sku, name, price, currency,"
                        " created_at, updated_at) VALUES (:id, :owner, :sku, 'n', 1, 'EUR',"
                        " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"id": product, "owner": 1 + product % 2, "sku": f"S{product}"},
                )
            connection.execute(
                text(
                    "INSERT INTO stock_levels (product_id, warehouse_id, quantity, version,"
                    " updated_at) VALUES (3, 1, 4, 1, CURRENT_TIMESTAMP)"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO stock_movements (kind, product_id, to_warehouse_id, quantity,"
                    " created_by, created_at) VALUES ('receipt', 3, 1, 4, 1, CURRENT_TIMESTAMP)"
                )
            )
            if backend == "scratch_pg":
                connection.execute(text("SELECT setval('products_id_seq', 6)"))

        def rows() -> tuple[list[tuple[object, ...]], ...]:
            with db.primary.connect() as connection:
                return tuple(
                    [tuple(row) for row in connection.execute(text(query))]
                    for query in (
                        "SELECT id, owner_id, sku FROM products ORDER BY id",
                        "SELECT product_id, warehouse_id, quantity FROM stock_levels",
                        "SELECT product_id, to_warehouse_id, quantity FROM stock_movements",
                    )
                )

        before = rows()
        migrate.upgrade(settings)
        assert rows() == before
        with db.primary.begin() as connection:
            owner = connection.execute(
                text("SELECT product_owner_id FROM stock_levels")
            ).scalar_one()
            assert owner == 2  # product 3 belongs to user 2
            new_id = connection.execute(
                text(
                    "INSERT INTO products (owner_id, sku, name, price, currency, created_at,"
                    " updated_at) VALUES (1, 'NEW', 'n', 1, 'EUR', CURRENT_TIMESTAMP,"
                    " CURRENT_TIMESTAMP) RETURNING id"
                )
            ).scalar_one()
            assert new_id == 7
            connection.execute(text("DELETE FROM products WHERE id = 7"))
        migrate.downgrade(settings, "0004")
        assert rows() == before
        migrate.upgrade(settings)
        assert rows() == before
    finally:
        db.dispose()
