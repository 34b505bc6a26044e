"""Throughput and p99 of ``GET /api/v1/products?limit=50`` under gunicorn and wrk, cached and
uncached, against a bare Flask app serving a 50-item JSON list under the same gunicorn settings.

Creates a scratch PostgreSQL database (migrations, one manager, --products products), starts
each server on a free 127.0.0.1 port with the production settings of ``shelfwatch up``
(2 workers x 4 threads; no access log for either server), runs wrk with 32 connections on
each server in turn (--rounds), prints requests/s, p99 and the ratios to the bare app, and the
CPU time each request cost the server's processes, Redis and PostgreSQL (steadier than
requests/s on a shared machine: it is what decides the ratios when wrk, the servers and the
databases share the cores); then stops the servers, drops the database and deletes its Redis
keys.

    python bench/api_throughput.py                # 10 s per server, in 3 rounds of ~3 s
    python bench/api_throughput.py --duration 30 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis
from scratch import ADMIN_URL, REDIS_URL, add_owners, gunicorn_server, scratch_database
from sqlalchemy import text

from models import Role, create_database
from models.accounts import create_user
from shelfwatch import migrate
from shelfwatch.config import Settings

ROOT = Path(__file__).resolve().parent.parent
PATH = "/api/v1/products?limit=50"
GUNICORN = ["--workers=2", "--threads=4"]  # ``shelfwatch up``; --workers/--threads to compare
PASSWORD = "bench password 1234"  # noqa: S105 - a scratch account on a scratch database


@dataclass
class Result:
    label: str
    requests_per_second: float
    p99_ms: float
    non_2xx: int
    requests: int = 0
    cpu_us: dict[str, float] = field(default_factory=dict)  # per request, by party


@dataclass
class Target:
    label: str
    url: str
    token: str | None
    server_pid: int


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of one process, from /proc (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(child) for child in task.read_text().split()]
    return found


@dataclass
class Parties:
    """The processes whose CPU a request costs: a server (gunicorn and its workers), Redis,
    and the PostgreSQL backends connected to the scratch database."""

    redis_pid: int
    database: str

    def cpu(self, server_pid: int) -> dict[str, float]:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            backends = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.database,)
            ).fetchall()
        server = [server_pid, *children(server_pid)]
        return {
            "server": sum(map(process_cpu, server)),
            "redis": process_cpu(self.redis_pid),
            "postgres": sum(process_cpu(pid) for (pid,) in backends),
        }


def prepare(settings: Settings, products: int, owners: int) -> str:
    """Schema, a manager (who signs in) and ``owners - 1`` more, owning the products in turn
    (so the owner-partitioned table has rows in every partition); returns the email."""
    migrate.upgrade(settings)
    db = create_database(settings)
    email = "bench@example.com"
    with db.transaction() as session:
        user_id = create_user(session, email, PASSWORD, Role.MANAGER).id
    with db.primary.begin() as connection:
        owner_ids = [user_id, *add_owners(connection, owners - 1)]
        connection.execute(
            text(
                "INSERT INTO products (owner_id, sku, name, description, price, currency,"
                " created_at, updated_at)"
                " SELECT owners[1 + g % cardinality(owners)], 'SKU-' || g, 'Product ' || g,"
                " 'A product', 19.99, 'EUR', now() - g * interval '1 minute', now()"
                " FROM generate_series(1, :n) AS g, CAST(:owners AS bigint[]) AS owners"
            ),
            {"n": products, "owners": owner_ids},
        )
    with db.primary.connect() as connection:
        # Statistics, as a live table has them (and as pgbench gets them from its VACUUM):
        # a table nobody analysed yet is listed by a sequential scan and a sort of every
        # row, ~0.4 ms of PostgreSQL per request instead of ~0.05 ms by the index.
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("VACUUM ANALYZE products")
        )
    db.dispose()
    return email


@contextmanager
def gunicorn(app_spec: str, env: dict[str, str], chdir: Path = ROOT) -> Iterator[tuple[str, int]]:
    """A gunicorn serving ``app_spec`` with this bench's settings; yields its base URL and pid."""
    with gunicorn_server(app_spec, env, GUNICORN, chdir) as server:
        yield server


def login(base: str, email: str) -> str:
    request = urllib.request.Request(  # noqa: S310 - 127.0.0.1
        base + "/api/v1/auth/login",
        data=json.dumps({"email": email, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
        return json.load(answer)["access_token"]


def interleaved(
    targets: list[Target], parties: Parties, duration: int, rounds: int
) -> list[Result]:
    """Each server in turn, ``rounds`` times: a shared machine's load swings then weigh on all
    of them alike. Requests/s is the mean of the rounds, p99 their median, CPU per request
    the total over the rounds divided by the requests."""
    runs: dict[str, list[Result]] = {target.label: [] for target in targets}
    seconds = max(1, round(duration / rounds))
    for round_number in range(rounds):
        for target in targets:
            if round_number == 0:
                wrk(target.label, target.url, 2, target.token)  # warm-up
            before = parties.cpu(target.server_pid)
            result = wrk(target.label, target.url, seconds, target.token)
            after = parties.cpu(target.server_pid)
            result.cpu_us = {name: (after[name] - before[name]) * 1e6 for name in after}
            runs[target.label].append(result)
    return [combined(label, results) for label, results in runs.items()]


def combined(label: str, results: list[Result]) -> Result:
    requests = sum(run.requests for run in results)
    cpu = {name: sum(run.cpu_us[name] for run in results) / requests for name in results[0].cpu_us}
    return Result(
        label,
        statistics.fmean(run.requests_per_second for run in results),
        statistics.median(run.p99_ms for run in results),
        sum(run.non_2xx for run in results),
        requests,
        cpu,
    )


def wrk(label: str, url: str, duration: int, token: str | None = None) -> Result:
    headers = ["-H", f"Authorization: Bearer {token}"] if token else []
    command = ["wrk", "-t2", "-c32", f"-d{duration}s", "--latency", *headers, url]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    value, unit = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", output).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    return Result(label, rate, p99, int(errors.group(1)) if errors else 0, requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--owners", type=int, default=16, help="managers owning the products")
    parser.add_argument(
        "--rounds", type=int, default=3, help="the servers take turns, --duration split in rounds"
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (both servers)")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    args = parser.parse_args()
    GUNICORN[:] = [f"--workers={args.workers}", f"--threads={args.threads}"]
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    prefix = f"bench_api_{uuid.uuid4().hex[:8]}"
    with scratch_database(prefix) as url:
        env = {
            "SHELFWATCH_MODE": "production",
            "DATABASE_URL": url,
            "REDIS_URL": REDIS_URL,
            "BROKER_URL": REDIS_URL,
            "REDIS_PREFIX": f"{prefix}:",
            "QUEUE_NAMESPACE": f"{prefix}.",
            "SECRET_KEY": uuid.uuid4().hex * 2,
            "LOG_LEVEL": "WARNING",
        }
        settings = Settings(mode="production", database_url=url, secret_key=env["SECRET_KEY"])
        email = prepare(settings, args.products, args.owners)
        parties = Parties(redis.Redis.from_url(REDIS_URL).info("server")["process_id"], prefix)
        with ExitStack() as servers:
            bare, pid = servers.enter_context(
                gunicorn("bare_flask_app:app", {}, chdir=ROOT / "bench")
            )
            targets = [Target("bare Flask, 50-item list", bare + PATH, None, pid)]
            for label, ttl in (("shelfwatch, cached", "300"), ("shelfwatch, uncached", "0")):
                base, pid = servers.enter_context(
                    gunicorn("webapi:create_app()", {**env, "CACHE_TTL_SECONDS": ttl})
                )
                targets.append(Target(label, base + PATH, login(base, email), pid))
            results = interleaved(targets, parties, args.duration, args.rounds)
    report(results)


def report(results: list[Result]) -> None:
    baseline = results[0].requests_per_second
    targets = {"shelfwatch, cached": 0.7, "shelfwatch, uncached": 0.35}
    print(f"\nwrk -c32, gunicorn {' '.join(GUNICORN)}; GET {PATH}")
    print(f"{'server':<26} {'req/s':>9} {'p99 ms':>8} {'vs bare':>8} {'target':>7} {'non-2xx':>8}")
    for result in results:
        ratio = result.requests_per_second / baseline
        target = f">={targets[result.label]}" if result.label in targets else ""
        print(
            f"{result.label:<26} {result.requests_per_second:>9.0f} {result.p99_ms:>8.2f}"
            f" {ratio:>7.2f}x {target:>7} {result.non_2xx:>8}"
        )
    print("target p99 < 25 ms")
    bare_cpu = sum(results[0].cpu_us.values())
    print("\nCPU per request, microseconds (gunicorn master + workers, Redis, PostgreSQL backends)")
    print(f"{'server':<26} {'server':>8} {'redis':>7} {'postgres':>9} {'total':>8} {'vs bare':>8}")
    for result in results:
        cpu = result.cpu_us
        total = sum(cpu.values())
        print(
            f"{result.label:<26} {cpu['server']:>8.0f} {cpu['redis']:>7.0f}"
            f" {cpu['postgres']:>9.0f} {total:>8.0f} {total / bare_cpu:>7.2f}x"
        )
    print("(targets by CPU: cached <= ~1.4x, uncached <= ~2.8x of the bare request)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
