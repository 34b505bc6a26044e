"""Scrape schedules: their lifecycle, and launching the runs that are due.

``next_run_at`` is the whole state the scheduler needs: a paused schedule has none, an edit
of its timing recomputes it, and beat launches every enabled schedule whose time has come.

Launching a run (``launch_due_runs``) claims it twice over, in one transaction with the job:

1. a conditional ``UPDATE … SET next_run_at = <following> WHERE id = … AND next_run_at =
   <the claimed time>``: of two beat processes ticking at once, the second waits for the
   first's row lock, then finds ``next_run_at`` moved and updates nothing;
2. the job's unique ``run_key`` (``"<schedule id>:<scheduled time>"``): a run that was
   launched once can never be launched again, even if an edit brings its time back.

Missed runs (beat down, or the database unreachable) are caught up with **one** run: the
oldest missed time is launched and the next run is the first time after now.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.base import utcnow
from models.jobs import ChunkRef, create_job
from models.schedule_timing import InvalidTiming, Timing
from models.scraping import ScrapeSchedule

log = logging.getLogger(__name__)

TIMING_FIELDS = ("cron", "timezone", "interval_seconds")
# What a watch schedule takes from its product's watches; editing them by hand is refused.
WATCH_MANAGED_FIELDS = frozenset({"spider", "urls", "args"})
EDITABLE_FIELDS = frozenset({"name", "max_age", "enabled", *TIMING_FIELDS, *WATCH_MANAGED_FIELDS})

__all__ = ["InvalidTiming", "Launch", "ScheduleNotFound", "WatchManagedSchedule"]


class ScheduleNotFound(LookupError):
    """No schedule with this id."""


class WatchManagedSchedule(Exception):
    """The schedule follows a product's watches; its spider, URLs and args are not edited."""


@dataclass(frozen=True)
class Launch:
    """A run launched by ``launch_due_runs``; its chunks are sent after commit."""

    schedule_id: int
    job_id: str
    run_key: str
    chunks: list[ChunkRef]


def timing_of(schedule: ScrapeSchedule) -> Timing:
    return Timing(schedule.cron, schedule.timezone, schedule.interval_seconds)


def create_schedule(
    session: Session,
    *,
    spider: str,
    urls: list[str],
    timing: Timing,
    args: dict[str, Any] | None = None,
    enabled: bool = True,
    name: str | None = None,
    max_age: int | None = None,
    created_by: int | None = None,
    watch_product_id: int | None = None,
    first_run_at: datetime | None = None,
    now: datetime | None = None,
) -> ScrapeSchedule:
    """Add a schedule; its first run is ``first_run_at`` or the timing's next time."""
    timing.check()
    now = now or utcnow()
    schedule = ScrapeSchedule(
        name=name,
        spider=spider,
        urls=list(urls),
        args=args or {},
        max_age=max_age,
        cron=timing.cron,
        timezone=timing.timezone,
        interval_seconds=timing.interval_seconds,
        enabled=enabled,
        watch_product_id=watch_product_id,
        created_by=created_by,
        created_at=now,
        updated_at=now,
    )
    schedule.next_run_at = (first_run_at or timing.first_run(now)) if enabled else None
    session.add(schedule)
    session.flush()
    return schedule


def get_schedule(session: Session, schedule_id: int, *, for_update: bool = False) -> ScrapeSchedule:
    query = select(ScrapeSchedule).where(ScrapeSchedule.id == schedule_id)
    schedule = session.scalar(query.with_for_update() if for_update else query)
    if schedule is None:
        raise ScheduleNotFound(f"no schedule {schedule_id}")
    return schedule


def update_schedule(
    session: Session,
    schedule: ScrapeSchedule,
    changes: Mapping[str, Any],
    *,
    now: datetime | None = None,
) -> ScrapeSchedule:
    """Apply ``changes``; a new timing (or re-enabling) recomputes the next run."""
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    edited = {key for key, value in changes.items() if getattr(schedule, key) != value}
    if schedule.watch_product_id is not None and edited & WATCH_MANAGED_FIELDS:
        raise WatchManagedSchedule(f"schedule {schedule.id} follows product watches")
    was_enabled = schedule.enabled
    timing = Timing(
        changes.get("cron", schedule.cron),
        changes.get("timezone", schedule.timezone),
        changes.get("interval_seconds", schedule.interval_seconds),
    )
    timing.check()
    for key in edited:
        setattr(schedule, key, changes[key])
    now = now or utcnow()
    if not schedule.enabled:
        schedule.next_run_at = None
    elif not was_enabled or edited & set(TIMING_FIELDS):
        schedule.next_run_at = timing.first_run(now, schedule.last_run_at)
    schedule.updated_at = now
    session.flush()
    return schedule


def pause_schedule(session: Session, schedule: ScrapeSchedule) -> ScrapeSchedule:
    """No run until resumed; runs that fall in the pause are skipped, not caught up."""
    return update_schedule(session, schedule, {"enabled": False})


def resume_schedule(session: Session, schedule: ScrapeSchedule) -> ScrapeSchedule:
    return update_schedule(session, schedule, {"enabled": True})


def delete_schedule(session: Session, schedule: ScrapeSchedule) -> None:
    """Remove the schedule; its past jobs stay (their ``schedule_id`` keeps the id)."""
    session.delete(schedule)
    session.flush()


def run_key(schedule_id: int, scheduled_for: datetime) -> str:
    return f"{schedule_id}:{scheduled_for.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def launch_due_runs(
    session: Session, *, now: datetime, chunk_size: int, limit: int = 100
) -> list[Launch]:
    """Claim every due run (up to ``limit``) and create its job; see the module docstring."""
    due = session.scalars(
        select(ScrapeSchedule)
        .where(ScrapeSchedule.enabled.is_(True), ScrapeSchedule.next_run_at <= now)
        .order_by(ScrapeSchedule.next_run_at, ScrapeSchedule.id)
        .limit(limit)
        # Another beat's claimed rows are skipped, not waited for (PostgreSQL; SQLite
        # serializes writers anyway).
        .with_for_update(skip_locked=True)
    ).all()
    launches = []
    for schedule in due:
        launch = _launch(session, schedule, now=now, chunk_size=chunk_size)
        if launch is not None:
            launches.append(launch)
    return launches


def _launch(
    session: Session, schedule: ScrapeSchedule, *, now: datetime, chunk_size: int
) -> Launch | None:
    scheduled_for = schedule.next_run_at
    assert scheduled_for is not None
    following = timing_of(schedule).following(scheduled_for, now)
    if not _claim(session, schedule.id, scheduled_for, following, now):
        return None
    key = run_key(schedule.id, scheduled_for)
    try:
        with session.begin_nested():
            job, chunks = create_job(
                session,
                spider=schedule.spider,
                urls=schedule.urls,
                args=schedule.args,
                max_age=schedule.max_age,
                created_by=schedule.created_by,
                schedule_id=schedule.id,
                run_key=key,
                chunk_size=chunk_size,
            )
    except IntegrityError:
        log.warning("schedule %s: run %s was already launched; skipped", schedule.id, key)
        return None
    _set(session, schedule.id, last_job_id=job.id)
    log.info("schedule %s: launched job %s for run %s", schedule.id, job.id, key)
    return Launch(schedule.id, job.id, key, chunks)


def _claim(
    session: Session,
    schedule_id: int,
    scheduled_for: datetime,
    following: datetime,
    now: datetime,
) -> bool:
    claimed = session.execute(
        update(ScrapeSchedule)
        .where(
            ScrapeSchedule.id == schedule_id,
            ScrapeSchedule.enabled.is_(True),
            ScrapeSchedule.next_run_at == scheduled_for,
        )
        # updated_at records people's edits, not runs.
        .values(next_run_at=following, last_run_at=now, updated_at=ScrapeSchedule.updated_at)
        .execution_options(synchronize_session=False)
    ).rowcount
    return bool(claimed)


def _set(session: Session, schedule_id: int, **values: Any) -> None:
    session.execute(
        update(ScrapeSchedule)
        .where(ScrapeSchedule.id == schedule_id)
        .values(**values, updated_at=ScrapeSchedule.updated_at)
        .execution_options(synchronize_session=False)
    )
