"""The API's Celery app: only used to send messages (after the job's transaction commits)."""

from __future__ import annotations

from celery import Celery
from flask import Flask, current_app

from webapi.services import EXTENSION_KEY

_EXTENSION_KEY = "shelfwatch_celery"


def celery_app() -> Celery:
    """The application's Celery app, built on first use from its settings."""
    return celery_app_of(current_app)


def celery_app_of(flask_app: Flask) -> Celery:
    """``flask_app``'s Celery app (also outside a request, for ``job_shortcut``)."""
    app = flask_app.extensions.get(_EXTENSION_KEY)
    if app is None:
        from tasks.app import create_celery_app

        settings = flask_app.extensions[EXTENSION_KEY].settings
        app = flask_app.extensions[_EXTENSION_KEY] = create_celery_app(settings)
    return app
