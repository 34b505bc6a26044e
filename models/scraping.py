"""The ``scraping`` schema: jobs and their chunks, scraped products, price history,
schedules, and watches that link inventory products to market URLs.

No foreign key leaves this schema: it may live in a database of its own.
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, ScrapingBase, UTCDateTime, utcnow


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


class ScrapeJob(ScrapingBase):
    __tablename__ = "scrape_jobs"
    __table_args__ = (
        CheckConstraint("priority BETWEEN 0 AND 9", name="priority"),
        Index("ix_scrape_jobs_created_by_created_at_id", "created_by", "created_at", "id"),
        Index("ix_scrape_jobs_status_created_at", "status", "created_at"),
        Index("ix_scrape_jobs_schedule_id_created_at", "schedule_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    spider: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    urls: Mapped[list[str]] = mapped_column(JSON)
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    max_age: Mapped[int | None] = mapped_column(Integer, nullable=True)
    priority: Mapped[int] = mapped_column(SmallInteger, default=0)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    chunks_total: Mapped[int] = mapped_column(Integer, default=0)
    chunks_done: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    schedule_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    run_key: Mapped[str | None] = mapped_column(String(120), nullable=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ScrapeChunk(ScrapingBase):
    """A slice of a job's URLs that one worker crawls; claimed with a conditional UPDATE."""

    __tablename__ = "scrape_chunks"
    __table_args__ = (
        UniqueConstraint("job_id", "seq"),
        Index("ix_scrape_chunks_status_heartbeat_at", "status", "heartbeat_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("scrape_jobs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    urls: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Until when the running chunk is its worker's without another heartbeat (see jobs.py).
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ScrapedProduct(ScrapingBase):
    """The latest known values of one product page, keyed by its canonical URL."""

    __tablename__ = "scraped_products"
    __table_args__ = (
        Index("ix_scraped_products_domain", "domain"),
        Index("ix_scraped_products_last_seen_at_id", "last_seen_at", "id"),
        Index("ix_scraped_products_job_id", "job_id"),
        # ?q= is a substring search: trigrams (migration 0002), a plain index on SQLite.
        Index(
            "ix_scraped_products_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    canonical_url: Mapped[str] = mapped_column(String(2048), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    domain: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(Text, nullable=True)
    price: Mapped[Decimal | None] = mapped_column(Numeric(14, 4), nullable=True)
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    availability: Mapped[str] = mapped_column(String(16), default="unknown")
    sku: Mapped[str | None] = mapped_column(String(200), nullable=True)
    gtin: Mapped[str | None] = mapped_column(String(14), nullable=True)
    mpn: Mapped[str | None] = mapped_column(String(200), nullable=True)
    brand: Mapped[str | None] = mapped_column(String(300), nullable=True)
    image_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    sources: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    scraped_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScrapeJobProduct(ScrapingBase):
    """A product a job scraped or answered from a fresh stored copy: the job's items. Kept
    apart from ``scraped_products.job_id`` (the latest writer), which a later job overwrites."""

    __tablename__ = "scrape_job_products"
    __table_args__ = (Index("ix_scrape_job_products_product_id", "product_id"),)

    job_id: Mapped[str] = mapped_column(
        ForeignKey("scrape_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    product_id: Mapped[int] = mapped_column(
        ForeignKey("scraped_products.id", ondelete="CASCADE"), primary_key=True
    )


class PriceObservation(ScrapingBase):
    """A change of price or availability; one row per change, never per visit."""

    __tablename__ = "price_observations"
    __table_args__ = (
        Index("ix_price_observations_product_id_observed_at", "product_id", "observed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("scraped_products.id", ondelete="CASCADE"))
    price: Mapped[Decimal | None] = mapped_column(Numeric(14, 4), nullable=True)
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    availability: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScrapeSchedule(ScrapingBase):
    __tablename__ = "scrape_schedules"
    __table_args__ = (
        CheckConstraint("(cron IS NULL) <> (interval_seconds IS NULL)", name="cron_or_interval"),
        CheckConstraint("interval_seconds IS NULL OR interval_seconds >= 10", name="interval"),
        Index("ix_scrape_schedules_enabled_next_run_at", "enabled", "next_run_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    spider: Mapped[str] = mapped_column(String(64))
    urls: Mapped[list[str]] = mapped_column(JSON)
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    max_age: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cron: Mapped[str | None] = mapped_column(String(120), nullable=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    interval_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    watch_product_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ProductWatch(ScrapingBase):
    """An inventory product (by id, in the inventory database) watching a market URL."""

    __tablename__ = "product_watches"
    __table_args__ = (
        UniqueConstraint("product_id", "url"),
        Index("ix_product_watches_canonical_url", "canonical_url"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    product_id: Mapped[int] = mapped_column(BigInteger)
    url: Mapped[str] = mapped_column(String(2048))
    canonical_url: Mapped[str] = mapped_column(String(2048))
    created_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
