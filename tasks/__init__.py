"""The async shell: the Celery app and its tasks.

``celery -A tasks worker`` finds ``tasks.app``: the app configured from ``celeryconfig.py``
(which reads the shared settings). Tests and tools call ``create_celery_app(settings)``.
"""

from __future__ import annotations

from typing import Any

from tasks.app import create_celery_app

__all__ = ["app", "create_celery_app"]


def __getattr__(name: str) -> Any:
    # Built on first use, so that importing ``tasks`` has no side effects.
    if name in ("app", "celery"):
        import celeryconfig

        app = create_celery_app(configure=celeryconfig.as_dict())
        globals()["app"] = globals()["celery"] = app
        return app
    raise AttributeError(name)
