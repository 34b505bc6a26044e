"""Scratch resources the benchmarks create and remove: a PostgreSQL database, Redis keys,
free ports on 127.0.0.1, gunicorn servers; and the owners a bench's products belong to."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis
from psycopg import sql
from sqlalchemy import Connection, text

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = "postgresql://127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


def add_owners(connection: Connection, count: int) -> list[int]:
    """``count`` managers nobody signs in as, to own a bench's products (in turn, so that
    every partition of the owner-partitioned table holds some); their ids."""
    return list(
        connection.execute(
            text(
                "INSERT INTO users (email, password_hash, role, is_active, created_at,"
                " updated_at) SELECT 'owner-' || gen_random_uuid() || '@example.com', '!',"
                " 'manager', true, now(), now() FROM generate_series(1, :n) RETURNING id"
            ),
            {"n": count},
        ).scalars()
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def scratch_database(name: str) -> Iterator[str]:
    """A new database named ``name`` (its URL); dropped afterwards with the Redis keys
    under ``name:``."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{name}:*", count=1000))
        if keys:
            client.delete(*keys)


@contextmanager
def gunicorn_server(
    app_spec: str, env: dict[str, str], options: Sequence[str], chdir: Path = ROOT
) -> Iterator[tuple[str, int]]:
    """gunicorn serving ``app_spec`` with ``options`` on a free port, once it answers; yields
    its base URL and the master's pid, and stops it afterwards."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            app_spec,
            f"--bind=127.0.0.1:{port}",
            *options,
            f"--chdir={chdir}",
        ],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, server)
        yield base, server.pid
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_until_up(base: str, server: subprocess.Popen[bytes]) -> None:
    for _ in range(150):
        if server.poll() is not None:
            raise RuntimeError(server.stderr.read().decode() if server.stderr else "exited")
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)  # noqa: S310 - 127.0.0.1
            return
        except urllib.error.HTTPError:
            return  # it answers (a bare app may have no /healthz)
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")
