"""Render an element's visible text as lines, the way a browser lays out block elements."""

from __future__ import annotations

from collections.abc import Callable

from lxml.html import HtmlElement

from scrapers.extraction.plain_text import collapse_whitespace

_BLOCK_TAGS = frozenset(
    {"p", "div", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "section", "article", "br",
     "h1", "h2", "h3", "h4", "h5", "h6", "form", "header", "footer", "main", "aside", "option",
     "button", "label", "select", "hr", "blockquote", "figure", "figcaption", "nav"}
)  # fmt: skip
_SKIPPED_TAGS = frozenset({"script", "style", "noscript", "template", "head", "title", "svg"})
_CELL_TAGS = frozenset({"td", "th"})


def text_lines(element: HtmlElement) -> list[str]:
    """Non-empty lines of visible text; table cells of a row share a line."""
    chunks: list[str] = []
    _walk(element, chunks.append)
    return [line for line in (collapse_whitespace(c) for c in "".join(chunks).split("\n")) if line]


def _walk(element: HtmlElement, append: Callable[[str], None]) -> None:
    tag = element.tag
    if not isinstance(tag, str) or tag in _SKIPPED_TAGS:
        if element.tail:
            append(element.tail)
        return
    block = tag in _BLOCK_TAGS
    if block:
        append("\n")
    elif tag in _CELL_TAGS:
        append(" ")
    if element.text:
        append(element.text)
    for child in element:
        _walk(child, append)
    append("\n" if block else " ")
    if element.tail:
        append(element.tail)
