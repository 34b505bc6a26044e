"""``shelfwatch up``: the API, a worker, beat and Flower in the foreground, one log stream.

Each part is the ecosystem's own command (gunicorn, ``celery worker|beat|flower``) so
that what runs here is what runs in production, one process per part.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from shelfwatch.config import Settings


@dataclass(frozen=True)
class Part:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def _python(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def flower_auth(settings: Settings) -> str | None:
    """``user:password`` for Flower: configured, none in embedded mode, else generated."""
    if settings.flower_basic_auth:
        return settings.flower_basic_auth
    if settings.embedded:
        return None
    path = settings.resolved_data_dir / "flower_password"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"admin:{secrets.token_urlsafe(18)}")
        path.chmod(0o600)
    return path.read_text().strip()


def metrics_folder(settings: Settings) -> Path:
    return settings.prometheus_multiproc_dir or settings.resolved_data_dir / "prometheus"


def plan(settings: Settings, *, parts: set[str] | None = None) -> list[Part]:
    """The processes of the platform, in start order."""
    flower = [
        "celery",
        "-A",
        "tasks",
        "flower",
        f"--port={settings.flower_port}",
        f"--address={settings.host}",
        "--persistent=False",
        "--max_tasks=100000",
        # Show each task's arguments (job id, spider, URL count) in the task list.
        "--tasks_columns=name,state,args,result,received,runtime,worker",
    ]
    auth = flower_auth(settings)
    if auth:
        flower.append(f"--basic-auth={auth}")
    everything = [
        Part(
            "api",
            _python(
                "gunicorn",
                "webapi:create_app()",
                f"--bind={settings.host}:{settings.port}",
                "--workers=2",
                "--threads=4",
                "--access-logfile=-",
            ),
            # gunicorn workers add up their Prometheus counters in this folder.
            env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_folder(settings))},
        ),
        Part("worker", _python("celery", "-A", "tasks", "worker", "--loglevel=INFO")),
        Part(
            "beat",
            # The schedule is the database's (tasks/beat.py): no schedule file to pass.
            _python("celery", "-A", "tasks", "beat", "--loglevel=INFO"),
        ),
        Part("flower", _python(*flower)),
    ]
    return [part for part in everything if parts is None or part.name in parts]


def run(settings: Settings, *, parts: set[str] | None = None) -> int:
    """Start every part and wait; Ctrl-C (or one part exiting) stops them all."""
    from honcho.manager import Manager

    folder = metrics_folder(settings)
    shutil.rmtree(folder, ignore_errors=True)  # counters of a previous run must not add up
    folder.mkdir(parents=True, exist_ok=True)
    manager = Manager()
    for part in plan(settings, parts=parts):
        env = {**os.environ, **part.env} if part.env else None
        manager.add_process(part.name, shlex.join(part.argv), env=env)
    manager.loop()
    return manager.returncode or 0
