"""Product fields read from the visible page when it carries no usable structured data."""

from __future__ import annotations

import re

from lxml.html import HtmlElement

from scrapers.extraction.availability import availability_from_schema, availability_from_text
from scrapers.extraction.labels import labelled_values, strip_label
from scrapers.extraction.layout import (
    cart_buttons,
    class_tokens,
    document_positions,
    in_chrome,
    in_repeated_card,
    is_hidden,
    title_element,
)
from scrapers.extraction.plain_text import collapse_whitespace, element_text
from scrapers.extraction.text_lines import text_lines
from scrapers.extraction.urls import absolute_url
from scrapers.extraction.visible_price import visible_price

_AVAILABILITY_ATTR = re.compile(
    r"stock|availab|lieferbar|verf[uü]gbar|dispon|inventory|delivery|lager", re.I
)
_IMAGE_ATTR = re.compile(r"product|main|gallery|zoom|primary|featured|hero", re.I)
_TITLE_SEPARATORS = re.compile(r"\s+(?:\||\u2013|\u2014|::|-)\s+")
_REGION_TEXT_LIMIT = 4000
_LONGEST_TITLE = 200


def heuristic_fields(document: HtmlElement, page_url: str, base: str) -> dict[str, str | None]:
    """Name, price, availability, identifiers and image read from layout and wording."""
    title = title_element(document)
    buttons = cart_buttons(document)
    positions = document_positions(document)
    anchors = [element for element in [title, *buttons] if element is not None]
    price = visible_price(document, anchors, positions, page_url)
    lines = text_lines(_product_region(title, buttons, document))
    labelled = labelled_values(lines)
    return {
        "name": _title_text(title) if title is not None else _title_from_head(document),
        "price": price.amount if price else None,
        "currency": price.currency if price else None,
        "availability": _availability(document, lines, buttons),
        "sku": _marked_text(document, "sku") or labelled["sku"],
        "gtin": labelled["gtin"],
        "mpn": labelled["mpn"],
        "brand": _marked_text(document, "brand|vendor|manufacturer") or labelled["brand"],
        "image_url": _image(document, base),
    }


def _product_region(
    title: HtmlElement | None, buttons: list[HtmlElement], document: HtmlElement
) -> HtmlElement:
    """The largest block around the title that still reads like one product's details."""
    start = title if title is not None else (buttons[0] if buttons else None)
    if start is None:
        return document
    region = start
    for ancestor in start.iterancestors(None):
        if ancestor.tag == "html" or len(element_text(ancestor)) > _REGION_TEXT_LIMIT:
            break
        region = ancestor
    return region


def _availability(
    document: HtmlElement, lines: list[str], buttons: list[HtmlElement]
) -> str | None:
    """Stock wording in a stock-labelled element, else in the product block, else the buy button."""
    for element in document.iter():
        if not isinstance(element.tag, str) or element.tag in ("script", "style", "meta"):
            continue
        if any(_AVAILABILITY_ATTR.search(token) for token in class_tokens(element)):
            if is_hidden(element) or in_chrome(element) or in_repeated_card(element):
                continue
            state = availability_from_schema(element.get("href")) or availability_from_text(
                element_text(element)
            )
            if state:
                return state
    for line in lines:
        state = availability_from_text(line)
        if state:
            return state
    enabled = [b for b in buttons if b.get("disabled") is None and not is_hidden(b)]
    if enabled:
        return "in_stock"
    return "out_of_stock" if buttons else None


def _marked_text(document: HtmlElement, word: str) -> str | None:
    """Text of a small element whose class or id is about `word` ("sku", "brand|vendor")."""
    pattern = re.compile(rf"(?:^|[-_])(?:{word})(?:$|[-_](?:name|value|code|number))", re.I)
    for element in document.iter():
        if not isinstance(element.tag, str) or in_chrome(element) or in_repeated_card(element):
            continue
        if _marked(element, pattern) and not any(
            _marked(d, pattern) for d in element.iterdescendants()
        ):
            text = strip_label(element_text(element))
            if text and len(text) <= 60 and not is_hidden(element):
                return text
    return None


def _marked(element: HtmlElement, pattern: re.Pattern[str]) -> bool:
    return isinstance(element.tag, str) and any(pattern.search(t) for t in class_tokens(element))


def _title_text(title: HtmlElement) -> str | None:
    """The heading's text; only its first words when unclosed tags made it swallow the page."""
    text = element_text(title)
    if title.xpath(".//div | .//p | .//table | .//ul") or len(text) > _LONGEST_TITLE:
        text = collapse_whitespace(title.text or "") or text[:_LONGEST_TITLE]
    return text or None


def _title_from_head(document: HtmlElement) -> str | None:
    titles = document.xpath("//title/text()")
    if not titles:
        return None
    title = collapse_whitespace(titles[0])
    parts = _TITLE_SEPARATORS.split(title)
    return parts[0] if parts and parts[0] else title or None


def _image(document: HtmlElement, base: str) -> str | None:
    """The first product-looking image outside the chrome and product grids."""
    for image in document.xpath("//img"):
        tokens = class_tokens(image) + class_tokens(image.getparent())
        looks_like_product = any(_IMAGE_ATTR.search(token) for token in tokens)
        if looks_like_product and not in_chrome(image) and not in_repeated_card(image):
            return absolute_url(image.get("data-src") or image.get("src"), base)
    return None
