"""scrape_job_products: the products each job scraped (or answered from a fresh copy)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

``GET /scrape-jobs/{id}/items`` listed the products whose latest writer was the job, so a later
job scraping the same URL emptied an earlier job's items, and a job answered from fresh stored
copies (``max_age``) had none. The links are filled from ``scraped_products.job_id`` here, so
each job keeps what it listed before the upgrade.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade(parts: Sequence[str]) -> None:
    for part in parts:
        globals()[f"upgrade_{part}"]()


def downgrade(parts: Sequence[str]) -> None:
    for part in reversed(parts):
        globals()[f"downgrade_{part}"]()


def upgrade_inventory() -> None:
    pass


def downgrade_inventory() -> None:
    pass


def upgrade_scraping() -> None:
    op.create_table(
        "scrape_job_products",
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column(
            "product_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["scraping.scrape_jobs.id"],
            name=op.f("fk_scrape_job_products_job_id_scrape_jobs"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["scraping.scraped_products.id"],
            name=op.f("fk_scrape_job_products_product_id_scraped_products"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "product_id", name=op.f("pk_scrape_job_products")),
        schema="scraping",
    )  # fmt: skip
    op.create_index(
        "ix_scrape_job_products_product_id", "scrape_job_products", ["product_id"],
        unique=False, schema="scraping",
    )  # fmt: skip
    # Table objects (not SQL text, nor lightweight sa.table) so that schema translation
    # (SCRAPING_SCHEMA) applies.
    metadata = sa.MetaData()
    products = sa.Table(
        "scraped_products", metadata, sa.Column("id"), sa.Column("job_id"), schema="scraping"
    )
    jobs = sa.Table("scrape_jobs", metadata, sa.Column("id"), schema="scraping")
    links = sa.Table(
        "scrape_job_products", metadata, sa.Column("job_id"), sa.Column("product_id"),
        schema="scraping",
    )  # fmt: skip
    op.execute(
        links.insert().from_select(
            ["job_id", "product_id"],
            sa.select(products.c.job_id, products.c.id).where(
                products.c.job_id.in_(sa.select(jobs.c.id))
            ),
        )
    )


def downgrade_scraping() -> None:
    op.drop_index(
        "ix_scrape_job_products_product_id", table_name="scrape_job_products", schema="scraping"
    )
    op.drop_table("scrape_job_products", schema="scraping")
