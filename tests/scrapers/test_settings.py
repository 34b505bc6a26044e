"""The Scrapy settings derived from the shared Settings."""

from __future__ import annotations

import subprocess
import sys

from scrapy.settings import default_settings

from scrapers.settings import build_crawler_settings, scrapy_settings
from shelfwatch.config import Settings
from tests.scrapers.servers import ROOT


def test_production_settings(settings: Settings) -> None:
    values = scrapy_settings(settings)
    assert hasattr(default_settings, "REMOTE_CONTROL_ENABLED")  # the name Scrapy 2.19 reads
    assert values["REMOTE_CONTROL_ENABLED"] is False
    assert values["TELNETCONSOLE_ENABLED"] is False
    assert values["COOKIES_ENABLED"] is False
    assert values["ROBOTSTXT_OBEY"] is True
    assert settings.user_agent_contact_url in values["USER_AGENT"]
    assert values["DOWNLOAD_MAXSIZE"] == settings.scrape_download_maxsize
    assert 429 in values["RETRY_HTTP_CODES"] and 503 in values["RETRY_HTTP_CODES"]
    assert values["DOWNLOAD_HANDLERS"]["file"] is None
    assert values["SSRF_ALLOWED_NETWORKS"] == settings.ssrf_allowed_networks
    assert repr(values["SHELFWATCH_SETTINGS"]) == "<shelfwatch Settings>"


def test_settings_follow_the_shared_settings(settings: Settings) -> None:
    changed = settings.model_copy(
        update={"robotstxt_obey": False, "scrape_httpcache": True, "scrape_autothrottle": True}
    )
    values = scrapy_settings(changed, CONCURRENT_REQUESTS=4)
    assert values["ROBOTSTXT_OBEY"] is False
    assert values["HTTPCACHE_ENABLED"] is True
    assert values["AUTOTHROTTLE_ENABLED"] is True
    assert values["CONCURRENT_REQUESTS"] == 4


def test_worker_settings_carry_the_job(settings: Settings) -> None:
    values = build_crawler_settings(
        settings, job_id="job-1", max_age=600, extra={"CLOSESPIDER_TIMEOUT": 30}
    )
    assert values["SHELFWATCH_JOB_ID"] == "job-1"
    assert values["FRESHNESS_MAX_AGE"] == 600
    assert values["CLOSESPIDER_TIMEOUT"] == 30


def test_scrapy_reads_the_project_settings_from_the_repository_root() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "scrapy", "settings", "--get", "REMOTE_CONTROL_ENABLED"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert completed.stdout.strip() == "False", completed.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "scrapy", "list"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert listed.stdout.split() == ["catalog", "product", "sitemap"]


def test_importing_the_settings_module_installs_no_reactor() -> None:
    code = (
        "import sys, scrapers.settings, scrapers.spiders, scrapers.pipelines;"
        "import scrapers.middlewares.ssrf, scrapers.middlewares.ratelimit;"
        "print('twisted.internet.reactor' in sys.modules)"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.stdout.strip() == "False", completed.stderr
