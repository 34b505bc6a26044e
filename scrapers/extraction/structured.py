"""Collect a page's structured data: JSON-LD (read leniently), microdata, RDFa and OpenGraph."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from extruct.opengraph import OpenGraphExtractor
from extruct.rdfa import RDFaExtractor
from extruct.uniform import _umicrodata_microformat, _uopengraph
from extruct.utils import parse_xmldom_html
from extruct.w3cmicrodata import MicrodataExtractor
from lxml import etree
from lxml.html import HtmlElement

from scrapers.extraction.lenient_json import parse_lenient_json
from scrapers.extraction.rdfa import compact_rdfa
from scrapers.extraction.references import resolve_references

logger = logging.getLogger(__name__)

_SCHEMA_CONTEXT = "http://schema.org"
_JSONLD_SCRIPTS = etree.XPath("//script[contains(translate(@type, 'LDJSON', 'ldjson'), 'ld+json')]")
_MICRODATA_ITEM = etree.XPath("boolean(//*[@itemscope])")
# compact_rdfa keeps only typed nodes, and a node gets a type from `typeof` (or, rarely, from an
# explicit rdf:type property): without either, pyRdfa's whole graph would be thrown away.
_RDFA_TYPED = etree.XPath(
    "boolean(//*[@typeof] | //*[contains(@property, 'rdf:type') or contains(@rel, 'rdf:type')"
    " or contains(@property, 'rdf-syntax-ns#type') or contains(@rel, 'rdf-syntax-ns#type')])"
)
_OPENGRAPH_TAG = etree.XPath("boolean(//head/meta[@property][@content])")


@dataclass
class StructuredData:
    jsonld: list[object] = field(default_factory=list)
    microdata: list[dict] = field(default_factory=list)
    rdfa: list[dict] = field(default_factory=list)
    opengraph: dict[str, str] = field(default_factory=dict)


def read_structured_data(html: str, document: HtmlElement, base: str) -> StructuredData:
    """Everything machine-readable on the page, each syntax in its own list.

    `document` is the page already parsed with lxml; each syntax is read from it, and a syntax
    whose markers the page lacks is not run at all (pyRdfa builds a whole rdflib graph per page,
    by far the most expensive step). Only RDFa needs its own parse (extruct's DOM-like tree).
    """
    # extruct's own JSON-LD reader drops a whole script on the first syntax error, so JSON-LD
    # goes through our lenient parser; the other syntaxes come from extruct in uniform shape.
    return StructuredData(
        jsonld=read_jsonld(document),
        microdata=_read_microdata(document, base) if _MICRODATA_ITEM(document) else [],
        rdfa=_read_rdfa(html, base) if _RDFA_TYPED(document) else [],
        opengraph=_read_opengraph(document) if _OPENGRAPH_TAG(document) else {},
    )


def read_jsonld(document: HtmlElement) -> list[object]:
    """The parsed contents of every JSON-LD script, broken ones repaired where possible."""
    values: list[object] = []
    for script in _JSONLD_SCRIPTS(document):
        values.extend(parse_lenient_json(script.text or ""))
    return resolve_references(values)


def _read_microdata(document: HtmlElement, base: str) -> list[dict]:
    try:
        items = MicrodataExtractor().extract_items(document, base_url=base)
        uniform = _umicrodata_microformat(items, _SCHEMA_CONTEXT)
    except Exception:  # extruct raises many kinds on odd markup; the page keeps its other layers
        logger.exception("microdata extraction failed")
        return []
    return [item for item in uniform if isinstance(item, dict)]


def _read_rdfa(html: str, base: str) -> list[dict]:
    try:
        tree = parse_xmldom_html(html, encoding="UTF-8")
        return compact_rdfa(RDFaExtractor().extract_items(tree, base_url=base))
    except Exception:  # as above: pyRdfa and rdflib fail in their own ways on broken markup
        logger.exception("RDFa extraction failed")
        return []


def _read_opengraph(document: HtmlElement) -> dict[str, str]:
    try:
        groups = _uopengraph(list(OpenGraphExtractor().extract_items(document)))
    except Exception:  # as above
        logger.exception("OpenGraph extraction failed")
        return {}
    return _merge_opengraph(groups)


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
