"""The ``shelfwatch`` command: help, create-admin, and ``up`` bringing the platform up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from click.testing import CliRunner

from models import create_database
from models.accounts import authenticate
from shelfwatch.cli import main
from shelfwatch.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("up", "migrate", "create-admin", "crawl"):
        assert command in result.output


def test_create_admin_creates_then_promotes(tmp_path: Path) -> None:
    env = {"SHELFWATCH_DATA_DIR": str(tmp_path)}
    runner = CliRunner(env=env)
    created = runner.invoke(
        main, ["create-admin", "--email", "Boss@Example.com", "--password", "boss password"]
    )
    assert created.exit_code == 0, created.output
    assert "created admin boss@example.com" in created.output
    again = runner.invoke(main, ["create-admin", "--email", "boss@example.com"])
    assert again.exit_code == 0, again.output
    assert "promoted" in again.output
    db = create_database(Settings(data_dir=tmp_path))
    try:
        with db.session() as session:
            user = authenticate(session, "boss@example.com", "boss password")
            assert user is not None and user.role == "admin"
    finally:
        db.dispose()


def test_create_admin_prompts_for_a_missing_password(tmp_path: Path) -> None:
    runner = CliRunner(env={"SHELFWATCH_DATA_DIR": str(tmp_path)})
    result = runner.invoke(
        main, ["create-admin", "--email", "p@example.com"], input="prompted pass\nprompted pass\n"
    )
    assert result.exit_code == 0, result.output
    short = runner.invoke(main, ["create-admin", "--email", "q@example.com", "--password", "x"])
    assert short.exit_code != 0
    assert "8 characters" in short.output


def test_up_starts_everything_on_embedded_defaults_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port, flower_port = _free_port(), _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "BROKER_URL", "SECRET_KEY"}
    }
    env.update(SHELFWATCH_DATA_DIR=str(tmp_path), PORT=str(port), FLOWER_PORT=str(flower_port))
    process = subprocess.Popen(
        [sys.executable, "-m", "shelfwatch.cli", "up"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        health = flower = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (health is None or flower is None):
            time.sleep(0.5)
            try:
                health = health or requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                flower = flower or requests.get(f"http://127.0.0.1:{flower_port}/", timeout=5)
            except requests.RequestException:  # not listening or still booting
                continue
        assert health is not None and health.json() == {"status": "ok"}
        assert flower is not None and flower.status_code == 200
        spec = requests.get(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=5)
        assert spec.json()["openapi"].startswith("3.1")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
    assert process.returncode is not None
    for part in ("api", "worker", "beat", "flower"):
        assert f"{part} stopped" in output, output[-3000:]
