"""A worker subprocess gets the Celery task rate limit its parent's settings ask for."""

from __future__ import annotations

import pytest

from shelfwatch.config import Settings, load_settings
from tasks import create_celery_app
from tasks.dispatch import RUN_CHUNK, RUN_CHUNKS
from tests.tasks.scrape_support import settings_env


@pytest.mark.parametrize(("asked", "registered"), [(None, None), ("7/s", "7/s")])
def test_the_chunk_task_rate_limit_survives_the_environment(
    base_settings: Settings, monkeypatch: pytest.MonkeyPatch, asked: str | None, registered: str
) -> None:
    settings = base_settings.model_copy(update={"scrape_task_rate_limit": asked})
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    app = create_celery_app(load_settings())
    assert app.tasks[RUN_CHUNK].rate_limit == registered
    # The same limit on the task of several chunks: it counts messages, not jobs.
    assert app.tasks[RUN_CHUNKS].rate_limit == registered
