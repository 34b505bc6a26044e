"""What every PostgreSQL connection of the pool is set up with."""

from __future__ import annotations

from datetime import UTC

from sqlalchemy import text

from models import Database


def test_sessions_run_in_utc_and_timestamps_come_back_in_utc(database: Database) -> None:
    with database.primary.connect() as connection:
        assert connection.execute(text("SHOW TIME ZONE")).scalar() == "UTC"
        moment = connection.execute(text("SELECT now()")).scalar()
    # datetime.timezone.utc itself (not a ZoneInfo for the server's zone): the cheap path.
    assert moment.tzinfo is UTC
