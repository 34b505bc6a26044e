"""`shelfwatch crawl`: runs a spider with progress and a summary, storing into the database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from models import Database, ScrapedProduct
from shelfwatch.config import Settings
from tests.scrapers.servers import ROOT, Site, SiteServer, html_response, product_page


def _shelfwatch(*args: str, settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SHELFWATCH_MODE": "production",
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "REDIS_PREFIX": settings.redis_prefix,
        "SSRF_ALLOWED_NETWORKS": "127.0.0.0/8",
        "DOMAIN_RATE_PER_SECOND": "1000",
        "COLUMNS": "120",
    }
    return subprocess.run(
        [str(Path(sys.executable).parent / "shelfwatch"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip


def test_crawl_stores_products_and_prints_a_summary(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    site = Site(routes={"/p/1": html_response(product_page("Cli Lamp", "30.00"))})
    out = tmp_path / "items.jsonl"
    with SiteServer(site):
        completed = _shelfwatch(
            "crawl", "product", "-a", f"urls={site.url('/p/1')} {site.url('/nope')}",
            "--job-id", "cli-job", "-O", str(out), settings=settings,
        )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "crawl product: finished" in completed.stderr
    assert "products stored" in completed.stderr and "pages/error/http_404" in completed.stderr
    assert "Cli Lamp" in out.read_text()
    with database.session() as session:
        stored = session.scalars(select(ScrapedProduct).where(ScrapedProduct.job_id == "cli-job"))
        assert [(product.name, product.url) for product in stored] == [
            ("Cli Lamp", site.url("/p/1"))
        ]


def test_crawl_rejects_a_bad_argument_in_one_line(settings: Settings) -> None:
    completed = _shelfwatch(
        "crawl",
        "catalog",
        "-a",
        "urls=https://a.example/",
        "-a",
        "max_depth=deep",
        settings=settings,
    )
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert "argument 'max_depth'" in completed.stderr
