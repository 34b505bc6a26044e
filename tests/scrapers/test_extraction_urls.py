import lxml.html

from scrapers.extraction.urls import absolute_url, base_url, canonical_url, strip_tracking


def _doc(head: str) -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(f"<html><head>{head}</head><body><p>x</p></body></html>")


def test_canonical_link_is_made_absolute() -> None:
    document = _doc('<link rel="canonical" href="/p/widget">')
    assert canonical_url(document, "https://shop.example/p/widget?utm_source=x") == (
        "https://shop.example/p/widget"
    )


def test_without_canonical_link_tracking_and_fragment_are_dropped() -> None:
    url = "https://shop.example/p/w?color=red&utm_medium=cpc&gclid=abc&fbclid=z#reviews"
    assert canonical_url(_doc(""), url) == "https://shop.example/p/w?color=red"


def test_strip_tracking_keeps_real_parameters() -> None:
    assert strip_tracking("https://a.example/p?variant=4&utm_campaign=x") == (
        "https://a.example/p?variant=4"
    )


def test_base_href_is_honoured_for_relative_urls() -> None:
    document = _doc('<base href="https://cdn.example/assets/">')
    base = base_url(document, "https://shop.example/p/1")
    assert absolute_url("img/a.jpg", base) == "https://cdn.example/assets/img/a.jpg"


def test_relative_base_href_resolves_against_the_page() -> None:
    assert base_url(_doc('<base href="/static/">'), "https://s.example/p/1") == (
        "https://s.example/static/"
    )


def test_protocol_relative_and_non_http_urls() -> None:
    assert absolute_url("//cdn.example/x.jpg", "https://s.example/") == "https://cdn.example/x.jpg"
    assert absolute_url("javascript:void(0)", "https://s.example/") is None
    assert absolute_url("  ", "https://s.example/") is None


def _urljoin_absolute(href: str, base: str) -> str | None:
    from urllib.parse import urljoin, urlsplit

    resolved = urljoin(base, href.strip())
    return resolved if urlsplit(resolved).scheme in ("http", "https") else None


def test_rooted_paths_resolve_exactly_as_urljoin_does() -> None:
    import random

    bases = [
        "https://shop.example/p/1?x=2#f",
        "http://127.0.0.1:8080/a/b/",
        "HTTPS://User@Shop.Example:443/",
        "https://shop.example",
        "ftp://files.example/x",
    ]
    hrefs = [
        "/img/a.jpg", "/", "/a//b", "/a/./b", "/a/../b", "/.x", "/a/.", "/a?b=1", "/a#top",
        "/a;p", "/a b", "/a\tb", "/ümlaut/é.jpg", "/a:b", "/%2e%2e/x", "//cdn.example/x",
    ]  # fmt: skip
    alphabet = "/ab.;?#:%é \t"
    rng = random.Random(7)
    hrefs += [
        "/" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))) for _ in range(3000)
    ]
    for base in bases:
        for href in hrefs:
            if not href.strip():
                continue
            assert absolute_url(href, base) == _urljoin_absolute(href, base), (href, base)
