"""A scrape job's submission once its request is valid, and its 202 answer: one
implementation for the view (``scrape_jobs.submit_job``) and for ``job_shortcut``, so that
both write the same rows, send the same messages and answer the same bytes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery import Celery
from flask import Flask

from models import Database
from models.jobs import create_job_committed
from models.scraping import ScrapeJob
from shelfwatch.config import Settings
from tasks.dispatch import submit_chunks

MAX_URLS = 10_000
SPIDER_CHARS = (1, 64)
URL_CHARS = (1, 2048)
MAX_AGE_RANGE = (0, 10**9)
PRIORITY_RANGE = (0, 9)
_PLAIN_NAMES = frozenset(("spider", "urls", "args", "max_age", "priority"))


@dataclass(frozen=True)
class JobRequest:
    """What ``JobCreate`` loads: the spider, its URLs and arguments, freshness, priority."""

    spider: str
    urls: list[str]
    args: dict[str, Any]
    max_age: int | None
    priority: int


def plainly_valid_request(body: Any) -> JobRequest | None:
    """The request ``JobCreate`` would load from ``body``, or None unless ``body`` is plainly
    valid (then the schema decides, and words the errors). Plain means exact JSON types: a
    number in a string, a float or a boolean is left to the schema."""
    if type(body) is not dict or not _PLAIN_NAMES.issuperset(body):
        return None
    spider, urls = body.get("spider"), body.get("urls")
    args = body.get("args", {})
    max_age, priority = body.get("max_age"), body.get("priority", 0)
    if not (_text(spider, SPIDER_CHARS) and type(urls) is list and type(args) is dict):
        return None
    if not (1 <= len(urls) <= MAX_URLS and all(_text(url, URL_CHARS) for url in urls)):
        return None
    if not (max_age is None or _integer(max_age, MAX_AGE_RANGE)):
        return None
    if not _integer(priority, PRIORITY_RANGE):
        return None
    return JobRequest(spider, urls, args, max_age, priority)


def _text(value: Any, bounds: tuple[int, int]) -> bool:
    return type(value) is str and bounds[0] <= len(value) <= bounds[1]


def _integer(value: Any, bounds: tuple[int, int]) -> bool:
    return type(value) is int and bounds[0] <= value <= bounds[1]


def submit_job_request(
    db: Database, celery: Celery, settings: Settings, request: JobRequest, user_id: int
) -> ScrapeJob:
    """Write the queued job and its chunks (committed on return), then send their messages.

    The request must have passed ``check_spider_request`` and the submit rate limit.
    """
    job, chunks = create_job_committed(
        db,
        spider=request.spider,
        urls=request.urls,
        args=request.args,
        max_age=request.max_age,
        priority=request.priority,
        created_by=user_id,
        chunk_size=settings.scrape_chunk_size,
    )
    # After commit: a worker that takes the message at once finds the rows.
    submit_chunks(celery, chunks)
    return job


def job_url(job_id: str) -> str:
    return f"/api/v1/scrape-jobs/{job_id}"


def accepted_body(app: Flask, job: ScrapeJob) -> bytes:
    """The 202 answer's JSON: what ``JobSchema`` dumps for a job just created, as Flask's
    ``jsonify`` writes it (sorted keys, compact, a final newline), for a fraction of the
    cost. The tests hold it equal to the job's ``GET``, which ``JobSchema`` renders."""
    body = {
        "id": job.id,
        "spider": job.spider,
        "status": job.status,
        "urls_count": len(job.urls or []),
        "args": dict(job.args),
        "max_age": job.max_age,
        "priority": job.priority,
        "stats": dict(job.stats),
        "error": job.error,
        "chunks_total": job.chunks_total,
        "chunks_done": job.chunks_done,
        "cancel_requested": job.cancel_requested,
        "created_at": job.created_at.isoformat(),
        "started_at": None,
        "finished_at": None,
    }
    return f"{app.json.dumps(body, separators=(',', ':'))}\n".encode()
