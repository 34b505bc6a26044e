"""``shelfwatch crawl SPIDER [-a name=value ...]``: run a spider here, with a live progress bar
and a summary table, writing to the configured database (migrations are applied first)."""

from __future__ import annotations

import logging
import time
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from shelfwatch.config import Settings, load_settings

REFRESH_SECONDS = 0.5


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, separator, content = value.partition("=")
        if not separator or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {value!r}", param_hint=option)
        pairs[name] = content
    return pairs


def error_count(stats: dict[str, Any]) -> int:
    return sum(v for k, v in stats.items() if k.startswith("pages/error/")) + stats.get(
        "storage/failed_rows", 0
    )


def progress_line(stats: dict[str, Any], elapsed: float) -> str:
    pages = stats.get("response_received_count", 0)
    rate = pages / elapsed if elapsed > 0 else 0.0
    return (
        f"pages {pages}  items {stats.get('item_scraped_count', 0)}  "
        f"stored {stats.get('storage/products', 0)}  errors {error_count(stats)}  "
        f"cached {stats.get('freshness/cached', 0)}  {rate:.1f} pages/s"
    )


def summary_table(spider: str, stats: dict[str, Any], elapsed: float) -> Table:
    table = Table(title=f"crawl {spider}: {stats.get('finish_reason', 'unknown')}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    pages = stats.get("response_received_count", 0)
    rows: list[tuple[str, object]] = [
        ("pages fetched", pages),
        ("products (items)", stats.get("item_scraped_count", 0)),
        ("products stored", stats.get("storage/products", 0)),
        ("price changes recorded", stats.get("storage/observations", 0)),
        ("cached (fresh in storage)", stats.get("freshness/cached", 0)),
        ("errors", error_count(stats)),
        ("retries", stats.get("retry/count", 0)),
        ("refused (SSRF)", stats.get("ssrf/refused", 0)),
        ("forbidden by robots.txt", stats.get("robotstxt/forbidden", 0)),
        ("rate-limit waits", stats.get("ratelimit/waits", 0)),
        ("elapsed (s)", f"{elapsed:.1f}"),
        ("pages/s", f"{pages / elapsed:.1f}" if elapsed > 0 else "-"),
    ]
    prefixes = ("pages/not_product/", "pages/error/", "drop_item/product/")
    rows += sorted((k, v) for k, v in stats.items() if k.startswith(prefixes))
    for name, value in rows:
        table.add_row(name, str(value))
    return table


@click.command()
@click.argument("spider")
@click.option("-a", "arguments", multiple=True, metavar="NAME=VALUE", help="Spider argument.")
@click.option("-s", "overrides", multiple=True, metavar="NAME=VALUE", help="Scrapy setting.")
@click.option("--job-id", help="Tag stored rows with this job id.")
@click.option("--max-age", type=click.IntRange(min=0), help="Skip pages stored this recently.")
@click.option("-O", "--output", type=click.Path(dir_okay=False), help="Also write items here.")
def crawl(
    spider: str,
    arguments: tuple[str, ...],
    overrides: tuple[str, ...],
    job_id: str | None,
    max_age: int | None,
    output: str | None,
) -> None:
    """Run SPIDER (product, sitemap or catalog) and store what it finds."""
    from scrapers.spiders import SPIDERS, SpiderArgumentError
    from scrapers.spiders.args import parse_arguments

    if spider not in SPIDERS:
        raise click.BadParameter(f"one of {', '.join(sorted(SPIDERS))}", param_hint="SPIDER")
    spider_args = _pairs(arguments, "-a")
    try:
        parse_arguments(SPIDERS[spider].Params, spider_args).start_urls()
    except SpiderArgumentError as error:
        raise click.UsageError(str(error)) from None
    settings = load_settings()
    from shelfwatch import migrate

    migrate.upgrade(settings)
    extra: dict[str, Any] = {
        "LOG_LEVEL": "WARNING",
        "LOG_INSTALL_ROOT_HANDLER": False,  # logs go through rich, above the progress bar
        **_pairs(overrides, "-s"),
    }
    if output:
        extra["FEEDS"] = {output: {"format": "jsonlines", "overwrite": True}}
    _run(settings, spider, spider_args, job_id=job_id, max_age=max_age, extra=extra)


def _run(
    settings: Settings,
    spider: str,
    spider_args: dict[str, str],
    *,
    job_id: str | None,
    max_age: int | None,
    extra: dict[str, Any],
) -> None:
    from scrapy import signals
    from scrapy.crawler import CrawlerProcess

    from scrapers.settings import build_crawler_settings
    from scrapers.spiders import SPIDERS

    console = Console(stderr=True)
    handler = RichHandler(console=console, level=extra["LOG_LEVEL"], show_path=False)
    logging.basicConfig(level=extra["LOG_LEVEL"], handlers=[handler], force=True)
    values = build_crawler_settings(settings, job_id=job_id, max_age=max_age, extra=extra)
    process = CrawlerProcess(values)
    crawler = process.create_crawler(SPIDERS[spider])
    started = time.monotonic()
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as progress:
        task_id = progress.add_task(f"{spider}: starting", total=None)

        def refresh() -> None:
            stats = crawler.stats.get_stats() if crawler.stats else {}
            line = progress_line(stats, time.monotonic() - started)
            progress.update(task_id, description=f"{spider}: {line}")

        def start_ticker() -> None:
            # Only now: importing the reactor earlier would install the wrong one.
            from twisted.internet import task

            task.LoopingCall(refresh).start(REFRESH_SECONDS, now=True)

        crawler.signals.connect(start_ticker, signal=signals.engine_started)
        process.crawl(crawler, **spider_args)
        process.start()
        refresh()
    stats = crawler.stats.get_stats() if crawler.stats else {}
    console.print(summary_table(spider, stats, time.monotonic() - started))
    if stats.get("finish_reason") not in ("finished", "closespider_itemcount"):
        raise SystemExit(1)
