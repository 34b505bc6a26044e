"""Turn one schema.org Product (or ProductGroup) node into our item's fields."""

from __future__ import annotations

from urllib.parse import urlsplit

from scrapers.extraction.availability import availability_from_schema
from scrapers.extraction.gtin import valid_gtin
from scrapers.extraction.offers import OfferTerms, offer_terms
from scrapers.extraction.plain_text import html_to_text
from scrapers.extraction.schema_nodes import first_value, text_value, type_names
from scrapers.extraction.urls import absolute_url

_GTIN_KEYS = ("gtin13", "gtin", "gtin12", "gtin14", "gtin8", "ean", "upc", "isbn")


def product_fields(node: dict, page_url: str, base: str) -> dict[str, str | None]:
    """Fields of the product `node` describes; a ProductGroup contributes its chosen variant."""
    variant = choose_variant(node, page_url) if "productgroup" in type_names(node) else None
    fields = _own_fields(node, page_url, base)
    if variant is not None:
        variant_fields = _own_fields(variant, page_url, base)
        for key in ("price", "currency", "availability", "sku", "gtin", "mpn", "image_url"):
            fields[key] = variant_fields[key] or fields[key]
        for key in ("name", "brand", "description"):
            fields[key] = fields[key] or variant_fields[key]
    return fields


def choose_variant(group: dict, page_url: str) -> dict | None:
    """The variant the page URL points at (by URL or `?variant=` id), else the first variant."""
    variants = [v for v in _as_list(group.get("hasVariant")) if isinstance(v, dict)]
    if not variants:
        return None
    page = urlsplit(page_url)
    for variant in variants:
        url = text_value(variant.get("url")) or text_value(variant.get("@id")) or ""
        target = urlsplit(absolute_url(url, page_url) or "")
        if page.query and target.path == page.path and target.query == page.query:
            return variant
        sku = text_value(variant.get("sku"))
        if sku and page.query and f"={sku}" in page.query:
            return variant
    return variants[0]


def _own_fields(node: dict, page_url: str, base: str) -> dict[str, str | None]:
    terms: OfferTerms = offer_terms(node.get("offers"), page_url)
    if terms.price is None and "price" in node:
        # Some shops put price and currency on the Product itself instead of in an Offer.
        terms = offer_terms(node, page_url)
    return {
        "name": html_to_text(text_value(node.get("name"))),
        "price": terms.price,
        "currency": terms.currency,
        # Some microdata themes put availability on the Product instead of its Offer.
        "availability": terms.availability
        or availability_from_schema(text_value(node.get("availability"))),
        "sku": _identifier(node.get("sku")) or terms.sku or _identifier(node.get("productID")),
        "gtin": _gtin(node, terms),
        "mpn": _identifier(node.get("mpn")),
        "brand": _brand(node.get("brand")),
        "image_url": absolute_url(_image(node.get("image")), base),
        "description": html_to_text(text_value(node.get("description"))),
    }


def _identifier(value: object) -> str | None:
    text = text_value(value)
    if text and ":" in text and text.split(":", 1)[0].lower() in ("sku", "isbn", "mpn"):
        text = text.split(":", 1)[1].strip()
    return text or None


def _gtin(node: dict, terms: OfferTerms) -> str | None:
    candidates = [node.get(key) for key in _GTIN_KEYS] + list(terms.gtin_candidates)
    for candidate in candidates:
        gtin = valid_gtin(text_value(candidate))
        if gtin:
            return gtin
    return None


def _brand(value: object) -> str | None:
    value = first_value(value)
    if isinstance(value, dict):
        value = value.get("name") or value.get("@value")
    return html_to_text(text_value(value))


def _image(value: object) -> str | None:
    value = first_value(value)
    if isinstance(value, dict):
        value = value.get("url") or value.get("contentUrl") or value.get("@id")
    return text_value(value)


def _as_list(value: object) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
