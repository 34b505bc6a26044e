"""A worker's CPU per single-URL job: one message per job vs several jobs per message.

One ``celery -A tasks worker`` process (8 threads, prefetch 1, no rate limit) drains N
queued one-URL jobs of a local site (created in this process, then their messages sent at
once); the figure is the worker process's CPU (from /proc) per job, with PostgreSQL's (all
backends on the machine) and Redis's beside it. The baseline, in the same run, is one
``run_chunk`` message per job (what every job got before ``run_chunks``); the other rows send
``run_chunks`` messages of k jobs. Modes alternate, in a rotated order each round, against the
same warm worker; every job must end ``succeeded`` with its item stored.

    python bench/worker_drain.py [--jobs 600] [--rounds 3] [--sizes 1,2,4,8]
                                 [--worker-cwd /path/to/another/checkout]

``--worker-cwd`` runs the worker from another checkout (e.g. ``git archive main``): only the
one-message-per-job mode then, for an old/new comparison of that path.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import crawl_speed  # noqa: E402  (the site server)
from scrape_jobs import Bench, CpuShare, job_bench_settings  # noqa: E402

from models.jobs import ChunkRef, create_job  # noqa: E402
from shelfwatch import migrate  # noqa: E402
from shelfwatch.config import Settings  # noqa: E402
from tasks.app import create_celery_app  # noqa: E402
from tasks.dispatch import send_chunk_groups, send_chunks  # noqa: E402
from tests.services import delete_redis_prefix, postgres_database  # noqa: E402
from tests.tasks.scrape_support import WorkerProcess, settings_env  # noqa: E402


class ElsewhereWorker(WorkerProcess):
    """The same worker command, run from another checkout's directory (its own code)."""

    def __init__(self, settings: Settings, log_path: Path, cwd: Path) -> None:
        super().__init__(settings, log_path)
        self.cwd = cwd

    def start(self) -> ElsewhereWorker:
        env = {**os.environ, **settings_env(self.settings), "PYTHONUNBUFFERED": "1"}
        self.log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tasks", "worker"],
            cwd=self.cwd,
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        return self


def drain(bench: Bench, port: int, first_page: int, jobs: int, size: int) -> dict[str, float]:
    """Queue ``jobs`` one-URL jobs, send them ``size`` per message, wait; CPU per job."""
    bench.truncate()
    refs: list[ChunkRef] = []
    with bench.db.transaction() as session:
        for n in range(jobs):
            url = f"http://127.0.0.1:{port}/p/{first_page + n}"
            refs += create_job(session, spider="product", urls=[url], chunk_size=50)[1]
    app = create_celery_app(bench.settings)
    ids = [ref.job_id for ref in refs]
    parties = {"worker": [w.pid for w in bench.workers]}
    with CpuShare(parties) as cpu:
        started = time.monotonic()
        if size == 1:
            send_chunks(app, refs)
        else:
            send_chunk_groups(app, refs, max_chunks=size, max_urls=50)
        ended = bench.wait_all(ids, timeout=600, interval=0.05)
    _, succeeded, stored = bench.window_counts(ids, 0, time.time() + 60)
    if succeeded != jobs or stored != jobs:
        raise SystemExit(f"{succeeded}/{jobs} succeeded, {stored} stored")
    postgres = sum(s - cpu.before["postgres"].get(p, 0.0) for p, s in cpu.after["postgres"].items())
    return {
        "worker": cpu.used("worker") * 1000 / jobs,
        "postgres": postgres * 1000 / jobs,
        "redis": cpu.used("redis") * 1000 / jobs,
        "jobs_per_s": jobs / (ended - started),
        "busy": cpu.used("machine busy") / (ended - started),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="1,2,4,8", help="jobs per message, 1 = run_chunk")
    parser.add_argument("--worker-cwd", type=Path, help="run the worker from this checkout")
    options = parser.parse_args()
    sizes = [1] if options.worker_cwd else [int(s) for s in options.sizes.split(",")]
    name = f"bench_drain_{uuid.uuid4().hex[:8]}"
    pages = options.jobs * options.rounds * len(sizes) + 100
    with postgres_database(name) as url, tempfile.TemporaryDirectory() as folder:
        settings = job_bench_settings(
            name,
            url,
            log_level="WARNING",
        )
        migrate.upgrade(settings)
        bench = Bench(settings, Path(folder))
        site, port = crawl_speed.start_server(pages)
        try:
            log = Path(folder) / "worker.log"
            if options.worker_cwd:
                bench.workers.append(ElsewhereWorker(settings, log, options.worker_cwd).start())
            else:
                bench.workers.append(WorkerProcess(settings, log).start())
            # Warm (crawl stack imported, batch crawl open) through run_chunk, which both
            # checkouts know; nothing of it is measured.
            drain(bench, port, 0, 50, 1)
            results: dict[int, list[dict[str, float]]] = {size: [] for size in sizes}
            page = 100
            for round_no in range(options.rounds):
                order = sizes[round_no % len(sizes) :] + sizes[: round_no % len(sizes)]
                for size in order:
                    result = drain(bench, port, page, options.jobs, size)
                    page += options.jobs
                    results[size].append(result)
                    print(
                        f"round {round_no + 1}, {size} job(s)/message: worker "
                        f"{result['worker']:.2f} ms/job, postgres {result['postgres']:.2f}, "
                        f"redis {result['redis']:.2f}; {result['jobs_per_s']:.0f} jobs/s, "
                        f"machine busy {result['busy']:.1f} cores",
                        flush=True,
                    )
            report(results, options.jobs)
        finally:
            bench.stop_workers()
            site.terminate()
            bench.db.dispose()
            delete_redis_prefix(settings.redis_prefix)


def report(results: dict[int, list[dict[str, float]]], jobs: int) -> None:
    print(f"\none worker draining {jobs} queued one-URL jobs; medians of the rounds")
    print("jobs/message   worker ms/job  vs 1/msg  postgres ms/job  redis ms/job  jobs/s")
    base = statistics.median(r["worker"] for r in results[min(results)])
    for size, rows in results.items():
        worker = statistics.median(r["worker"] for r in rows)
        postgres = statistics.median(r["postgres"] for r in rows)
        redis = statistics.median(r["redis"] for r in rows)
        rate = statistics.median(r["jobs_per_s"] for r in rows)
        label = "1 (run_chunk)" if size == 1 else f"{size} (run_chunks)"
        print(
            f"{label:<14} {worker:>13.2f} {worker / base:>8.2f}x {postgres:>16.2f} "
            f"{redis:>13.2f} {rate:>7.0f}"
        )


if __name__ == "__main__":
    main()
