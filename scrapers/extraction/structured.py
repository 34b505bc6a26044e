"""Collect a page's structured data: JSON-LD (read leniently), microdata, RDFa and OpenGraph."""

from __future__ import annotations

from dataclasses import dataclass, field

import extruct
from lxml.html import HtmlElement

from scrapers.extraction.lenient_json import parse_lenient_json
from scrapers.extraction.rdfa import compact_rdfa
from scrapers.extraction.references import resolve_references


@dataclass
class StructuredData:
    jsonld: list[object] = field(default_factory=list)
    microdata: list[dict] = field(default_factory=list)
    rdfa: list[dict] = field(default_factory=list)
    opengraph: dict[str, str] = field(default_factory=dict)


def read_structured_data(html: str, document: HtmlElement, base: str) -> StructuredData:
    """Everything machine-readable on the page, each syntax in its own list."""
    # extruct's own JSON-LD reader drops a whole script on the first syntax error, so JSON-LD
    # goes through our lenient parser; the other syntaxes come from extruct in uniform shape.
    extracted = extruct.extract(
        html,
        base_url=base,
        syntaxes=["microdata", "rdfa", "opengraph"],
        uniform=True,
        errors="log",
    )
    return StructuredData(
        jsonld=read_jsonld(document),
        microdata=[item for item in extracted.get("microdata", []) if isinstance(item, dict)],
        rdfa=compact_rdfa(extracted.get("rdfa", [])),
        opengraph=_merge_opengraph(extracted.get("opengraph", [])),
    )


def read_jsonld(document: HtmlElement) -> list[object]:
    """The parsed contents of every JSON-LD script, broken ones repaired where possible."""
    values: list[object] = []
    scripts = document.xpath("//script[contains(translate(@type, 'LDJSON', 'ldjson'), 'ld+json')]")
    for script in scripts:
        values.extend(parse_lenient_json(script.text or ""))
    return resolve_references(values)


def _merge_opengraph(groups: list[dict]) -> dict[str, str]:
    """One flat mapping of OpenGraph properties; the first occurrence of a property wins."""
    merged: dict[str, str] = {}
    for group in groups:
        for key, value in group.items():
            if key.startswith("@"):
                continue
            first = value[0] if isinstance(value, list) and value else value
            if isinstance(first, str) and first.strip():
                merged.setdefault(key, first.strip())
    return merged
