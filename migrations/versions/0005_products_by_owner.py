"""products partitioned by owner (PostgreSQL); stock levels name their product's owner

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

On PostgreSQL ``products`` becomes ``PARTITION BY HASH (owner_id)`` into eight partitions
(``products_p0`` … ``products_p7``); its rows are copied and its id sequence is kept. A
partitioned table's unique keys must hold the partition key, so the primary key becomes
``(id, owner_id)``, and ``(owner_id, id)`` (a unique index) is what ``stock_levels`` now refers
to: it gains ``product_owner_id`` (filled from the products) and a two-column foreign key that
follows an owner change (``ON UPDATE CASCADE``). The ledger refers to the levels it changed,
``(product_id, from/to_warehouse_id) → stock_levels``, checked at commit: an owner change never
touches it, and its check stays a primary-key probe.

SQLite has no partitioning: there ``products`` only gains the unique ``(owner_id, id)`` (an
index, so the table is not rebuilt under its referencing rows); the stock tables change as on
PostgreSQL.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Fixed here on purpose: a migration must not change when the application's constant does.
PARTITIONS = 8
STOCK_TABLES = ("stock_levels", "stock_movements")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
COLUMNS = "id, owner_id, sku, name, description, price, currency, created_at, updated_at, archived_at"
# Each index of products (name: what follows ``ON products``), and the one only the
# partitioned table has: the unique (owner_id, id) the levels refer to.
INDEXES = {
    "ix_products_created_at_id": "(created_at, id)",
    "ix_products_owner_id_created_at_id": "(owner_id, created_at, id)",
    "ix_products_updated_at": "(updated_at)",
    "ix_products_name_trgm": "USING gin (name gin_trgm_ops)",
}
OWNER_ID_INDEX = "uq_products_owner_id_id"


def upgrade(parts: Sequence[str]) -> None:
    for part in parts:
        globals()[f"upgrade_{part}"]()


def downgrade(parts: Sequence[str]) -> None:
    for part in reversed(parts):
        globals()[f"downgrade_{part}"]()


def upgrade_scraping() -> None:
    pass


def downgrade_scraping() -> None:
    pass


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade_inventory() -> None:
    for table in STOCK_TABLES:
        if _postgresql():
            op.drop_constraint(f"fk_{table}_product_id_products", table, type_="foreignkey")
    op.add_column("stock_levels", sa.Column("product_owner_id", BIG_ID, nullable=True))
    op.execute(
        "UPDATE stock_levels SET product_owner_id ="
        " (SELECT owner_id FROM products WHERE products.id = stock_levels.product_id)"
    )
    if _postgresql():
        _rebuild_products(partitioned=True)
    else:
        op.create_index(OWNER_ID_INDEX, "products", ["owner_id", "id"], unique=True)
    with op.batch_alter_table("stock_levels") as batch:
        batch.alter_column("product_owner_id", existing_type=BIG_ID, nullable=False)
        if not _postgresql():
            batch.drop_constraint("fk_stock_levels_product_id_products", type_="foreignkey")
        batch.create_foreign_key(
            "fk_stock_levels_product_owner_id_products",
            "products",
            ["product_owner_id", "product_id"],
            ["owner_id", "id"],
            ondelete="RESTRICT",
            onupdate="CASCADE",
        )
    with op.batch_alter_table("stock_movements") as batch:
        if not _postgresql():
            batch.drop_constraint("fk_stock_movements_product_id_products", type_="foreignkey")
        for side in ("from", "to"):
            batch.create_foreign_key(
                f"fk_stock_movements_{side}_level",
                "stock_levels",
                ["product_id", f"{side}_warehouse_id"],
                ["product_id", "warehouse_id"],
                ondelete="RESTRICT",
                deferrable=True,
                initially="DEFERRED",
            )


def downgrade_inventory() -> None:
    with op.batch_alter_table("stock_movements") as batch:
        for side in ("from", "to"):
            batch.drop_constraint(f"fk_stock_movements_{side}_level", type_="foreignkey")
    with op.batch_alter_table("stock_levels") as batch:
        batch.drop_constraint("fk_stock_levels_product_owner_id_products", type_="foreignkey")
        batch.drop_column("product_owner_id")
    if _postgresql():
        _rebuild_products(partitioned=False)
    else:
        op.drop_index(OWNER_ID_INDEX, table_name="products")
    for table in STOCK_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(
                f"fk_{table}_product_id_products",
                "products",
                ["product_id"],
                ["id"],
                ondelete="RESTRICT",
            )


def _rebuild_products(partitioned: bool) -> None:
    """Copy ``products`` into a new table (partitioned by owner, or not) under the same names."""
    key = "id, owner_id" if partitioned else "id"
    op.execute("ALTER TABLE products RENAME TO products_old")
    op.execute(
        "ALTER TABLE products_old DROP CONSTRAINT pk_products,"
        " DROP CONSTRAINT uq_products_owner_id_sku"
    )
    old_indexes = list(INDEXES) if partitioned else [*INDEXES, OWNER_ID_INDEX]
    op.execute(f"DROP INDEX {', '.join(old_indexes)}")
    op.execute("ALTER SEQUENCE products_id_seq OWNED BY NONE")
    op.execute(
        f"""
        CREATE TABLE products (
            id BIGINT NOT NULL DEFAULT nextval('products_id_seq'),
            owner_id BIGINT NOT NULL,
            sku VARCHAR(64) NOT NULL,
            name VARCHAR(300) NOT NULL,
            description TEXT,
            price NUMERIC(14, 4) NOT NULL,
            currency VARCHAR(3) NOT NULL,
            created_at TIMESTAMP WITH TIME ZONE NOT NULL,
            updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
            archived_at TIMESTAMP WITH TIME ZONE,
            CONSTRAINT pk_products PRIMARY KEY ({key}),
            CONSTRAINT uq_products_owner_id_sku UNIQUE (owner_id, sku),
            CONSTRAINT ck_products_price_not_negative CHECK (price >= 0),
            CONSTRAINT fk_products_owner_id_users FOREIGN KEY (owner_id)
                REFERENCES users (id) ON DELETE RESTRICT
        ) {"PARTITION BY HASH (owner_id)" if partitioned else ""}
        """
    )
    if partitioned:
        for remainder in range(PARTITIONS):
            _add_partition(remainder)
    op.execute(
        f"INSERT INTO products ({COLUMNS}) SELECT {COLUMNS} FROM products_old"  # noqa: S608
    )
    for name, definition in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON products {definition}")
    if partitioned:
        op.execute(f"CREATE UNIQUE INDEX {OWNER_ID_INDEX} ON products (owner_id, id)")
    op.execute("ALTER SEQUENCE products_id_seq OWNED BY products.id")
    op.execute("DROP TABLE products_old")
    op.execute("ANALYZE products")


def _add_partition(remainder: int) -> None:
    """One partition, its keys named after the table's (PostgreSQL names the partition's key in
    a violation, and ``uq_products_owner_id_sku…`` is what the catalogue recognises)."""
    name = f"products_p{remainder}"
    op.execute(f"CREATE TABLE {name} (LIKE products INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    op.execute(
        f"ALTER TABLE {name} ADD CONSTRAINT pk_products_p{remainder} PRIMARY KEY (id, owner_id),"
        f" ADD CONSTRAINT uq_products_owner_id_sku_p{remainder} UNIQUE (owner_id, sku)"
    )
    op.execute(
        f"ALTER TABLE products ATTACH PARTITION {name}"
        f" FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {remainder})"
    )
