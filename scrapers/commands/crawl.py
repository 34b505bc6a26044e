"""``scrapy crawl`` that checks a shelfwatch spider's arguments before starting the engine,
so ``-a limit=abc`` prints one line naming the argument (exit code 2), not a traceback."""

from __future__ import annotations

import argparse

from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.exceptions import UsageError

from scrapers.spiders import SPIDERS, SpiderArgumentError
from scrapers.spiders.args import parse_arguments


class Command(ScrapyCrawlCommand):
    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        spider = SPIDERS.get(args[0]) if len(args) == 1 else None
        if spider is not None:
            try:
                parse_arguments(spider.Params, opts.spargs).start_urls()
            except SpiderArgumentError as error:
                raise UsageError(f"spider {spider.name}: {error}", print_help=False) from None
        super().run(args, opts)
