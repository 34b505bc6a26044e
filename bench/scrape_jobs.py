"""Scrape jobs end to end: API → Celery (Redis) → worker processes → crawl → PostgreSQL.

Every figure is printed beside a baseline measured in the same run:

1. throughput: one job over a local N-product site (default 5,000), POST → every item stored,
   with one and with two worker processes, vs one bare Scrapy process doing the same crawl
   with the same storage pipeline (``bench/crawl_speed.py``'s child crawl, timed from spawn
   to exit). Targets: >= 0.9x (one worker), >= 1.5x (two).
2. latency of single-URL jobs, POST → job succeeded and its item readable through the API, vs
   one Scrapy process per job. Targets: p50 <= 50 ms, p99 <= 150 ms.
3. many small jobs: single-URL jobs submitted from 4 client threads; jobs finished per second
   (target >= 200/s) vs one Scrapy process per job.
4. rate-limit accuracy: two workers crawl one domain limited to 10 requests/s for D seconds
   (default 30); the site records every request. Target: rate within +-5%, and no 1-second
   window above the bucket (burst + rate).

    python bench/scrape_jobs.py [--quick] [--products 5000] [--jobs 600] [--rate-seconds 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import crawl_speed  # noqa: E402  (the site server and the bare Scrapy child crawl)
from sqlalchemy import func, select, text  # noqa: E402

from models import Role, ScrapedProduct, ScrapeJob, create_database  # noqa: E402
from models.accounts import create_user  # noqa: E402
from shelfwatch import migrate  # noqa: E402
from shelfwatch.config import Settings  # noqa: E402
from tests.services import REDIS_URL, delete_redis_prefix, postgres_database  # noqa: E402
from tests.tasks.scrape_support import Shop, WorkerProcess  # noqa: E402
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

    def start_workers(self, count: int, settings: Settings | None = None) -> None:
        for _ in range(count):
            log = self.folder / f"worker{len(self.workers)}.log"
            self.workers.append(WorkerProcess(settings or self.settings, log).start())
        self.warm_up()

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def warm_up(self) -> None:
        """One tiny job per worker thread so every process has its reactor running."""
        with Shop() as shop:
            ids = [self.submit([shop.url(n)]) for n in range(len(self.workers) * 4)]
            self.wait_all(ids, timeout=120)
        self.truncate()

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
    job_id = bench.submit(urls)
    seconds = bench.wait_all([job_id], timeout=900, interval=0.05) - started
    status, stored = bench.status(job_id), bench.stored()
    if status != "succeeded" or stored != products:
        raise SystemExit(f"throughput job ended {status} with {stored}/{products} stored")
    return products / seconds


def bare_throughput(bench: Bench, port: int, products: int) -> tuple[float, float]:
    bench.truncate()
    urls_file = bench.folder / "urls.txt"
    urls_file.write_text("\n".join(f"http://127.0.0.1:{port}/p/{n}" for n in range(products)))
    seconds, stats = timed_scrapy_process(bench, {"urls_file": str(urls_file)})
    assert stats.get("storage/products") == products, stats
    return products / seconds, products / stats["elapsed_time_seconds"]


def latencies(bench: Bench, count: int, offset: int) -> list[float]:
    client = bench.app.test_client()
    found: list[float] = []
    with Shop() as shop:
        for n in range(count):
            started = time.monotonic()
            job_id = bench.submit([shop.url(offset + n)], client)
            while bench.status(job_id) not in FINAL:
                time.sleep(0.001)
            items = client.get(f"/api/v1/scrape-jobs/{job_id}/items", headers=bench.headers)
            assert len(items.json["items"]) == 1, items.json
            found.append(time.monotonic() - started)
    return found


def baseline_latencies(bench: Bench, count: int) -> list[float]:
    with Shop() as shop:
        return [
            timed_scrapy_process(bench, {"urls": shop.url(90_000 + n)})[0] for n in range(count)
        ]


def many_small_jobs(bench: Bench, count: int, threads: int = 4) -> tuple[float, float]:
    ids: list[str] = []
    lock = threading.Lock()
    with Shop() as shop:

        def submit_some(part: int) -> None:
            client = bench.app.test_client()
            for n in range(part, count, threads):
                job_id = bench.submit([shop.url(200_000 + n)], client)
                with lock:
                    ids.append(job_id)

        started = time.monotonic()
        workers = [threading.Thread(target=submit_some, args=(k,)) for k in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        submitted = time.monotonic()
        finished = bench.wait_all(ids, timeout=600, interval=0.05)
    return count / (finished - started), count / (submitted - started)


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


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
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
        sample["postgres"] = {pid: _proc_cpu(pid) for pid in _postgres_pids()}
        sample["machine busy"], sample["machine total"] = _machine_busy()
        return sample

    def report(self) -> str:
        postgres = self.after.pop("postgres")
        earlier = self.before.pop("postgres")
        used = {name: self.after[name] - self.before[name] for name in self.after}
        used["postgres (all clients)"] = sum(
            seconds - earlier.get(pid, 0.0) for pid, seconds in postgres.items()
        )
        total = used.pop("machine total")
        parts = [f"{name} {seconds / self.wall:.2f}" for name, seconds in used.items()]
        return (f"  CPU cores used during the run ({self.wall:.1f} s, {total / self.wall:.1f} "
                f"cores): " + ", ".join(parts))  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (about a minute)")
    parser.add_argument("--products", type=int, default=5000)
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--latency-jobs", type=int, default=100)
    parser.add_argument("--rate-seconds", type=float, default=30.0)
    options = parser.parse_args()
    if options.quick:
        options.products, options.jobs, options.latency_jobs = 1000, 200, 30
        options.rate_seconds = 10.0
    name = f"bench_jobs_{uuid.uuid4().hex[:8]}"
    with postgres_database(name) as url, tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            mode="production",
            database_url=url,
            redis_url=REDIS_URL,
            broker_url=REDIS_URL,
            redis_prefix=f"{name}:",
            queue_namespace=f"{name}.",
            secret_key="bench-secret-key-that-is-long-enough-for-hs256",  # noqa: S106
            ssrf_allowed_networks=["127.0.0.0/8"],
            domain_rate_overrides=["127.0.0.1=1000000"],
            scrape_task_rate_limit=None,
            scrape_submit_rate_limit="1000000 per minute",
            scrape_chunk_size=max(50, options.products // 10),
            scrape_concurrent_requests=32,
            scrape_concurrent_requests_per_domain=32,
            log_level="WARNING",
        )
        migrate.upgrade(settings)
        bench = Bench(settings, Path(folder))
        server, port = crawl_speed.start_server(options.products)
        try:
            run(bench, server, port, options)
        finally:
            bench.stop_workers()
            server.terminate()
            bench.db.dispose()
            delete_redis_prefix(settings.redis_prefix)


def run(bench: Bench, site: Any, port: int, options: argparse.Namespace) -> None:
    print(f"site: {options.products} products on 127.0.0.1:{port}; 2 cores shared with the site")
    bare_wall, bare_crawl = bare_throughput(bench, port, options.products)
    print(f"bare Scrapy process (spawn to exit): {bare_wall:7.1f} products/s")
    print(f"  (its crawl alone, without start-up: {bare_crawl:7.1f} products/s)")

    bench.start_workers(1)
    one = throughput(bench, port, options.products)
    print(f"job, 1 worker process:               {one:7.1f} products/s  ratio {one / bare_wall:.2f}"
          f" (target >= 0.90; vs crawl alone {one / bare_crawl:.2f})")  # fmt: skip

    found = latencies(bench, options.latency_jobs, 10_000)
    baseline = baseline_latencies(bench, 3 if options.quick else 5)
    p50, p99 = percentile(found, 0.5) * 1000, percentile(found, 0.99) * 1000
    base = statistics.median(baseline) * 1000
    print(f"single-URL job latency (1 worker, {len(found)} jobs): p50 {p50:.0f} ms,"
          f" p99 {p99:.0f} ms"
          f" (targets 50/150); one Scrapy process per job: median {base:.0f} ms,"
          f" ratio {base / p50:.0f}x")  # fmt: skip

    bench.start_workers(1)
    parties = {f"worker {n}": [w.pid] for n, w in enumerate(bench.workers)}
    parties.update({"site server": [site.pid], "bench (API, client)": [os.getpid()]})
    with CpuShare(parties) as cpu:
        two = throughput(bench, port, options.products)
    print(f"job, 2 worker processes:             {two:7.1f} products/s  ratio {two / bare_wall:.2f}"
          f" (target >= 1.50; vs crawl alone {two / bare_crawl:.2f})")  # fmt: skip
    print(cpu.report())

    rate, submit_rate = many_small_jobs(bench, options.jobs)
    print(f"many small jobs (2 workers, {options.jobs} jobs): {rate:.0f} jobs/s finished"
          f" (submitted at {submit_rate:.0f}/s; target >= 200); one Scrapy process per job:"
          f" {1000 / base:.1f} jobs/s, ratio {rate / (1000 / base):.0f}x")  # fmt: skip
    bench.stop_workers()

    limited = bench.settings.model_copy(update={"domain_rate_overrides": ["127.0.0.1=10"]})
    bench.start_workers(2, limited)
    found_rate = rate_accuracy(bench, options.rate_seconds, 10.0)
    print(f"rate limit 10/s over {options.rate_seconds:.0f}s, 2 workers: measured"
          f" {found_rate['rate']:.2f} req/s ({found_rate['rate'] / 10 - 1:+.1%}, target +-5%);"
          f" busiest 1-s window {found_rate['worst_second']:.0f} requests (bucket 11)")  # fmt: skip


if __name__ == "__main__":
    main()
