"""Product fields read from the visible page when it carries no usable structured data."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from functools import cached_property

from lxml import etree
from lxml.html import HtmlElement

from scrapers.extraction.availability import availability_from_schema, availability_from_text
from scrapers.extraction.labels import fields_labelled_in, labelled_values, strip_label
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
from scrapers.extraction.prices import ParsedPrice
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
_BLOCKS = etree.XPath(".//div | .//p | .//table | .//ul")
_TITLE_TEXTS = etree.XPath("//title/text()")
_IMAGES = etree.XPath("//img")
_LABELLED_FIELDS = frozenset({"sku", "gtin", "mpn", "brand"})


class _Page:
    """What the heuristics read from one page, each part worked out once and only if asked."""

    def __init__(
        self, document: HtmlElement, page_url: str, base: str, wanted: frozenset[str]
    ) -> None:
        self.document = document
        self.page_url = page_url
        self.base = base
        self.wanted = wanted

    @cached_property
    def title(self) -> HtmlElement | None:
        return title_element(self.document)

    @cached_property
    def buttons(self) -> list[HtmlElement]:
        return cart_buttons(self.document)

    @cached_property
    def lines(self) -> list[str]:
        return text_lines(_product_region(self.title, lambda: self.buttons, self.document))

    @cached_property
    def labelled(self) -> dict[str, str | None]:
        # Laying out the page's lines costs more than all else on a page with structured data,
        # where only identifiers are still missing: skip it when no label word is on the page.
        fields = fields_labelled_in(self.document.text_content(), self.wanted & _LABELLED_FIELDS)
        if not fields:
            return dict.fromkeys(_LABELLED_FIELDS)
        return labelled_values(self.lines, fields)

    @cached_property
    def price(self) -> ParsedPrice | None:
        anchors = [element for element in [self.title, *self.buttons] if element is not None]
        positions = document_positions(self.document)
        return visible_price(self.document, anchors, positions, self.page_url)

    def name(self) -> str | None:
        if self.title is not None:
            return _title_text(self.title)
        return _title_from_head(self.document)

    def amount(self) -> str | None:
        return self.price.amount if self.price else None

    def currency(self) -> str | None:
        return self.price.currency if self.price else None

    def availability(self) -> str | None:
        return _availability(self.document, self.lines, self.buttons)

    def sku(self) -> str | None:
        return _marked_text(self.document, "sku") or self.labelled["sku"]

    def gtin(self) -> str | None:
        return self.labelled["gtin"]

    def mpn(self) -> str | None:
        return self.labelled["mpn"]

    def brand(self) -> str | None:
        return _marked_text(self.document, "brand|vendor|manufacturer") or self.labelled["brand"]

    def image_url(self) -> str | None:
        return _image(self.document, self.base)


_READERS: dict[str, Callable[[_Page], str | None]] = {
    "name": _Page.name,
    "price": _Page.amount,
    "currency": _Page.currency,
    "availability": _Page.availability,
    "sku": _Page.sku,
    "gtin": _Page.gtin,
    "mpn": _Page.mpn,
    "brand": _Page.brand,
    "image_url": _Page.image_url,
}
HEURISTIC_FIELDS = tuple(_READERS)


def heuristic_fields(
    document: HtmlElement,
    page_url: str,
    base: str,
    wanted: Collection[str] = HEURISTIC_FIELDS,
) -> dict[str, str | None]:
    """Name, price, availability, identifiers and image read from layout and wording.

    Only the `wanted` fields are looked for (the others are None): each costs one or more walks
    over the page, and the extraction skips those an earlier layer already gave.
    """
    page = _Page(document, page_url, base, frozenset(wanted))
    return {field: read(page) if field in page.wanted else None for field, read in _READERS.items()}


def _product_region(
    title: HtmlElement | None,
    buttons: Callable[[], list[HtmlElement]],
    document: HtmlElement,
) -> HtmlElement:
    """The largest block around the title (else the first buy button) that still reads like one
    product's details. `buttons` is called only when there is no title."""
    start = title if title is not None else next(iter(buttons()), None)
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
    if _BLOCKS(title) or len(text) > _LONGEST_TITLE:
        text = collapse_whitespace(title.text or "") or text[:_LONGEST_TITLE]
    return text or None


def _title_from_head(document: HtmlElement) -> str | None:
    titles = _TITLE_TEXTS(document)
    if not titles:
        return None
    title = collapse_whitespace(titles[0])
    parts = _TITLE_SEPARATORS.split(title)
    return parts[0] if parts and parts[0] else title or None


def _image(document: HtmlElement, base: str) -> str | None:
    """The first product-looking image outside the chrome and product grids."""
    for image in _IMAGES(document):
        tokens = class_tokens(image) + class_tokens(image.getparent())
        looks_like_product = any(_IMAGE_ATTR.search(token) for token in tokens)
        if looks_like_product and not in_chrome(image) and not in_repeated_card(image):
            return absolute_url(image.get("data-src") or image.get("src"), base)
    return None
