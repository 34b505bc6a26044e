"""The scraped-products listing cache's generation counter, shared by the API and workers.

Listings are cached under the current generation; a job that stores new data bumps it (with
its job-ended announcement, ``tasks/job_events.py``), so every cached page is stale at once
without scanning keys.
"""

from __future__ import annotations

import secrets
from typing import Any

GENERATION_KEY = "scraped-products:version"


def generation_key(prefix: str) -> str:
    return prefix + GENERATION_KEY


def queue_generation_bump(pipe: Any, prefix: str) -> None:
    """Add the bump to a pipeline (so it can share a round trip with other commands)."""
    key = generation_key(prefix)
    # A random start when the counter is missing (evicted), as the API's reader does.
    pipe.set(key, secrets.randbits(48), nx=True)
    pipe.incr(key)
