"""Where a single-URL job's latency goes, part by part (a diagnostic beside ``scrape_jobs.py``).

One worker process and the production server (gunicorn, as ``shelfwatch up`` runs it); for
each job: the POST, then ``GET /scrape-jobs/{id}?wait=10`` until it ended, then its
``/items``, as ``scrape_jobs.py``'s latency part does. The job's own timestamps (written by
the API and the worker, same machine clock) split the time between POST and answer:

    post               the POST's round trip
    queue              created_at -> started_at: commit, broker, worker, claim
    crawl              started_at -> finished_at: fetch, extraction, storage, finish
    answered           finished_at -> the long poll's answer
    items              the /items round trip
    total              POST -> items read (scrape_jobs.py's latency figure)

    python bench/job_latency_parts.py [--jobs 40]

Run the same command in an older checkout (``git worktree add``) to compare two versions; the
machine's own speed moves these figures by 20% between runs here, so alternate the two.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import crawl_speed  # noqa: E402
import scrape_jobs as jobs  # noqa: E402

from models import ScrapeJob  # noqa: E402
from shelfwatch import migrate  # noqa: E402

PARTS = ("post", "queue", "crawl", "answered", "items", "total")
COLD_JOBS = 4  # the first submissions of a gunicorn worker import the spider classes


def one_job(
    api: jobs.ApiServer, connection: http.client.HTTPConnection, bench: jobs.Bench, url: str
) -> list[float]:
    """The parts of one job's latency, in seconds (``PARTS`` order)."""
    posted = time.time()
    status, job = jobs.http_call(connection, "POST", "/api/v1/scrape-jobs",
                                 {"spider": "product", "urls": [url]}, api.token)  # fmt: skip
    assert status == 202, job
    answered_post = time.time()
    while job["status"] not in jobs.FINAL:
        status, job = jobs.http_call(connection, "GET", f"/api/v1/scrape-jobs/{job['id']}?wait=10",
                                     None, api.token)  # fmt: skip
    answered = time.time()
    status, items = jobs.http_call(connection, "GET", f"/api/v1/scrape-jobs/{job['id']}/items",
                                   None, api.token)  # fmt: skip
    assert status == 200 and len(items["items"]) == 1, items
    done = time.time()
    with bench.db.session() as session:
        row = session.get(ScrapeJob, job["id"])
        assert row is not None and row.started_at and row.finished_at
        created, started = row.created_at.timestamp(), row.started_at.timestamp()
        finished = row.finished_at.timestamp()
    return [
        answered_post - posted,
        started - created,
        finished - started,
        answered - finished,
        done - answered,
        done - posted,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    options = parser.parse_args()
    name = f"bench_parts_{uuid.uuid4().hex[:8]}"
    with jobs.postgres_database(name) as url, tempfile.TemporaryDirectory() as folder:
        settings = jobs.job_bench_settings(name, url, log_level="WARNING")
        migrate.upgrade(settings)
        bench = jobs.Bench(settings, Path(folder))
        site, port = crawl_speed.start_server(COLD_JOBS + options.jobs)
        api = jobs.ApiServer(settings, Path(folder))
        try:
            bench.start_workers(1)
            connection = jobs._connection(api.port)
            parts = [
                one_job(api, connection, bench, f"http://127.0.0.1:{port}/p/{n}")
                for n in range(COLD_JOBS + options.jobs)
            ][COLD_JOBS:]
            connection.close()
        finally:
            bench.stop_workers()
            api.stop()
            site.terminate()
            bench.db.dispose()
            jobs.delete_redis_prefix(settings.redis_prefix)
    print(f"single-URL job latency by part, {options.jobs} jobs, 1 worker (ms)")
    print(f"{'part':10s} {'p50':>7s} {'mean':>7s} {'max':>7s}")
    for index, part in enumerate(PARTS):
        values = [job[index] * 1000 for job in parts]
        print(f"{part:10s} {statistics.median(values):7.1f} {statistics.mean(values):7.1f}"
              f" {max(values):7.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
