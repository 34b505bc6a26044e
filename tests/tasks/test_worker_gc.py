"""A worker process's collector after start-up: start-up objects frozen, young threshold up."""

from __future__ import annotations

import json
import subprocess
import sys

from tasks.worker_gc import YOUNG_THRESHOLD
from tests.tasks.scrape_support import ROOT

# Run in a process of its own, as a worker would, so this test process's collector is left alone.
PROBE = """
import gc, json, sys
from scrapers.runner import ReactorThread
from tasks.worker_gc import freeze_startup_objects
ReactorThread.get()
before = gc.get_freeze_count()
freeze_startup_objects()
garbage = [[]]
garbage[0].append(garbage)  # a cycle made after the freeze is still collected
del garbage
print(json.dumps({"before": before, "frozen": gc.get_freeze_count(),
                  "threshold": gc.get_threshold(), "collected": gc.collect(),
                  "crawl_stack": "tasks.crawling" in sys.modules}))
"""


def test_start_up_objects_are_frozen_and_young_collections_are_rarer() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    found = json.loads(completed.stdout.strip().splitlines()[-1])
    assert found["before"] == 0
    # Scrapy, Twisted, SQLAlchemy and the spiders: far more than a bare interpreter holds.
    assert found["frozen"] > 50_000
    assert found["threshold"][0] == YOUNG_THRESHOLD
    assert found["collected"] >= 1
    assert found["crawl_stack"]
