"""The SSRF guard: URL checks, and crawls refused before any connection is made."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from scrapers.middlewares.ssrf import check_url, forbidden_reason, ip_literal, parse_networks
from shelfwatch.config import Settings
from tests.scrapers.servers import Site, SiteServer, html_response, product_page, run_crawl

LOOPBACK = ["127.0.0.0/8"]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://127.0.0.1/",
        "http://localhost:8080/",
        "http://api.localhost/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[fe80::1%25eth0]/",
        "http://[fc00::1]/",
        "http://[64:ff9b::a00:1]/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://0x7f.0.0.1/",
        "http://0x7f000001/",
        "http://127.1/",
        "http://0/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://100.64.0.1/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http:///nohost",
    ],
)
def test_check_url_refuses_forbidden_addresses_in_any_spelling(url: str) -> None:
    assert check_url(url) is not None


@pytest.mark.parametrize(
    "url", ["https://example.com/p/1", "http://93.184.216.34/", "http://[2606:4700::1111]/"]
)
def test_check_url_lets_public_urls_through(url: str) -> None:
    assert check_url(url) is None


def test_the_allow_list_opens_exactly_its_networks() -> None:
    allowed = parse_networks("127.0.0.0/8, ::1/128")
    assert check_url("http://2130706433/", allowed) is None
    assert check_url("http://[::ffff:127.0.0.1]/", allowed) is None
    assert check_url("http://[::1]:8000/", allowed) is None
    assert check_url("http://169.254.169.254/", allowed) is not None
    assert check_url("http://10.1.1.1/", ["127.0.0.0/8"]) is not None


def test_ip_literal_reads_resolver_spellings_and_leaves_names_alone() -> None:
    assert str(ip_literal("0177.0.0.01")) == "127.0.0.1"
    assert str(ip_literal("0xa9.0xfe.0xa9.0xfe")) == "169.254.169.254"
    assert ip_literal("shop.example") is None
    assert ip_literal("123.example") is None
    reason = forbidden_reason(ip_literal("169.254.169.254"))  # type: ignore[arg-type]
    assert reason == "169.254.169.254 is a link-local address"


def _site() -> Site:
    return Site(routes={"/p/1": html_response(product_page("Local", "1.00"))})


NO_ROBOTS = {"ROBOTSTXT_OBEY": False}


def test_literal_forbidden_addresses_are_refused_before_connecting(
    settings: Settings, tmp_path: Path
) -> None:
    with SiteServer(_site()) as site:
        urls = [
            "http://169.254.169.254/latest/meta-data/",
            "http://10.255.255.1/admin",
            f"http://2130706433:{site.port}/p/1",
            f"http://0177.0.0.1:{site.port}/p/1",
            f"http://[::ffff:127.0.0.1]:{site.port}/p/1",
            f"http://[::1]:{site.port}/p/1",
        ]
        outcome = run_crawl(
            settings,
            "product",
            {"urls": urls},
            tmp_path=tmp_path,
            scrapy_settings=NO_ROBOTS,
            ssrf_allowed_networks=[],
        )
    assert outcome.returncode == 0
    assert outcome.stat("ssrf/refused") == len(urls)
    assert outcome.stat("downloader/request_count") == 0
    assert outcome.stat("retry/count") == 0
    assert site.hits == []


def test_names_resolving_to_forbidden_addresses_are_refused_at_connection_time(
    settings: Settings, tmp_path: Path
) -> None:
    name = socket.gethostname()
    assert ip_literal(name) is None
    assert socket.gethostbyname(name).startswith("127."), "the test needs a loopback host name"
    with SiteServer(_site()) as site:
        outcome = run_crawl(
            settings,
            "product",
            {"urls": [f"http://{name}:{site.port}/p/1"]},
            tmp_path=tmp_path,
            scrapy_settings=NO_ROBOTS,
            ssrf_allowed_networks=[],
        )
    assert outcome.stat("ssrf/refused") == 1
    assert outcome.stat("retry/count") == 0
    assert site.hits == []


def test_redirects_to_forbidden_addresses_are_refused(settings: Settings, tmp_path: Path) -> None:
    site = _site()
    site.routes["/to-metadata"] = (302, {"Location": "http://169.254.169.254/latest/"}, b"")
    site.routes["/to-private"] = (301, {"Location": "http://10.0.0.1/"}, b"")
    site.routes["/to-ipv6-loopback"] = (302, {"Location": "http://[::1]/"}, b"")
    site.routes["/to-file"] = (302, {"Location": "file:///etc/passwd"}, b"")
    with SiteServer(site):
        urls = [
            site.url(path) for path in ("/to-metadata", "/to-private", "/to-ipv6-loopback", "/p/1")
        ]
        outcome = run_crawl(
            settings,
            "product",
            {"urls": urls},
            tmp_path=tmp_path,
            scrapy_settings=NO_ROBOTS,
            ssrf_allowed_networks=LOOPBACK,
        )
    assert outcome.stat("ssrf/refused") == 3
    assert outcome.stat("pages/product") == 1
    assert sorted(site.hits) == ["/p/1", "/to-ipv6-loopback", "/to-metadata", "/to-private"]
