"""The API's Celery app: only used to send messages (after the job's transaction commits)."""

from __future__ import annotations

from celery import Celery
from flask import current_app

from webapi.services import services

_EXTENSION_KEY = "shelfwatch_celery"


def celery_app() -> Celery:
    """The application's Celery app, built on first use from its settings."""
    app = current_app.extensions.get(_EXTENSION_KEY)
    if app is None:
        from tasks.app import create_celery_app

        app = current_app.extensions[_EXTENSION_KEY] = create_celery_app(services().settings)
    return app
