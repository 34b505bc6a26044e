"""When a schedule runs: a five-field cron expression in an IANA time zone, or an interval.

Cron expressions are evaluated on the zone's wall clock (``"0 6 * * *"`` in
``Europe/Berlin`` is 06:00 in Berlin, summer and winter). Around daylight-saving changes:

* a wall-clock time that happens twice (autumn) runs once, at its first occurrence;
* a wall-clock time that does not exist (spring) runs once, an hour later.

Intervals are plain elapsed time in UTC, anchored on the previous scheduled run, so they
do not drift when a run is launched late.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from croniter import croniter

MIN_INTERVAL_SECONDS = 10  # also a CHECK constraint of scrape_schedules
MAX_INTERVAL_SECONDS = 366 * 24 * 3600
CRON_FIELDS = 5


class InvalidTiming(ValueError):
    """A timing the scheduler cannot follow; ``field`` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


@dataclass(frozen=True)
class Timing:
    cron: str | None
    timezone: str
    interval_seconds: int | None

    def check(self) -> None:
        """Raise ``InvalidTiming`` unless exactly one of cron/interval is set and valid."""
        if (self.cron is None) == (self.interval_seconds is None):
            raise InvalidTiming("cron", "set exactly one of cron and interval_seconds")
        if self.timezone not in _zone_names():
            raise InvalidTiming("timezone", "not an IANA time zone name (e.g. Europe/Berlin)")
        if self.cron is not None:
            if len(self.cron.split()) != CRON_FIELDS or not croniter.is_valid(self.cron):
                raise InvalidTiming("cron", "not a five-field cron expression")
        elif not MIN_INTERVAL_SECONDS <= self.interval_seconds <= MAX_INTERVAL_SECONDS:  # type: ignore[operator]
            raise InvalidTiming(
                "interval_seconds",
                f"must be between {MIN_INTERVAL_SECONDS} and {MAX_INTERVAL_SECONDS}",
            )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def next_cron_after(self, moment: datetime) -> datetime:
        """The first cron time strictly after ``moment`` (aware), as an aware UTC datetime."""
        assert self.cron is not None
        zone = self.zone
        wall = moment.astimezone(zone).replace(tzinfo=None)
        # Iterating naive wall-clock times, then placing each in the zone with fold=0, runs
        # a repeated hour once and a skipped hour an hour late (see the module docstring).
        times = croniter(self.cron, wall)
        while True:
            candidate = times.get_next(datetime).replace(tzinfo=zone)
            if candidate > moment:
                return candidate.astimezone(moment.tzinfo)

    def first_run(self, now: datetime, last_run_at: datetime | None = None) -> datetime:
        """The next run of a new, edited or resumed schedule.

        Cron: the next matching time. Interval: one interval after the last run, or now when
        that moment has already passed (one run, however many were missed).
        """
        if self.cron is not None:
            return self.next_cron_after(now)
        interval = timedelta(seconds=self.interval_seconds or 0)
        return max(now, last_run_at + interval) if last_run_at else now + interval

    def following(self, scheduled_for: datetime, now: datetime) -> datetime:
        """The run after the one scheduled for ``scheduled_for``, launched at ``now``.

        Always after ``now``: runs missed while beat was down are not replayed one by one.
        """
        if self.cron is not None:
            return self.next_cron_after(max(scheduled_for, now))
        interval = self.interval_seconds or 0
        elapsed = (now - scheduled_for).total_seconds()
        steps = max(1, math.floor(elapsed / interval) + 1)
        return scheduled_for + timedelta(seconds=steps * interval)
