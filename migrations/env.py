"""Alembic environment for both parts of the schema.

Each revision has ``upgrade_inventory``/``upgrade_scraping`` (and downgrades). When the
scraping schema shares the main database both run in one transaction under one version
table; with ``SCRAPED_DATABASE_URL`` each database keeps its own version table.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, Engine, MetaData, text

from models import InventoryBase, ScrapingBase, create_database
from shelfwatch.config import load_settings

PART_METADATA: dict[str, MetaData] = {
    "inventory": InventoryBase.metadata,
    "scraping": ScrapingBase.metadata,
}


def _plan() -> list[tuple[Engine, list[str]]]:
    settings = context.config.attributes.get("settings") or load_settings()
    database = create_database(settings)
    context.config.attributes["scraping_schema"] = settings.scraping_schema
    if database.separate_scraping:
        return [(database.primary, ["inventory"]), (database.scraping, ["scraping"])]
    return [(database.primary, ["inventory", "scraping"])]


def _ensure_schema(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        schema = context.config.attributes["scraping_schema"]
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))


def _run(connection: Connection, parts: list[str]) -> None:
    if "scraping" in parts:
        _ensure_schema(connection)
    scraping_only = parts == ["scraping"]
    context.configure(
        connection=connection,
        target_metadata=[PART_METADATA[part] for part in parts],
        include_schemas=True,
        version_table_schema=(
            context.config.attributes["scraping_schema"]
            if scraping_only and connection.dialect.name == "postgresql"
            else None
        ),
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations(parts=parts)


def run_migrations_online() -> None:
    for engine, parts in _plan():
        with engine.connect() as connection:
            _run(connection, parts)
            connection.commit()
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported: migrations need a live connection")
run_migrations_online()
