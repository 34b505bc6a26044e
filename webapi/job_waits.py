"""Requests waiting for a scrape job to end (``GET /scrape-jobs/{id}?wait=``), woken by the
job-ended announcements of workers (``tasks/job_events.py``).

Reading the job's status on a timer answered up to one growing pause late (~18 ms on average
for a job of a few tens of milliseconds). Instead each API process holds one Redis
subscription, in a daemon thread started by its first wait. A waiting request registers
*before* it reads the status, so a job that ends between the read and the wait still wakes
it; it reads again when woken, and every ``FALLBACK_POLL_SECONDS`` in case an announcement was
lost. Without Redis, or while the subscription is down, it polls with short growing pauses.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import redis
from flask import Flask

from shelfwatch.config import Settings
from tasks.job_events import job_ended_channel

log = logging.getLogger(__name__)

FALLBACK_POLL_SECONDS = 0.5
_FIRST_POLL, _LONGEST_POLL = 0.005, 0.1  # without the subscription
_RETRY_SECONDS = 1.0
_EXTENSION_KEY = "shelfwatch_job_waits"
_lock = threading.Lock()


@dataclass
class Waiter:
    """One waiting request: woken by its job's announcement, or by a dropped subscription."""

    event: threading.Event = field(default_factory=threading.Event)
    announced: bool = False  # its job was announced as ended (after the end was committed)


class JobEndWatcher:
    """One process's subscription to the job-ended channel, and the requests it wakes."""

    def __init__(self, redis_url: str, channel: str) -> None:
        self.channel = channel
        self.pid = os.getpid()
        # No short read timeout: the thread waits in ``get_message(timeout=...)``; the health
        # check's PING finds a connection that died without closing.
        self._client = redis.Redis.from_url(
            redis_url, socket_connect_timeout=0.5, socket_timeout=5, health_check_interval=10
        )
        self._waiters: dict[str, list[Waiter]] = {}
        self._lock = threading.Lock()
        self._live = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-end-watcher", daemon=True)
        self._thread.start()

    @property
    def live(self) -> bool:
        """Subscribed now: an announcement made from here on reaches its waiters."""
        return self._live.is_set()

    def wait_live(self, timeout: float) -> bool:
        return self._live.wait(timeout)

    @contextmanager
    def watching(self, job_id: str) -> Iterator[Waiter]:
        """A waiter woken when ``job_id`` is announced (or the subscription drops) meanwhile."""
        waiter = Waiter()
        with self._lock:
            self._waiters.setdefault(job_id, []).append(waiter)
        try:
            yield waiter
        finally:
            with self._lock:
                waiters = self._waiters.get(job_id, [])
                waiters.remove(waiter)
                if not waiters:
                    self._waiters.pop(job_id, None)

    def stop(self) -> None:
        """End the subscription (within a second); waits poll from then on."""
        self._stopped.set()

    def _run(self) -> None:
        failing = False
        while not self._stopped.is_set():
            try:
                self._listen()
            except (redis.RedisError, OSError) as error:
                # Once per outage, not once per retry.
                (log.debug if failing else log.warning)(
                    "job-ended subscription down (waits poll meanwhile): %s", error
                )
                failing = True
            self._live.clear()
            self._wake(None, announced=False)  # they read again, then poll
            self._stopped.wait(_RETRY_SECONDS)

    def _listen(self) -> None:
        pubsub = self._client.pubsub()
        try:
            pubsub.subscribe(self.channel)
            while not self._stopped.is_set():
                message = pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    self._live.set()
                    log.info("job-ended subscription up (%s)", self.channel)
                elif message["type"] == "message":
                    self._wake({message["data"].decode()}, announced=True)
        finally:
            pubsub.close()

    def _wake(self, job_ids: set[str] | None, *, announced: bool) -> None:
        """Wake the requests waiting on ``job_ids`` (all of them for None)."""
        with self._lock:
            ids = list(self._waiters) if job_ids is None else job_ids
            waiters = [waiter for job_id in ids for waiter in self._waiters.get(job_id, ())]
        for waiter in waiters:
            waiter.announced = waiter.announced or announced
            waiter.event.set()


def job_end_watcher(app: Flask, settings: Settings) -> JobEndWatcher | None:
    """The watcher of ``app`` in this process, started on first use; None without Redis."""
    if not settings.redis_url:
        return None
    current: JobEndWatcher | None = app.extensions.get(_EXTENSION_KEY)
    if current is not None and current.pid == os.getpid():
        return current
    with _lock:
        current = app.extensions.get(_EXTENSION_KEY)
        if current is None or current.pid != os.getpid():
            current = JobEndWatcher(settings.redis_url, job_ended_channel(settings.redis_prefix))
            app.extensions[_EXTENSION_KEY] = current
        return current


def wait_until_finished(
    job_id: str,
    deadline: float,
    finished: Callable[[], bool],
    watcher: JobEndWatcher | None,
) -> None:
    """Return once the job has ended (``finished()`` reads it afresh, or its end was announced),
    or at ``deadline``."""
    with _watching(watcher, job_id) as waiter:
        pause = _FIRST_POLL
        while not finished():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            live = watcher is not None and watcher.live
            waiter.event.wait(min(FALLBACK_POLL_SECONDS if live else pause, left))
            if waiter.announced:  # sent after the end was committed: no need to read it
                return
            waiter.event.clear()
            pause = min(pause * 1.5, _LONGEST_POLL)


@contextmanager
def _watching(watcher: JobEndWatcher | None, job_id: str) -> Iterator[Waiter]:
    if watcher is None:
        yield Waiter()  # never woken: the pauses alone pace the reads
        return
    with watcher.watching(job_id) as waiter:
        yield waiter
