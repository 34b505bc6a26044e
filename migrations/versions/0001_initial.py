"""initial schema: inventory tables and the scraping schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade(parts: Sequence[str]) -> None:
    for part in parts:
        globals()[f"upgrade_{part}"]()


def downgrade(parts: Sequence[str]) -> None:
    for part in reversed(parts):
        globals()[f"downgrade_{part}"]()


def upgrade_inventory() -> None:
    op.create_table('revoked_tokens',
    sa.Column('jti', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('jti', name=op.f('pk_revoked_tokens'))
    )
    op.create_index('ix_revoked_tokens_expires_at', 'revoked_tokens', ['expires_at'], unique=False)
    op.create_table('users',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('tokens_valid_after', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('admin', 'manager', 'clerk')", name=op.f('ck_users_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    op.create_table('warehouses',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_warehouses')),
    sa.UniqueConstraint('code', name=op.f('uq_warehouses_code'))
    )
    op.create_table('products',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('owner_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('price', sa.Numeric(precision=14, scale=4), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('price >= 0', name=op.f('ck_products_price_not_negative')),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_products_owner_id_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_products')),
    sa.UniqueConstraint('owner_id', 'sku', name=op.f('uq_products_owner_id_sku'))
    )
    op.create_index('ix_products_created_at_id', 'products', ['created_at', 'id'], unique=False)
    op.create_index('ix_products_owner_id_created_at_id', 'products', ['owner_id', 'created_at', 'id'], unique=False)
    op.create_index('ix_products_updated_at', 'products', ['updated_at'], unique=False)
    op.create_table('warehouse_assignments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('warehouse_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('assigned_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assigned_by'], ['users.id'], name=op.f('fk_warehouse_assignments_assigned_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_warehouse_assignments_user_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['warehouse_id'], ['warehouses.id'], name=op.f('fk_warehouse_assignments_warehouse_id_warehouses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_warehouse_assignments')),
    sa.UniqueConstraint('user_id', 'warehouse_id', name=op.f('uq_warehouse_assignments_user_id_warehouse_id'))
    )
    op.create_index('ix_warehouse_assignments_warehouse_id', 'warehouse_assignments', ['warehouse_id'], unique=False)
    op.create_table('work_batches',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('results', sa.JSON(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('request_fingerprint', sa.String(length=64), nullable=True),
    sa.Column('created_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('stock_movements', 'assignments')", name=op.f('ck_work_batches_kind')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_work_batches_created_by_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_work_batches')),
    sa.UniqueConstraint('created_by', 'idempotency_key', name=op.f('uq_work_batches_created_by_idempotency_key'))
    )
    op.create_index('ix_work_batches_created_by_created_at', 'work_batches', ['created_by', 'created_at'], unique=False)
    op.create_table('stock_levels',
    sa.Column('product_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('warehouse_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('quantity >= 0', name=op.f('ck_stock_levels_quantity_not_negative')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_stock_levels_product_id_products'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['warehouse_id'], ['warehouses.id'], name=op.f('fk_stock_levels_warehouse_id_warehouses'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('product_id', 'warehouse_id', name=op.f('pk_stock_levels'))
    )
    op.create_index('ix_stock_levels_warehouse_id', 'stock_levels', ['warehouse_id'], unique=False)
    op.create_table('stock_movements',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('product_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('from_warehouse_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('to_warehouse_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('reference', sa.String(length=200), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('request_fingerprint', sa.String(length=64), nullable=True),
    sa.Column('batch_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(kind = 'receipt' AND to_warehouse_id IS NOT NULL AND from_warehouse_id IS NULL) OR (kind = 'shipment' AND from_warehouse_id IS NOT NULL AND to_warehouse_id IS NULL) OR (kind = 'transfer' AND from_warehouse_id IS NOT NULL AND to_warehouse_id IS NOT NULL AND from_warehouse_id <> to_warehouse_id) OR (kind = 'adjustment' AND (from_warehouse_id IS NULL) <> (to_warehouse_id IS NULL))", name=op.f('ck_stock_movements_direction')),
    sa.CheckConstraint("kind IN ('receipt', 'shipment', 'transfer', 'adjustment')", name=op.f('ck_stock_movements_kind')),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_stock_movements_quantity_positive')),
    sa.ForeignKeyConstraint(['batch_id'], ['work_batches.id'], name=op.f('fk_stock_movements_batch_id_work_batches'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_stock_movements_created_by_users'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['from_warehouse_id'], ['warehouses.id'], name=op.f('fk_stock_movements_from_warehouse_id_warehouses'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_stock_movements_product_id_products'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['to_warehouse_id'], ['warehouses.id'], name=op.f('fk_stock_movements_to_warehouse_id_warehouses'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stock_movements')),
    sa.UniqueConstraint('created_by', 'idempotency_key', name=op.f('uq_stock_movements_created_by_idempotency_key'))
    )
    op.create_index('ix_stock_movements_created_at_id', 'stock_movements', ['created_at', 'id'], unique=False)
    op.create_index('ix_stock_movements_from_warehouse_id', 'stock_movements', ['from_warehouse_id'], unique=False)
    op.create_index('ix_stock_movements_product_id_created_at', 'stock_movements', ['product_id', 'created_at'], unique=False)
    op.create_index('ix_stock_movements_to_warehouse_id', 'stock_movements', ['to_warehouse_id'], unique=False)


def downgrade_inventory() -> None:
    op.drop_index('ix_stock_movements_to_warehouse_id', table_name='stock_movements')
    op.drop_index('ix_stock_movements_product_id_created_at', table_name='stock_movements')
    op.drop_index('ix_stock_movements_from_warehouse_id', table_name='stock_movements')
    op.drop_index('ix_stock_movements_created_at_id', table_name='stock_movements')
    op.drop_table('stock_movements')
    op.drop_index('ix_stock_levels_warehouse_id', table_name='stock_levels')
    op.drop_table('stock_levels')
    op.drop_index('ix_work_batches_created_by_created_at', table_name='work_batches')
    op.drop_table('work_batches')
    op.drop_index('ix_warehouse_assignments_warehouse_id', table_name='warehouse_assignments')
    op.drop_table('warehouse_assignments')
    op.drop_index('ix_products_updated_at', table_name='products')
    op.drop_index('ix_products_owner_id_created_at_id', table_name='products')
    op.drop_index('ix_products_created_at_id', table_name='products')
    op.drop_table('products')
    op.drop_table('warehouses')
    op.drop_table('users')
    op.drop_index('ix_revoked_tokens_expires_at', table_name='revoked_tokens')
    op.drop_table('revoked_tokens')


def upgrade_scraping() -> None:
    op.create_table('product_watches',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('product_id', sa.BigInteger(), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('canonical_url', sa.String(length=2048), nullable=False),
    sa.Column('created_by', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_product_watches')),
    sa.UniqueConstraint('product_id', 'url', name=op.f('uq_product_watches_product_id_url')),
    schema='scraping'
    )
    op.create_index('ix_product_watches_canonical_url', 'product_watches', ['canonical_url'], unique=False, schema='scraping')
    op.create_table('scrape_jobs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('spider', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('urls', sa.JSON(), nullable=False),
    sa.Column('args', sa.JSON(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('max_age', sa.Integer(), nullable=True),
    sa.Column('priority', sa.SmallInteger(), nullable=False),
    sa.Column('stats', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('chunks_total', sa.Integer(), nullable=False),
    sa.Column('chunks_done', sa.Integer(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.BigInteger(), nullable=True),
    sa.Column('schedule_id', sa.BigInteger(), nullable=True),
    sa.Column('run_key', sa.String(length=120), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('priority BETWEEN 0 AND 9', name=op.f('ck_scrape_jobs_priority')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scrape_jobs')),
    sa.UniqueConstraint('run_key', name=op.f('uq_scrape_jobs_run_key')),
    schema='scraping'
    )
    op.create_index('ix_scrape_jobs_created_by_created_at_id', 'scrape_jobs', ['created_by', 'created_at', 'id'], unique=False, schema='scraping')
    op.create_index('ix_scrape_jobs_schedule_id_created_at', 'scrape_jobs', ['schedule_id', 'created_at'], unique=False, schema='scraping')
    op.create_index('ix_scrape_jobs_status_created_at', 'scrape_jobs', ['status', 'created_at'], unique=False, schema='scraping')
    op.create_table('scrape_schedules',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('spider', sa.String(length=64), nullable=False),
    sa.Column('urls', sa.JSON(), nullable=False),
    sa.Column('args', sa.JSON(), nullable=False),
    sa.Column('max_age', sa.Integer(), nullable=True),
    sa.Column('cron', sa.String(length=120), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('interval_seconds', sa.Integer(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('watch_product_id', sa.BigInteger(), nullable=True),
    sa.Column('next_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_job_id', sa.String(length=36), nullable=True),
    sa.Column('created_by', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('(cron IS NULL) <> (interval_seconds IS NULL)', name=op.f('ck_scrape_schedules_cron_or_interval')),
    sa.CheckConstraint('interval_seconds IS NULL OR interval_seconds >= 10', name=op.f('ck_scrape_schedules_interval')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scrape_schedules')),
    schema='scraping'
    )
    op.create_index('ix_scrape_schedules_enabled_next_run_at', 'scrape_schedules', ['enabled', 'next_run_at'], unique=False, schema='scraping')
    op.create_table('scraped_products',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('canonical_url', sa.String(length=2048), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('domain', sa.String(length=255), nullable=False),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('price', sa.Numeric(precision=14, scale=4), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('availability', sa.String(length=16), nullable=False),
    sa.Column('sku', sa.String(length=200), nullable=True),
    sa.Column('gtin', sa.String(length=14), nullable=True),
    sa.Column('mpn', sa.String(length=200), nullable=True),
    sa.Column('brand', sa.String(length=300), nullable=True),
    sa.Column('image_url', sa.String(length=2048), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('sources', sa.JSON(), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=True),
    sa.Column('scraped_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scraped_products')),
    sa.UniqueConstraint('canonical_url', name=op.f('uq_scraped_products_canonical_url')),
    schema='scraping'
    )
    op.create_index('ix_scraped_products_domain', 'scraped_products', ['domain'], unique=False, schema='scraping')
    op.create_index('ix_scraped_products_job_id', 'scraped_products', ['job_id'], unique=False, schema='scraping')
    op.create_index('ix_scraped_products_last_seen_at_id', 'scraped_products', ['last_seen_at', 'id'], unique=False, schema='scraping')
    op.create_table('price_observations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('product_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('price', sa.Numeric(precision=14, scale=4), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('availability', sa.String(length=16), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=True),
    sa.Column('observed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['scraping.scraped_products.id'], name=op.f('fk_price_observations_product_id_scraped_products'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_price_observations')),
    schema='scraping'
    )
    op.create_index('ix_price_observations_product_id_observed_at', 'price_observations', ['product_id', 'observed_at'], unique=False, schema='scraping')
    op.create_table('scrape_chunks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('urls', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('stats', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('worker', sa.String(length=200), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['scraping.scrape_jobs.id'], name=op.f('fk_scrape_chunks_job_id_scrape_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scrape_chunks')),
    sa.UniqueConstraint('job_id', 'seq', name=op.f('uq_scrape_chunks_job_id_seq')),
    schema='scraping'
    )
    op.create_index('ix_scrape_chunks_status_heartbeat_at', 'scrape_chunks', ['status', 'heartbeat_at'], unique=False, schema='scraping')


def downgrade_scraping() -> None:
    op.drop_index('ix_scrape_chunks_status_heartbeat_at', table_name='scrape_chunks', schema='scraping')
    op.drop_table('scrape_chunks', schema='scraping')
    op.drop_index('ix_price_observations_product_id_observed_at', table_name='price_observations', schema='scraping')
    op.drop_table('price_observations', schema='scraping')
    op.drop_index('ix_scraped_products_last_seen_at_id', table_name='scraped_products', schema='scraping')
    op.drop_index('ix_scraped_products_job_id', table_name='scraped_products', schema='scraping')
    op.drop_index('ix_scraped_products_domain', table_name='scraped_products', schema='scraping')
    op.drop_table('scraped_products', schema='scraping')
    op.drop_index('ix_scrape_schedules_enabled_next_run_at', table_name='scrape_schedules', schema='scraping')
    op.drop_table('scrape_schedules', schema='scraping')
    op.drop_index('ix_scrape_jobs_status_created_at', table_name='scrape_jobs', schema='scraping')
    op.drop_index('ix_scrape_jobs_schedule_id_created_at', table_name='scrape_jobs', schema='scraping')
    op.drop_index('ix_scrape_jobs_created_by_created_at_id', table_name='scrape_jobs', schema='scraping')
    op.drop_table('scrape_jobs', schema='scraping')
    op.drop_index('ix_product_watches_canonical_url', table_name='product_watches', schema='scraping')
    op.drop_table('product_watches', schema='scraping')
