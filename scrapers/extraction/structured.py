"""Collect a page's structured data: JSON-LD (read leniently), microdata, RDFa and OpenGraph."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from extruct.rdfa import RDFaExtractor
from extruct.uniform import _umicrodata_microformat
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
_MICRODATA_ITEM = etree.XPath("boolean(//@itemscope)")
# compact_rdfa keeps only typed nodes, and a node gets a type from `typeof` (or, rarely, from an
# explicit rdf:type property): without either, pyRdfa's whole graph would be thrown away.
_RDFA_TYPED = etree.XPath(
    "boolean(//@typeof"
    " | //@property[contains(., 'rdf:type') or contains(., 'rdf-syntax-ns#type')]"
    " | //@rel[contains(., 'rdf:type') or contains(., 'rdf-syntax-ns#type')])"
)
_HEADS = etree.XPath("//head")
_HEAD_METAS = etree.XPath("meta[@property][@content]")
_PREFIX = re.compile(r"\s*(\w+):\s*([^\s]+)")
_OPENGRAPH_PREFIXES = frozenset({"og", "music", "video", "article", "book", "profile", "product"})


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
    # goes through our lenient parser; microdata and RDFa come from extruct in uniform shape.
    return StructuredData(
        jsonld=read_jsonld(document),
        microdata=_read_microdata(document, base) if _MICRODATA_ITEM(document) else [],
        rdfa=_read_rdfa(html, base) if _RDFA_TYPED(document) else [],
        opengraph=read_opengraph(document),
    )


def read_jsonld(document: HtmlElement) -> list[object]:
    """The parsed contents of every JSON-LD script, broken ones repaired where possible."""
    values: list[object] = []
    has_ids = False
    for script in _JSONLD_SCRIPTS(document):
        text = script.text or ""
        values.extend(parse_lenient_json(text))
        has_ids = has_ids or "@id" in text
    # Without any "@id" there is no reference to resolve, and no need to walk every node.
    return resolve_references(values) if has_ids else values


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


def read_opengraph(document: HtmlElement) -> dict[str, str]:
    """OpenGraph properties of `<head>`'s meta tags, the first non-blank value of each.

    Read as extruct's OpenGraphExtractor reads them (properties in the OpenGraph namespaces or
    in prefixes the page declares), without its per-call XPath compilation.
    """
    merged: dict[str, str] = {}
    for head in _HEADS(document):
        declared = _declared_prefixes(head)
        for meta in _HEAD_METAS(head):
            prefix = meta.get("property").partition(":")[0]
            value = meta.get("content").strip()
            if value and (prefix in _OPENGRAPH_PREFIXES or prefix in declared):
                merged.setdefault(meta.get("property"), value)
    return merged


def _declared_prefixes(head: HtmlElement) -> set[str]:
    html = head.getparent()
    elements = [html, head] if html is not None and html.tag == "html" else [head]
    return {name for e in elements for name, _ in _PREFIX.findall(e.get("prefix", ""))}
