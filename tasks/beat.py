"""Celery beat driven by the ``scrape_schedules`` table (``celery -A tasks beat`` uses it).

Why a ``Scheduler`` subclass of our own rather than a package:

* sqlalchemy-celery-beat and django-celery-beat keep their own tables (periodic tasks,
  crontab and interval rows) that would have to be kept in sync with ``scrape_schedules``,
  and neither guards against a second beat process;
* celery-redbeat keeps the schedule in Redis (with a lock there): the database would no
  longer be the source of truth, and every API edit would need a mirrored Redis write.

Here the table *is* the schedule: every tick reads it, so a schedule created, edited,
paused or deleted through the API takes effect within ``beat_poll_seconds`` (beat never
sleeps longer), without a restart. Each due run is claimed by a conditional UPDATE of
``next_run_at`` and recorded by the job's unique ``run_key`` in the same transaction
(``models.schedules``): two beat processes started by mistake launch each run once, with no
lock to expire or to hold. Chunks are sent after that transaction commits; if the broker is
down then, the workers' recovery loop sends the committed job's chunks later.

Runs missed while beat was down are caught up with one run each schedule, not a burst.
Static entries of ``beat_schedule`` (if any) still run from memory, as in Celery's own
``Scheduler``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from celery.beat import Scheduler
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from models.base import utcnow
from models.schedules import Launch, launch_due_runs
from models.scraping import ScrapeSchedule
from tasks.app import context
from tasks.dispatch import send_chunks

log = logging.getLogger(__name__)

# Runs claimed per transaction; when a tick fills it, beat ticks again at once.
LAUNCH_BATCH = 100


class DatabaseScheduler(Scheduler):
    """Launches the scrape schedules that are due; ``clock`` is injectable for tests."""

    def __init__(
        self, app: Any, *args: Any, clock: Callable[[], datetime] = utcnow, **kwargs: Any
    ) -> None:
        self.clock = clock
        super().__init__(app, *args, **kwargs)

    @property
    def info(self) -> str:
        return f"database ({ScrapeSchedule.__table__.fullname}), polled every {self.max_interval}s"

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Launch due schedules, run due static entries; the seconds to sleep."""
        delay = min(self.launch_due(), self.max_interval)
        return min(delay, super().tick(*args, **kwargs))

    def launch_due(self) -> float:
        """One pass over the table; the seconds until the next schedule is due."""
        ctx = context(self.app)
        now = self.clock()
        try:
            with ctx.db.transaction() as session:
                launches = launch_due_runs(
                    session, now=now, chunk_size=ctx.settings.scrape_chunk_size, limit=LAUNCH_BATCH
                )
                next_due = session.scalar(
                    select(func.min(ScrapeSchedule.next_run_at)).where(
                        ScrapeSchedule.enabled.is_(True)
                    )
                )
        except SQLAlchemyError:
            log.exception("beat: could not read the schedules; trying again")
            return self.max_interval
        self._send(launches)
        if len(launches) >= LAUNCH_BATCH:
            return 0.0
        if next_due is None:
            return self.max_interval
        return max(0.0, (next_due - now).total_seconds())

    def _send(self, launches: list[Launch]) -> None:
        for launch in launches:
            try:
                send_chunks(self.app, launch.chunks)
            except BrokerError:
                # The job is committed; the workers' recovery resends queued chunks later.
                log.exception("beat: job %s not sent; recovery will resend it", launch.job_id)
