"""Group commit for chunk messages: one-chunk jobs submitted close together share a message.

Every Celery message costs a worker about as much as the small crawl it carries (consume,
three task events, the tracer, the ack), so the API's process hands each one-chunk job's
ref to its coalescer instead of sending it. A background thread sends what is pending as
``run_chunks`` messages: at once when it sent nothing in the last ``linger`` (a lone job
waits for nothing), otherwise when the linger since its last send is over or a message is
full — under load, each message carries what arrived meanwhile. The refs are only sent
after their rows committed (the caller's job); a process that dies with refs pending leaves
their chunks queued, and recovery sends them again (``redispatch_queued_chunks``).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time

from celery import Celery

from models.jobs import ChunkRef
from tasks.app import context
from tasks.dispatch import send_chunk_groups

log = logging.getLogger(__name__)


class ChunkCoalescer:
    """One process's pending refs and the thread that sends them."""

    def __init__(self, app: Celery, *, max_chunks: int, max_urls: int, linger: float) -> None:
        self.app = app
        self.max_chunks = max(1, max_chunks)
        self.max_urls = max_urls
        self.linger = linger
        self.pid = os.getpid()
        self._pending: list[ChunkRef] = []
        self._changed = threading.Condition()
        self._last_sent = float("-inf")
        self._thread = threading.Thread(target=self._run, name="chunk-coalescer", daemon=True)
        self._thread.start()

    def submit(self, ref: ChunkRef) -> None:
        """Queue a committed chunk's ref for sending (returns at once)."""
        with self._changed:
            self._pending.append(ref)
            self._changed.notify()

    def flush(self) -> None:
        """Send what is pending now, in this thread (at exit; tests)."""
        with self._changed:
            refs, self._pending = self._pending, []
        self._send(refs)

    def _run(self) -> None:
        while True:
            self._send(self._gather())

    def _gather(self) -> list[ChunkRef]:
        """Wait for refs, then for the linger since the last send unless a message is full."""
        with self._changed:
            while not self._pending:
                self._changed.wait()
            due = self._last_sent + self.linger
            while len(self._pending) < self.max_chunks:
                remaining = due - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            refs, self._pending = self._pending, []
            self._last_sent = time.monotonic()
            return refs

    def _send(self, refs: list[ChunkRef]) -> None:
        if not refs:
            return
        try:
            send_chunk_groups(self.app, refs, self.max_chunks, self.max_urls)
        except Exception:  # the broker is down: the chunks stay queued for recovery
            log.exception(
                "could not send %d chunk(s) (recovery will): %s",
                len(refs),
                [r.chunk_id for r in refs],
            )


_lock = threading.Lock()


def coalescer(app: Celery) -> ChunkCoalescer:
    """The coalescer of ``app`` in this process (a forked child makes its own)."""
    current: ChunkCoalescer | None = getattr(app, "shelfwatch_coalescer", None)
    if current is not None and current.pid == os.getpid():
        return current
    with _lock:
        current = getattr(app, "shelfwatch_coalescer", None)
        if current is None or current.pid != os.getpid():
            settings = context(app).settings
            current = ChunkCoalescer(
                app,
                max_chunks=settings.scrape_coalesce_max_chunks,
                max_urls=settings.scrape_batch_max_urls,
                linger=settings.scrape_coalesce_linger_ms / 1000,
            )
            # A clean exit (gunicorn restarting a worker) sends what is pending.
            atexit.register(current.flush)
            app.shelfwatch_coalescer = current  # type: ignore[attr-defined]
        return current
