"""Extract one product from a page, layer by layer: the first layer to give a field wins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import lxml.html
from lxml.html import HtmlElement

from scrapers.extraction.decoding import decode_html
from scrapers.extraction.heuristics import HEURISTIC_FIELDS, heuristic_fields
from scrapers.extraction.meta_tags import meta_fields, opengraph_fields
from scrapers.extraction.page_kind import challenge_reason, is_error_page, looks_like_grid
from scrapers.extraction.schema_nodes import listing_size, product_nodes, text_value
from scrapers.extraction.schema_product import product_fields
from scrapers.extraction.structured import StructuredData, read_structured_data
from scrapers.extraction.urls import base_url, canonical_url
from scrapers.items import ProductItem

ITEM_FIELDS = (
    "name", "price", "currency", "availability", "sku", "gtin", "mpn", "brand", "image_url",
    "description",
)  # fmt: skip
_LISTING_MINIMUM = 3


@dataclass(frozen=True)
class ExtractionResult:
    """Either `item` is set, or `not_product_reason` says why the page holds no product."""

    item: ProductItem | None = None
    not_product_reason: str | None = None

    @property
    def is_product(self) -> bool:
        return self.item is not None


def extract_product(
    html: str | bytes, url: str, *, encoding: str | None = None
) -> ExtractionResult:
    """Extract the product on the page fetched from `url`.

    `encoding` is the charset from the response headers, used when `html` is bytes.
    Reasons for no product: "captcha", "error_page", "listing_page", "no_product_markup".
    """
    text = decode_html(html, encoding=encoding)
    document = parse_document(text)
    if document is None:
        return ExtractionResult(not_product_reason="no_product_markup")
    reason = challenge_reason(text, document)
    if reason:
        return ExtractionResult(not_product_reason=reason)
    base = base_url(document, url)
    canonical = canonical_url(document, url)
    data = read_structured_data(text, document, base)
    layers = _structured_layers(data, document, url, base, canonical)
    if layers is None:
        return ExtractionResult(not_product_reason="listing_page")
    has_schema_product = any(name in ("json-ld", "microdata", "rdfa") for name, _ in layers)
    if not has_schema_product and is_error_page(document):
        return ExtractionResult(not_product_reason="error_page")
    missing = _missing_fields(layers)
    if missing:
        layers.append(("heuristics", heuristic_fields(document, url, base, missing)))
    item = _merge(layers, url, canonical)
    if not has_schema_product and not _is_product_evidence(item, layers):
        grid = looks_like_grid(document) or listing_size(data.jsonld) >= _LISTING_MINIMUM
        return ExtractionResult(not_product_reason="listing_page" if grid else "no_product_markup")
    return ExtractionResult(item=item)


def parse_document(text: str) -> HtmlElement | None:
    """Parse HTML the way lxml repairs broken markup; None for an empty document."""
    if not text.strip():
        return None
    try:
        return lxml.html.document_fromstring(text)
    except lxml.etree.ParserError:
        return None


def _structured_layers(
    data: StructuredData, document: HtmlElement, url: str, base: str, canonical: str
) -> list[tuple[str, dict[str, str | None]]] | None:
    """Field sets from each structured layer, or None when the data describes a listing."""
    layers: list[tuple[str, dict[str, str | None]]] = []
    describes_listing = False
    syntaxes = (("json-ld", data.jsonld), ("microdata", data.microdata), ("rdfa", data.rdfa))
    for name, items in syntaxes:
        nodes = product_nodes(items)
        main = _main_product(nodes, url, canonical)
        if main is not None:
            layers.append((name, product_fields(main, url, base)))
        elif len(nodes) >= _LISTING_MINIMUM or (not nodes and listing_size(items) >= 2):
            describes_listing = True
    if describes_listing and not layers:
        return None
    layers.append(("opengraph", opengraph_fields(data.opengraph, url, base)))
    layers.append(("meta", meta_fields(document, url)))
    return layers


def _main_product(nodes: list[dict], url: str, canonical: str) -> dict | None:
    """The page's own product: the only one, the one whose URL is the page's, or the first of
    two (a product plus an accessory); three or more unmatched products make a listing."""
    if len(nodes) <= 1:
        return nodes[0] if nodes else None
    page_paths = {urlsplit(url).path.rstrip("/"), urlsplit(canonical).path.rstrip("/")}
    for node in nodes:
        node_url = text_value(node.get("url")) or text_value(node.get("@id")) or ""
        if node_url and urlsplit(node_url).path.rstrip("/") in page_paths:
            return node
    return nodes[0] if len(nodes) < _LISTING_MINIMUM else None


def _missing_fields(layers: list[tuple[str, dict[str, str | None]]]) -> list[str]:
    """The fields the heuristics can give that no earlier layer gave (the first layer wins)."""
    return [
        field for field in HEURISTIC_FIELDS if not any(values.get(field) for _, values in layers)
    ]


def _merge(
    layers: list[tuple[str, dict[str, str | None]]], url: str, canonical: str
) -> ProductItem:
    item = ProductItem(url=url, canonical_url=canonical, scraped_at=_now())
    for field in ITEM_FIELDS:
        for layer, values in layers:
            value = values.get(field)
            if value:
                setattr(item, field, value)
                item.sources[field] = layer
                break
    return item


def _is_product_evidence(item: ProductItem, layers: list[tuple[str, dict]]) -> bool:
    """Without schema.org markup a page counts as a product when it shows a name and a price."""
    return bool(item.name and item.price)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
