"""Product fields from OpenGraph product tags and loose `<meta>` tags."""

from __future__ import annotations

import re

from lxml import etree
from lxml.html import HtmlElement

from scrapers.extraction.availability import availability_from_schema
from scrapers.extraction.gtin import valid_gtin
from scrapers.extraction.plain_text import collapse_whitespace, html_to_text
from scrapers.extraction.prices import parse_price
from scrapers.extraction.urls import absolute_url

# Property names, first present wins. Shops mix the og: and product: namespaces freely.
_OG_NAMES = {
    "price": ("product:price:amount", "og:price:amount", "product:sale_price:amount"),
    "currency": ("product:price:currency", "og:price:currency", "product:sale_price:currency"),
    "availability": ("product:availability", "og:availability"),
    "brand": ("product:brand", "og:brand"),
    "sku": ("product:retailer_item_id", "product:sku"),
    "gtin": ("product:ean", "product:gtin", "product:upc", "product:isbn"),
    "mpn": ("product:mfr_part_no",),
}
_ITEMPROP_NAMES = {
    "price": ("price", "lowPrice"),
    "currency": ("priceCurrency",),
    "availability": ("availability",),
    "sku": ("sku", "productID"),
    "gtin": ("gtin13", "gtin", "gtin12", "gtin14", "gtin8"),
    "mpn": ("mpn",),
    "brand": ("brand",),
    "name": ("name",),
}
_LOOSE_ITEMPROPS = etree.XPath("//*[@itemprop][not(ancestor-or-self::*[@itemscope])]")
_NAMED_METAS = etree.XPath("//meta[@name][@content]")
_ANY_ITEMPROP = etree.XPath("boolean(//@itemprop)")


def opengraph_fields(og: dict[str, str], page_url: str, base: str) -> dict[str, str | None]:
    """Fields from OpenGraph; og:title counts only on product pages (og:type or a price)."""
    values = {name: _first(og, keys) for name, keys in _OG_NAMES.items()}
    is_product = og.get("og:type", "").lower().startswith("product") or values["price"]
    return _fields(values, page_url) | {
        "name": _title(og) if is_product else None,
        "image_url": absolute_url(og.get("og:image:secure_url") or og.get("og:image"), base),
        "description": html_to_text(og.get("og:description")) if is_product else None,
    }


def meta_fields(document: HtmlElement, page_url: str) -> dict[str, str | None]:
    """Fields from `itemprop` attributes outside any itemscope, and `<meta name=...>` tags
    that mirror OpenGraph product properties."""
    by_name: dict[str, str] = {}
    # The ancestor test is costly on a whole page: only run it when there is any itemprop.
    for element in _LOOSE_ITEMPROPS(document) if _ANY_ITEMPROP(document) else ():
        value = element.get("content") or element.get("href") or element.text_content()
        by_name.setdefault(element.get("itemprop"), collapse_whitespace(value or ""))
    for element in _NAMED_METAS(document):
        by_name.setdefault(element.get("name"), element.get("content").strip())
    values = {name: _first(by_name, keys) for name, keys in _ITEMPROP_NAMES.items()}
    for name, keys in _OG_NAMES.items():
        values[name] = values.get(name) or _first(by_name, keys)
    return _fields(values, page_url) | {"name": html_to_text(values["name"])}


def _fields(values: dict[str, str | None], page_url: str) -> dict[str, str | None]:
    price = parse_price(values["price"], currency_hint=values["currency"], page_url=page_url)
    return {
        "price": price.amount,
        "currency": price.currency,
        "availability": availability_from_schema(values["availability"]),
        "brand": html_to_text(values["brand"]),
        "sku": values["sku"] or None,
        "gtin": valid_gtin(values["gtin"]),
        "mpn": values["mpn"] or None,
    }


def _first(source: dict[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if source.get(key):
            return source[key]
    return None


def _title(og: dict[str, str]) -> str | None:
    """og:title without a trailing " | Shop name" when that is the og:site_name."""
    title = html_to_text(og.get("og:title"))
    site = og.get("og:site_name", "").strip()
    if title and site:
        title = re.sub(
            rf"\s*[|\-\u2013\u2014:]\s*{re.escape(site)}\s*$", "", title, flags=re.IGNORECASE
        )
    return title or None
