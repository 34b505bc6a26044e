"""Walk schema.org data (JSON-LD, uniform microdata, compacted RDFa) and find its products."""

from __future__ import annotations

from collections.abc import Iterator

PRODUCT_TYPES = frozenset(
    {
        "product",
        "productgroup",
        "productmodel",
        "individualproduct",
        "someproducts",
        "vehicle",
        "car",
    }
)
LISTING_TYPES = frozenset({"itemlist", "offercatalog", "collectionpage", "searchresultspage"})


def type_names(node: dict) -> set[str]:
    """Lower-case short type names of a node ("http://schema.org/Product" -> "product")."""
    raw = node.get("@type") or node.get("type") or []
    types = raw if isinstance(raw, list) else [raw]
    return {_short_name(value).lower() for value in types if isinstance(value, str)}


def _short_name(value: str) -> str:
    return value.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].rsplit("#", 1)[-1]


def is_product(node: dict) -> bool:
    return bool(type_names(node) & PRODUCT_TYPES)


def top_level_nodes(data: object) -> Iterator[dict]:
    """Yield the objects of a JSON-LD document: top-level arrays and `@graph` are flattened."""
    if isinstance(data, list):
        for value in data:
            yield from top_level_nodes(value)
    elif isinstance(data, dict):
        graph = data.get("@graph")
        if isinstance(graph, list | dict):
            yield from top_level_nodes(graph)
        if type_names(data) or "@graph" not in data:
            yield data


def all_nodes(data: object, depth: int = 0) -> Iterator[dict]:
    """Yield every object nested anywhere in `data` (depth-limited against cycles)."""
    if depth > 12:
        return
    if isinstance(data, list):
        for value in data:
            yield from all_nodes(value, depth + 1)
    elif isinstance(data, dict):
        yield data
        for value in data.values():
            yield from all_nodes(value, depth + 1)


def first_value(value: object) -> object:
    """The first entry of a list, or the value itself; JSON-LD allows both for any property."""
    while isinstance(value, list):
        if not value:
            return None
        value = value[0]
    return value


def text_value(value: object) -> str | None:
    """A property's text: plain strings, numbers, `{"@value": ...}` and `{"name": ...}`."""
    value = first_value(value)
    if isinstance(value, dict):
        value = value.get("@value", value.get("name"))
        value = first_value(value)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    return value.strip() or None if isinstance(value, str) else None


def product_nodes(data: object, depth: int = 0) -> list[dict]:
    """Products described on their own: not variants inside a product, not items of a list."""
    if depth > 12:
        return []
    if isinstance(data, list):
        return [node for value in data for node in product_nodes(value, depth + 1)]
    if not isinstance(data, dict):
        return []
    if is_product(data):
        return [data]
    if type_names(data) & LISTING_TYPES:
        return []
    if "offer" in type_names(data) and isinstance(data.get("itemOffered"), dict):
        return [_with_offer(data["itemOffered"], data)] if is_product(data["itemOffered"]) else []
    return [node for value in data.values() for node in product_nodes(value, depth + 1)]


def _with_offer(product: dict, offer: dict) -> dict:
    """A product reached through `Offer.itemOffered`, given back its offer."""
    return {**product, "offers": product.get("offers") or offer}


def listing_size(data: object) -> int:
    """The largest number of entries in any ItemList-like node of `data`."""
    largest = 0
    for node in all_nodes(data):
        if type_names(node) & LISTING_TYPES:
            entries = node.get("itemListElement")
            largest = max(largest, len(entries) if isinstance(entries, list) else 0)
    return largest
