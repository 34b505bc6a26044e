"""robots.txt, obeyed by every request of a crawl, including concurrent first requests.

Scrapy 2.19's RobotsTxtMiddleware lets requests that arrive while a host's robots.txt is
being fetched await one shared Deferred through ``maybe_deferred_to_future``. Under the asyncio
reactor that is ``Deferred.asFuture``, whose callback returns None: the first waiter gets the
parser, every later one gets None and is let through *unchecked* (seen here with three start
URLs on one host: the disallowed one was fetched). Each waiter here gets its own Deferred fed
from the shared one without consuming its result.
"""

from __future__ import annotations

from scrapy import Request
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware as ScrapyRobotsTxtMiddleware
from scrapy.robotstxt import RobotParser
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.defer import Deferred


class RobotsTxtMiddleware(ScrapyRobotsTxtMiddleware):
    async def robot_parser(self, request: Request) -> RobotParser | None:
        pending = self._parsers.get(urlparse_cached(request).netloc)
        if not isinstance(pending, Deferred):
            return await super().robot_parser(request)
        waiter: Deferred[RobotParser | None] = Deferred()

        def relay(result: RobotParser | None) -> RobotParser | None:
            waiter.callback(result)
            return result

        pending.addCallback(relay)
        return await maybe_deferred_to_future(waiter)
