"""Plain text from HTML fragments and element trees."""

from __future__ import annotations

import html
import re

import lxml.html
from lxml import etree
from lxml.etree import ParserError
from lxml.html import HtmlElement

_LOOKS_LIKE_MARKUP = re.compile(r"<[a-zA-Z/!][^>]*>")
# The HTML parser keeps a script's or style's content as one text child, never elements, so
# checking the parent is enough (and about twice as fast as checking every ancestor).
_VISIBLE_TEXT = etree.XPath(".//text()[not(parent::script) and not(parent::style)]")


def collapse_whitespace(text: str) -> str:
    # str.split() splits on the same whitespace as the regex \s+, several times faster.
    return " ".join(text.split())


def html_to_text(value: object) -> str | None:
    """Strip tags and entities from `value` and collapse whitespace; None when nothing is left."""
    if not isinstance(value, str):
        return None
    text = html.unescape(value)
    if _LOOKS_LIKE_MARKUP.search(text):
        try:
            text = element_text(lxml.html.fragment_fromstring(text, create_parent="div"))
        except ParserError:
            text = _LOOKS_LIKE_MARKUP.sub(" ", text)
    return collapse_whitespace(text) or None


def element_text(element: HtmlElement) -> str:
    """Visible text of an element, ignoring scripts and styles, with words kept apart."""
    return collapse_whitespace(" ".join(_VISIBLE_TEXT(element)))
