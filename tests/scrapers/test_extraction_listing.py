import json

import pytest

from scrapers.extraction import find_listing_links, find_product_links_by_selector

URL = "https://shop.example/c/lamps?page=1"


def test_item_list_gives_product_urls_in_order() -> None:
    item_list = {
        "@type": "ItemList",
        "itemListElement": [
            {"@type": "ListItem", "position": 1, "url": "/p/a"},
            {"@type": "ListItem", "position": 2, "item": {"@type": "Product", "url": "/p/b"}},
            {"@type": "ListItem", "position": 3, "item": "https://shop.example/p/c"},
            {"@type": "ListItem", "position": 4, "url": "/p/a"},
        ],
    }
    script = f'<script type="application/ld+json">{json.dumps(item_list)}</script>'
    html = f"<html><head>{script}</head></html>"
    links = find_listing_links(html, URL)
    assert links.product_urls == [
        "https://shop.example/p/a", "https://shop.example/p/b", "https://shop.example/p/c",
    ]  # fmt: skip


def test_rel_next_and_pagination_text() -> None:
    html = """<html><head><link rel="next" href="?page=2"></head><body>
    <nav class="pagination"><a href="?page=2">2</a><a href="/c/lamps?page=2">Weiter</a>
    <a class="next" href="?page=2&amp;x=1">&raquo;</a></nav></body></html>"""
    assert find_listing_links(html, URL).next_page_urls == [
        "https://shop.example/c/lamps?page=2",
        "https://shop.example/c/lamps?page=2&x=1",
    ]


def test_product_cards_without_structured_data() -> None:
    cards = "".join(
        f'<li class="product-item"><a href="/lamp-{i}">Lamp {i}</a> $1{i}.00</li>' for i in range(3)
    )
    html = f"""<html><body><header><a href="/account">Account</a></header><ul>{cards}</ul>
    <a href="https://elsewhere.example/p/x.html">partner</a></body></html>"""
    links = find_listing_links(html, URL)
    assert links.product_urls == [f"https://shop.example/lamp-{i}" for i in range(3)]
    assert links.next_page_urls == []


def test_base_href_applies_to_listing_links() -> None:
    html = (
        '<html><head><base href="https://shop.example/de/"></head>'
        '<body><a rel="next" href="p2">n</a></body></html>'
    )
    assert find_listing_links(html, URL).next_page_urls == ["https://shop.example/de/p2"]


@pytest.mark.parametrize(
    ("css", "xpath"),
    [("div.tile a.title", None), ("div.tile", None), (None, "//div[@class='tile']/a/@href")],
)
def test_links_by_selector(css: str | None, xpath: str | None) -> None:
    html = b"""<html><body><div class="tile"><a class="title" href="/p/1">One</a></div>
    <div class="tile"><a class="title" href="/p/2">Two</a></div></body></html>"""
    assert find_product_links_by_selector(html, URL, css=css, xpath=xpath) == [
        "https://shop.example/p/1", "https://shop.example/p/2",
    ]  # fmt: skip


def test_links_by_selector_needs_a_selector() -> None:
    with pytest.raises(ValueError, match="css or xpath"):
        find_product_links_by_selector("<html></html>", URL)
