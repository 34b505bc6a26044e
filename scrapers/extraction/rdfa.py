"""Compact extruct's RDFa output (expanded JSON-LD) into nested schema.org-style objects."""

from __future__ import annotations

_SCHEMA_PREFIXES = ("http://schema.org/", "https://schema.org/")
_MAX_DEPTH = 6


def compact_rdfa(nodes: list[dict]) -> list[dict]:
    """Nest referenced nodes and shorten schema.org property names.

    `{"http://schema.org/offers": [{"@id": "_:b1"}]}` becomes `{"offers": [{...the offer...}]}`,
    so the same code reads JSON-LD, microdata and RDFa. Only schema.org-typed nodes are kept.
    """
    by_id = {node["@id"]: node for node in nodes if isinstance(node, dict) and "@id" in node}
    return [
        _compact(node, by_id, 0)
        for node in nodes
        if isinstance(node, dict) and any(_is_schema(t) for t in node.get("@type", []))
    ]


def _compact(node: dict, by_id: dict[str, dict], depth: int) -> dict:
    compacted: dict = {"@type": [_shorten(t) for t in node.get("@type", [])]}
    for key, values in node.items():
        if key.startswith("@") or not _is_schema(key):
            continue
        compacted[_shorten(key)] = [_value(value, by_id, depth) for value in values]
    return compacted


def _value(value: dict, by_id: dict[str, dict], depth: int) -> object:
    if "@value" in value:
        return value["@value"]
    reference = value.get("@id")
    if reference in by_id and depth < _MAX_DEPTH and "@type" in by_id[reference]:
        return _compact(by_id[reference], by_id, depth + 1)
    return reference


def _is_schema(name: str) -> bool:
    return name.startswith(_SCHEMA_PREFIXES)


def _shorten(name: str) -> str:
    for prefix in _SCHEMA_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name
