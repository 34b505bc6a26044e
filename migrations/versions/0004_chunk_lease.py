"""scrape_chunks.lease_expires_at: each running chunk carries its own worker's lease

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

Stale chunks were found by comparing their last heartbeat with the *detecting* worker's
heartbeat setting, so a worker with a short interval re-queued live chunks of a worker with a
long one. The owner now writes how long its chunk stays its own; chunks running at the upgrade
(no lease) are judged the old way until they end.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
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


def _scraping_schema() -> str:
    # ALTER TABLE names its schema as a plain string, which the Engine's schema translation
    # (SCRAPING_SCHEMA) does not reach, unlike CREATE TABLE/INDEX built from Table objects.
    translate = op.get_bind().get_execution_options().get("schema_translate_map") or {}
    return str(translate.get("scraping", "scraping"))


def upgrade_scraping() -> None:
    with op.batch_alter_table("scrape_chunks", schema=_scraping_schema()) as batch:
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade_scraping() -> None:
    with op.batch_alter_table("scrape_chunks", schema=_scraping_schema()) as batch:
        batch.drop_column("lease_expires_at")
