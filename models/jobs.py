"""The scrape-job lifecycle: a job, its chunks, and the moves between their states.

A job is split into chunks that workers claim with a conditional UPDATE (``queued →
running``), keep alive with heartbeats and finish once; the worker whose chunk completes
the job's count (``chunks_done == chunks_total``) aggregates the stats and sets the final
status in the same transaction. The chunk's ``attempts`` is its fencing token: a worker that
lost its chunk to recovery can no longer finish or heartbeat it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from psycopg.types.json import Json
from sqlalchemy import (
    JSON,
    BigInteger,
    Integer,
    Row,
    String,
    Text,
    and_,
    bindparam,
    case,
    column,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session, make_transient_to_detached

from models.autocommit import fetch_all_autocommitted, fetch_one_autocommitted
from models.base import utcnow
from models.db import Database
from models.job_stats import merge_stats
from models.scraping import JobStatus, ScrapeChunk, ScrapeJob

_NO_SYNC = {"synchronize_session": False}
ERROR_SUMMARY_CHARS = 2000


class JobNotFound(LookupError):
    """No job with this id."""


class JobAlreadyFinished(Exception):
    """The job has a final status and can no longer change."""


@dataclass(frozen=True)
class ChunkRef:
    """What a task message carries: ids and a count, never the URLs themselves."""

    chunk_id: int
    job_id: str
    spider: str
    urls_count: int
    priority: int


@dataclass(frozen=True)
class ClaimedChunk:
    """A chunk this worker now owns, with what it needs to crawl it."""

    chunk_id: int
    job_id: str
    attempt: int
    spider: str
    urls: list[str]
    args: dict[str, Any]
    max_age: int | None
    job_settings: dict[str, Any]
    # How long the chunk stays this worker's without a heartbeat: the owner's heartbeat
    # interval times the beats it may miss, written into the chunk at each claim and beat.
    lease: timedelta = timedelta(seconds=30)
    chunks_total: int = 0  # of its job (0: not known)


@dataclass(frozen=True)
class ChunkControl:
    """What a heartbeat learns: whether the chunk is still ours and whether to stop."""

    owned: bool
    cancel_requested: bool


# The hot statements of a job's life, built once (their compiled forms are cached) on the
# tables, without the ORM's bulk-update machinery; the values go in as named parameters.
_chunks = ScrapeChunk.__table__
_jobs = ScrapeJob.__table__
# Core statements find the scraping engine through this.
_SCRAPING: dict[str, Any] = {"mapper": ScrapeChunk}
_UNFINISHED = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)

_INSERT_JOB = insert(_jobs)
_INSERT_CHUNKS = insert(_chunks).returning(_chunks.c.id, sort_by_parameter_order=True)
# A one-chunk job (most submissions: one URL) in one statement on PostgreSQL: the job's INSERT
# as a CTE feeding its chunk's. The job's values are named ``job_<column>``.
_new_job = (
    insert(_jobs)
    .values({column.key: bindparam(f"job_{column.key}", type_=column.type) for column in _jobs.c})
    .returning(_jobs.c.id)
    .cte("new_job")
)
# Every chunk value is a named parameter (none filled in from column defaults), so that the
# statement can also run on the bare driver connection (``create_job_committed``).
_INSERT_JOB_AND_CHUNK = (
    insert(_chunks)
    .values(
        job_id=select(_new_job.c.id).scalar_subquery(),
        **{
            key: bindparam(f"chunk_{key}", type_=_chunks.c[key].type)
            for key in ("seq", "urls", "status", "attempts", "stats")
        },
    )
    .returning(_chunks.c.id)
    .add_cte(_new_job)
)
# What a claim writes into its chunk (one chunk or several).
_CLAIM_VALUES = {
    "status": JobStatus.RUNNING.value,
    "attempts": _chunks.c.attempts + 1,
    "worker": bindparam("claim_worker"),
    "heartbeat_at": bindparam("claim_now"),
    "lease_expires_at": bindparam("claim_lease_until"),
    "started_at": bindparam("claim_now"),
    "finished_at": None,
}
# Its JSON values, which psycopg takes wrapped (as SQLAlchemy's JSON type wraps them).
_JSON_PARAMETERS = frozenset(
    [f"job_{column.key}" for column in _jobs.c if isinstance(column.type, JSON)]
    + ["chunk_urls", "chunk_stats"]
)
_CLAIM_CHUNK = (
    update(_chunks)
    .where(
        _chunks.c.id == bindparam("chunk_id"),
        # The message names both: after ids were reused (a restored or emptied database), an
        # old message for another job's chunk must not take this one.
        _chunks.c.job_id == bindparam("claim_job_id"),
        _chunks.c.status == JobStatus.QUEUED.value,
    )
    .values(_CLAIM_VALUES)
    .returning(_chunks.c.job_id, _chunks.c.urls, _chunks.c.attempts)
)
# The job becomes running with its first claim, and tells what to crawl.
_CLAIM_JOB = _jobs.update().values(
    status=case((_jobs.c.status == JobStatus.QUEUED.value, JobStatus.RUNNING.value),
                else_=_jobs.c.status),
    started_at=func.coalesce(_jobs.c.started_at, bindparam("claim_now")),
)  # fmt: skip
_JOB_FIELDS = (
    _jobs.c.spider,
    _jobs.c.args,
    _jobs.c.max_age,
    _jobs.c.settings,
    _jobs.c.chunks_total,
)
_claimed = _CLAIM_CHUNK.cte("claimed")
_CLAIM = (
    _CLAIM_JOB.where(_jobs.c.id == _claimed.c.job_id)
    .returning(_claimed.c.job_id, _claimed.c.urls, _claimed.c.attempts, *_JOB_FIELDS)
)  # fmt: skip
_CLAIM_JOB_BY_ID = _CLAIM_JOB.where(_jobs.c.id == bindparam("job_id")).returning(*_JOB_FIELDS)

_FINISH_CHUNK = (
    update(_chunks)
    .where(
        _chunks.c.id == bindparam("chunk_id"),
        _chunks.c.status == JobStatus.RUNNING.value,
        _chunks.c.attempts == bindparam("attempt"),
    )
    .values(
        status=bindparam("end_status"),
        stats=bindparam("end_stats", type_=_chunks.c.stats.type),
        error=bindparam("end_error"),
        finished_at=bindparam("end_now"),
    )
    .returning(_chunks.c.job_id, _chunks.c.worker)
)
_PROGRESS = (_jobs.c.chunks_done, _jobs.c.chunks_total, _jobs.c.cancel_requested)
_COUNT_DONE = (
    update(_jobs)
    .where(_jobs.c.id == bindparam("job_id"))
    .values(chunks_done=_jobs.c.chunks_done + bindparam("count"))
    .returning(*_PROGRESS)
)
_finished = _FINISH_CHUNK.cte("finished")
_FINISH = (
    update(_jobs)
    .where(_jobs.c.id == _finished.c.job_id)
    .values(chunks_done=_jobs.c.chunks_done + 1)
    .returning(*_PROGRESS, _finished.c.worker)
)
_CHUNK_ENDS = (
    select(_chunks.c.status, _chunks.c.stats, _chunks.c.error, _chunks.c.worker)
    .where(_chunks.c.job_id == bindparam("job_id"))
    .order_by(_chunks.c.seq)
)
_FINALIZE = (
    update(_jobs)
    .where(_jobs.c.id == bindparam("job_id"), _jobs.c.status.in_(_UNFINISHED))
    .values(
        status=bindparam("final_status"),
        stats=bindparam("final_stats", type_=_jobs.c.stats.type),
        error=bindparam("final_error"),
        finished_at=bindparam("final_now"),
    )
)

# The statements of a ``run_chunks`` message (several one-URL jobs' chunks), one each on
# PostgreSQL. Claim: the chunks' UPDATE (by (id, job) pairs, queued ones only) feeding their
# jobs' UPDATE; the rows are joined back so two chunks of one job both come back. The pairs
# go in as one JSON array, so the statement also runs as it is on the driver (autocommitted).
_claims = (
    func.json_to_recordset(bindparam("claims", type_=JSON))
    .table_valued(column("chunk_id", BigInteger), column("job_id", String))
    .render_derived("claims", with_types=True)
)
_claimed_many = (
    update(_chunks)
    .where(
        tuple_(_chunks.c.id, _chunks.c.job_id).in_(select(_claims.c.chunk_id, _claims.c.job_id)),
        _chunks.c.status == JobStatus.QUEUED.value,
    )
    .values(_CLAIM_VALUES)
    .returning(_chunks.c.id, _chunks.c.job_id, _chunks.c.urls, _chunks.c.attempts)
    .cte("claimed_many")
)
_started_jobs = (
    _CLAIM_JOB.where(_jobs.c.id.in_(select(_claimed_many.c.job_id)))
    .returning(_jobs.c.id, *_JOB_FIELDS)
    .cte("started_jobs")
)
_CLAIM_MANY = (
    select(
        _claimed_many.c.id,
        _claimed_many.c.job_id,
        _claimed_many.c.urls,
        _claimed_many.c.attempts,
        *(_started_jobs.c[field.key] for field in _JOB_FIELDS),
    )
    .join_from(_claimed_many, _started_jobs, _started_jobs.c.id == _claimed_many.c.job_id)
    .order_by(_claimed_many.c.id)
)
# Finish: the chunks' ends go in as one JSON array (json_to_recordset), the chunks still this
# attempt's are updated, and their jobs' counts grow by as many as each had here.
_ends = (
    func.json_to_recordset(bindparam("ends", type_=JSON))
    .table_valued(
        column("chunk_id", BigInteger),
        column("attempt", Integer),
        column("status", String),
        column("stats", JSON),
        column("error", Text),
        # The job's final values, were this its only chunk (``_FINISH_ALONE`` writes them).
        column("final_status", String),
        column("final_stats", JSON),
        column("final_error", Text),
    )
    .render_derived("ends", with_types=True)
)
# The chunks still this attempt's take their ends.
_END_CHUNKS = (
    update(_chunks)
    .where(
        _chunks.c.id == _ends.c.chunk_id,
        _chunks.c.status == JobStatus.RUNNING.value,
        _chunks.c.attempts == _ends.c.attempt,
    )
    .values(
        status=_ends.c.status,
        stats=_ends.c.stats,
        error=_ends.c.error,
        finished_at=bindparam("end_now"),
    )
)
_finished_many = _END_CHUNKS.returning(_chunks.c.job_id).cte("finished_many")
_done_counts = (
    select(_finished_many.c.job_id, func.count().label("finished"))
    .group_by(_finished_many.c.job_id)
    .cte("done_counts")
)
_FINISH_MANY = (
    update(_jobs)
    .where(_jobs.c.id == _done_counts.c.job_id)
    .values(chunks_done=_jobs.c.chunks_done + _done_counts.c.finished)
    .returning(_jobs.c.id, *_PROGRESS)
)
# Final values of several one-chunk jobs, computed by the caller, in one UPDATE.
_finals = (
    func.json_to_recordset(bindparam("finals", type_=JSON))
    .table_valued(
        column("job_id", String),
        column("status", String),
        column("stats", JSON),
        column("error", Text),
    )
    .render_derived("finals", with_types=True)
)
_FINALIZE_MANY = (
    update(_jobs)
    .where(_jobs.c.id == _finals.c.job_id, _jobs.c.status.in_(_UNFINISHED))
    .values(
        status=_finals.c.status,
        stats=_finals.c.stats,
        error=_finals.c.error,
        finished_at=bindparam("final_now"),
    )
    .returning(_jobs.c.id, _jobs.c.status)
)
# One-chunk jobs only (as a worker knows from its claim): the chunks' ends and their jobs'
# final values in one statement, which runs autocommitted. A job whose cancel was asked for
# ends cancelled, as ``final_status`` has it.
_finished_alone = _END_CHUNKS.returning(
    _chunks.c.job_id, _ends.c.final_status, _ends.c.final_stats, _ends.c.final_error
).cte("finished_alone")
_FINISH_ALONE = (
    update(_jobs)
    .where(
        _jobs.c.id == _finished_alone.c.job_id,
        # Not ``in_``: an IN list is expanded by SQLAlchemy at execution, not in the driver.
        or_(*(_jobs.c.status == status for status in _UNFINISHED)),
    )
    .values(
        chunks_done=_jobs.c.chunks_done + 1,
        status=case(
            (_jobs.c.cancel_requested, JobStatus.CANCELLED.value),
            else_=_finished_alone.c.final_status,
        ),
        stats=_finished_alone.c.final_stats,
        error=_finished_alone.c.final_error,
        finished_at=bindparam("end_now"),
    )
    .returning(_jobs.c.id, _jobs.c.status)
)


def _postgresql(session: Session) -> bool:
    return session.get_bind(ScrapeChunk).dialect.name == "postgresql"


def split_urls(urls: Sequence[str], chunk_size: int) -> list[list[str]]:
    size = max(1, chunk_size)
    return [list(urls[start : start + size]) for start in range(0, len(urls), size)] or [[]]


def create_job(
    session: Session,
    *,
    spider: str,
    urls: Sequence[str],
    chunk_size: int,
    args: dict[str, Any] | None = None,
    max_age: int | None = None,
    priority: int = 0,
    created_by: int | None = None,
    schedule_id: int | None = None,
    run_key: str | None = None,
) -> tuple[ScrapeJob, list[ChunkRef]]:
    """Add a queued job and its chunks; the caller enqueues the refs after commit."""
    parts = split_urls(urls, chunk_size)
    job = _new_job(spider, urls, len(parts), args, max_age, priority, created_by)
    job.schedule_id, job.run_key = schedule_id, run_key
    # Core INSERTs instead of the ORM's unit of work (most of a one-URL submission's CPU was
    # the flush); the chunks need only their ids back.
    chunk_ids = _insert_job(session, job, parts)
    # The row is written: the session takes the object as loaded from it (every column set
    # above), so callers use it as a persistent job without a flush or a read-back.
    make_transient_to_detached(job)
    session.add(job)
    return job, _new_refs(job, chunk_ids, parts)


def create_job_committed(
    db: Database,
    *,
    spider: str,
    urls: Sequence[str],
    chunk_size: int,
    args: dict[str, Any] | None = None,
    max_age: int | None = None,
    priority: int = 0,
    created_by: int | None = None,
) -> tuple[ScrapeJob, list[ChunkRef]]:
    """``create_job`` in a transaction of its own, committed on return (a detached job).

    A one-chunk job on PostgreSQL (most submissions: one URL) is one statement, run on its
    own on the pooled driver connection: no session and no BEGIN/COMMIT round trips, which
    cost several times what PostgreSQL takes to insert the two rows.
    """
    parts = split_urls(urls, chunk_size)
    if len(parts) > 1 or db.scraping.dialect.name != "postgresql":
        with db.transaction() as session:
            return create_job(
                session,
                spider=spider,
                urls=urls,
                chunk_size=chunk_size,
                args=args,
                max_age=max_age,
                priority=priority,
                created_by=created_by,
            )
    job = _new_job(spider, urls, 1, args, max_age, priority, created_by)
    values = {
        key: Json(value) if key in _JSON_PARAMETERS else value
        for key, value in _one_chunk_values(job, parts[0]).items()
    }
    row = fetch_one_autocommitted(db.scraping, _INSERT_JOB_AND_CHUNK, values)
    assert row is not None  # an INSERT … RETURNING of one row
    return job, _new_refs(job, [row[0]], parts)


def _new_job(
    spider: str,
    urls: Sequence[str],
    chunks_total: int,
    args: dict[str, Any] | None,
    max_age: int | None,
    priority: int,
    created_by: int | None,
) -> ScrapeJob:
    """A queued job not yet written, with every column set (none left to defaults)."""
    return ScrapeJob(
        id=str(uuid.uuid4()),
        spider=spider,
        status=JobStatus.QUEUED.value,
        urls=list(urls),
        args=args or {},
        settings={},
        max_age=max_age,
        priority=priority,
        stats={},
        chunks_total=chunks_total,
        chunks_done=0,
        cancel_requested=False,
        created_by=created_by,
        schedule_id=None,
        run_key=None,
        created_at=utcnow(),
        error=None,
        started_at=None,
        finished_at=None,
    )


def _new_refs(job: ScrapeJob, chunk_ids: Sequence[int], parts: list[list[str]]) -> list[ChunkRef]:
    return [
        ChunkRef(chunk_id, job.id, job.spider, len(part), job.priority)
        for chunk_id, part in zip(chunk_ids, parts, strict=True)
    ]


def _one_chunk_values(job: ScrapeJob, urls: list[str]) -> dict[str, Any]:
    """The values of ``_INSERT_JOB_AND_CHUNK``: the job's columns, then its one chunk's."""
    values = {f"job_{column.key}": getattr(job, column.key) for column in _jobs.c}
    values.update(
        chunk_seq=0,
        chunk_urls=urls,
        chunk_status=JobStatus.QUEUED.value,
        chunk_attempts=0,
        chunk_stats={},
    )
    return values


def _insert_job(session: Session, job: ScrapeJob, parts: list[list[str]]) -> Sequence[int]:
    """Insert the job and its chunks; the chunks' ids in ``parts`` order."""
    if len(parts) == 1 and _postgresql(session):
        values = _one_chunk_values(job, parts[0])
        return session.scalars(_INSERT_JOB_AND_CHUNK, values, bind_arguments=_SCRAPING).all()
    values = {column.key: getattr(job, column.key) for column in _jobs.c}
    session.execute(_INSERT_JOB, values, bind_arguments=_SCRAPING)
    return session.scalars(
        _INSERT_CHUNKS,
        [{"job_id": job.id, "seq": seq, "urls": part} for seq, part in enumerate(parts)],
        bind_arguments=_SCRAPING,
    ).all()


def _ref(chunk: ScrapeChunk, job: ScrapeJob) -> ChunkRef:
    return ChunkRef(chunk.id, job.id, job.spider, len(chunk.urls), job.priority)


def queued_chunks(session: Session, job_id: str) -> list[ChunkRef]:
    """The chunks of a job still waiting for a worker (what ``run_job`` fans out)."""
    rows = session.execute(
        select(ScrapeChunk, ScrapeJob)
        .join(ScrapeJob, ScrapeJob.id == ScrapeChunk.job_id)
        .where(ScrapeChunk.job_id == job_id, ScrapeChunk.status == JobStatus.QUEUED.value)
        .order_by(ScrapeChunk.seq)
    )
    return [_ref(chunk, job) for chunk, job in rows]


def claim_chunk(
    session: Session,
    chunk_id: int,
    worker: str,
    *,
    job_id: str,
    lease: timedelta = ClaimedChunk.lease,
) -> ClaimedChunk | None:
    """Take a queued chunk of ``job_id`` (None if another worker has it, it is done, it was
    cancelled, or it is not that job's), for ``lease`` unless heartbeats renew it."""
    now = utcnow()
    params = {
        "chunk_id": chunk_id,
        "claim_job_id": job_id,
        "claim_worker": worker[:200],
        "claim_now": now,
        "claim_lease_until": now + lease,
    }
    if _postgresql(session):
        # One statement: the chunk's UPDATE as a CTE feeding the job's (one round trip).
        row = session.execute(_CLAIM, params, bind_arguments=_SCRAPING).first()
        if row is None:
            return None
        claimed, job = row, row
    else:
        claimed = session.execute(_CLAIM_CHUNK, params, bind_arguments=_SCRAPING).first()
        if claimed is None:
            return None
        params["job_id"] = claimed.job_id
        job = session.execute(_CLAIM_JOB_BY_ID, params, bind_arguments=_SCRAPING).one()
    return _claimed_chunk(chunk_id, claimed, job, lease)


def heartbeat(session: Session, chunk: ClaimedChunk) -> ChunkControl:
    """Mark the chunk alive (renewing its lease); tell the worker whether it still owns it
    and whether to stop."""
    now = utcnow()
    owned = session.execute(
        update(ScrapeChunk)
        .where(
            ScrapeChunk.id == chunk.chunk_id,
            ScrapeChunk.status == JobStatus.RUNNING.value,
            ScrapeChunk.attempts == chunk.attempt,
        )
        .values(heartbeat_at=now, lease_expires_at=now + chunk.lease)
        .execution_options(**_NO_SYNC)
    ).rowcount
    return ChunkControl(owned=bool(owned), cancel_requested=cancel_requested(session, chunk.job_id))


def cancel_requested(session: Session, job_id: str) -> bool:
    return bool(session.scalar(select(ScrapeJob.cancel_requested).where(ScrapeJob.id == job_id)))


def finish_chunk(
    session: Session,
    chunk: ClaimedChunk,
    *,
    status: JobStatus,
    stats: dict[str, Any],
    error: str | None = None,
) -> JobStatus | None:
    """Record a chunk's end; returns the job's final status when this chunk completed it.

    Does nothing (returns None) when the chunk is no longer this attempt's: recovery gave it
    to another worker, whose result counts instead.
    """
    params = {
        "chunk_id": chunk.chunk_id,
        "attempt": chunk.attempt,
        "end_status": status.value,
        "end_stats": stats,
        "end_error": _clip(error),
        "end_now": utcnow(),
    }
    if _postgresql(session):
        # One statement: the chunk's UPDATE as a CTE, counted on its job in the same round trip.
        progress = session.execute(_FINISH, params, bind_arguments=_SCRAPING).first()
        if progress is None:
            return None
        worker = progress.worker
    else:
        done = session.execute(_FINISH_CHUNK, params, bind_arguments=_SCRAPING).first()
        if done is None:
            return None
        progress, worker = _add_done(session, chunk.job_id, 1), done.worker
    if progress.chunks_done < progress.chunks_total:
        return None
    if progress.chunks_total == 1:
        # The job's only chunk: aggregate what this call just wrote, without reading it back.
        ended = _ChunkEnd(status.value, stats, _clip(error), worker)
        return _finalize(session, chunk.job_id, [ended], progress.cancel_requested)
    return finalize_job(session, chunk.job_id, cancelled=progress.cancel_requested)


def claim_chunks(
    session: Session,
    claims: Sequence[tuple[int, str]],
    worker: str,
    *,
    lease: timedelta = ClaimedChunk.lease,
) -> list[ClaimedChunk]:
    """Take those of the ``(chunk id, job id)`` pairs still queued, as ``claim_chunk`` does
    for one (one statement on PostgreSQL); the others (claimed, cancelled, done, another
    job's) are left out, so a redelivered message claims nothing."""
    if not claims:
        return []
    if not _postgresql(session):
        taken = (claim_chunk(session, c, worker, job_id=j, lease=lease) for c, j in claims)
        return [chunk for chunk in taken if chunk is not None]
    params = _claim_params(claims, worker, lease)
    rows = session.execute(_CLAIM_MANY, params, bind_arguments=_SCRAPING).all()
    return [_claimed_chunk(row.id, row, row, lease) for row in rows]


def claim_chunks_committed(
    db: Database,
    claims: Sequence[tuple[int, str]],
    worker: str,
    *,
    lease: timedelta = ClaimedChunk.lease,
) -> list[ClaimedChunk]:
    """``claim_chunks`` in a transaction of its own, committed on return.

    On PostgreSQL the one statement runs on its own on the pooled driver connection, without
    a session or BEGIN/COMMIT round trips (as ``create_job_committed`` does).
    """
    if not claims or db.scraping.dialect.name != "postgresql":
        with db.transaction() as session:
            return claim_chunks(session, claims, worker, lease=lease)
    params = _claim_params(claims, worker, lease)
    params["claims"] = Json(params["claims"])
    rows = fetch_all_autocommitted(db.scraping, _CLAIM_MANY, params)
    claimed = [_ClaimRow(*row) for row in rows]
    return [_claimed_chunk(row.id, row, row, lease) for row in claimed]


def _claim_params(
    claims: Sequence[tuple[int, str]], worker: str, lease: timedelta
) -> dict[str, Any]:
    now = utcnow()
    return {
        "claims": [{"chunk_id": chunk_id, "job_id": job_id} for chunk_id, job_id in claims],
        "claim_worker": worker[:200],
        "claim_now": now,
        "claim_lease_until": now + lease,
    }


class _ClaimRow(NamedTuple):
    """A row of ``_CLAIM_MANY`` (its columns in order), as the driver returns it."""

    id: int
    job_id: str
    urls: list[str]
    attempts: int
    spider: str
    args: dict[str, Any] | None
    max_age: int | None
    settings: dict[str, Any] | None
    chunks_total: int


def _claimed_chunk(chunk_id: int, claimed: Any, job: Any, lease: timedelta) -> ClaimedChunk:
    """From the claimed chunk's row (job id, attempts, URLs) and its job's (``_JOB_FIELDS``)."""
    return ClaimedChunk(
        chunk_id=chunk_id,
        job_id=claimed.job_id,
        attempt=claimed.attempts,
        spider=job.spider,
        urls=list(claimed.urls),
        args=dict(job.args or {}),
        max_age=job.max_age,
        job_settings=dict(job.settings or {}),
        lease=lease,
        chunks_total=job.chunks_total,
    )


@dataclass(frozen=True)
class ChunkResult:
    """How one chunk of several ended (what ``finish_chunk`` takes for one)."""

    chunk: ClaimedChunk
    status: JobStatus
    stats: dict[str, Any]
    error: str | None = None


def finish_chunks(
    session: Session, results: Sequence[ChunkResult], worker: str
) -> dict[str, JobStatus]:
    """Record the ends of several chunks claimed together by ``worker``, as ``finish_chunk``
    does for each; returns the final status of every job they completed.

    On PostgreSQL: one statement for the chunks and their jobs' counts, one for the final
    values of the one-chunk jobs completed; jobs of several chunks are aggregated as usual.
    """
    if not results:
        return {}
    if not _postgresql(session):
        return _finish_one_by_one(session, results)
    now = utcnow()
    ends = [_end_values(r) for r in results]
    progress = session.execute(
        _FINISH_MANY, {"ends": ends, "end_now": now}, bind_arguments=_SCRAPING
    ).all()
    completed = {row.id: row for row in progress if row.chunks_done >= row.chunks_total}
    finals: dict[str, JobStatus] = {}
    alone: list[dict[str, Any]] = []
    for result in results:
        row = completed.pop(result.chunk.job_id, None)
        if row is None:
            continue
        if row.chunks_total != 1:
            if (status := finalize_job(session, row.id, row.cancel_requested)) is not None:
                finals[row.id] = status
            continue
        # The job's only chunk, so this one: aggregate what was just written, unread.
        ended = _ChunkEnd(result.status.value, result.stats, _clip(result.error), worker[:200])
        alone.append(_final_values(row.id, [ended], row.cancel_requested))
    if alone:
        written = session.execute(
            _FINALIZE_MANY, {"finals": alone, "final_now": now}, bind_arguments=_SCRAPING
        ).all()
        finals.update({row.id: JobStatus(row.status) for row in written})
    return finals


def finish_chunks_committed(
    db: Database, results: Sequence[ChunkResult], worker: str
) -> dict[str, JobStatus]:
    """``finish_chunks`` in a transaction of its own, committed on return.

    When every chunk is its job's only one (single-URL jobs, as the claim told), PostgreSQL
    runs one autocommitted statement: the chunks' ends and their jobs' final values, each
    computed here as ``finish_chunks`` computes it. Otherwise finishing a job may read its
    other chunks, in one transaction with the count that completed it.
    """
    alone = all(r.chunk.chunks_total == 1 for r in results)
    if not results or not alone or db.scraping.dialect.name != "postgresql":
        with db.transaction() as session:
            return finish_chunks(session, results, worker)
    ends = []
    for r in results:
        end = _end_values(r)
        ended = _ChunkEnd(end["status"], end["stats"], end["error"], worker[:200])
        final = _final_values(r.chunk.job_id, [ended], cancelled=False)
        ends.append(end | {f"final_{key}": final[key] for key in ("status", "stats", "error")})
    values = {"ends": Json(ends), "end_now": utcnow()}
    found = dict(fetch_all_autocommitted(db.scraping, _FINISH_ALONE, values))
    ended = (r.chunk.job_id for r in results if r.chunk.job_id in found)
    return {job_id: JobStatus(found[job_id]) for job_id in ended}


def _end_values(result: ChunkResult) -> dict[str, Any]:
    """One chunk's end, as ``_ends`` reads it."""
    return {
        "chunk_id": result.chunk.chunk_id,
        "attempt": result.chunk.attempt,
        "status": result.status.value,
        "stats": result.stats,
        "error": _clip(result.error),
    }


def _finish_one_by_one(session: Session, results: Sequence[ChunkResult]) -> dict[str, JobStatus]:
    finals: dict[str, JobStatus] = {}
    for r in results:
        final = finish_chunk(session, r.chunk, status=r.status, stats=r.stats, error=r.error)
        if final is not None:
            finals[r.chunk.job_id] = final
    return finals


def _count_done(session: Session, job_id: str, count: int) -> JobStatus | None:
    """Add ``count`` finished chunks; the call that completes the job finalizes it."""
    progress = _add_done(session, job_id, count)
    if progress.chunks_done < progress.chunks_total:
        return None
    return finalize_job(session, job_id, cancelled=progress.cancel_requested)


def _add_done(session: Session, job_id: str, count: int) -> Row[Any]:
    return session.execute(
        _COUNT_DONE, {"job_id": job_id, "count": count}, bind_arguments=_SCRAPING
    ).one()


class _ChunkEnd(NamedTuple):
    """What aggregation reads of a chunk."""

    status: str
    stats: dict[str, Any] | None
    error: str | None
    worker: str | None


def finalize_job(session: Session, job_id: str, cancelled: bool | None = None) -> JobStatus | None:
    """Aggregate the chunks into the job's stats and final status (idempotent).

    Returns None while some chunk has not ended, or when the job was already final.
    ``cancelled`` is the job's cancel flag when the caller has just read it.
    """
    rows = session.execute(_CHUNK_ENDS, {"job_id": job_id}, bind_arguments=_SCRAPING).all()
    chunks = [_ChunkEnd(*row) for row in rows]
    if any(not JobStatus(c.status).finished for c in chunks):
        return None
    if cancelled is None:
        cancelled = cancel_requested(session, job_id)
    return _finalize(session, job_id, chunks, cancelled)


def _finalize(
    session: Session, job_id: str, chunks: Sequence[_ChunkEnd], cancelled: bool
) -> JobStatus | None:
    """Write the job's aggregate of ``chunks`` (all ended) unless the job is final already."""
    values = _final_values(job_id, chunks, cancelled)
    params = {f"final_{key}": value for key, value in values.items() if key != "job_id"}
    params.update(job_id=job_id, final_now=utcnow())
    updated = session.execute(_FINALIZE, params, bind_arguments=_SCRAPING).rowcount
    return JobStatus(values["status"]) if updated else None


def _final_values(job_id: str, chunks: Sequence[_ChunkEnd], cancelled: bool) -> dict[str, Any]:
    """The job's final status, stats and error, aggregated from its ended ``chunks``."""
    stats = merge_stats(c.stats for c in chunks)
    stats["workers"] = sorted({_host(c.worker) for c in chunks if c.worker})
    status = final_status(chunks, stats, cancelled)
    error = _error_summary(chunks, stats)
    return {"job_id": job_id, "status": status.value, "stats": stats, "error": error}


def final_status(chunks: Sequence[Any], stats: dict[str, Any], cancelled: bool) -> JobStatus:
    """cancelled if asked; failed if nothing was obtained; partial if some URLs failed."""
    if cancelled:
        return JobStatus.CANCELLED
    # A partial chunk was closed early (soft time limit): some of its URLs were never tried.
    incomplete = (JobStatus.FAILED.value, JobStatus.PARTIAL.value)
    failed_chunks = sum(1 for c in chunks if c.status in incomplete)
    failures = stats.get("errors", 0) + stats.get("ssrf_refused", 0) + failed_chunks
    obtained = stats.get("items", 0) + stats.get("cached", 0)
    if failures and not obtained:
        return JobStatus.FAILED
    if failures:
        return JobStatus.PARTIAL
    return JobStatus.SUCCEEDED


def _error_summary(chunks: Sequence[Any], stats: dict[str, Any]) -> str | None:
    messages = list(dict.fromkeys(c.error for c in chunks if c.error))
    if stats.get("errors"):
        messages.append(f"{stats['errors']} request(s) failed")
    if stats.get("ssrf_refused"):
        messages.append(f"{stats['ssrf_refused']} request(s) refused by the SSRF guard")
    return _clip("; ".join(messages)) if messages else None


def _clip(text: str | None) -> str | None:
    return text[:ERROR_SUMMARY_CHARS] if text else text


def _host(worker: str) -> str:
    return worker.split("/", 1)[0]


def cancel_job(session: Session, job_id: str) -> JobStatus | None:
    """Ask a job to stop: queued chunks never start, running ones stop at their next check.

    Returns the final status when nothing was running (the job ends here and now).
    """
    requested = session.execute(
        update(ScrapeJob)
        .where(ScrapeJob.id == job_id, ScrapeJob.status.in_(_UNFINISHED))
        .values(cancel_requested=True)
        .execution_options(**_NO_SYNC)
    ).rowcount
    if not requested:
        if session.get(ScrapeJob, job_id) is None:
            raise JobNotFound(job_id)
        raise JobAlreadyFinished(job_id)
    dropped = session.execute(
        update(ScrapeChunk)
        .where(ScrapeChunk.job_id == job_id, ScrapeChunk.status == JobStatus.QUEUED.value)
        .values(status=JobStatus.CANCELLED.value, finished_at=utcnow())
        .execution_options(**_NO_SYNC)
    ).rowcount
    return _count_done(session, job_id, dropped) if dropped else None


def requeue_stale_chunks(
    session: Session, *, now: datetime, heartbeat_before: datetime, max_attempts: int
) -> list[ChunkRef]:
    """Give running chunks of dead workers back to the queue; fail those out of attempts.

    A chunk is stale when its lease (set by its owner from the owner's own heartbeat
    settings) ended before ``now``, so workers configured differently never take each
    other's live chunks; a chunk without a lease (claimed by a worker of an earlier version)
    when its last heartbeat is older than ``heartbeat_before``.

    Returns the chunks to send again (the caller enqueues them after commit).
    """
    stale = (
        ScrapeChunk.status == JobStatus.RUNNING.value,
        or_(
            ScrapeChunk.lease_expires_at < now,
            and_(
                ScrapeChunk.lease_expires_at.is_(None), ScrapeChunk.heartbeat_at < heartbeat_before
            ),
        ),
    )
    _fail_exhausted(session, stale, max_attempts)
    requeued = session.execute(
        update(ScrapeChunk)
        .where(*stale, ScrapeChunk.attempts < max_attempts)
        .values(
            status=JobStatus.QUEUED.value, worker=None, heartbeat_at=utcnow(), lease_expires_at=None
        )
        .returning(ScrapeChunk.id)
        .execution_options(**_NO_SYNC)
    ).scalars()
    return _refs(session, list(requeued))


def _fail_exhausted(session: Session, stale: Iterable[Any], max_attempts: int) -> None:
    rows = session.execute(
        select(ScrapeChunk).where(*stale, ScrapeChunk.attempts >= max_attempts)
    ).scalars()
    for chunk in list(rows):
        claimed = ClaimedChunk(chunk.id, chunk.job_id, chunk.attempts, "", [], {}, None, {})
        error = f"worker lost {chunk.attempts} time(s) (last: {chunk.worker})"
        finish_chunk(session, claimed, status=JobStatus.FAILED, stats={}, error=error)


def redispatch_queued_chunks(session: Session, *, sent_before: datetime) -> list[ChunkRef]:
    """Queued chunks whose message may have been lost (broker restart, failed enqueue).

    Their ``heartbeat_at`` is stamped as "sent again now"; a duplicate message is harmless
    because claiming is conditional.
    """
    chunk_ids = session.execute(
        update(ScrapeChunk)
        .where(
            ScrapeChunk.status == JobStatus.QUEUED.value,
            ScrapeChunk.job_id.in_(
                select(ScrapeJob.id).where(
                    ScrapeJob.status.in_(_UNFINISHED), ScrapeJob.created_at < sent_before
                )
            ),
            (ScrapeChunk.heartbeat_at.is_(None)) | (ScrapeChunk.heartbeat_at < sent_before),
        )
        .values(heartbeat_at=utcnow())
        .returning(ScrapeChunk.id)
        .execution_options(**_NO_SYNC)
    ).scalars()
    return _refs(session, list(chunk_ids))


def _refs(session: Session, chunk_ids: list[int]) -> list[ChunkRef]:
    if not chunk_ids:
        return []
    rows = session.execute(
        select(ScrapeChunk, ScrapeJob)
        .join(ScrapeJob, ScrapeJob.id == ScrapeChunk.job_id)
        .where(ScrapeChunk.id.in_(chunk_ids))
        .order_by(ScrapeChunk.id)
    )
    return [_ref(chunk, job) for chunk, job in rows]
