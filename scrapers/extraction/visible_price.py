"""Find the price a shopper sees next to the product title or buy button, without markup."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree
from lxml.html import HtmlElement

from scrapers.extraction.currencies import currency_for_country
from scrapers.extraction.layout import class_tokens, in_chrome, in_repeated_card, is_hidden
from scrapers.extraction.plain_text import collapse_whitespace
from scrapers.extraction.prices import ParsedPrice, parse_price

_PRICE_ATTR = re.compile(r"price|preis|prix|precio|prezzo|prijs|pre[cç]o|cena|pris|amount", re.I)
# A reference price the shopper is not asked to pay: struck-through, "was", "RRP", per-unit.
_REFERENCE_ATTR = re.compile(
    r"old|was|regular|compare|strike|crossed|before|rrp|uvp|msrp|original|saving|save|"
    r"per-?unit|unit-?price|base-?price|grundpreis|shipping|install|monthly|klarna",
    re.I,
)
_CURRENT_ATTR = re.compile(r"sale|special|current|final|now|actual|offer|promo", re.I)
_STRUCK_TAGS = frozenset({"del", "s", "strike"})
_MONEY = re.compile(
    r"(?:[€£$¥₹]|US\$|R\$|CHF|EUR|USD|GBP|SEK|DKK|NOK|PLN|kr\.?|zł|Kč|Fr\.)\s?\d[\d.,'\u2019 ]*"
    r"|\d[\d.,'\u2019 ]*\s?(?:€|EUR|zł|kr|Kč|CHF|USD|GBP|PLN|SEK|DKK|NOK|£|\$|:-|,-)",
)
_MAX_PRICE_TEXT = 60
_OWN_TEXTS = etree.XPath("text()")


@dataclass(frozen=True)
class PriceCandidate:
    element: HtmlElement
    price: ParsedPrice
    preferred: bool


def visible_price(
    document: HtmlElement,
    anchors: list[HtmlElement],
    positions: dict[HtmlElement, int],
    page_url: str,
) -> ParsedPrice | None:
    """The shown price closest to the title or buy button, sale prices before others."""
    candidates = _marked_candidates(document, page_url) or _text_candidates(document, page_url)
    if not candidates:
        return None
    anchor_positions = [positions[a] for a in anchors if a in positions] or [0]

    def distance(candidate: PriceCandidate) -> tuple[int, int]:
        position = positions.get(candidate.element, 0)
        gap = min(abs(position - anchor) for anchor in anchor_positions)
        return (gap // 40, 0 if candidate.preferred else 1) if gap < 400 else (10**6, gap)

    best = min(candidates, key=distance)
    currency = best.price.currency or currency_for_country(page_url)
    return ParsedPrice(best.price.amount, currency)


def _marked_candidates(document: HtmlElement, page_url: str) -> list[PriceCandidate]:
    """Elements whose class, id or data attributes say they hold a price."""
    found = []
    for element in document.iter():
        if not isinstance(element.tag, str) or not _is_price_element(element):
            continue
        if _has_price_descendant(element) or _excluded(element):
            continue
        text = _current_text(element)
        if not text or len(text) > _MAX_PRICE_TEXT or not re.search(r"\d", text):
            continue
        price = parse_price(element.get("data-price-amount") or text, page_url=page_url)
        if price.amount is not None and (
            price.currency or _MONEY.search(text) or "." in text or "," in text
        ):
            if price.currency is None and not element.get("data-price-amount"):
                price = ParsedPrice(price.amount, parse_price(text, page_url=page_url).currency)
            preferred = any(_CURRENT_ATTR.search(t) for t in _attr_words(element))
            found.append(PriceCandidate(element, price, preferred))
    return found


def _text_candidates(document: HtmlElement, page_url: str) -> list[PriceCandidate]:
    """Money amounts in plain text, for pages whose price carries no telling attribute."""
    found = []
    for element in document.iter():
        if not isinstance(element.tag, str) or element.tag in ("script", "style", "title"):
            continue
        own_text = collapse_whitespace(" ".join(_OWN_TEXTS(element)))
        match = _MONEY.search(own_text)
        if match and not _excluded(element) and len(own_text) <= _MAX_PRICE_TEXT * 2:
            price = parse_price(match.group(0), page_url=page_url)
            if price.amount is not None:
                found.append(PriceCandidate(element, price, preferred=False))
    return found


def _is_price_element(element: HtmlElement) -> bool:
    return any(_PRICE_ATTR.search(word) for word in _attr_words(element))


def _attr_words(element: HtmlElement) -> list[str]:
    data = [
        f"{key}={value}" for key, value in element.attrib.items() if key.startswith("data-price")
    ]
    return class_tokens(element) + data


def _has_price_descendant(element: HtmlElement) -> bool:
    return any(
        isinstance(child.tag, str)
        and _is_price_element(child)
        and not _is_reference(child)
        and re.search(r"\d", child.text_content())
        for child in element.iterdescendants()
    )


def _is_reference(element: HtmlElement) -> bool:
    return element.tag in _STRUCK_TAGS or any(
        _REFERENCE_ATTR.search(word) for word in _attr_words(element)
    )


def _excluded(element: HtmlElement) -> bool:
    if any(_is_reference(node) for node in [element, *element.iterancestors(None)][:5]):
        return True
    if any(node.tag in _STRUCK_TAGS for node in element.iterancestors(None)):
        return True
    return is_hidden(element) or in_chrome(element) or in_repeated_card(element)


def _current_text(element: HtmlElement) -> str:
    """The element's text without struck-through or reference-price parts."""
    parts = [element.text or ""]
    for child in element:
        if isinstance(child.tag, str) and not _is_reference(child):
            parts.append(child.text_content())
        parts.append(child.tail or "")
    return collapse_whitespace(" ".join(parts))
