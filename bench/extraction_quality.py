"""Extraction quality on a local corpus: precision, recall and F1 per field.

Serves bench/extraction_pages/ from 127.0.0.1 in a thread, crawls every page with a minimal
Scrapy spider that calls `extract_product`, and scores the items against expected.json,
separately for pages with structured data and pages without. No traffic leaves 127.0.0.1.

    python bench/extraction_quality.py [--save-baseline]

With a baseline saved beside the corpus (baseline.json), each F1 is printed with its change.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import scrapy
from scrapy.crawler import CrawlerProcess

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scrapers.extraction import extract_product

CORPUS = Path(__file__).resolve().parent / "extraction_pages"
BASELINE = CORPUS / "baseline.json"
FIELDS = ("price", "currency", "availability", "sku", "gtin", "name", "brand")
HOST = "127.0.0.1"


def make_handler(routes: dict[str, str]) -> type[SimpleHTTPRequestHandler]:
    """A request handler serving each corpus page under the path its expected URL names."""

    class CorpusHandler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            name = routes.get(self.path)
            if name is None:
                self.send_error(404)
                return
            body = (CORPUS / name).read_bytes()
            self.send_response(200)
            # No charset in the header: pages declare their own, as many real shops do.
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return CorpusHandler


class CorpusSpider(scrapy.Spider):
    """Fetch each corpus URL once and record what extraction made of it."""

    name = "extraction_quality"
    allowed_domains = [HOST]

    def __init__(self, urls: dict[str, str], results: dict[str, object], **kwargs: object):
        super().__init__(**kwargs)
        self.urls = urls
        self.results = results

    async def start(self):
        for name, url in self.urls.items():
            yield scrapy.Request(url, cb_kwargs={"page": name}, dont_filter=True)

    def parse(self, response: scrapy.http.Response, page: str) -> None:
        charset = _header_charset(response.headers.get("Content-Type", b"").decode("latin-1"))
        self.results[page] = extract_product(response.body, response.url, encoding=charset)


def _header_charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip("\"'")
    return None


@dataclass
class FieldScore:
    true_positive: int = 0
    false_positive: int = 0
    false_negative: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, page: str, expected: str | None, predicted: str | None) -> None:
        if predicted is not None and _same(expected, predicted):
            self.true_positive += 1
            return
        if predicted is None and expected is None:
            return
        if predicted is not None:
            self.false_positive += 1
        if expected is not None:
            self.false_negative += 1
        self.misses.append(f"{page}: expected {expected!r}, got {predicted!r}")

    def figures(self) -> tuple[float, float, float]:
        tp, fp, fn = self.true_positive, self.false_positive, self.false_negative
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1


def _same(expected: str | None, predicted: str) -> bool:
    if expected is None:
        return False
    try:
        return Decimal(expected) == Decimal(predicted)
    except InvalidOperation:
        return " ".join(expected.split()) == " ".join(predicted.split())


def crawl(expected: dict[str, dict]) -> dict[str, object]:
    routes = {entry["path"]: name for name, entry in expected.items()}
    server = ThreadingHTTPServer((HOST, 0), make_handler(routes))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    urls = {name: f"http://{HOST}:{port}{entry['path']}" for name, entry in expected.items()}
    results: dict[str, object] = {}
    process = CrawlerProcess(
        settings={
            "LOG_LEVEL": "WARNING",
            "ROBOTSTXT_OBEY": False,
            "TELNETCONSOLE_ENABLED": False,
            "DOWNLOAD_TIMEOUT": 10,
            "CLOSESPIDER_TIMEOUT": 120,
            "RETRY_ENABLED": False,
        }
    )
    process.crawl(CorpusSpider, urls=urls, results=results)
    process.start()
    server.shutdown()
    return results


def score(
    expected: dict[str, dict], results: dict[str, object], *, held_out_only: bool = False
) -> dict[str, dict[str, FieldScore]]:
    groups: dict[str, dict[str, FieldScore]] = {
        "structured": {f: FieldScore() for f in FIELDS},
        "no structured data": {f: FieldScore() for f in FIELDS},
    }
    for page, entry in sorted(expected.items()):
        if entry.get("structured") is None or (held_out_only and not entry.get("held_out")):
            continue
        group = groups["structured" if entry["structured"] else "no structured data"]
        item = getattr(results.get(page), "item", None)
        for name in FIELDS:
            predicted = getattr(item, name, None) if item else None
            predicted = None if predicted == "unknown" else predicted
            group[name].add(page, entry["expected"][name], predicted)
    return groups


def page_kind_accuracy(expected: dict[str, dict], results: dict[str, object]) -> list[str]:
    lines = []
    for page, entry in sorted(expected.items()):
        wanted = entry.get("not_product")
        got = getattr(results.get(page), "not_product_reason", "missing")
        if entry.get("structured") is None:
            lines.append(
                f"  {page}: expected {wanted}, got {got} {'ok' if wanted == got else 'FAIL'}"
            )
        elif got is not None:
            lines.append(f"  {page}: product page rejected as {got} FAIL")
    return lines


def report(groups: dict[str, dict[str, FieldScore]], baseline: dict, verbose: bool) -> dict:
    figures: dict[str, dict[str, float]] = {}
    for group_name, scores in groups.items():
        print(f"\n{group_name}")
        print(f"  {'field':<13}{'precision':>10}{'recall':>8}{'F1':>7}   vs baseline")
        figures[group_name] = {}
        for name, field_score in scores.items():
            precision, recall, f1 = field_score.figures()
            figures[group_name][name] = round(f1, 4)
            before = baseline.get(group_name, {}).get(name)
            delta = f"{f1 - before:+.3f}" if before is not None else "n/a"
            print(f"  {name:<13}{precision:>10.3f}{recall:>8.3f}{f1:>7.3f}   {delta}")
            if verbose:
                for miss in field_score.misses:
                    print(f"      - {miss}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save-baseline", action="store_true", help="store these F1 figures")
    parser.add_argument("--verbose", action="store_true", help="list every mismatch")
    args = parser.parse_args()
    expected = json.loads((CORPUS / "expected.json").read_text())
    results = crawl(expected)
    groups = score(expected, results)
    structured = sum(1 for e in expected.values() if e.get("structured") is True)
    plain = sum(1 for e in expected.values() if e.get("structured") is False)
    print(
        f"pages crawled: {len(results)}/{len(expected)} "
        f"({structured} with structured data, {plain} without)"
    )
    baseline = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    figures = report(groups, baseline, args.verbose)
    # Pages written after the extractor was tuned on the rest: the fairer estimate.
    print("\n== held-out pages only (written after tuning) ==")
    report(score(expected, results, held_out_only=True), {}, verbose=False)
    print("\npage kinds")
    print("\n".join(page_kind_accuracy(expected, results)))
    if args.save_baseline:
        BASELINE.write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
