"""Recognise pages that are not product pages: bot challenges, error pages, product grids."""

from __future__ import annotations

import re

from lxml import etree
from lxml.html import HtmlElement

from scrapers.extraction.layout import class_tokens
from scrapers.extraction.plain_text import collapse_whitespace

# Markers only a bot-challenge page carries, wherever they appear. Lower-case literals looked
# for in the case-folded page: a regex (re.IGNORECASE) over a whole page is several times slower.
_CHALLENGE_MARKERS = (
    "cf-challenge", "cf_chl_opt", "challenge-platform", "/cdn-cgi/challenge", "are you a robot",
    "are you human", "verify you are human", "verify you are a human", "unusual traffic",
    "px-captcha", "_incapsula_resource", "bist du ein mensch", "bist du ein roboter",
    "êtes-vous un robot",
)  # fmt: skip
_CAPTCHA_PHRASES = ("captcha", "attention required", "access denied", "robot check")
_CAPTCHA_WORD = re.compile("|".join(map(re.escape, _CAPTCHA_PHRASES)), re.I)
# Every _CAPTCHA_WORD match starts with one of these words, whatever whitespace follows it.
_CAPTCHA_FIRST_WORDS = tuple(phrase.split()[0] for phrase in _CAPTCHA_PHRASES)
_ERROR_WORDS = re.compile(
    r"page not found|not found|error 404|404 error|^404\b|\b404 [-|\u2013:]|seite nicht gefunden|"
    r"nicht gefunden|page introuvable|"
    r"página no encontrada|pagina non trovata|pagina niet gevonden|página não encontrada|"
    r"no longer exists|existiert nicht|n'existe pas|this page doesn'?t exist",
    re.IGNORECASE,
)
_SHORT_PAGE = 1500
_GRID_MINIMUM = 4
_PRODUCT_CARD = re.compile(r"product|item|card|tile", re.I)
_LINKS = etree.XPath(".//a[@href]")
_TITLE_AND_HEADINGS = etree.XPath("//title//text() | //h1//text()")


def challenge_reason(html: str, document: HtmlElement) -> str | None:
    """ "captcha" when the page is a bot check rather than the page asked for."""
    folded = html.casefold()
    if any(marker in folded for marker in _CHALLENGE_MARKERS):
        return "captcha"
    if _CAPTCHA_WORD.search(_title_and_headings(document)):
        return "captcha"
    text = document.text_content()
    folded_text = text.casefold()
    if not any(word in folded_text for word in _CAPTCHA_FIRST_WORDS):
        return None
    body_text = collapse_whitespace(text)
    if len(body_text) < _SHORT_PAGE and _CAPTCHA_WORD.search(body_text):
        return "captcha"
    return None


def is_error_page(document: HtmlElement) -> bool:
    """A "not found" page served with status 200 ("soft 404")."""
    return bool(_ERROR_WORDS.search(_title_and_headings(document)))


def product_grid_size(document: HtmlElement) -> int:
    """How many product cards (a link and a price in a repeated block) the page lists."""
    largest = 0
    for container in document.iter():
        if not isinstance(container.tag, str):
            continue
        cards = [
            child
            for child in container
            if isinstance(child.tag, str)
            and any(_PRODUCT_CARD.search(token) for token in class_tokens(child))
            and _LINKS(child)
            and re.search(r"\d", child.text_content())
        ]
        largest = max(largest, len(cards))
    return largest


def looks_like_grid(document: HtmlElement) -> bool:
    return product_grid_size(document) >= _GRID_MINIMUM


def _title_and_headings(document: HtmlElement) -> str:
    texts = _TITLE_AND_HEADINGS(document)
    return collapse_whitespace(" ".join(texts))
