"""Replace JSON-LD node references (`{"@id": ...}`) with the nodes they point at."""

from __future__ import annotations

from scrapers.extraction.schema_nodes import all_nodes

_MAX_DEPTH = 8


def resolve_references(documents: list[object]) -> list[object]:
    """Inline referenced nodes, as in an `@graph` whose Product points at its Offer by `@id`.

    A reference is a dict holding only `@id`; it is replaced when a typed node with that id
    exists anywhere in the page's JSON-LD. Depth is bounded because graphs may be cyclic.
    """
    by_id = {
        node["@id"]: node
        for node in all_nodes(documents)
        if isinstance(node.get("@id"), str) and ("@type" in node or len(node) > 1)
    }
    if not by_id:
        return documents
    return [_inline(document, by_id, 0) for document in documents]


def _inline(value: object, by_id: dict[str, dict], depth: int) -> object:
    if depth > _MAX_DEPTH:
        return value
    if isinstance(value, list):
        return [_inline(item, by_id, depth + 1) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"@id"} and value["@id"] in by_id:
        value = by_id[value["@id"]]
    return {key: _inline(item, by_id, depth + 1) for key, item in value.items()}
