"""The Celery application factory."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from shelfwatch.config import Settings, load_settings
from tasks.config import celery_settings
from tasks.context import TaskContext

# Modules whose ``register(app)`` adds their tasks; each owns one domain. Tasks are
# registered with ``shared=False``: each app (tests build several) keeps its own.
TASK_MODULES: tuple[str, ...] = ("tasks.scrape", "tasks.stock", "tasks.assignments")


def create_celery_app(settings: Settings | None = None, *, configure: Any = None) -> Celery:
    """A Celery app for ``settings`` (the environment when None) with every task registered."""
    settings = settings or load_settings()
    app = Celery("shelfwatch", set_as_current=False)
    app.conf.update(configure or celery_settings(settings))
    app.shelfwatch = TaskContext(settings)  # type: ignore[attr-defined]
    for module_name in TASK_MODULES:
        module = __import__(module_name, fromlist=["register"])
        module.register(app)
    return app


def context(app: Celery) -> TaskContext:
    return app.shelfwatch  # type: ignore[attr-defined,no-any-return]


@worker_process_init.connect
def _forget_parent_connections(**_kwargs: Any) -> None:
    # Connections opened before the prefork pool forked must not be shared by children.
    from celery import current_app

    ctx = getattr(current_app, "shelfwatch", None)
    if isinstance(ctx, TaskContext):
        ctx.reset()
