"""The worker's consumer, sending its buffered task events in one message per short interval.

Celery buffers task events (``task-received``, ``-started``, ``-succeeded``…) and flushes the
buffer on the event loop's next turn, so a worker running many short tasks publishes about one
``task.multi`` message per event: a fresh Redis client, a JSON body and a round trip each, on
the consumer thread that also fetches and acknowledges every task message (measured: a third of
that thread's time with single-URL jobs). Here the first buffered event schedules one flush
``EVENT_FLUSH_SECONDS`` later, which takes every event buffered by then. Flower and the other
event readers see each event at most that much later; a full buffer (Celery's ``buffer_limit``)
still goes out at once, and the buffer is flushed when the consumer stops.
"""

from __future__ import annotations

from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.common import ignore_errors
from vine import promise

EVENT_FLUSH_SECONDS = 0.05


class Consumer(CeleryConsumer):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._event_flush_due = False
        # Reused for every buffered event, as Celery's own flush promise is: the hub's ready
        # set then holds at most one pending scheduling call.
        self._schedule_flush_promise = promise(self._schedule_event_flush)

    def on_send_event_buffered(self) -> None:
        # Called from the task threads too; ``call_soon`` is the hub's thread-safe entry.
        if self.hub:
            self.hub.call_soon(self._schedule_flush_promise)

    def _schedule_event_flush(self) -> None:
        """On the loop thread: one timed flush for everything buffered until it fires."""
        if not self._event_flush_due:
            self._event_flush_due = True
            self.hub.call_later(EVENT_FLUSH_SECONDS, self._flush_due_events)

    def _flush_due_events(self) -> None:
        self._event_flush_due = False
        self._flush_events()

    def stop(self) -> None:
        # Events still waiting for their flush leave before the connections close.
        if self.connection is not None:
            ignore_errors(self.connection, self._flush_events)
        super().stop()
