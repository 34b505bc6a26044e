"""Several chunks claimed and finished together (a ``run_chunks`` message): the same rows as
claiming and finishing them one by one, on PostgreSQL (one statement each, inside a
transaction or autocommitted by the ``…_committed`` functions) and SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from models import Database, JobStatus, ScrapeChunk, ScrapeJob, create_database
from models.jobs import (
    ChunkResult,
    ClaimedChunk,
    cancel_job,
    claim_chunk,
    claim_chunks,
    claim_chunks_committed,
    create_job,
    finish_chunk,
    finish_chunks,
    finish_chunks_committed,
)
from shelfwatch import migrate
from shelfwatch.config import Settings

URL = "http://127.0.0.1:1/p/{}"
WORKER = "host3/11/12"
# Columns that differ between two otherwise identical runs.
_VOLATILE = {"id", "job_id", "created_at", "started_at", "finished_at", "heartbeat_at"}
_VOLATILE |= {"lease_expires_at", "urls", "run_key"}


def _jobs(db: Database, count: int, urls_each: int = 1, chunk_size: int = 50) -> list[Any]:
    refs = []
    with db.transaction() as session:
        for n in range(count):
            urls = [URL.format(f"{n}-{i}") for i in range(urls_each)]
            _, job_refs = create_job(session, spider="product", urls=urls, chunk_size=chunk_size)
            refs += job_refs
    return refs


def _rows(db: Database, job_ids: list[str]) -> list[dict[str, Any]]:
    """The jobs' and their chunks' rows, in job order, without the per-run columns."""
    with db.transaction() as session:
        rows = []
        for job_id in job_ids:
            job = session.get(ScrapeJob, job_id)
            chunks = session.scalars(
                select(ScrapeChunk).where(ScrapeChunk.job_id == job_id).order_by(ScrapeChunk.seq)
            ).all()
            rows.append(
                {
                    "job": _columns(job),
                    "chunks": [_columns(chunk) for chunk in chunks],
                }
            )
    return rows


def _columns(row: Any) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns if c.key not in _VOLATILE}


def _ends(chunks: list[ClaimedChunk]) -> list[ChunkResult]:
    """A mix of endings: succeeded, partial with an error, failed, and stats of each kind."""
    kinds = [
        (JobStatus.SUCCEEDED, {"requests": 1, "items": 1, "responses": {"200": 1}}, None),
        (JobStatus.PARTIAL, {"requests": 1, "items": 0, "errors": 1}, "soft time limit"),
        (JobStatus.FAILED, {}, "crawl failed: boom"),
        (JobStatus.SUCCEEDED, {"requests": 2, "items": 2, "responses": {"200": 2}}, None),
    ]
    return [ChunkResult(chunk, *kinds[n % len(kinds)]) for n, chunk in enumerate(chunks)]


def _one_by_one(db: Database, refs: list[Any]) -> dict[str, JobStatus]:
    claimed = []
    for ref in refs:
        with db.transaction() as session:
            claimed.append(claim_chunk(session, ref.chunk_id, WORKER, job_id=ref.job_id))
    finals = {}
    for result in _ends(claimed):
        with db.transaction() as session:
            final = finish_chunk(
                session, result.chunk, status=result.status, stats=result.stats, error=result.error
            )
        if final is not None:
            finals[result.chunk.job_id] = final
    return finals


def _claim(db: Database, claims: list[tuple[int, str]], committed: bool) -> list[ClaimedChunk]:
    if committed:
        return claim_chunks_committed(db, claims, WORKER)
    with db.transaction() as session:
        return claim_chunks(session, claims, WORKER)


def _finish(db: Database, results: list[ChunkResult], committed: bool) -> dict[str, JobStatus]:
    if committed:
        return finish_chunks_committed(db, results, WORKER)
    with db.transaction() as session:
        return finish_chunks(session, results, WORKER)


def _together(db: Database, refs: list[Any], committed: bool = False) -> dict[str, JobStatus]:
    claimed = _claim(db, [(r.chunk_id, r.job_id) for r in refs], committed)
    assert [c.chunk_id for c in claimed] == [r.chunk_id for r in refs]
    return _finish(db, _ends(claimed), committed)


def _same_as_one_by_one(db: Database, make: Any, committed: bool = False) -> None:
    old_refs, new_refs = make(), make()
    old = _one_by_one(db, old_refs)
    new = _together(db, new_refs, committed)
    old_jobs = list(dict.fromkeys(r.job_id for r in old_refs))
    new_jobs = list(dict.fromkeys(r.job_id for r in new_refs))
    assert list(new.values()) == list(old.values()) and len(new) == len(old)
    assert _rows(db, new_jobs) == _rows(db, old_jobs)


COMMITTED = pytest.mark.parametrize("committed", [False, True], ids=["session", "committed"])


@COMMITTED
def test_one_chunk_jobs_end_as_they_would_one_by_one(database: Database, committed: bool) -> None:
    _same_as_one_by_one(database, lambda: _jobs(database, 6), committed)


@COMMITTED
def test_chunks_of_one_job_in_one_message_end_it_as_one_by_one(
    database: Database, committed: bool
) -> None:
    # Two jobs of three chunks each, all six chunks in one message.
    _same_as_one_by_one(database, lambda: _jobs(database, 2, urls_each=5, chunk_size=2), committed)


def test_the_claim_tells_how_many_chunks_each_job_has(database: Database) -> None:
    refs = _jobs(database, 1) + _jobs(database, 1, urls_each=3, chunk_size=2)
    claimed = claim_chunks_committed(database, [(r.chunk_id, r.job_id) for r in refs], WORKER)
    assert [c.chunks_total for c in claimed] == [1, 2, 2]
    with database.transaction() as session:
        one = claim_chunk(session, _jobs(database, 1)[0].chunk_id, WORKER, job_id=refs[0].job_id)
    assert one is None  # another job's chunk id: nothing taken


@COMMITTED
def test_the_claim_takes_only_queued_chunks_of_the_named_jobs(
    database: Database, committed: bool
) -> None:
    first, second, third, fourth = _jobs(database, 4)
    with database.transaction() as session:
        assert claim_chunk(session, first.chunk_id, "other", job_id=first.job_id) is not None
        assert cancel_job(session, second.job_id) == JobStatus.CANCELLED
    claims = [
        (first.chunk_id, first.job_id),  # running elsewhere
        (second.chunk_id, second.job_id),  # cancelled before it started
        (third.chunk_id, fourth.job_id),  # an id of another job
        (fourth.chunk_id, fourth.job_id),
    ]
    claimed = _claim(database, claims, committed)
    assert [(c.chunk_id, c.attempt, c.urls, c.chunks_total) for c in claimed] == [
        (fourth.chunk_id, 1, [URL.format("3-0")], 1)
    ]
    with database.transaction() as session:
        job = session.get(ScrapeJob, fourth.job_id)
        assert (job.status, job.started_at is not None) == ("running", True)
        assert session.get(ScrapeJob, third.job_id).status == "queued"
    # Redelivered: nothing is claimed twice.
    assert _claim(database, claims, committed) == []


@COMMITTED
def test_a_chunk_lost_to_recovery_is_not_finished_by_its_old_worker(
    database: Database, committed: bool
) -> None:
    kept, lost = _jobs(database, 2)
    claimed = _claim(
        database, [(kept.chunk_id, kept.job_id), (lost.chunk_id, lost.job_id)], committed
    )
    with database.transaction() as session:  # recovery gave it back to the queue
        chunk = session.get(ScrapeChunk, lost.chunk_id)
        chunk.status = "queued"
    stats = {"requests": 1, "items": 1}
    results = [ChunkResult(chunk, JobStatus.SUCCEEDED, stats) for chunk in claimed]
    finals = _finish(database, results, committed)
    assert finals == {kept.job_id: JobStatus.SUCCEEDED}
    with database.transaction() as session:
        assert session.get(ScrapeJob, lost.job_id).chunks_done == 0
        assert session.get(ScrapeChunk, lost.chunk_id).status == "queued"


@COMMITTED
def test_a_cancelled_job_among_others_ends_cancelled_alone(
    database: Database, committed: bool
) -> None:
    refs = _jobs(database, 3)
    claimed = _claim(database, [(r.chunk_id, r.job_id) for r in refs], committed)
    with database.transaction() as session:
        assert cancel_job(session, refs[1].job_id) is None
    results = [ChunkResult(chunk, JobStatus.SUCCEEDED, {"items": 1}) for chunk in claimed]
    finals = _finish(database, results, committed)
    assert [finals[r.job_id] for r in refs] == [
        JobStatus.SUCCEEDED,
        JobStatus.CANCELLED,
        JobStatus.SUCCEEDED,
    ]


def test_on_sqlite_the_same_functions_work_one_by_one(tmp_path: Path) -> None:
    settings = Settings(mode="embedded", data_dir=tmp_path, redis_url=None)
    migrate.upgrade(settings)
    db = create_database(settings)
    try:
        _same_as_one_by_one(db, lambda: _jobs(db, 3) + _jobs(db, 1, urls_each=3, chunk_size=2))
        _same_as_one_by_one(db, lambda: _jobs(db, 3), committed=True)
        refs = _jobs(db, 2)
        _together(db, refs)
        with db.transaction() as session:
            assert claim_chunks(session, [(r.chunk_id, r.job_id) for r in refs], WORKER) == []
    finally:
        db.dispose()


def test_nothing_to_claim_or_finish(database: Database) -> None:
    with database.transaction() as session:
        assert claim_chunks(session, [], WORKER) == []
        assert finish_chunks(session, [], WORKER) == {}
    assert claim_chunks_committed(database, [], WORKER) == []
    assert finish_chunks_committed(database, [], WORKER) == {}
