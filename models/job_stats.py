"""A job's stats: the counters every chunk reports, and how chunks add up to a job.

Shape (every key optional in a chunk, always present in a job)::

    {"requests": 12, "responses": {"200": 11, "404": 1}, "items": 10,
     "dropped": {"missing_name": 1}, "cached": 0, "ssrf_refused": 0, "errors": 1,
     "not_product": 1}
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

COUNTERS = ("requests", "items", "cached", "ssrf_refused", "errors", "not_product")
BREAKDOWNS = ("responses", "dropped")


def empty_stats() -> dict[str, Any]:
    stats: dict[str, Any] = dict.fromkeys(COUNTERS, 0)
    stats.update({name: {} for name in BREAKDOWNS})
    return stats


def merge_stats(parts: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
    """The sum of chunk stats: counters add up, breakdowns add up key by key."""
    total = empty_stats()
    for part in parts:
        for name in COUNTERS:
            total[name] += int((part or {}).get(name) or 0)
        for name in BREAKDOWNS:
            for key, value in ((part or {}).get(name) or {}).items():
                total[name][str(key)] = total[name].get(str(key), 0) + int(value)
    return total
