"""Jobs created under a chosen id: the job and all its chunks move to it, nothing is left."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from models import Database, ScrapeJob
from models.job_ids import JobIdInvalid, JobIdTaken, create_job_with_id
from models.scraping import ScrapeChunk


def test_the_job_and_its_chunks_get_the_chosen_id(database: Database) -> None:
    chosen = str(uuid.uuid4())
    with database.transaction() as session:
        job, refs = create_job_with_id(
            session,
            chosen,
            spider="product",
            urls=["http://a/1", "http://a/2"],
            chunk_size=1,
            args={"limit": "3"},
            priority=4,
            created_by=7,
        )
        assert job.id == chosen and [ref.job_id for ref in refs] == [chosen, chosen]

    with database.transaction() as session:
        stored = session.get_one(ScrapeJob, chosen)
        assert (stored.spider, stored.args, stored.priority, stored.created_by) == (
            "product",
            {"limit": "3"},
            4,
            7,
        )
        assert (stored.chunks_total, stored.status) == (2, "queued")
        chunk_jobs = session.scalars(select(ScrapeChunk.job_id)).all()
        assert chunk_jobs == [chosen, chosen]
        assert session.scalar(select(func.count()).select_from(ScrapeJob)) == 1


def test_a_used_or_malformed_id_is_refused(database: Database) -> None:
    chosen = str(uuid.uuid4())
    with database.transaction() as session:
        create_job_with_id(session, chosen, spider="product", urls=["http://a/"], chunk_size=1)
    with pytest.raises(JobIdTaken), database.transaction() as session:
        create_job_with_id(session, chosen, spider="product", urls=["http://a/"], chunk_size=1)
    for malformed in ("job-1", chosen.upper(), chosen.replace("-", "")):
        with pytest.raises(JobIdInvalid), database.transaction() as session:
            create_job_with_id(session, malformed, spider="product", urls=["x"], chunk_size=1)
