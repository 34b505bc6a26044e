"""extract_product end to end on small pages, one markup layer or quirk at a time."""

import json
from pathlib import Path

import pytest

from scrapers.extraction import extract_product
from scrapers.items import ProductItem, validate_item

PAGES = Path(__file__).parent / "pages"
URL = "https://shop.example/p/widget"


def _page(head: str = "", body: str = "") -> str:
    return f"<html><head><title>Widget | Shop</title>{head}</head><body>{body}</body></html>"


def _ld(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return f'<script type="application/ld+json">{text}</script>'


def _item(html: str | bytes, url: str = URL, **kwargs: str) -> ProductItem:
    result = extract_product(html, url, **kwargs)
    assert result.item is not None, result.not_product_reason
    return result.item


PRODUCT = {
    "@context": "https://schema.org",
    "@type": "Product",
    "name": "Widget",
    "sku": "W-1",
    "gtin13": "4006381333931",
    "mpn": "WX1",
    "brand": {"@type": "Brand", "name": "Acme"},
    "image": "/img/w.jpg",
    "description": "<p>Solid   <b>steel</b></p>",
    "offers": {
        "@type": "Offer",
        "price": "19.90",
        "priceCurrency": "EUR",
        "availability": "https://schema.org/InStock",
    },
}


def test_json_ld_product_fills_every_field_and_names_its_layer() -> None:
    item = _item(_page(_ld(PRODUCT)), url=URL + "?utm_source=mail#top")
    assert (item.name, item.price, item.currency, item.availability) == (
        "Widget", "19.90", "EUR", "in_stock",
    )  # fmt: skip
    assert (item.sku, item.gtin, item.mpn, item.brand) == ("W-1", "4006381333931", "WX1", "Acme")
    assert item.image_url == "https://shop.example/img/w.jpg"
    assert item.description == "Solid steel"
    assert item.canonical_url == URL
    assert item.url == URL + "?utm_source=mail#top"
    assert item.sources["price"] == "json-ld" and item.sources["name"] == "json-ld"
    assert item.scraped_at and item.scraped_at.endswith("Z")
    assert validate_item(item) is None


def test_graph_and_top_level_array() -> None:
    graph = {"@context": "https://schema.org", "@graph": [{"@type": "WebSite"}, PRODUCT]}
    assert _item(_page(_ld(graph))).sku == "W-1"
    assert _item(_page(_ld([{"@type": "BreadcrumbList"}, PRODUCT]))).sku == "W-1"


def test_graph_references_by_id_are_followed() -> None:
    graph = {
        "@graph": [
            {**PRODUCT, "offers": {"@id": "#offer"}, "brand": {"@id": "#brand"}},
            {"@type": "Offer", "@id": "#offer", "price": "5.00", "priceCurrency": "GBP"},
            {"@type": "Brand", "@id": "#brand", "name": "Linked"},
        ]
    }
    item = _item(_page(_ld(graph)))
    assert (item.price, item.currency, item.brand) == ("5.00", "GBP", "Linked")


def test_aggregate_offer_gives_low_price() -> None:
    offers = {"@type": "AggregateOffer", "lowPrice": 10, "highPrice": 20, "priceCurrency": "USD"}
    assert _item(_page(_ld({**PRODUCT, "offers": offers}))).price == "10.00"


def test_offer_list_prefers_the_first_in_stock_offer() -> None:
    offers = [
        {"@type": "Offer", "price": "30", "priceCurrency": "EUR", "availability": "OutOfStock"},
        {"@type": "Offer", "price": "32", "priceCurrency": "EUR", "availability": "InStock"},
    ]
    item = _item(_page(_ld({**PRODUCT, "offers": offers})))
    assert (item.price, item.availability) == ("32.00", "in_stock")


def test_price_specification_skips_strikethrough_price() -> None:
    offers = {
        "@type": "Offer",
        "priceSpecification": [
            {
                "priceType": "https://schema.org/StrikethroughPrice",
                "price": 99,
                "priceCurrency": "EUR",
            },
            {"@type": "UnitPriceSpecification", "price": 79, "priceCurrency": "EUR"},
        ],
    }
    assert _item(_page(_ld({**PRODUCT, "offers": offers}))).price == "79.00"


def test_product_group_picks_the_variant_in_the_url() -> None:
    group = {
        "@type": "ProductGroup",
        "name": "Shoe",
        "brand": "Kestrel",
        "hasVariant": [
            {"@type": "Product", "sku": "S-42", "url": "/p/shoe?variant=1",
             "offers": {"price": "100", "priceCurrency": "EUR", "availability": "OutOfStock"}},
            {"@type": "Product", "sku": "S-43", "url": "/p/shoe?variant=2",
             "offers": {"price": "90", "priceCurrency": "EUR", "availability": "InStock"}},
        ],
    }  # fmt: skip
    item = _item(_page(_ld(group)), url="https://shop.example/p/shoe?variant=2")
    assert (item.name, item.sku, item.price, item.brand) == ("Shoe", "S-43", "90.00", "Kestrel")
    assert _item(_page(_ld(group)), url="https://shop.example/p/shoe").sku == "S-42"


_OFFER = '"offers": {"price": "1.50", "priceCurrency": "EUR"}'
_ENTITIES = "{&quot;@type&quot;: &quot;Product&quot;, &quot;name&quot;: &quot;Widget&quot;, "
_ENTITIES += "&quot;offers&quot;: {&quot;price&quot;: &quot;1.50&quot;, "
_ENTITIES += "&quot;priceCurrency&quot;: &quot;EUR&quot;}}"


@pytest.mark.parametrize(
    "script",
    [
        '{"@type": "Product", "name": "Widget", '
        '"offers": {"price": "1.50", "priceCurrency": "EUR",},}',
        '{"@type": "Product", // comment\n "name": "Widget", ' + _OFFER + "}",
        '{"@type": "Product", "name": "Widget", "description": "a\nb", ' + _OFFER + "}",
        '//<![CDATA[\n{"@type": "Product", "name": "Widget", ' + _OFFER + "}\n//]]>",
        '{"@type": "Organization"}\n{"@type": "Product", "name": "Widget", ' + _OFFER + "}",
        _ENTITIES,
    ],
    ids=["trailing-commas", "comment", "raw-newline", "cdata", "two-objects", "entities"],
)
def test_malformed_json_ld_is_still_read(script: str) -> None:
    item = _item(_page(_ld(script)))
    assert (item.name, item.price, item.currency) == ("Widget", "1.50", "EUR")
    assert item.sources["price"] == "json-ld"


def test_truncated_page_and_json_ld() -> None:
    item = _item((PAGES / "truncated_product.html").read_text())
    assert (item.name, item.sku, item.price) == ("Desk Lamp", "DL-1", "39.00")


def test_microdata_layer() -> None:
    body = """<div itemscope itemtype="https://schema.org/Product"><h1 itemprop="name">Drill</h1>
    <meta itemprop="sku" content="D-18"><span itemprop="brand">Voltix</span>
    <div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
    <span itemprop="price" content="119.00">$119.00</span>
    <meta itemprop="priceCurrency" content="USD">
    <link itemprop="availability" href="http://schema.org/OutOfStock"></div></div>"""
    item = _item(_page(body=body))
    assert (item.name, item.sku, item.brand, item.price, item.currency, item.availability) == (
        "Drill", "D-18", "Voltix", "119.00", "USD", "out_of_stock",
    )  # fmt: skip
    assert item.sources["price"] == "microdata"


def test_rdfa_layer() -> None:
    body = """<div vocab="https://schema.org/" typeof="Product"><h1 property="name">Pan</h1>
    <span property="sku">GP-28</span><div property="offers" typeof="Offer">
    <span property="price" content="59.90">59,90</span><meta property="priceCurrency" content="EUR">
    <link property="availability" href="https://schema.org/PreOrder"></div></div>"""
    item = _item(_page(body=body))
    assert (item.name, item.sku, item.price, item.currency, item.availability) == (
        "Pan", "GP-28", "59.90", "EUR", "preorder",
    )  # fmt: skip
    assert item.sources["sku"] == "rdfa"


def test_opengraph_product_tags() -> None:
    head = """<meta property="og:type" content="product">
    <meta property="og:site_name" content="Velo">
    <meta property="og:title" content="Bottle Cage | Velo">
    <meta property="og:image" content="/c.jpg">
    <meta property="product:price:amount" content="18.50">
    <meta property="product:price:currency" content="GBP">
    <meta property="product:availability" content="out of stock">"""
    item = _item(_page(head))
    assert (item.name, item.price, item.currency, item.availability) == (
        "Bottle Cage", "18.50", "GBP", "out_of_stock",
    )  # fmt: skip
    assert item.image_url == "https://shop.example/c.jpg"
    assert item.sources["price"] == "opengraph"


def test_og_type_product_makes_og_title_the_name_without_an_og_price() -> None:
    head = """<meta property="og:type" content="product">
    <meta property="og:site_name" content="Velo">
    <meta property="og:title" content="Bottle Cage | Velo">"""
    body = '<div class="price">€9.90</div>'
    item = _item(_page(head, body))
    assert (item.name, item.price) == ("Bottle Cage", "9.90")
    assert item.sources["name"] == "opengraph"


def test_loose_itemprop_meta_tags() -> None:
    body = """<h1>Wallet</h1><meta itemprop="price" content="55.00">
    <meta itemprop="priceCurrency" content="EUR"><meta itemprop="sku" content="LW-1">"""
    item = _item(_page(body=body))
    assert (item.price, item.currency, item.sku) == ("55.00", "EUR", "LW-1")
    assert item.sources["price"] == "meta"
    assert item.sources["name"] == "heuristics"


def test_first_layer_wins_and_later_layers_fill_gaps() -> None:
    product = {"@type": "Product", "name": "From JSON-LD", "offers": {"price": "10.00"}}
    head = _ld(product) + '<meta property="og:type" content="product">'
    head += '<meta property="product:price:amount" content="99">'
    head += '<meta property="product:price:currency" content="CHF">'
    item = _item(_page(head))
    assert (item.name, item.price, item.currency) == ("From JSON-LD", "10.00", "CHF")
    assert item.sources == {"name": "json-ld", "price": "json-ld", "currency": "opengraph"}


def test_heuristics_fill_only_the_fields_structured_data_left_empty() -> None:
    product = {"@type": "Product", "name": "Lamp", "sku": "L-1", "offers": {"price": "10.00"}}
    body = """<h1>Lamp (visible title)</h1><div class="price">€12.00</div>
    <p>EAN: 4006381333931</p><p class="stock">Sold out</p><button>Add to cart</button>"""
    item = _item(_page(_ld(product), body))
    assert (item.name, item.sku, item.price) == ("Lamp", "L-1", "10.00")
    assert (item.gtin, item.availability, item.currency) == ("4006381333931", "out_of_stock", "EUR")
    assert item.sources["gtin"] == item.sources["availability"] == "heuristics"
    assert item.sources["price"] == "json-ld" and item.sources["currency"] == "heuristics"


def test_invalid_gtin_is_dropped() -> None:
    item = _item(_page(_ld({**PRODUCT, "gtin13": "4006381333932"})))
    assert item.gtin is None and "gtin" not in item.sources


def test_base_href_makes_image_urls_absolute() -> None:
    head = '<base href="https://cdn.example/shop/">' + _ld({**PRODUCT, "image": ["img/w.jpg"]})
    assert _item(_page(head)).image_url == "https://cdn.example/shop/img/w.jpg"


def test_windows_1252_bytes() -> None:
    item = _item((PAGES / "windows1252_microdata.html").read_bytes())
    assert item.name == "Crème brûlée façon grand-mère"
    assert (item.price, item.currency) == ("6.50", "EUR")


def test_shift_jis_bytes() -> None:
    item = _item((PAGES / "shift_jis_jsonld.html").read_bytes())
    assert item.name == "南部鉄器 急須"
    assert (item.price, item.currency) == ("12800.00", "JPY")


def test_header_charset_is_used_for_bytes() -> None:
    html = _page(_ld({**PRODUCT, "name": "Käse"})).replace("<head>", "<head>")
    item = _item(html.encode("iso-8859-1"), encoding="iso-8859-1")
    assert item.name == "Käse"


def test_page_without_structured_data_uses_heuristics() -> None:
    item = _item((PAGES / "iso8859_plain.html").read_bytes(), url="https://shop.example.de/p/1")
    assert item.name == "Gartenschere für Äste"
    assert (item.price, item.currency, item.availability, item.sku) == (
        "24.95", "EUR", "out_of_stock", "GS-1",
    )  # fmt: skip
    assert set(item.sources.values()) == {"heuristics"}


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        (_page(body="<h1>Please complete the CAPTCHA</h1>"), "captcha"),
        (_page(body="<h1>Are you a robot?</h1><p>Checking</p>"), "captcha"),
        ('<html><body><div id="cf-challenge-running"></div></body></html>', "captcha"),
        (
            "<html><head><title>Page not found</title></head><body><h1>Oops</h1></body></html>",
            "error_page",
        ),
        (_page(body="<h1>404 - Seite nicht gefunden</h1>"), "error_page"),
        (_page(body="<h1>About us</h1><p>We sell tea.</p>"), "no_product_markup"),
        ("", "no_product_markup"),
        (
            _page(
                _ld(
                    {
                        "@type": "ItemList",
                        "itemListElement": [
                            {"@type": "ListItem", "url": "/a"},
                            {"@type": "ListItem", "url": "/b"},
                        ],
                    }
                )
            ),
            "listing_page",
        ),
        (
            _page(
                "".join(
                    _ld({"@type": "Product", "name": f"P{i}", "url": f"/p/{i}"}) for i in range(4)
                )
            ),
            "listing_page",
        ),
    ],
    ids=[
        "captcha-word",
        "robot",
        "cloudflare",
        "title-404",
        "h1-404-de",
        "no-evidence",
        "empty",
        "itemlist",
        "many-products",
    ],
)
def test_pages_that_are_not_products(html: str, reason: str) -> None:
    result = extract_product(html, URL)
    assert result.item is None
    assert result.not_product_reason == reason


def test_product_grid_without_structured_data_is_a_listing() -> None:
    cards = "".join(
        f'<li class="product-card"><a href="/p/{i}">Item {i}</a>'
        f'<span class="price">${i}.00</span></li>'
        for i in range(1, 9)
    )
    result = extract_product(_page(body=f"<h1>Lamps</h1><ul>{cards}</ul>"), URL)
    assert result.not_product_reason == "listing_page"


def test_main_product_among_related_products_is_matched_by_url() -> None:
    scripts = "".join(
        _ld({"@type": "Product", "name": name, "url": url, "offers": {"price": price}})
        for name, url, price in [
            ("Cover", "/p/cover", "5"), ("Widget", "/p/widget", "50"), ("Strap", "/p/strap", "7"),
        ]
    )  # fmt: skip
    item = _item(_page(scripts))
    assert (item.name, item.price) == ("Widget", "50.00")
