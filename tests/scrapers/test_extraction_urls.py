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
