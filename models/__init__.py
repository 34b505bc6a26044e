"""The domain: SQLAlchemy models and the operations on them, as functions taking a Session."""

from models.base import InventoryBase, ScrapingBase
from models.db import Database, create_database
from models.products import Product
from models.scraping import (
    JobStatus,
    PriceObservation,
    ProductWatch,
    ScrapeChunk,
    ScrapedProduct,
    ScrapeJob,
    ScrapeJobProduct,
    ScrapeSchedule,
)
from models.stock_tables import (
    BatchStatus,
    MovementKind,
    StockLevel,
    StockMovement,
    WorkBatch,
)
from models.users import RevokedToken, Role, User
from models.warehouses import Warehouse, WarehouseAssignment

__all__ = [
    "BatchStatus",
    "Database",
    "InventoryBase",
    "JobStatus",
    "MovementKind",
    "PriceObservation",
    "Product",
    "ProductWatch",
    "RevokedToken",
    "Role",
    "ScrapeChunk",
    "ScrapeJob",
    "ScrapeJobProduct",
    "ScrapeSchedule",
    "ScrapedProduct",
    "ScrapingBase",
    "StockLevel",
    "StockMovement",
    "User",
    "Warehouse",
    "WarehouseAssignment",
    "WorkBatch",
    "create_database",
]
