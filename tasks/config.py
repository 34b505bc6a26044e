"""Celery configuration derived from the shared ``Settings``: queues, routes, reliability."""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue

from shelfwatch.config import Settings
from tasks.redis_transport import TRANSPORT as REDIS_TRANSPORT

QUEUES = ("default", "scrape", "stock")

ROUTES = {
    "shelfwatch.scrape.*": "scrape",
    "shelfwatch.stock.*": "stock",
    "shelfwatch.assignments.*": "stock",
}


def _transport_options(settings: Settings) -> dict[str, Any]:
    broker = settings.celery_broker_url
    if broker.startswith("filesystem"):
        folder = settings.broker_folder
        for sub in ("out", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folder / "out"),
            "data_folder_out": str(folder / "out"),
            "processed_folder": str(folder / "processed"),
            # Fanout exchanges (remote control, Flower) would otherwise land in the cwd.
            "control_folder": str(folder / "control"),
            "store_processed": False,
        }
    if broker.startswith(("redis", "rediss")):
        # Above the longest hard time limit, so a slow job is not delivered twice;
        # dead workers are found by heartbeats long before this expires.
        return {
            "visibility_timeout": settings.scrape_hard_time_limit * 2 + 600,
            # One list per priority (0 is served first by kombu's Redis transport).
            "priority_steps": list(range(10)),
            "sep": ":",
            "queue_order_strategy": "priority",
            # kombu keeps every deployment's unacknowledged messages in one hash by default;
            # with a namespace they are kept apart like the queues, so one deployment's
            # workers never restore (redeliver) another's messages on their own schedule.
            **_unacked_keys(settings.queue_namespace),
        }
    return {}


def _unacked_keys(namespace: str) -> dict[str, str]:
    if not namespace:
        return {}  # kombu's defaults: an existing deployment keeps its unacked messages
    return {
        "unacked_key": f"{namespace}unacked",
        "unacked_index_key": f"{namespace}unacked_index",
        "unacked_mutex_key": f"{namespace}unacked_mutex",
    }


def _is_redis(settings: Settings) -> bool:
    return settings.celery_broker_url.startswith(("redis://", "rediss://"))


def celery_settings(settings: Settings) -> dict[str, Any]:
    """Lower-case Celery settings for ``app.conf.update``."""
    queues = [
        Queue(
            settings.queue(name),
            Exchange(settings.queue(name)),
            routing_key=settings.queue(name),
            # RabbitMQ honours message priorities only on queues declared with a maximum.
            queue_arguments={"x-max-priority": 10} if name == "scrape" else None,
        )
        for name in QUEUES
    ]
    routes = {pattern: {"queue": settings.queue(q)} for pattern, q in ROUTES.items()}
    return {
        "broker_url": settings.celery_broker_url,
        "broker_transport_options": _transport_options(settings),
        # kombu's Redis transport, minus a new Redis client per command (tasks/redis_transport.py).
        "broker_transport": REDIS_TRANSPORT if _is_redis(settings) else None,
        "broker_connection_retry_on_startup": True,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        "task_queues": queues,
        "task_default_queue": settings.queue("default"),
        "task_routes": routes,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        # Threads share the process's one Twisted reactor (see docs/architecture.md).
        "worker_pool": "threads",
        "worker_concurrency": settings.worker_concurrency,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_send_task_events": True,
        # Task events in one message per 50 ms, not one per event (tasks/worker_consumer.py).
        "worker_consumer": "tasks.worker_consumer:Consumer",
        "task_send_sent_event": True,
        "task_track_started": True,
        "task_soft_time_limit": settings.scrape_soft_time_limit,
        "task_time_limit": settings.scrape_hard_time_limit,
        "worker_hijack_root_logger": False,
        "timezone": "UTC",
        "enable_utc": True,
        # Schedules live in the database (tasks/beat.py); beat re-reads them this often.
        "beat_scheduler": "tasks.beat:DatabaseScheduler",
        # Events and remote control are broker-wide; namespaced like the queues so that two
        # deployments (or test runs) sharing a broker do not see each other's tasks.
        "event_exchange": settings.queue("celeryev"),
        "control_exchange": settings.queue("celery"),
        "beat_max_loop_interval": settings.beat_poll_seconds,
    }
