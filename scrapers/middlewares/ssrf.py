"""SSRF guard: crawls reach only public addresses (plus the allow-listed networks).

Why two checks, and why the second one is the one that matters:

* `check_url` is a pure check of a URL's text. It refuses non-HTTP schemes and hosts that
  *are* forbidden addresses in any spelling the resolver would accept (``169.254.169.254``,
  ``[::1]``, ``[::ffff:127.0.0.1]``, decimal ``2130706433``, octal ``0177.0.0.1``, hex
  ``0x7f.1``, ``localhost``). The API uses it to answer 422 at submission, and
  `SSRFGuardMiddleware` runs it on every request, including each redirect target, since a
  redirect comes back through the downloader middlewares as a new request.
* A host *name* can resolve anywhere, and differently at each look-up (DNS rebinding), so a
  check before the download proves nothing. `SSRFGuardResolver` is the reactor's name resolver:
  every address a connection could use passes through it, and forbidden ones are dropped before
  Twisted connects. The check and the connection use the same answer, so rebinding cannot pass.
  When every address is dropped the connection fails with a DNS error; the middleware's
  ``process_exception`` (ordered after RetryMiddleware's, so it runs first) turns that into a
  counted, logged refusal (``ssrf/refused``) that is not retried.

The resolver is installed by Scrapy through ``TWISTED_DNS_RESOLVER``, and the middleware
installs it on the running reactor when a runner did not (``CrawlerRunner`` never installs a
resolver). Only the Twisted HTTP handler is guarded: the settings pin it for http(s) and
disable the other schemes. Requests sent through an HTTP proxy connect to the proxy, whose own
egress rules then apply to the target.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Iterable, Sequence
from typing import Any, Self
from urllib.parse import urlsplit

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet._resolver import GAIResolver
from twisted.internet.base import ReactorBase
from twisted.internet.interfaces import IHostnameResolver, IHostResolution, IResolutionReceiver
from zope.interface import implementer, provider

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_ALLOWED_SCHEMES = ("http", "https")
# What inet_aton accepts: dotted parts in decimal, octal (leading 0) or hex (0x).
_INET_ATON_SPELLING = re.compile(r"^(?:0x[0-9a-f]+|[0-9]+)(?:\.(?:0x[0-9a-f]+|[0-9]+)){0,3}$")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCALHOST = ipaddress.ip_address("127.0.0.1")
_CHECKS = (
    ("is_unspecified", "an unspecified"),
    ("is_loopback", "a loopback"),
    ("is_link_local", "a link-local"),
    ("is_multicast", "a multicast"),
    ("is_private", "a private"),
    ("is_reserved", "a reserved"),
)


class SSRFRefused(IgnoreRequest):
    """A request to a forbidden address was refused before connecting."""


def parse_networks(values: Iterable[str] | str | None) -> tuple[IPNetwork, ...]:
    """CIDRs from a list or a comma-separated string (``SSRF_ALLOWED_NETWORKS``)."""
    if isinstance(values, str):
        values = values.split(",")
    return tuple(
        ipaddress.ip_network(value.strip(), strict=False) for value in values or () if value.strip()
    )


def forbidden_reason(address: IPAddress, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why a connection to ``address`` is refused, or None when it is allowed."""
    if any(address.version == net.version and address in net for net in allowed):
        return None
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return forbidden_reason(embedded, allowed)
    for attribute, label in _CHECKS:
        if getattr(address, attribute):
            return f"{address} is {label} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, Teredo, NAT64), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def ip_literal(host: str) -> IPAddress | None:
    """The address a host string spells, in any notation resolvers accept; None for a name."""
    host = host.strip().rstrip(".").lower().split("%", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _INET_ATON_SPELLING.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if host == "localhost" or host.endswith(".localhost"):
        return _LOCALHOST
    return None


def check_url(url: str, allowed_networks: Iterable[str] | Sequence[IPNetwork] = ()) -> str | None:
    """Why ``url`` may not be crawled (scheme, or a host that spells a forbidden address),
    or None. Host names are judged at connection time by `SSRFGuardResolver`."""
    allowed = _as_networks(allowed_networks)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as error:
        return f"malformed URL: {error}"
    if parts.scheme.lower() not in _ALLOWED_SCHEMES:
        return f"scheme {parts.scheme!r} is not allowed"
    if not parts.hostname:
        return "the URL has no host"
    address = ip_literal(parts.hostname)
    return None if address is None else forbidden_reason(address, allowed)


def _as_networks(values: Iterable[str] | Sequence[IPNetwork]) -> tuple[IPNetwork, ...]:
    return tuple(
        value if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network)
        else ipaddress.ip_network(value, strict=False)
        for value in values
    )  # fmt: skip


@implementer(IHostnameResolver)
class SSRFGuardResolver:
    """A name resolver that drops forbidden addresses from every answer, before connecting.

    ``refused`` remembers, per host name, why its addresses were dropped (bounded), so the
    middleware can report the failed download as a refusal.
    """

    MAX_REMEMBERED = 10_000

    def __init__(self, reactor: ReactorBase, allowed: Sequence[IPNetwork] = ()) -> None:
        self.reactor = reactor
        self.allowed = tuple(allowed)
        self.upstream: IHostnameResolver = GAIResolver(reactor, reactor.getThreadPool)
        self.refused: dict[str, str] = {}

    @classmethod
    def from_crawler(cls, crawler: Any, reactor: ReactorBase) -> Self:
        return cls(reactor, parse_networks(crawler.settings.getlist("SSRF_ALLOWED_NETWORKS")))

    def install_on_reactor(self) -> None:
        self.reactor.installNameResolver(self)

    def resolveHostName(  # noqa: N802 - Twisted interface names
        self,
        resolutionReceiver: IResolutionReceiver,  # noqa: N803
        hostName: str,  # noqa: N803
        portNumber: int = 0,  # noqa: N803
        addressTypes: Any = None,  # noqa: N803
        transportSemantics: str = "TCP",  # noqa: N803
    ) -> IHostResolution:
        receiver = _FilteringReceiver(resolutionReceiver, hostName, self)
        return self.upstream.resolveHostName(
            receiver, hostName, portNumber, addressTypes, transportSemantics
        )

    def remember_refusal(self, host: str, reason: str) -> None:
        if len(self.refused) >= self.MAX_REMEMBERED:
            self.refused.pop(next(iter(self.refused)))
        self.refused[host.lower()] = reason


@provider(IResolutionReceiver)
class _FilteringReceiver:
    """Passes allowed addresses on; when every address was dropped, remembers why."""

    def __init__(self, receiver: IResolutionReceiver, host: str, guard: SSRFGuardResolver):
        self.receiver = receiver
        self.host = host
        self.guard = guard
        self.passed = 0
        self.reason: str | None = None

    def resolutionBegan(self, resolution: IHostResolution) -> None:  # noqa: N802
        self.receiver.resolutionBegan(resolution)

    def addressResolved(self, address: Any) -> None:  # noqa: N802
        ip = ipaddress.ip_address(address.host.split("%", 1)[0])
        reason = forbidden_reason(ip, self.guard.allowed)
        if reason is None:
            self.passed += 1
            self.receiver.addressResolved(address)
        else:
            self.reason = f"{self.host} resolved to {reason}"
            logger.warning("SSRF guard: not connecting to %s (%s)", address.host, self.host)

    def resolutionComplete(self) -> None:  # noqa: N802
        if self.reason is not None and not self.passed:
            self.guard.remember_refusal(self.host, self.reason)
        else:
            self.guard.refused.pop(self.host.lower(), None)
        self.receiver.resolutionComplete()


def ensure_resolver(reactor: ReactorBase, allowed: Sequence[IPNetwork]) -> SSRFGuardResolver:
    """The guard resolver installed on ``reactor`` (installed now when missing or different)."""
    current = reactor.nameResolver
    if isinstance(current, SSRFGuardResolver) and current.allowed == tuple(allowed):
        return current
    resolver = SSRFGuardResolver(reactor, allowed)
    resolver.install_on_reactor()
    return resolver


class SSRFGuardMiddleware:
    """Refuses requests to forbidden addresses: literal ones here, resolved ones through
    `SSRFGuardResolver`. Refusals are counted as ``ssrf/refused``, logged, never retried."""

    def __init__(self, crawler: Crawler, allowed: Sequence[IPNetwork]) -> None:
        self.crawler = crawler
        self.allowed = tuple(allowed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler, parse_networks(crawler.settings.getlist("SSRF_ALLOWED_NETWORKS")))

    def resolver(self) -> SSRFGuardResolver:
        """The reactor's guard resolver, installed now if a runner installed none (or a
        process replaced it since): looked up on each use, never cached."""
        from twisted.internet import reactor  # the crawl's reactor is running by now

        return ensure_resolver(reactor, self.allowed)  # type: ignore[arg-type]

    def process_request(self, request: Request) -> None:
        reason = check_url(request.url, self.allowed)
        if reason is not None:
            self.refuse(request, reason)
        self.resolver()

    def process_exception(self, request: Request, exception: Exception) -> None:
        if isinstance(exception, IgnoreRequest):
            return
        host = (urlparse_cached(request).hostname or "").lower()
        reason = self.resolver().refused.get(host)
        if reason is not None:
            self.refuse(request, reason)

    def refuse(self, request: Request, reason: str) -> None:
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value("ssrf/refused")
        logger.warning("SSRF guard refused %s: %s", request.url, reason)
        raise SSRFRefused(f"SSRF guard: {reason}")
