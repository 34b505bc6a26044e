"""Render an element's visible text as lines, the way a browser lays out block elements."""

from __future__ import annotations

from lxml.html import HtmlElement

from scrapers.extraction.plain_text import collapse_whitespace

_BLOCK_TAGS = frozenset(
    {"p", "div", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "section", "article", "br",
     "h1", "h2", "h3", "h4", "h5", "h6", "form", "header", "footer", "main", "aside", "option",
     "button", "label", "select", "hr", "blockquote", "figure", "figcaption", "nav"}
)  # fmt: skip
_SKIPPED_TAGS = frozenset({"script", "style", "noscript", "template", "head", "title", "svg"})


def text_lines(element: HtmlElement) -> list[str]:
    """Non-empty lines of visible text; table cells of a row share a line."""
    chunks: list[str] = []
    _walk(element, chunks)
    return [line for line in (collapse_whitespace(c) for c in "".join(chunks).split("\n")) if line]


def _walk(element: HtmlElement, chunks: list[str]) -> None:
    tag = element.tag if isinstance(element.tag, str) else ""
    if not tag or tag in _SKIPPED_TAGS:
        chunks.append(element.tail or "")
        return
    block = tag in _BLOCK_TAGS
    chunks.append("\n" if block else " " if tag in ("td", "th") else "")
    chunks.append(element.text or "")
    for child in element:
        _walk(child, chunks)
    chunks.append("\n" if block else " ")
    chunks.append(element.tail or "")
