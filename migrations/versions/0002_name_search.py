"""trigram indexes for the name searches (products ?q=, scraped products ?q=)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

``name ILIKE '%term%'`` cannot use a b-tree: without these a rare term reads every row of the
table. pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may create it.
On SQLite (embedded mode) the same index is a plain one on the column, which the models
declare alike (the PostgreSQL options do not apply there).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGRAM = {"postgresql_using": "gin", "postgresql_ops": {"name": "gin_trgm_ops"}}


def upgrade(parts: Sequence[str]) -> None:
    for part in parts:
        globals()[f"upgrade_{part}"]()


def downgrade(parts: Sequence[str]) -> None:
    for part in reversed(parts):
        globals()[f"downgrade_{part}"]()


def _trigram_extension() -> None:
    # Per database: the scraping part may live in a database of its own.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")


def upgrade_inventory() -> None:
    _trigram_extension()
    op.create_index("ix_products_name_trgm", "products", ["name"], **TRIGRAM)


def downgrade_inventory() -> None:
    # The extension stays: something else in the database may use it.
    op.drop_index("ix_products_name_trgm", table_name="products")


def upgrade_scraping() -> None:
    _trigram_extension()
    op.create_index(
        "ix_scraped_products_name_trgm", "scraped_products", ["name"], schema="scraping", **TRIGRAM
    )


def downgrade_scraping() -> None:
    op.drop_index("ix_scraped_products_name_trgm", table_name="scraped_products", schema="scraping")
