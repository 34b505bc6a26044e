"""The job lifecycle on PostgreSQL: claims, heartbeats, fencing, aggregation, cancel, recovery."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Text, cast, select, update

from models import Database, JobStatus, ScrapeChunk, ScrapeJob, create_database
from models.base import utcnow
from models.jobs import (
    JobAlreadyFinished,
    cancel_job,
    claim_chunk,
    create_job,
    create_job_committed,
    finish_chunk,
    heartbeat,
    requeue_stale_chunks,
    split_urls,
)
from shelfwatch import migrate
from shelfwatch.config import Settings

URLS = [f"http://127.0.0.1:1/p/{n}" for n in range(5)]


def _job(db: Database, urls: list[str] = URLS, chunk_size: int = 2) -> tuple[str, list[int]]:
    with db.transaction() as session:
        job, refs = create_job(session, spider="product", urls=urls, chunk_size=chunk_size)
    return job.id, [ref.chunk_id for ref in refs]


def _get(db: Database, job_id: str) -> ScrapeJob:
    with db.transaction() as session:
        return session.get(ScrapeJob, job_id)


def test_split_urls_keeps_order_and_sizes() -> None:
    assert split_urls(["a", "b", "c"], 2) == [["a", "b"], ["c"]]
    assert split_urls(["a"], 50) == [["a"]]


def test_create_job_splits_into_chunks(database: Database) -> None:
    job_id, chunk_ids = _job(database)
    job = _get(database, job_id)
    assert (job.status, job.chunks_total, job.chunks_done) == ("queued", 3, 0)
    with database.transaction() as session:
        sizes = session.scalars(
            select(ScrapeChunk.urls).where(ScrapeChunk.job_id == job_id).order_by(ScrapeChunk.seq)
        ).all()
    assert [len(urls) for urls in sizes] == [2, 2, 1]
    assert len(chunk_ids) == 3


def _rows(db: Database, job_id: str) -> tuple[dict[str, object], list[dict[str, object]]]:
    """A job's row and its chunks' rows, without what differs between any two jobs."""
    jobs, chunks = ScrapeJob.__table__, ScrapeChunk.__table__
    scraping = {"mapper": ScrapeJob}  # Core statements on the scraping engine
    with db.transaction() as session:
        job = (
            session.execute(select(jobs).where(jobs.c.id == job_id), bind_arguments=scraping)
            .mappings()
            .one()
        )
        parts = session.execute(
            select(chunks).where(chunks.c.job_id == job_id).order_by(chunks.c.seq),
            bind_arguments=scraping,
        ).mappings()
        chunk_rows = [{k: v for k, v in row.items() if k not in ("id", "job_id")} for row in parts]
    return {k: v for k, v in job.items() if k not in ("id", "created_at")}, chunk_rows


def test_a_one_chunk_job_in_one_statement_writes_the_rows_of_two(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    with database.transaction() as session:
        one_statement, refs = create_job(
            session, spider="product", urls=URLS[:1], chunk_size=50, priority=3, created_by=7
        )
    # The general path (a job and its chunks as two INSERTs), as taken off PostgreSQL.
    monkeypatch.setattr("models.jobs._postgresql", lambda _session: False)
    with database.transaction() as session:
        two_statements, other_refs = create_job(
            session, spider="product", urls=URLS[:1], chunk_size=50, priority=3, created_by=7
        )

    assert _rows(database, one_statement.id) == _rows(database, two_statements.id)
    assert [r.chunk_id for r in refs] == [_chunk_id(database, one_statement.id)]
    assert (refs[0].urls_count, other_refs[0].urls_count) == (1, 1)


def _json_texts(db: Database, job_id: str) -> list[str]:
    """The JSON columns as PostgreSQL stores them (``json`` keeps the text it was sent)."""
    jobs, chunks = ScrapeJob.__table__, ScrapeChunk.__table__
    with db.transaction() as session:
        job = session.execute(
            select(
                *(cast(jobs.c[key], Text) for key in ("urls", "args", "settings", "stats"))
            ).where(jobs.c.id == job_id),
            bind_arguments={"mapper": ScrapeJob},
        ).one()
        parts = session.scalars(
            select(cast(chunks.c.urls, Text) + cast(chunks.c.stats, Text))
            .where(chunks.c.job_id == job_id)
            .order_by(chunks.c.seq),
            bind_arguments={"mapper": ScrapeJob},
        ).all()
    return [*job, *parts]


@pytest.mark.parametrize("urls", [URLS[:1], URLS])
def test_a_job_created_committed_has_the_rows_of_create_job(
    database: Database, urls: list[str]
) -> None:
    fields = {"spider": "product", "urls": urls, "chunk_size": 2, "priority": 3, "max_age": 60}
    fields |= {"created_by": 7, "args": {"note": "é \u2028", "n": [1, 2.5, None]}}
    committed, refs = create_job_committed(database, **fields)
    with database.transaction() as session:
        created, _ = create_job(session, **fields)

    assert _rows(database, committed.id) == _rows(database, created.id)
    assert _json_texts(database, committed.id) == _json_texts(database, created.id)
    with database.transaction() as session:
        stored = session.execute(select(ScrapeChunk.id).where(ScrapeChunk.job_id == committed.id))
        assert [ref.chunk_id for ref in refs] == sorted(row.id for row in stored)
    # The job returned is the stored row, every column.
    columns = [column.key for column in ScrapeJob.__table__.c]
    stored_job = _get(database, committed.id)
    assert [getattr(committed, key) for key in columns] == [
        getattr(stored_job, key) for key in columns
    ]


def _chunk_id(db: Database, job_id: str) -> int:
    with db.transaction() as session:
        return session.scalars(select(ScrapeChunk.id).where(ScrapeChunk.job_id == job_id)).one()


def test_a_chunk_is_claimed_once(database: Database) -> None:
    job_id, chunk_ids = _job(database)
    with database.transaction() as session:
        first = claim_chunk(session, chunk_ids[0], "w1", job_id=job_id)
    with database.transaction() as session:
        second = claim_chunk(session, chunk_ids[0], "w2", job_id=job_id)
    assert first is not None and first.attempt == 1 and first.urls == URLS[:2]
    assert second is None
    assert _get(database, first.job_id).status == "running"


def test_a_chunk_is_claimed_only_for_its_own_job(database: Database) -> None:
    job_id, chunk_ids = _job(database)
    other_job, _ = _job(database, URLS[:1])
    with database.transaction() as session:
        # A message of another job naming this chunk's id (ids reused after a restore).
        assert claim_chunk(session, chunk_ids[0], "w1", job_id=other_job) is None
    with database.transaction() as session:
        claimed = claim_chunk(session, chunk_ids[0], "w1", job_id=job_id)
    assert claimed is not None and claimed.job_id == job_id


def test_last_chunk_aggregates_stats_and_status(database: Database) -> None:
    job_id, chunk_ids = _job(database)
    for n, chunk_id in enumerate(chunk_ids):
        with database.transaction() as session:
            chunk = claim_chunk(session, chunk_id, f"host{n}/1/1", job_id=job_id)
        stats = {"requests": 2, "items": 2, "responses": {"200": 2}, "dropped": {"bad_price": 1}}
        with database.transaction() as session:
            final = finish_chunk(session, chunk, status=JobStatus.SUCCEEDED, stats=stats)
        assert final == (JobStatus.SUCCEEDED if n == 2 else None)
    job = _get(database, job_id)
    assert job.status == "succeeded" and job.finished_at is not None
    assert job.stats["items"] == 6 and job.stats["responses"] == {"200": 6}
    assert job.stats["dropped"] == {"bad_price": 3}
    assert job.stats["workers"] == ["host0", "host1", "host2"]


def test_some_failed_urls_make_the_job_partial(database: Database) -> None:
    job_id, chunk_ids = _job(database, URLS[:2], chunk_size=1)
    outcomes = [{"items": 1}, {"errors": 1, "responses": {"404": 1}}]
    for chunk_id, stats in zip(chunk_ids, outcomes, strict=True):
        with database.transaction() as session:
            chunk = claim_chunk(session, chunk_id, "w", job_id=job_id)
            finish_chunk(session, chunk, status=JobStatus.SUCCEEDED, stats=stats)
    job = _get(database, job_id)
    assert job.status == "partial"
    assert "1 request(s) failed" in job.error


def test_a_job_with_nothing_obtained_fails(database: Database) -> None:
    job_id, [chunk_id] = _job(database, URLS[:1])
    with database.transaction() as session:
        chunk = claim_chunk(session, chunk_id, "w", job_id=job_id)
        finish_chunk(session, chunk, status=JobStatus.FAILED, stats={}, error="crawl failed: boom")
    job = _get(database, job_id)
    assert (job.status, job.error) == ("failed", "crawl failed: boom")


def _later(seconds: float) -> dict[str, datetime]:
    """A recovery pass as if run ``seconds`` from now by a worker with the default settings
    (30-s leases: heartbeat 10 s, 3 beats missed)."""
    now = utcnow() + timedelta(seconds=seconds)
    return {"now": now, "heartbeat_before": now - timedelta(seconds=30)}


def test_recovered_chunk_cannot_be_finished_by_its_old_worker(database: Database) -> None:
    job_id, [chunk_id] = _job(database, URLS[:1])
    with database.transaction() as session:
        old = claim_chunk(session, chunk_id, "dead", job_id=job_id)
    with database.transaction() as session:
        refs = requeue_stale_chunks(session, **_later(seconds=31), max_attempts=3)
    assert [ref.chunk_id for ref in refs] == [chunk_id]
    with database.transaction() as session:
        new = claim_chunk(session, chunk_id, "alive", job_id=job_id)
    with database.transaction() as session:
        assert heartbeat(session, old).owned is False
        assert finish_chunk(session, old, status=JobStatus.SUCCEEDED, stats={"items": 9}) is None
    with database.transaction() as session:
        assert finish_chunk(session, new, status=JobStatus.SUCCEEDED, stats={"items": 1})
    job = _get(database, job_id)
    assert (job.status, job.stats["items"], job.chunks_done) == ("succeeded", 1, 1)


def test_fresh_heartbeats_are_not_recovered(database: Database) -> None:
    job_id, [chunk_id] = _job(database, URLS[:1])
    with database.transaction() as session:
        claim_chunk(session, chunk_id, "w", job_id=job_id)
    with database.transaction() as session:
        refs = requeue_stale_chunks(session, **_later(seconds=29), max_attempts=3)
    assert refs == []


def test_a_chunk_is_judged_by_its_owners_lease_not_the_detectors_settings(
    database: Database,
) -> None:
    """A worker with a 60-s heartbeat (3-min lease) keeps its chunk against a detector whose
    own settings would call it stale after 3 s; once the lease ends, any detector takes it."""
    job_id, [chunk_id] = _job(database, URLS[:1])
    with database.transaction() as session:
        claimed = claim_chunk(session, chunk_id, "slow", job_id=job_id, lease=timedelta(minutes=3))
    impatient = {"heartbeat_before": utcnow() + timedelta(seconds=57)}
    with database.transaction() as session:
        assert (
            requeue_stale_chunks(
                session, now=utcnow() + timedelta(seconds=60), **impatient, max_attempts=3
            )
            == []
        )
    with database.transaction() as session:
        assert heartbeat(session, claimed).owned  # renews the lease from now
        assert (
            requeue_stale_chunks(
                session, now=utcnow() + timedelta(seconds=170), **impatient, max_attempts=3
            )
            == []
        )
    with database.transaction() as session:
        refs = requeue_stale_chunks(
            session, now=utcnow() + timedelta(seconds=181), **impatient, max_attempts=3
        )
    assert [ref.chunk_id for ref in refs] == [chunk_id]


def test_a_chunk_without_a_lease_is_judged_by_its_last_heartbeat(database: Database) -> None:
    """Claimed by a worker of an earlier version (no lease written)."""
    job_id, [chunk_id] = _job(database, URLS[:1])
    with database.transaction() as session:
        claim_chunk(session, chunk_id, "old", job_id=job_id)
        session.execute(update(ScrapeChunk).values(lease_expires_at=None))
    with database.transaction() as session:
        assert requeue_stale_chunks(session, **_later(seconds=29), max_attempts=3) == []
        refs = requeue_stale_chunks(session, **_later(seconds=31), max_attempts=3)
    assert [ref.chunk_id for ref in refs] == [chunk_id]


def test_a_chunk_out_of_attempts_fails_its_job(database: Database) -> None:
    job_id, [chunk_id] = _job(database, URLS[:1])
    for _ in range(2):
        with database.transaction() as session:
            claim_chunk(session, chunk_id, "w", job_id=job_id)
        with database.transaction() as session:
            requeue_stale_chunks(session, **_later(seconds=31), max_attempts=2)
    job = _get(database, job_id)
    assert job.status == "failed"
    assert "worker lost 2 time(s)" in job.error


def test_cancel_of_a_queued_job_ends_it_and_no_chunk_starts(database: Database) -> None:
    job_id, chunk_ids = _job(database)
    with database.transaction() as session:
        assert cancel_job(session, job_id) == JobStatus.CANCELLED
    with database.transaction() as session:
        assert claim_chunk(session, chunk_ids[0], "w", job_id=job_id) is None
    assert _get(database, job_id).status == "cancelled"
    with database.transaction() as session, pytest.raises(JobAlreadyFinished):
        cancel_job(session, job_id)


def test_cancel_of_a_running_job_waits_for_its_running_chunk(database: Database) -> None:
    job_id, chunk_ids = _job(database)
    with database.transaction() as session:
        running = claim_chunk(session, chunk_ids[0], "w", job_id=job_id)
    with database.transaction() as session:
        assert cancel_job(session, job_id) is None
    with database.transaction() as session:
        assert heartbeat(session, running).cancel_requested is True
    with database.transaction() as session:
        final = finish_chunk(session, running, status=JobStatus.CANCELLED, stats={"items": 1})
    assert final == JobStatus.CANCELLED
    job = _get(database, job_id)
    assert (job.status, job.stats["items"]) == ("cancelled", 1)


def test_a_one_chunk_job_ends_with_its_chunk(database: Database) -> None:
    job_id, [chunk_id] = _job(database, URLS[:1])
    with database.transaction() as session:
        chunk = claim_chunk(session, chunk_id, "host7/1/1", job_id=job_id)
    stats = {"requests": 1, "items": 1, "responses": {"200": 1}}
    with database.transaction() as session:
        final = finish_chunk(session, chunk, status=JobStatus.SUCCEEDED, stats=stats)
    assert final == JobStatus.SUCCEEDED
    job = _get(database, job_id)
    assert (job.status, job.chunks_done, job.error) == ("succeeded", 1, None)
    assert job.stats["items"] == 1 and job.stats["responses"] == {"200": 1}
    assert job.stats["workers"] == ["host7"]


def test_a_cancelled_one_chunk_job_ends_cancelled(database: Database) -> None:
    job_id, [chunk_id] = _job(database, URLS[:1])
    with database.transaction() as session:
        chunk = claim_chunk(session, chunk_id, "w", job_id=job_id)
    with database.transaction() as session:
        assert cancel_job(session, job_id) is None
    with database.transaction() as session:
        final = finish_chunk(session, chunk, status=JobStatus.SUCCEEDED, stats={"items": 1})
    assert final == JobStatus.CANCELLED
    assert _get(database, job_id).status == "cancelled"


def test_the_lifecycle_on_sqlite(tmp_path: Path) -> None:
    """The embedded mode's database runs the statements PostgreSQL sends as one (CTEs)."""
    settings = Settings(mode="embedded", data_dir=tmp_path, redis_url=None)
    migrate.upgrade(settings)
    db = create_database(settings)
    try:
        job_id, chunk_ids = _job(db, URLS[:3], chunk_size=2)
        for n, chunk_id in enumerate(chunk_ids):
            with db.transaction() as session:
                chunk = claim_chunk(session, chunk_id, f"host{n}/1/1", job_id=job_id)
                assert claim_chunk(session, chunk_id, "other", job_id=job_id) is None
            assert chunk is not None and chunk.urls == URLS[2 * n : min(3, 2 * n + 2)]
            assert _get(db, job_id).status == "running"
            with db.transaction() as session:
                final = finish_chunk(session, chunk, status=JobStatus.SUCCEEDED, stats={"items": 1})
                assert finish_chunk(session, chunk, status=JobStatus.FAILED, stats={}) is None
            assert final == (JobStatus.SUCCEEDED if n == 1 else None)
        job = _get(db, job_id)
        assert (job.status, job.chunks_done, job.stats["items"]) == ("succeeded", 2, 2)
        assert job.stats["workers"] == ["host0", "host1"]
        single_id, [single_chunk] = _job(db, URLS[:1])
        with db.transaction() as session:
            chunk = claim_chunk(session, single_chunk, "host9/1/1", job_id=single_id)
            assert chunk is not None
            final = finish_chunk(session, chunk, status=JobStatus.FAILED, stats={}, error="boom")
        job = _get(db, single_id)
        assert (final, job.status, job.error) == (JobStatus.FAILED, "failed", "boom")
        assert job.stats["workers"] == ["host9"]
    finally:
        db.dispose()
