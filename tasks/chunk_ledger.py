"""Per-chunk accounting inside a worker's shared batch crawl (reactor thread only).

Several chunks share one crawler, so the crawler's stats mix them up. Every request of the
batch crawl carries its chunk's key in ``meta``; the ledger counts, per chunk, the same
Scrapy-style keys that ``tasks.crawl_stats.chunk_stats`` reads from a crawl of its own
(``downloader/request_count``, ``downloader/response_status_count/<n>``,
``item_scraped_count``, ``drop_item/product/<reason>``, ``pages/error/<kind>``, …), and knows
when a chunk is over: its requests have all reached their callback or errback, its items have
all left the pipelines, and the rows they produced are committed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer

log = logging.getLogger(__name__)

CHUNK_META = "shelfwatch_chunk"
ChunkKey = tuple[int, int]  # (chunk id, attempt): a re-run of a chunk is another entry


@dataclass
class ChunkEntry:
    job_id: str
    on_end: Callable[[dict[str, Any], str | None], None]
    pending_requests: int = 0
    pending_items: int = 0
    stopped: bool = False
    fenced: bool = False  # its task gave up on it: its rows are no longer stored
    closing: bool = False
    stats: Counter[str] = field(default_factory=Counter)


class ChunkLedger:
    """The chunks a batch crawl is running, and what each of them has done so far."""

    def __init__(self) -> None:
        self.entries: dict[ChunkKey, ChunkEntry] = {}
        self.flush: Callable[[], defer.Deferred[None]] = lambda: defer.succeed(None)

    def add(self, key: ChunkKey, entry: ChunkEntry, requests: int) -> None:
        entry.pending_requests = requests
        self.entries[key] = entry
        self._maybe_done(key)

    def job_id(self, key: ChunkKey) -> str | None:
        entry = self.entries.get(key)
        return entry.job_id if entry else None

    def count(self, key: ChunkKey | None, name: str, value: int = 1) -> None:
        entry = self.entries.get(key) if key is not None else None
        if entry is not None:
            entry.stats[name] += value

    def snapshot(self, key: ChunkKey) -> dict[str, Any]:
        entry = self.entries.get(key)
        return dict(entry.stats) if entry else {}

    def is_stopped(self, key: ChunkKey | None) -> bool:
        entry = self.entries.get(key) if key is not None else None
        return entry is not None and entry.stopped

    def stop(self, key: ChunkKey) -> None:
        """Requests of this chunk not yet sent are dropped; those in flight finish."""
        if (entry := self.entries.get(key)) is not None:
            entry.stopped = True

    def fence(self, key: ChunkKey) -> None:
        """Its task has given up waiting: stopped, and nothing more of it is stored."""
        if (entry := self.entries.get(key)) is not None:
            entry.stopped = entry.fenced = True

    def is_fenced(self, key: ChunkKey | None) -> bool:
        entry = self.entries.get(key) if key is not None else None
        return entry is not None and entry.fenced

    def request_done(self, key: ChunkKey | None, items: int = 0) -> None:
        """A request reached its callback (with ``items`` scraped) or its errback."""
        entry = self.entries.get(key) if key is not None else None
        if entry is None:
            return
        entry.pending_requests -= 1
        entry.pending_items += items
        self._maybe_done(key)  # type: ignore[arg-type]

    def item_done(self, key: ChunkKey | None) -> None:
        """An item left the pipelines (stored, dropped or failed)."""
        entry = self.entries.get(key) if key is not None else None
        if entry is None:
            return
        entry.pending_items -= 1
        self._maybe_done(key)  # type: ignore[arg-type]

    def end_all(self, crash: str) -> None:
        """The crawl is over: every chunk still in it ends now, with ``crash``."""
        for key in list(self.entries):
            self.end_one(key, crash)

    def end_one(self, key: ChunkKey, crash: str) -> None:
        entry = self.entries.pop(key, None)
        if entry is not None:
            entry.on_end(dict(entry.stats), crash)

    def _maybe_done(self, key: ChunkKey) -> None:
        entry = self.entries[key]
        if entry.closing or entry.pending_requests > 0 or entry.pending_items > 0:
            return
        # The chunk's rows may still sit in the storage buffer: it ends once they are written
        # (a failed write is counted on it first).
        entry.closing = True
        self.flush().addBoth(lambda _: self._end(key))

    def _end(self, key: ChunkKey) -> None:
        entry = self.entries.pop(key, None)
        if entry is not None:
            entry.on_end(dict(entry.stats), None)
