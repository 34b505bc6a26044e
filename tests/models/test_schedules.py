"""Schedules: timing rules (cron in a time zone, intervals, DST), lifecycle, and launching
due runs on PostgreSQL with a clock the test controls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from models import Database, ScrapeJob, ScrapeSchedule
from models.schedule_timing import InvalidTiming, Timing
from models.schedules import (
    WatchManagedSchedule,
    create_schedule,
    delete_schedule,
    get_schedule,
    launch_due_runs,
    pause_schedule,
    resume_schedule,
    run_key,
    update_schedule,
)

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
URLS = ["http://127.0.0.1:1/p/1", "http://127.0.0.1:1/p/2", "http://127.0.0.1:1/p/3"]
EVERY_MINUTE = Timing(None, "UTC", 60)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# ---- timing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timing", "field"),
    [
        (Timing(None, "UTC", None), "cron"),
        (Timing("* * * * *", "UTC", 60), "cron"),
        (Timing("61 * * * *", "UTC", None), "cron"),
        (Timing("* * * * * *", "UTC", None), "cron"),
        (Timing("every day", "UTC", None), "cron"),
        (Timing("0 6 * * *", "Mars/Olympus", None), "timezone"),
        (Timing("0 6 * * *", "../etc/passwd", None), "timezone"),
        (Timing(None, "UTC", 9), "interval_seconds"),
        (Timing(None, "UTC", 10**9), "interval_seconds"),
    ],
)
def test_invalid_timings_name_their_field(timing: Timing, field: str) -> None:
    with pytest.raises(InvalidTiming) as raised:
        timing.check()
    assert raised.value.field == field


def test_cron_runs_on_the_wall_clock_of_its_time_zone() -> None:
    timing = Timing("0 6 * * *", "Europe/Berlin", None)
    # 06:00 in Berlin is 04:00 UTC in summer and 05:00 UTC in winter.
    assert timing.next_cron_after(T0) == _utc("2026-05-05T06:00:00+02:00")
    assert timing.next_cron_after(_utc("2026-12-01T12:00:00+00:00")) == _utc(
        "2026-12-02T06:00:00+01:00"
    )


def test_a_repeated_autumn_hour_runs_once_and_a_skipped_spring_hour_runs_an_hour_late() -> None:
    timing = Timing("30 2 * * *", "Europe/Berlin", None)
    first = timing.next_cron_after(_utc("2026-10-24T12:00:00+02:00"))
    assert first == _utc("2026-10-25T02:30:00+02:00")
    assert timing.next_cron_after(first) == _utc("2026-10-26T02:30:00+01:00")
    spring = timing.next_cron_after(_utc("2026-03-28T12:00:00+01:00"))
    assert spring == _utc("2026-03-29T03:30:00+02:00")
    assert timing.next_cron_after(spring) == _utc("2026-03-30T02:30:00+02:00")


def test_an_interval_follows_its_anchor_and_catches_up_with_one_run() -> None:
    timing = Timing(None, "UTC", 600)
    assert timing.first_run(T0) == T0 + timedelta(minutes=10)
    # Launched a little late: the series keeps its anchor.
    assert timing.following(T0, T0 + timedelta(seconds=3)) == T0 + timedelta(minutes=10)
    # Down for 95 minutes: the next run is the first slot after now, not nine overdue ones.
    assert timing.following(T0, T0 + timedelta(minutes=95)) == T0 + timedelta(minutes=100)


def test_cron_catch_up_skips_to_the_first_time_after_now() -> None:
    timing = Timing("*/15 * * * *", "UTC", None)
    assert timing.following(T0, T0 + timedelta(minutes=50)) == T0 + timedelta(minutes=60)


# ---- lifecycle ------------------------------------------------------------------------------


def _schedule(db: Database, timing: Timing = EVERY_MINUTE, **extra: object) -> int:
    with db.transaction() as session:
        schedule = create_schedule(
            session, spider="product", urls=URLS, timing=timing, now=T0, created_by=7, **extra
        )
        return schedule.id


def _read(db: Database, schedule_id: int) -> ScrapeSchedule:
    with db.transaction() as session:
        return get_schedule(session, schedule_id)


def _launch(db: Database, now: datetime, chunk_size: int = 2) -> list:
    with db.transaction() as session:
        return launch_due_runs(session, now=now, chunk_size=chunk_size)


def _jobs(db: Database) -> list[ScrapeJob]:
    with db.transaction() as session:
        return list(session.scalars(select(ScrapeJob).order_by(ScrapeJob.created_at)))


def test_a_due_schedule_launches_one_job_and_moves_its_next_run(database: Database) -> None:
    schedule_id = _schedule(database)
    assert _read(database, schedule_id).next_run_at == T0 + timedelta(minutes=1)
    assert _launch(database, T0 + timedelta(seconds=59)) == []

    launches = _launch(database, T0 + timedelta(minutes=1, seconds=2))
    assert len(launches) == 1 and len(launches[0].chunks) == 2
    assert launches[0].run_key == f"{schedule_id}:2026-05-04T10:01:00Z"
    job = _jobs(database)[0]
    assert (job.spider, job.urls, job.schedule_id, job.created_by) == (
        "product",
        URLS,
        schedule_id,
        7,
    )
    schedule = _read(database, schedule_id)
    assert schedule.next_run_at == T0 + timedelta(minutes=2)
    assert schedule.last_run_at == T0 + timedelta(minutes=1, seconds=2)
    assert schedule.last_job_id == job.id
    assert _launch(database, T0 + timedelta(minutes=1, seconds=30)) == []


def test_catch_up_after_downtime_runs_once(database: Database) -> None:
    schedule_id = _schedule(database)
    later = T0 + timedelta(hours=3, seconds=20)
    assert len(_launch(database, later)) == 1
    assert _launch(database, later + timedelta(seconds=1)) == []
    assert len(_jobs(database)) == 1
    assert _read(database, schedule_id).next_run_at == T0 + timedelta(hours=3, minutes=1)


def test_a_run_already_launched_is_never_launched_again(database: Database) -> None:
    schedule_id = _schedule(database)
    _launch(database, T0 + timedelta(minutes=1))
    # Someone puts the next run back on a time that already ran (e.g. a restored backup).
    with database.transaction() as session:
        get_schedule(session, schedule_id).next_run_at = T0 + timedelta(minutes=1)
    assert _launch(database, T0 + timedelta(minutes=1, seconds=5)) == []
    assert len(_jobs(database)) == 1
    assert _read(database, schedule_id).next_run_at == T0 + timedelta(minutes=2)
    with database.transaction() as session:
        keys = session.scalars(select(ScrapeJob.run_key)).all()
    assert keys == [run_key(schedule_id, T0 + timedelta(minutes=1))]


def test_editing_the_interval_moves_the_next_run(database: Database) -> None:
    schedule_id = _schedule(database)
    _launch(database, T0 + timedelta(minutes=1))
    with database.transaction() as session:
        schedule = get_schedule(session, schedule_id)
        update_schedule(
            session, schedule, {"interval_seconds": 3600}, now=T0 + timedelta(minutes=1, seconds=10)
        )
    assert _read(database, schedule_id).next_run_at == T0 + timedelta(hours=1, minutes=1)
    with database.transaction() as session:
        schedule = get_schedule(session, schedule_id)
        update_schedule(
            session,
            schedule,
            {"cron": "0 12 * * *", "interval_seconds": None, "timezone": "Asia/Tokyo"},
            now=T0 + timedelta(minutes=2),
        )
    assert _read(database, schedule_id).next_run_at == _utc("2026-05-05T12:00:00+09:00")


def test_an_edit_that_breaks_the_timing_is_refused(database: Database) -> None:
    schedule_id = _schedule(database)
    with database.transaction() as session, pytest.raises(InvalidTiming):
        update_schedule(session, get_schedule(session, schedule_id), {"cron": "0 * * * *"})


def test_paused_schedules_do_not_run_and_resume_runs_once(database: Database) -> None:
    schedule_id = _schedule(database)
    with database.transaction() as session:
        pause_schedule(session, get_schedule(session, schedule_id))
    assert _read(database, schedule_id).next_run_at is None
    assert _launch(database, T0 + timedelta(hours=1)) == []
    with database.transaction() as session:
        resume_schedule(session, get_schedule(session, schedule_id))
    schedule = _read(database, schedule_id)
    assert schedule.enabled and schedule.next_run_at is not None
    assert len(_launch(database, schedule.next_run_at)) == 1


def test_deleted_schedules_do_not_run(database: Database) -> None:
    schedule_id = _schedule(database)
    with database.transaction() as session:
        delete_schedule(session, get_schedule(session, schedule_id))
    assert _launch(database, T0 + timedelta(hours=1)) == []


def test_watch_schedules_refuse_edits_of_what_they_crawl(database: Database) -> None:
    schedule_id = _schedule(database, watch_product_id=5)
    with database.transaction() as session, pytest.raises(WatchManagedSchedule):
        update_schedule(session, get_schedule(session, schedule_id), {"urls": URLS[:1]})
    with database.transaction() as session:
        update_schedule(session, get_schedule(session, schedule_id), {"interval_seconds": 120})
    assert _read(database, schedule_id).interval_seconds == 120
