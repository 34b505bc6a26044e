"""The HTML fallback on pages with no structured data at all."""

import pytest

from scrapers.extraction import extract_product
from scrapers.items import ProductItem

RELATED = """<section class="related-products"><ul>
<li class="card"><a href="/p/a">A</a><span class="price">$1.00</span></li>
<li class="card"><a href="/p/b">B</a><span class="price">$2.00</span></li>
<li class="card"><a href="/p/c">C</a><span class="price">$3.00</span></li></ul></section>"""


def _item(body: str, url: str = "https://shop.example/p/1", title: str = "T | Shop") -> ProductItem:
    html = f"""<html><head><title>{title}</title></head><body>
    <header class="site-header"><a href="/cart">Cart <span class="price">$99.00</span></a></header>
    <main>{body}</main><footer class="site-footer">Prices from $1</footer></body></html>"""
    result = extract_product(html, url)
    assert result.item is not None, result.not_product_reason
    return result.item


def test_price_next_to_title_not_in_header_or_related_grid() -> None:
    item = _item(
        '<h1>Lamp</h1><div class="price">$24.95</div><button>Add to cart</button>' + RELATED
    )
    assert (item.name, item.price, item.currency, item.availability) == (
        "Lamp", "24.95", "USD", "in_stock",
    )  # fmt: skip


def test_struck_through_price_is_ignored() -> None:
    item = _item('<h1>Lamp</h1><p class="price"><del>$30.00</del> <ins>$20.00</ins></p>')
    assert item.price == "20.00"


def test_old_price_class_is_ignored() -> None:
    body = (
        '<h1>Lamp</h1><span class="old-price"><span class="price">€99.00</span></span>'
        '<span class="special-price"><span class="price">€79.00</span></span>'
    )
    assert _item(body).price == "79.00"


def test_price_without_telling_class() -> None:
    assert _item("<h1>Soap</h1><p><strong>Price:</strong> £4.50</p>").price == "4.50"


def test_price_without_currency_mark_takes_the_country_currency() -> None:
    item = _item('<h1>Lamp</h1><span class="price">19,99</span>', url="https://shop.example.de/p")
    assert (item.price, item.currency) == ("19.99", "EUR")


@pytest.mark.parametrize(
    ("line", "sku"),
    [
        ("SKU: AB-123", "AB-123"),
        ("Art.-Nr.: 55123", "55123"),
        ("Artikelnummer 9981", "9981"),
        ("Item #: 88-12345", "88-12345"),
        ("Réf. : LN-2201", "LN-2201"),
        ("Referencia: RX-55", "RX-55"),
        ("Cod. articolo: IT-9981", "IT-9981"),
        ("Código: BR-7781", "BR-7781"),
    ],
)
def test_sku_label_patterns(line: str, sku: str) -> None:
    assert _item(f'<h1>Lamp</h1><span class="price">$5.00</span><p>{line}</p>').sku == sku


def test_labels_in_tables_and_definition_lists() -> None:
    body = """<h1>Drill</h1><span class="preis">129,99 €</span>
    <dl><dt>Art.-Nr.</dt><dd>BM600</dd><dt>Hersteller</dt><dd>Werkmann</dd></dl>
    <table><tr><th>EAN</th><td>4006381333931</td></tr></table>"""
    item = _item(body)
    assert (item.sku, item.brand, item.gtin) == ("BM600", "Werkmann", "4006381333931")


def test_invalid_gtin_in_text_is_dropped() -> None:
    body = '<h1>Drill</h1><span class="price">$9.00</span><p>EAN: 4006381333932</p>'
    assert _item(body).gtin is None


@pytest.mark.parametrize(
    ("wording", "state"),
    [
        ("Auf Lager", "in_stock"),
        ("Rupture de stock", "out_of_stock"),
        ("Agotado", "out_of_stock"),
        ("Esaurito", "out_of_stock"),
        ("Uitverkocht", "out_of_stock"),
        ("Em estoque", "in_stock"),
        ("Pre-order", "preorder"),
        ("Available on backorder", "backorder"),
    ],
)
def test_availability_wording(wording: str, state: str) -> None:
    body = f'<h1>Lamp</h1><span class="price">€5.00</span><p class="stock">{wording}</p>'
    assert _item(body).availability == state


def test_disabled_buy_button_means_out_of_stock() -> None:
    body = '<h1>Lamp</h1><span class="price">$5.00</span>'
    body += '<button class="add-to-cart" disabled>Add</button>'
    assert _item(body).availability == "out_of_stock"


def test_title_falls_back_to_the_title_tag() -> None:
    item = _item('<div class="price">$5.00</div>', title="Camp Stove | Outdoor Shop")
    assert item.name == "Camp Stove"


def test_unclosed_tags_do_not_swallow_the_title() -> None:
    body = "<h1>Bike Light</h2><div class=price>$15.00<div class=stock>In Stock<p>SKU: BL-1"
    item = _item(body)
    assert (item.name, item.price, item.availability, item.sku) == (
        "Bike Light", "15.00", "in_stock", "BL-1",
    )  # fmt: skip
