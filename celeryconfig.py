"""Celery's configuration module, derived from the shared settings (the environment).

``celery -A tasks worker`` uses it through ``tasks.app``; the values live in
``tasks/config.py`` so that tests can build the same configuration from explicit settings.
"""

from __future__ import annotations

from typing import Any

from shelfwatch.config import load_settings
from tasks.config import celery_settings


def as_dict() -> dict[str, Any]:
    return celery_settings(load_settings())
