"""CPU per accepted ``POST /api/v1/scrape-jobs`` in process: the whole app vs its Flask path.

The body is the small-jobs bench's (``{"spider": "product", "urls": [url]}`` from an admin),
sent as WSGI environs straight to the app, on a scratch database and Redis prefix; the
messages go to the run's own queues and are deleted with them. Rounds alternate between the
app as served (``create_app()``'s ``wsgi_app``, shortcuts included) and the Flask app behind
the outermost shortcut, so both see the same machine load.

    python bench/submit_cpu.py [--rounds 6] [--posts 300] [--profile flask|app]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scrape_jobs import job_bench_settings  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

from models import Role, create_database  # noqa: E402
from models.accounts import create_user  # noqa: E402
from shelfwatch import migrate  # noqa: E402
from shelfwatch.config import Settings  # noqa: E402
from tests.services import delete_redis_prefix, postgres_database  # noqa: E402
from webapi import create_app  # noqa: E402
from webapi.job_shortcut import ScrapeJobShortcut  # noqa: E402

PASSWORD = "bench-password-1"  # noqa: S105
PATH = "/api/v1/scrape-jobs"
WsgiApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


def environ_for(body: dict[str, Any], token: str) -> dict[str, Any]:
    """What gunicorn hands the app for the bench's request (keep-alive, JSON body)."""
    builder = EnvironBuilder(
        path=PATH,
        method="POST",
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    return builder.get_environ()


def post_all(wsgi_app: WsgiApp, token: str, first: int, count: int) -> float:
    """CPU seconds for ``count`` POSTs, each checked to be a 202."""
    environs = [
        environ_for({"spider": "product", "urls": [f"http://127.0.0.1:9/p/{first + n}"]}, token)
        for n in range(count)
    ]
    statuses: list[str] = []

    def start_response(status: str, _headers: list[tuple[str, str]], *_: Any) -> None:
        statuses.append(status)

    started = time.process_time()
    for environ in environs:
        answer = wsgi_app(environ, start_response)
        b"".join(answer)
        close = getattr(answer, "close", None)
        if close is not None:
            close()
    used = time.process_time() - started
    refused = [status for status in statuses if not status.startswith("202")]
    if refused:
        raise SystemExit(f"refused: {refused[:3]}")
    return used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--profile", choices=["flask", "app"])
    options = parser.parse_args()
    name = f"bench_submit_{uuid.uuid4().hex[:8]}"
    with postgres_database(name) as url:
        settings = job_bench_settings(
            name,
            url,
            log_level="WARNING",
        )
        migrate.upgrade(settings)
        try:
            run(settings, options)
        finally:
            delete_redis_prefix(settings.redis_prefix)
            delete_redis_prefix(settings.queue_namespace)


def run(settings: Settings, options: argparse.Namespace) -> None:
    db = create_database(settings)
    with db.transaction() as session:
        create_user(session, "bench@example.com", PASSWORD, Role.ADMIN)
    db.dispose()
    app = create_app(settings)
    login = {"email": "bench@example.com", "password": PASSWORD}
    token = app.test_client().post("/api/v1/auth/login", json=login).json["access_token"]
    paths: dict[str, WsgiApp] = {"app": app.wsgi_app, "flask": flask_path(app)}
    counter = 0
    for label in ("app", "flask"):  # warm: spider imports, pools, compiled statements
        post_all(paths[label], token, counter, 50)
        counter += 50
    if options.profile:
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        post_all(paths[options.profile], token, counter, options.posts)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(70)
        stats.print_callees("submit_job|send_chunks|create_job")
        print(out.getvalue())
        return
    figures: dict[str, list[float]] = {"app": [], "flask": []}
    for round_ in range(options.rounds):
        order = ("flask", "app") if round_ % 2 else ("app", "flask")
        for label in order:
            used = post_all(paths[label], token, counter, options.posts)
            counter += options.posts
            figures[label].append(used * 1000 / options.posts)
    for label, values in figures.items():
        rounds = ", ".join(f"{value:.2f}" for value in values)
        print(f"{label:6} median {statistics.median(values):.2f} ms CPU per POST ({rounds})")
    ratio = statistics.median(figures["app"]) / statistics.median(figures["flask"])
    print(f"app / flask path: {ratio:.2f}x")


def flask_path(app: Any) -> WsgiApp:
    """The app without ``ScrapeJobShortcut`` (what every request ran before it), timed for
    the metrics as the app's own middleware times it."""
    layer = app.wsgi_app
    while not isinstance(layer, ScrapeJobShortcut):
        layer = layer.wsgi_app
    behind = layer.wsgi_app

    def timed(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ["shelfwatch.request_started"] = time.perf_counter()
        return behind(environ, start_response)

    return timed


if __name__ == "__main__":
    main()
