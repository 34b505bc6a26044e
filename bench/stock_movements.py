"""Stock movements per second at 16 concurrent clients vs pgbench TPC-B on the same database.

One scratch PostgreSQL database holds both: pgbench's tables (``pgbench -i``) and ours
(migrations), with --products x --warehouses stock levels of 1,000,000 each. Four runs, each
--duration seconds with 16 clients:

1. ``pgbench -c 16 -j 2 -T <duration>`` (built-in TPC-B: 3 updates, 1 select, 1 insert);
2. domain level: 16 threads (split over --processes processes) calling
   ``models.stock.apply_movement`` in a retrying transaction each (70 % transfers, 30 %
   shipments, random product and warehouses) — the ledger's own cost with the Python driver,
   as the Celery batch task runs it;
3. the same with ``models.stock.move_stock`` (a transaction of its own: on PostgreSQL one
   autocommitted statement), as the HTTP shell runs it;
4. HTTP: ``POST /api/v1/stock-movements`` through gunicorn (--workers x --threads) driven by
   wrk with 16 connections and a Lua script making the same mix, signed in as a manager
   assigned to every warehouse (JWT check, assignment lookup cached in Redis, validation,
   ledger write): the honest end-to-end figure.

After each run every stock level is compared with the sum of its ledger (zero lost updates)
and checked non-negative. Prints movements/s, the ratio to pgbench's TPS (target >= 0.3x),
the checks, and the CPU time per operation of each process involved (on a shared machine
the steadier measure); drops the database and its Redis keys at the end.

    python bench/stock_movements.py                 # about 2.5 minutes
    python bench/stock_movements.py --duration 60 --skip-http
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import resource
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from scratch import REDIS_URL, add_owners, gunicorn_server, scratch_database
from sqlalchemy import text

from models import MovementKind, Role, create_database
from models.accounts import create_user
from models.assignments import PairChange, apply_changes
from models.stock import (
    InsufficientStock,
    MovementRequest,
    apply_movement,
    move_stock,
    retrying,
)
from models.warehouses import Warehouse
from shelfwatch import migrate
from shelfwatch.config import Settings

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 16
START_QUANTITY = 1_000_000
PASSWORD = "bench password 1234"  # noqa: S105 - a scratch account on a scratch database
EMAIL = "stock-bench@example.com"

LUA = """
local products = tonumber(os.getenv("BENCH_PRODUCTS"))
local warehouses = tonumber(os.getenv("BENCH_WAREHOUSES"))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end
function request()
  local p = math.random(1, products)
  local a = math.random(1, warehouses)
  local b = math.random(1, warehouses - 1)
  if b >= a then b = b + 1 end
  local body
  if math.random() < 0.7 then
    body = string.format('{"kind":"transfer","product_id":%d,"from_warehouse_id":%d,'
      .. '"to_warehouse_id":%d,"quantity":%d}', p, a, b, math.random(1, 5))
  else
    body = string.format('{"kind":"shipment","product_id":%d,"from_warehouse_id":%d,'
      .. '"quantity":%d}', p, a, math.random(1, 3))
  end
  return wrk.format(nil, nil, nil, body)
end
"""


@dataclass
class Figure:
    label: str
    per_second: float
    detail: str
    cpu: str = ""  # CPU milliseconds per operation of each party, when measured


TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def pids_whose_command_has(word: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if word in command:
                found.append(int(entry.name))
    return found


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class BackendCpu:
    """CPU of this database's PostgreSQL backends during a run (its own process title names
    the database), sampled every 0.2 s so that backends of pools closed at the end count."""

    def __init__(self, database: str) -> None:
        self.word = f" {database} "
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def __enter__(self) -> BackendCpu:
        self._sample()
        self.first = dict(self.last)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def _sample(self) -> None:
        for pid in pids_whose_command_has(self.word):
            if pid != os.getpid():
                self.last[pid] = max(self.last.get(pid, 0.0), process_cpu(pid))

    @property
    def seconds(self) -> float:
        return sum(cpu - self.first.get(pid, 0.0) for pid, cpu in self.last.items())


def cpu_per(count: float, parties: dict[str, float]) -> str:
    """``parties`` (CPU seconds) as milliseconds per operation, with their sum."""
    count = max(count, 1)
    costs = ", ".join(f"{name} {seconds * 1000 / count:.2f}" for name, seconds in parties.items())
    return f"{costs}; sum {sum(parties.values()) * 1000 / count:.2f}"


def prepare(settings: Settings, products: int, warehouses: int, owners: int) -> int:
    """Schema, a manager assigned everywhere, products (owned by ``owners`` managers in turn,
    so the owner-partitioned table has rows in every partition) and full stock; the
    manager's id."""
    migrate.upgrade(settings)
    db = create_database(settings)
    with db.transaction() as session:
        user = create_user(session, EMAIL, PASSWORD, Role.MANAGER)
        session.add_all(Warehouse(code=f"W{i}", name=f"W{i}") for i in range(1, warehouses + 1))
        session.flush()
        user_id = user.id
        apply_changes(
            session, [PairChange(user_id, w, "assign") for w in range(1, warehouses + 1)], None
        )
    with db.primary.begin() as connection:
        owner_ids = [user_id, *add_owners(connection, owners - 1)]
        connection.execute(
            text(
                "INSERT INTO products (owner_id, sku, name, price, currency, created_at,"
                " updated_at)"
                " SELECT owners[1 + g % cardinality(owners)], 'SKU-' || g, 'P' || g, 1, 'EUR',"
                " now(), now()"
                " FROM generate_series(1, :n) AS g, CAST(:owners AS bigint[]) AS owners"
            ),
            {"owners": owner_ids, "n": products},
        )
    with db.transaction() as session:
        for product in range(1, products + 1):
            for warehouse in range(1, warehouses + 1):
                receipt = MovementRequest(
                    MovementKind.RECEIPT, product, START_QUANTITY, to_warehouse_id=warehouse
                )
                apply_movement(session, receipt, user_id)
    db.dispose()
    return user_id


def run_pgbench(database: str, duration: int, scale: int) -> Figure:
    subprocess.run(
        ["pgbench", "-i", "-q", "-s", str(scale), "-h", "127.0.0.1", database],
        check=True,
        capture_output=True,
    )
    client_before = children_cpu()
    with BackendCpu(database) as backends:
        output = subprocess.run(
            [
                "pgbench",
                "-c",
                str(CLIENTS),
                "-j",
                "2",
                "-T",
                str(duration),
                "-h",
                "127.0.0.1",
                database,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", output).group(1))
    done = int(re.search(r"number of transactions actually processed: (\d+)", output).group(1))
    cpu = cpu_per(done, {"pgbench": children_cpu() - client_before, "postgres": backends.seconds})
    return Figure("pgbench TPC-B", tps, f"-c16 -j2, scale {scale}", f"per transaction: {cpu}")


def random_movement(rng: random.Random, products: int, warehouses: int) -> MovementRequest:
    product = rng.randint(1, products)
    source, target = rng.sample(range(1, warehouses + 1), 2)
    if rng.random() < 0.7:
        return MovementRequest(
            MovementKind.TRANSFER,
            product,
            rng.randint(1, 5),
            from_warehouse_id=source,
            to_warehouse_id=target,
        )
    return MovementRequest(
        MovementKind.SHIPMENT, product, rng.randint(1, 3), from_warehouse_id=source
    )


def domain_worker(
    settings_json: str,
    user_id: int,
    threads: int,
    products: int,
    warehouses: int,
    deadline: float,
    own_transaction: bool,
    counts: multiprocessing.Queue,
) -> None:
    db = create_database(Settings.model_validate_json(settings_json))
    done: list[tuple[int, int]] = []

    def apply(movement: MovementRequest) -> None:
        if own_transaction:  # as the HTTP shell does: one autocommitted statement
            move_stock(db.primary, movement, user_id)
        else:  # as the Celery batch task does: in a transaction the caller owns
            retrying(db.session, lambda s: apply_movement(s, movement, user_id))

    def client(seed: int) -> None:
        rng = random.Random(seed)
        applied = refused = 0
        while time.monotonic() < deadline:
            try:
                apply(random_movement(rng, products, warehouses))
                applied += 1
            except InsufficientStock:
                refused += 1
        done.append((applied, refused))

    pool = [threading.Thread(target=client, args=(os.getpid() * 100 + i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    db.dispose()
    applied, refused = sum(a for a, _ in done), sum(r for _, r in done)
    counts.put((applied, refused, time.process_time()))


def run_domain(
    settings: Settings,
    user_id: int,
    args: argparse.Namespace,
    database: str,
    *,
    own_transaction: bool,
) -> Figure:
    counts: multiprocessing.Queue = multiprocessing.Queue()
    start = time.monotonic()
    deadline = start + args.duration
    per_process = CLIENTS // args.processes
    workers = [
        multiprocessing.Process(
            target=domain_worker,
            args=(
                settings.model_dump_json(),
                user_id,
                per_process,
                args.products,
                args.warehouses,
                deadline,
                own_transaction,
                counts,
            ),
        )
        for _ in range(args.processes)
    ]
    with BackendCpu(database) as backends:
        for worker in workers:
            worker.start()
        results = [counts.get(timeout=args.duration + 60) for _ in workers]
        for worker in workers:
            worker.join()
    applied = sum(a for a, _, _ in results)
    refused = sum(r for _, r, _ in results)
    clients = sum(cpu for _, _, cpu in results)
    detail = f"{args.processes} processes x {per_process} threads; {refused} refused (409)"
    cpu = cpu_per(applied + refused, {"Python clients": clients, "postgres": backends.seconds})
    label = "domain move_stock" if own_transaction else "domain apply_movement"
    return Figure(label, applied / args.duration, detail, f"per movement: {cpu}")


def login(base: str) -> str:
    request = urllib.request.Request(  # noqa: S310 - 127.0.0.1
        base + "/api/v1/auth/login",
        data=json.dumps({"email": EMAIL, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
        return json.load(answer)["access_token"]


def gunicorn_cpu(master: int) -> float:
    """CPU seconds of the master and its workers."""
    pids = [master]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
        except OSError:
            continue
        if int(parent) == master:
            pids.append(int(entry.name))
    return sum(process_cpu(pid) for pid in pids)


def redis_cpu() -> float:
    return sum(process_cpu(pid) for pid in pids_whose_command_has("redis-server"))


def run_http(env: dict[str, str], args: argparse.Namespace, database: str) -> Figure:
    server = gunicorn_server(
        "webapi:create_app()", env, [f"--workers={args.workers}", f"--threads={args.threads}"]
    )
    with server as (base, master), tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "movements.lua"
        script.write_text(LUA)
        wrk_env = {
            **os.environ,
            "BENCH_TOKEN": login(base),
            "BENCH_PRODUCTS": str(args.products),
            "BENCH_WAREHOUSES": str(args.warehouses),
        }
        url = base + "/api/v1/stock-movements"
        command = ["wrk", "-t2", f"-c{CLIENTS}", "--latency", "-s", str(script)]
        subprocess.run([*command, "-d2s", url], check=True, capture_output=True, env=wrk_env)
        before = {"gunicorn": gunicorn_cpu(master), "wrk": children_cpu(), "redis": redis_cpu()}
        with BackendCpu(database) as backends:
            output = subprocess.run(
                [*command, f"-d{args.duration}s", url],
                check=True,
                capture_output=True,
                text=True,
                env=wrk_env,
            ).stdout
        after = {"gunicorn": gunicorn_cpu(master), "wrk": children_cpu(), "redis": redis_cpu()}
    used = {name: after[name] - before[name] for name in before}
    used["postgres"] = backends.seconds
    used["redis (whole server)"] = used.pop("redis")
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    p99 = re.search(r"\s99%\s+([\d.]+\w+)", output).group(1)
    detail = (
        f"gunicorn {args.workers}x{args.threads}, wrk -c16; p99 {p99}; "
        f"non-2xx (409 insufficient) {non_2xx.group(1) if non_2xx else 0}"
    )
    cpu = cpu_per(requests, used)
    return Figure("HTTP POST /stock-movements", rate, detail, f"per request: {cpu}")


def vacuum_stock_tables(database_url: str) -> None:
    """What pgbench does to its tables before each run (it vacuums them; ``-i`` made them
    fresh): without it, each run of ours would start on the dead row versions the runs before
    it left in ``stock_levels`` (100,000s of updates of 400 rows)."""
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE stock_levels, stock_movements")


def check_ledger(database_url: str) -> tuple[int, int, int]:
    """(levels differing from their ledger sum, negative levels, ledger rows)."""
    with psycopg.connect(database_url) as connection:
        differing = connection.execute(
            "WITH moves AS ("
            " SELECT product_id, to_warehouse_id AS warehouse_id, quantity AS delta"
            " FROM stock_movements WHERE to_warehouse_id IS NOT NULL"
            " UNION ALL SELECT product_id, from_warehouse_id, -quantity"
            " FROM stock_movements WHERE from_warehouse_id IS NOT NULL),"
            " ledger AS (SELECT product_id, warehouse_id, sum(delta) AS quantity"
            " FROM moves GROUP BY 1, 2)"
            " SELECT count(*) FROM stock_levels l FULL JOIN ledger g"
            " USING (product_id, warehouse_id)"
            " WHERE coalesce(l.quantity, 0) <> coalesce(g.quantity, 0)"
        ).fetchone()[0]
        negative = connection.execute(
            "SELECT count(*) FROM stock_levels WHERE quantity < 0"
        ).fetchone()[0]
        rows = connection.execute("SELECT count(*) FROM stock_movements").fetchone()[0]
    return differing, negative, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds per run")
    parser.add_argument("--products", type=int, default=100)
    parser.add_argument("--warehouses", type=int, default=4)
    parser.add_argument("--owners", type=int, default=16, help="managers owning the products")
    parser.add_argument("--pgbench-scale", type=int, default=16)
    parser.add_argument("--processes", type=int, default=2, choices=[1, 2, 4, 8, 16])
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument("--skip-domain", action="store_true")
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()
    name = f"bench_stock_{uuid.uuid4().hex[:8]}"
    secret = uuid.uuid4().hex * 2
    figures, checks = [], []
    with scratch_database(name) as url:
        settings = Settings(
            mode="production",
            database_url=url,
            redis_url=REDIS_URL,
            redis_prefix=f"{name}:",
            secret_key=secret,
            log_level="WARNING",
        )
        user_id = prepare(settings, args.products, args.warehouses, args.owners)
        figures.append(run_pgbench(name, args.duration, args.pgbench_scale))
        runs = []
        if not args.skip_domain:
            runs.append(lambda: run_domain(settings, user_id, args, name, own_transaction=False))
            runs.append(lambda: run_domain(settings, user_id, args, name, own_transaction=True))
        if not args.skip_http:
            env = {
                "SHELFWATCH_MODE": "production",
                "DATABASE_URL": url,
                "REDIS_URL": REDIS_URL,
                "BROKER_URL": REDIS_URL,
                "REDIS_PREFIX": f"{name}:",
                "QUEUE_NAMESPACE": f"{name}.",
                "SECRET_KEY": secret,
                "LOG_LEVEL": "WARNING",
            }
            runs.append(lambda: run_http(env, args, name))
        for run in runs:
            vacuum_stock_tables(url)
            figures.append(run())
            checks.append((figures[-1].label, *check_ledger(url)))
    report(figures, checks)


def report(figures: list[Figure], checks: list[tuple[str, int, int, int]]) -> None:
    baseline = figures[0].per_second
    print(f"\n{CLIENTS} concurrent clients, same PostgreSQL database; target >= 0.3x pgbench")
    print(f"{'run':<28} {'per second':>11} {'vs pgbench':>11}  detail")
    for figure in figures:
        ratio = figure.per_second / baseline
        print(f"{figure.label:<28} {figure.per_second:>11.0f} {ratio:>10.2f}x  {figure.detail}")
    print("\nlost-update check after each run (levels vs ledger sums):")
    for label, differing, negative, rows in checks:
        verdict = "OK" if differing == 0 and negative == 0 else "FAILED"
        print(
            f"  {label:<28} {differing} levels differ from the ledger, {negative} negative,"
            f" {rows} ledger rows: {verdict}"
        )
    print("\nCPU milliseconds per operation, by process (from /proc; PostgreSQL: this database's")
    print("backends only; Redis: the whole server, shared with anything else running):")
    for figure in figures:
        print(f"  {figure.label:<28} {figure.cpu}")


if __name__ == "__main__":
    main()
