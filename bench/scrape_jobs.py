"""Scrape jobs end to end: API → Celery (Redis) → worker processes → crawl → PostgreSQL.

Every figure is printed beside a baseline measured in the same run:

1. throughput: one job over a local N-product site (default 5,000), POST → every item stored,
   with one and with two worker processes, vs one bare Scrapy process doing the same crawl
   with the same storage pipeline (``bench/crawl_speed.py``'s child crawl, timed from spawn
   to exit). Targets: >= 0.9x (one worker), >= 1.5x (two). Printed beside each: CPU ms per
   product of every party, and which worker process ran how many chunks, when.
2. latency of single-URL jobs through the production server (gunicorn serving
   ``webapi:create_app()``, 2 workers x 4 threads, as ``shelfwatch up`` runs it): POST, then
   ``GET /scrape-jobs/{id}?wait=10`` (long poll) until it succeeded, then its item read through
   ``/items``; vs one Scrapy process per job. Targets: p50 <= 50 ms, p99 <= 150 ms.
3. many small jobs: client processes (``--clients``, default 8) submit single-URL jobs to the
   same gunicorn server over keep-alive connections for a warm-up and a measured window
   (``--window`` seconds); the figure is jobs *finished* per second inside the window (from the
   jobs' ``finished_at``), after checking that every job succeeded and stored its item.
   Target >= 200/s; baseline one Scrapy process per job. CPU per finished job is printed for
   each party (API, workers, PostgreSQL, Redis, site, clients).
4. rate-limit accuracy: two workers crawl one domain limited to 10 requests/s for D seconds
   (default 30); the site records every request. Target: rate within +-5%, and no 1-second
   window above the bucket (burst + rate).

    python bench/scrape_jobs.py [--quick] [--products 5000] [--window 20] [--clients 8]
                                [--rate-seconds 30]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import crawl_speed  # noqa: E402  (the site server and the bare Scrapy child crawl)
from sqlalchemy import func, select, text  # noqa: E402

from models import Role, ScrapeChunk, ScrapedProduct, ScrapeJob, create_database  # noqa: E402
from models.accounts import create_user  # noqa: E402
from shelfwatch import migrate  # noqa: E402
from shelfwatch.config import Settings  # noqa: E402
from tests.services import REDIS_URL, delete_redis_prefix, postgres_database  # noqa: E402
from tests.tasks.scrape_support import Shop, WorkerProcess, settings_env  # noqa: E402
from webapi import create_app  # noqa: E402

PASSWORD = "bench password 123"  # noqa: S105 - a throwaway local account
FINAL = ("succeeded", "partial", "failed", "cancelled")


class RecordingShop(Shop):
    """The test shop, noting the time of every request (for the rate-limit check)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def serve(self, request: Any) -> None:
        self.times.append(time.time())
        super().serve(request)


class Bench:
    def __init__(self, settings: Settings, folder: Path) -> None:
        self.settings = settings
        self.folder = folder
        self.db = create_database(settings)
        self.app = create_app(settings)
        with self.db.transaction() as session:
            create_user(session, "bench@example.com", PASSWORD, Role.ADMIN)
        client = self.app.test_client()
        token = client.post(
            "/api/v1/auth/login", json={"email": "bench@example.com", "password": PASSWORD}
        ).json["access_token"]
        self.headers = {"Authorization": f"Bearer {token}"}
        self.workers: list[WorkerProcess] = []
        self.job_posted_at = 0.0

    def start_workers(self, count: int, settings: Settings | None = None) -> None:
        for _ in range(count):
            log = self.folder / f"worker{len(self.workers)}.log"
            self.workers.append(WorkerProcess(settings or self.settings, log).start())
        self.warm_up()

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def warm_up(self, timeout: float = 120) -> None:
        """Tiny jobs until every worker process has run one (its reactor and batch crawl up).

        A worker already running takes every job while a new one is still importing, so
        rounds of jobs go on until each process has claimed a chunk of its own.
        """
        deadline = time.monotonic() + timeout
        with Shop() as shop:
            while self.idle_workers():
                if time.monotonic() > deadline:
                    raise SystemExit(f"workers {self.idle_workers()} ran no warm-up job")
                ids = [self.submit([shop.url(n)]) for n in range(len(self.workers) * 4)]
                self.wait_all(ids, timeout=120)
        self.truncate()

    def idle_workers(self) -> list[int]:
        """The pids of the worker processes that have claimed no chunk since the last truncate."""
        with self.db.session() as session:
            names = session.scalars(select(ScrapeChunk.worker).distinct()).all()
        # A chunk's worker is "host/pid/thread" (tasks/scrape.py worker_name).
        seen = {int(name.split("/")[1]) for name in names if name}
        return [w.pid for w in self.workers if w.pid not in seen]

    def submit(self, urls: list[str], client: Any = None) -> str:
        client = client or self.app.test_client()
        response = client.post(
            "/api/v1/scrape-jobs",
            json={"spider": "product", "urls": urls},
            headers=self.headers,
        )
        assert response.status_code == 202, response.json
        return str(response.json["id"])

    def finished_count(self, ids: list[str]) -> int:
        with self.db.session() as session:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(ScrapeJob)
                    .where(ScrapeJob.id.in_(ids), ScrapeJob.status.in_(FINAL))
                )
                or 0
            )

    def wait_all(self, ids: list[str], timeout: float, interval: float = 0.02) -> float:
        deadline = time.monotonic() + timeout
        while self.finished_count(ids) < len(ids):
            if time.monotonic() > deadline:
                logs = "\n".join(w.log()[-2000:] for w in self.workers)
                raise SystemExit(f"jobs did not finish within {timeout}s\n{logs}")
            time.sleep(interval)
        return time.monotonic()

    def status(self, job_id: str) -> str:
        with self.db.session() as session:
            return str(session.scalar(select(ScrapeJob.status).where(ScrapeJob.id == job_id)))

    def stored(self) -> int:
        with self.db.session() as session:
            return session.scalar(select(func.count()).select_from(ScrapedProduct)) or 0

    def parties(self, api: ApiServer) -> dict[str, list[int]]:
        parties = {f"worker {n}": [w.pid] for n, w in enumerate(self.workers)}
        return parties | {"API (gunicorn)": api.pids(), "bench process": [os.getpid()]}

    def window_counts(self, ids: list[str], start: float, end: float) -> tuple[int, int, int]:
        """(jobs finished between the two times, jobs succeeded, jobs with their item stored)."""
        since, until = (datetime.fromtimestamp(t, UTC) for t in (start, end))
        with self.db.session() as session:
            finished = session.scalar(
                select(func.count())
                .select_from(ScrapeJob)
                .where(ScrapeJob.id.in_(ids), ScrapeJob.finished_at.between(since, until))
            )
            succeeded = session.scalar(
                select(func.count())
                .select_from(ScrapeJob)
                .where(ScrapeJob.id.in_(ids), ScrapeJob.status == "succeeded")
            )
            stored = session.scalar(
                select(func.count(ScrapedProduct.job_id.distinct())).where(
                    ScrapedProduct.job_id.in_(ids)
                )
            )
        return finished or 0, succeeded or 0, stored or 0

    def messages(self, ids: list[str]) -> int:
        """How many task messages ran these jobs' chunks: chunks claimed together (one
        ``run_chunks`` message) share their claim's worker thread and start time."""
        with self.db.session() as session:
            claims = select(ScrapeChunk.worker, ScrapeChunk.started_at).where(
                ScrapeChunk.job_id.in_(ids)
            )
            return (
                session.scalar(select(func.count()).select_from(claims.distinct().subquery())) or 0
            )

    def submitted_between(self, ids: list[str], start: float, end: float) -> int:
        """Jobs created (their POST accepted) between the two times."""
        since, until = (datetime.fromtimestamp(t, UTC) for t in (start, end))
        with self.db.session() as session:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(ScrapeJob)
                    .where(ScrapeJob.id.in_(ids), ScrapeJob.created_at.between(since, until))
                )
                or 0
            )

    def truncate(self) -> None:
        with self.db.primary.begin() as connection:
            connection.execute(
                text(
                    "TRUNCATE scraping.scraped_products, scraping.price_observations, "
                    "scraping.scrape_chunks, scraping.scrape_jobs CASCADE"
                )
            )


def crawl_settings(settings: Settings) -> dict[str, Any]:
    """The child-crawl settings of ``bench/crawl_speed.py`` for the same database."""
    return {
        "mode": "production",
        "database_url": settings.database_url,
        "redis_url": REDIS_URL,
        "redis_prefix": settings.redis_prefix,
        "ssrf_allowed_networks": list(settings.ssrf_allowed_networks),
        "domain_rate_overrides": list(settings.domain_rate_overrides),
        "log_level": "ERROR",
    }


def timed_scrapy_process(bench: Bench, args: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    stats = crawl_speed.run_crawl("product", args, crawl_settings(bench.settings))
    return time.monotonic() - started, stats


def throughput(bench: Bench, port: int, products: int) -> float:
    urls = [f"http://127.0.0.1:{port}/p/{n}" for n in range(products)]
    bench.truncate()
    started = time.monotonic()
    bench.job_posted_at = time.time()
    job_id = bench.submit(urls)
    seconds = bench.wait_all([job_id], timeout=900, interval=0.05) - started
    status, stored = bench.status(job_id), bench.stored()
    if status != "succeeded" or stored != products:
        raise SystemExit(f"throughput job ended {status} with {stored}/{products} stored")
    return products / seconds


def chunk_spread(bench: Bench) -> str:
    """Which worker process ran how many chunks of the last throughput job, and when.

    Times are seconds after the POST; pages/s is the process's pages over its own span (first
    claim to last chunk done), so a worker that idles shows few chunks or a short span.
    """
    pids = {w.pid: n for n, w in enumerate(bench.workers)}
    with bench.db.session() as session:
        rows = session.execute(
            select(ScrapeChunk.worker, ScrapeChunk.urls, ScrapeChunk.started_at,
                   ScrapeChunk.finished_at)
        ).all()  # fmt: skip
    by_worker: dict[int, list[Any]] = {}
    for row in rows:
        pid = int(row.worker.split("/")[1])
        by_worker.setdefault(pids.get(pid, pid), []).append(row)
    lines = [f"  chunks: {len(rows)} of {len(rows[0].urls) if rows else 0} URLs at most"]
    for worker, chunks in sorted(by_worker.items()):
        first = min(c.started_at for c in chunks).timestamp() - bench.job_posted_at
        last = max(c.finished_at for c in chunks).timestamp() - bench.job_posted_at
        pages = sum(len(c.urls) for c in chunks)
        lines.append(
            f"    worker {worker}: {len(chunks)} chunks, {pages} pages, from {first:.2f} s to"
            f" {last:.2f} s after the POST, {pages / max(last - first, 1e-3):.0f} pages/s"
        )
    return "\n".join(lines)


def bare_throughput(bench: Bench, port: int, products: int) -> tuple[float, float, float]:
    """(products/s spawn to exit, products/s of the crawl alone, crawl CPU ms per product)."""
    bench.truncate()
    urls_file = bench.folder / "urls.txt"
    urls_file.write_text("\n".join(f"http://127.0.0.1:{port}/p/{n}" for n in range(products)))
    seconds, stats = timed_scrapy_process(bench, {"urls_file": str(urls_file)})
    assert stats.get("storage/products") == products, stats
    cpu_ms = 1000 * stats["cpu_seconds"] / products
    return products / seconds, products / stats["elapsed_time_seconds"], cpu_ms


class ApiServer:
    """The API as production runs it: gunicorn serving ``webapi:create_app()`` (as ``up``)."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        metrics = folder / "api-metrics"
        metrics.mkdir(exist_ok=True)
        env = {**os.environ, **settings_env(settings), "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
        self.log = (folder / "api.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "webapi:create_app()",
             f"--bind=127.0.0.1:{self.port}", "--workers=2", "--threads=4"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not self._answers():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise SystemExit(f"gunicorn did not start; see {folder / 'api.log'}")
            time.sleep(0.1)
        self.token = self.call("POST", "/api/v1/auth/login",
                               {"email": "bench@example.com", "password": PASSWORD}
                               )[1]["access_token"]  # fmt: skip

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def pids(self) -> list[int]:
        """The master and its worker processes."""
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(stat[1]) == self.process.pid:
                    children.append(int(entry.name))
        return [self.process.pid, *children]

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return http_call(_connection(self.port), method, path, body, getattr(self, "token", ""))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


def _connection(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def http_call(
    connection: http.client.HTTPConnection, method: str, path: str, body: Any, token: str
) -> tuple[int, Any]:
    """One request on a keep-alive connection: (status, decoded JSON)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    payload = None
    if body is not None:
        payload = json.dumps(body)
        headers["Content-Type"] = "application/json"
    connection.request(method, path, payload, headers)
    response = connection.getresponse()
    data = response.read()
    return response.status, json.loads(data) if data else None


# Jobs sent before the latency sample: the first submission in each gunicorn worker imports
# the spider classes (the argument models), several hundred ms once per process.
COLD_JOBS = 4


def latencies(api: ApiServer, site_port: int, count: int) -> tuple[list[float], list[float]]:
    """POST → ``?wait`` long poll until it ended → its item read, all through gunicorn.

    Returns (the cold jobs' times, the measured jobs' times).
    """
    connection = _connection(api.port)
    found: list[float] = []
    for n in range(COLD_JOBS + count):
        url = f"http://127.0.0.1:{site_port}/p/{n}"
        started = time.monotonic()
        status, job = http_call(connection, "POST", "/api/v1/scrape-jobs",
                                {"spider": "product", "urls": [url]}, api.token)  # fmt: skip
        assert status == 202, job
        while job["status"] not in FINAL:
            status, job = http_call(connection, "GET", f"/api/v1/scrape-jobs/{job['id']}?wait=10",
                                    None, api.token)  # fmt: skip
        assert job["status"] == "succeeded", job
        status, items = http_call(connection, "GET", f"/api/v1/scrape-jobs/{job['id']}/items",
                                  None, api.token)  # fmt: skip
        assert status == 200 and len(items["items"]) == 1, items
        found.append(time.monotonic() - started)
    connection.close()
    return found[:COLD_JOBS], found[COLD_JOBS:]


def baseline_latencies(bench: Bench, count: int) -> list[float]:
    with Shop() as shop:
        return [
            timed_scrapy_process(bench, {"urls": shop.url(90_000 + n)})[0] for n in range(count)
        ]


def submit_for(port: int, token: str, urls: list[str], stop_at: float, out: Any) -> None:
    """A client process: submit one single-URL job after another until ``stop_at``."""
    connection = _connection(port)
    ids, errors = [], 0
    for url in urls:
        if time.time() >= stop_at:
            break
        status, job = http_call(connection, "POST", "/api/v1/scrape-jobs",
                                {"spider": "product", "urls": [url]}, token)  # fmt: skip
        if status == 202:
            ids.append(job["id"])
        else:
            errors += 1
    out.put((ids, errors))


def many_small_jobs(
    bench: Bench, api: ApiServer, site_port: int, options: argparse.Namespace
) -> dict[str, float]:
    """Client processes submit for warm-up + window; jobs finished inside the window per second.

    Every job must end ``succeeded`` with its one product stored, else the run is refused.
    """
    bench.truncate()
    clients, warm, window = options.clients, options.warm_up, options.window
    per_client = options.max_jobs // clients
    first = COLD_JOBS + options.latency_jobs  # pages no latency job has stored
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    started = time.time()
    stop_at = started + warm + window + 1.0
    processes = [
        context.Process(target=submit_for, args=(
            api.port, api.token,
            [f"http://127.0.0.1:{site_port}/p/{first + k + clients * i}"
             for i in range(per_client)],
            stop_at, out))
        for k in range(clients)
    ]  # fmt: skip
    for process in processes:
        process.start()
    parties = bench.parties(api) | {"clients": [p.pid for p in processes]}
    time.sleep(warm)
    with CpuShare(parties) as cpu:
        time.sleep(window)
    results = [out.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(10)
    ids = [job_id for part, _errors in results for job_id in part]
    errors = sum(errors for _ids, errors in results)
    submitted_at = time.time()
    bench.wait_all(ids, timeout=300, interval=0.1)
    drained_at = time.time()
    in_window, succeeded, stored = bench.window_counts(ids, started + warm, started + warm + window)
    # The API accepts more than the workers finish (the backlog drains after the window), so
    # its CPU per *finished* job overstates a POST's cost: this is the API's per accepted POST.
    posted = bench.submitted_between(ids, started + warm, started + warm + window)
    api_seconds = cpu.used("API (gunicorn)")
    if errors or succeeded != len(ids) or stored != len(ids):
        raise SystemExit(
            f"small jobs: {errors} refused, {succeeded}/{len(ids)} succeeded, {stored} stored"
        )
    return {
        "jobs": len(ids),
        "messages": bench.messages(ids),
        "finished_per_s": in_window / window,
        "submitted_per_s": len(ids) / (submitted_at - started),
        "overall_per_s": len(ids) / (drained_at - started),
        "cpu": cpu.report(per=in_window, unit="finished job"),
        "posted_per_s": posted / window,
        "api_ms_per_post": api_seconds * 1000 / max(posted, 1),
    }


def rate_accuracy(bench: Bench, seconds: float, rate: float) -> dict[str, float]:
    shop = RecordingShop()
    with shop:
        urls = [shop.url(n) for n in range(int(rate * seconds * 2) + 20)]
        job_id = bench.submit(urls)
        time.sleep(seconds + 2)
        client = bench.app.test_client()
        client.post(f"/api/v1/scrape-jobs/{job_id}/cancel", headers=bench.headers)
        bench.wait_all([job_id], timeout=60)
    times = sorted(shop.times)
    start = times[0]
    window = [t for t in times if t < start + seconds]
    worst = max(sum(1 for u in window[i:] if u < t + 1.0) for i, t in enumerate(window))
    return {"rate": len(window) / seconds, "worst_second": worst, "requests": len(window)}


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of one process, from /proc (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pids_named(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / tick, sum(values) / tick


class CpuShare:
    """CPU used by each party during a run: is a second worker starved of cores?"""

    def __init__(self, parties: dict[str, list[int]]) -> None:
        self.parties = parties

    def __enter__(self) -> CpuShare:
        self.before = self._sample()
        self.started = time.monotonic()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.wall = time.monotonic() - self.started
        self.after = self._sample()

    def _sample(self) -> dict[str, Any]:
        sample: dict[str, Any] = {
            name: sum(_proc_cpu(pid) for pid in pids) for name, pids in self.parties.items()
        }
        # Backends come and go: per pid, so one that started during the run counts in full.
        sample["postgres"] = {pid: _proc_cpu(pid) for pid in _pids_named("postgres")}
        sample["redis"] = sum(_proc_cpu(pid) for pid in _pids_named("redis-server"))
        sample["machine busy"], sample["machine total"] = _machine_busy()
        return sample

    def used(self, party: str) -> float:
        """CPU seconds one party used during the run."""
        return float(self.after[party] - self.before[party])

    def report(self, per: int = 0, unit: str = "") -> str:
        """Cores each party used; with ``per``, also its CPU milliseconds per ``unit``."""
        postgres = self.after.pop("postgres")
        earlier = self.before.pop("postgres")
        used = {name: self.after[name] - self.before[name] for name in self.after}
        used["postgres (all clients)"] = sum(
            seconds - earlier.get(pid, 0.0) for pid, seconds in postgres.items()
        )
        total = used.pop("machine total")
        parts = [f"{name} {seconds / self.wall:.2f}" for name, seconds in used.items()]
        text = (f"  CPU cores used during the run ({self.wall:.1f} s, {total / self.wall:.1f} "
                f"cores): " + ", ".join(parts))  # fmt: skip
        if per:
            busy = used.pop("machine busy")
            costs = [f"{name} {seconds * 1000 / per:.1f}" for name, seconds in used.items()]
            text += (f"\n  CPU ms per {unit}: " + ", ".join(costs) +
                     f"; whole machine {busy * 1000 / per:.1f}"
                     f" (parties listed {sum(used.values()) * 1000 / per:.1f})")  # fmt: skip
        return text


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def job_bench_settings(name: str, url: str, **overrides: Any) -> Settings:
    """Settings of a jobs bench in the scratch database ``name`` (at ``url``): production mode,
    its own Redis keys and queues, the local sites allowed and unthrottled, no Celery or
    submission rate limit (the benches measure the work, not the limits)."""
    values: dict[str, Any] = {
        "mode": "production",
        "database_url": url,
        "redis_url": REDIS_URL,
        "broker_url": REDIS_URL,
        "redis_prefix": f"{name}:",
        "queue_namespace": f"{name}.",
        "secret_key": "bench-secret-key-that-is-long-enough-for-hs256",
        "ssrf_allowed_networks": ["127.0.0.0/8"],
        "domain_rate_overrides": ["127.0.0.1=1000000"],
        "scrape_task_rate_limit": None,
        "scrape_submit_rate_limit": "1000000 per minute",
    }
    return Settings(**(values | overrides))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (about a minute)")
    parser.add_argument("--products", type=int, default=5000)
    parser.add_argument("--latency-jobs", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8, help="small-job client processes")
    parser.add_argument("--warm-up", type=float, default=5.0, help="seconds before the window")
    parser.add_argument("--window", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--max-jobs", type=int, default=10_000, help="small jobs at most")
    parser.add_argument("--rate-seconds", type=float, default=30.0)
    parser.add_argument(
        "--only",
        choices=["small-jobs"],
        help="run only this part (with its own baseline); the others are skipped",
    )
    options = parser.parse_args()
    if options.quick:
        options.products, options.latency_jobs = 1000, 30
        options.warm_up, options.window, options.max_jobs = 3.0, 10.0, 5000
        options.rate_seconds = 10.0
    name = f"bench_jobs_{uuid.uuid4().hex[:8]}"
    with postgres_database(name) as url, tempfile.TemporaryDirectory() as folder:
        settings = job_bench_settings(
            name,
            url,
            # Chunks of the default size (scrape_chunk_size 50): a job of N products has N/50
            # chunks, more than the 2 x 8 task threads of two workers. (It was N/10 before:
            # ten chunks, of which one worker's eight threads reserved eight.)
            scrape_concurrent_requests=32,
            scrape_concurrent_requests_per_domain=32,
            log_level="WARNING",
        )
        migrate.upgrade(settings)
        bench = Bench(settings, Path(folder))
        server, port = crawl_speed.start_server(options.products)
        # Single-URL jobs: a site of their own, one page per job (each job stores its item).
        small_site, small_port = crawl_speed.start_server(
            COLD_JOBS + options.latency_jobs + options.max_jobs
        )
        api = ApiServer(settings, Path(folder))
        try:
            run(bench, api, server, (port, small_port), options)
        finally:
            bench.stop_workers()
            api.stop()
            small_site.terminate()
            server.terminate()
            bench.db.dispose()
            delete_redis_prefix(settings.redis_prefix)


def run(bench: Bench, api: ApiServer, site: Any, ports: tuple[int, int], options: Any) -> None:
    port, small_port = ports
    if options.only == "small-jobs":
        bench.start_workers(2)
        baseline = baseline_latencies(bench, 3)
        report_small_jobs(bench, api, small_port, options, statistics.median(baseline) * 1000)
        return
    print(f"site: {options.products} products on 127.0.0.1:{port}; 2 cores shared with the site")
    bare_wall, bare_crawl, bare_cpu = bare_throughput(bench, port, options.products)
    print(f"bare Scrapy process (spawn to exit): {bare_wall:7.1f} products/s")
    print(f"  (its crawl alone, without start-up: {bare_crawl:7.1f} products/s,"
          f" {bare_cpu:.2f} ms CPU per product spider open to close)")  # fmt: skip

    bench.start_workers(1)
    with CpuShare({"worker 0": [bench.workers[0].pid]}) as cpu:
        one = throughput(bench, port, options.products)
    print(f"job, 1 worker process:               {one:7.1f} products/s  ratio {one / bare_wall:.2f}"
          f" (target >= 0.90; vs crawl alone {one / bare_crawl:.2f})")  # fmt: skip
    print(cpu.report(per=options.products, unit="product"))
    print(chunk_spread(bench))

    cold, found = latencies(api, small_port, options.latency_jobs)
    baseline = baseline_latencies(bench, 3 if options.quick else 5)
    p50, p99 = percentile(found, 0.5) * 1000, percentile(found, 0.99) * 1000
    base = statistics.median(baseline) * 1000
    print(f"single-URL job latency (gunicorn API, 1 worker, {len(found)} jobs, POST -> ?wait ->"
          f" /items): p50 {p50:.0f} ms,"
          f" p99 {p99:.0f} ms"
          f" (targets 50/150); one Scrapy process per job: median {base:.0f} ms,"
          f" ratio {base / p50:.0f}x")  # fmt: skip
    print(f"  first {COLD_JOBS} jobs after the API started (not in the sample):"
          f" {', '.join(f'{t * 1000:.0f}' for t in cold)} ms")  # fmt: skip

    bench.start_workers(1)
    parties = {f"worker {n}": [w.pid] for n, w in enumerate(bench.workers)}
    parties.update({"site server": [site.pid], "bench (API, client)": [os.getpid()]})
    with CpuShare(parties) as cpu:
        two = throughput(bench, port, options.products)
    print(f"job, 2 worker processes:             {two:7.1f} products/s  ratio {two / bare_wall:.2f}"
          f" (target >= 1.50; vs crawl alone {two / bare_crawl:.2f})")  # fmt: skip
    print(cpu.report(per=options.products, unit="product"))
    print(chunk_spread(bench))

    report_small_jobs(bench, api, small_port, options, base)
    bench.stop_workers()

    limited = bench.settings.model_copy(update={"domain_rate_overrides": ["127.0.0.1=10"]})
    bench.start_workers(2, limited)
    found_rate = rate_accuracy(bench, options.rate_seconds, 10.0)
    print(f"rate limit 10/s over {options.rate_seconds:.0f}s, 2 workers: measured"
          f" {found_rate['rate']:.2f} req/s ({found_rate['rate'] / 10 - 1:+.1%}, target +-5%);"
          f" busiest 1-s window {found_rate['worst_second']:.0f} requests (bucket 11)")  # fmt: skip


def report_small_jobs(
    bench: Bench, api: ApiServer, small_port: int, options: Any, base: float
) -> None:
    """Part 3 with two workers running; ``base`` is one Scrapy process per job, in ms."""
    small = many_small_jobs(bench, api, small_port, options)
    rate = small["finished_per_s"]
    print(f"many small jobs (gunicorn API, {options.clients} client processes, 2 workers,"
          f" {options.window:.0f}-s window after {options.warm_up:.0f} s): {rate:.0f} jobs/s"
          f" finished (target >= 200); one Scrapy process per job: {1000 / base:.1f} jobs/s,"
          f" ratio {rate / (1000 / base):.0f}x")  # fmt: skip
    print(f"  {small['jobs']:.0f} jobs, all succeeded with their item stored; submitted at"
          f" {small['submitted_per_s']:.0f}/s, first POST to last job done"
          f" {small['overall_per_s']:.0f}/s")  # fmt: skip
    print(small["cpu"])
    print(f"  task messages: {small['messages']:.0f} for {small['jobs']:.0f} jobs"
          f" ({small['jobs'] / max(small['messages'], 1):.2f} jobs per message)")  # fmt: skip
    print(f"  API: {small['posted_per_s']:.0f} POSTs/s accepted in the window,"
          f" {small['api_ms_per_post']:.1f} ms CPU per accepted POST")  # fmt: skip


if __name__ == "__main__":
    main()
