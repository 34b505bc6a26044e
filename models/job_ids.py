"""Scrape jobs under an id the client chose (Scrapyd's ``jobid``)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.jobs import ChunkRef, create_job
from models.scraping import ScrapeChunk, ScrapeJob

_NO_SYNC = {"synchronize_session": False}


class JobIdTaken(Exception):
    """Another job already has this id."""


class JobIdInvalid(ValueError):
    """Not a job id: job ids are UUIDs in their canonical form."""


def check_job_id(job_id: str) -> str:
    """The id if it is a canonical lower-case UUID (as ``create_job`` makes them)."""
    try:
        canonical = str(uuid.UUID(job_id))
    except ValueError:
        raise JobIdInvalid(job_id) from None
    if canonical != job_id:
        raise JobIdInvalid(job_id)
    return job_id


def create_job_with_id(
    session: Session, job_id: str, **fields: Any
) -> tuple[ScrapeJob, list[ChunkRef]]:
    """``create_job(session, **fields)``, then move the job and its chunks to ``job_id``.

    ``create_job`` draws its own id; copying the row keeps every column it sets without
    repeating them here. Raises ``JobIdInvalid`` or ``JobIdTaken``.
    """
    check_job_id(job_id)
    if session.get(ScrapeJob, job_id) is not None:
        raise JobIdTaken(job_id)
    drafted, refs = create_job(session, **fields)
    columns = {column.key: getattr(drafted, column.key) for column in ScrapeJob.__table__.c}
    try:
        with session.begin_nested():
            session.add(ScrapeJob(**{**columns, "id": job_id}))
    except IntegrityError as error:  # the same id chosen at the same moment by another request
        raise JobIdTaken(job_id) from error
    session.execute(
        update(ScrapeChunk)
        .where(ScrapeChunk.job_id == drafted.id)
        .values(job_id=job_id)
        .execution_options(**_NO_SYNC)
    )
    session.execute(
        delete(ScrapeJob).where(ScrapeJob.id == drafted.id).execution_options(**_NO_SYNC)
    )
    session.expunge(drafted)
    return session.get_one(ScrapeJob, job_id), [replace(ref, job_id=job_id) for ref in refs]
