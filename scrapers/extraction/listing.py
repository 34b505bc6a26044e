"""Links a catalog spider follows from a category page: products and next pages."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from lxml.html import HtmlElement
from parsel import Selector

from scrapers.extraction.decoding import decode_html
from scrapers.extraction.layout import class_tokens, in_chrome
from scrapers.extraction.plain_text import element_text
from scrapers.extraction.schema_nodes import all_nodes, is_product, text_value, type_names
from scrapers.extraction.structured import read_jsonld
from scrapers.extraction.urls import absolute_url, base_url

_NEXT_TEXT = re.compile(
    r"^(?:next|next page|\u203a|\u00bb|>|\u2192|weiter|nächste(?: seite)?|suivant(?:e)?|"
    r"page suivante|siguiente|"
    r"successiv[ao]|avanti|volgende|próxima|seguinte)\W*$",
    re.IGNORECASE,
)
_PRODUCT_PATH = re.compile(
    r"/(?:products?|p|dp|item|artikel|produit|producto|prodotto|product-detail)/|"
    r"-p-\d+|/\d{4,}[^/]*\.html?$|-\d{4,}\.html?$|\.html?$",
    re.IGNORECASE,
)
_CARD = re.compile(r"product|item|card|tile", re.I)


@dataclass
class ListingLinks:
    product_urls: list[str] = field(default_factory=list)
    next_page_urls: list[str] = field(default_factory=list)


def find_listing_links(html: str | bytes, url: str) -> ListingLinks:
    """Product and next-page URLs, absolute and de-duplicated, in page order.

    Products come from ItemList / Product structured data, else from links in product cards;
    next pages from `rel=next` or a pagination link reading "Next", "Weiter", "Suivant", ...
    """
    selector = Selector(text=decode_html(html))
    document: HtmlElement = selector.root
    base = base_url(document, url)
    products = _structured_product_urls(document, base) or _card_product_urls(document, base, url)
    return ListingLinks(
        product_urls=_unique(products), next_page_urls=_unique(_next_pages(document, base))
    )


def find_product_links_by_selector(
    html: str | bytes, url: str, css: str | None = None, xpath: str | None = None
) -> list[str]:
    """Absolute URLs of links picked by a site-specific selector.

    The selector may pick `<a>` elements, elements containing them, or `@href` values.
    """
    if not css and not xpath:
        raise ValueError("give css or xpath")
    selector = Selector(text=decode_html(html))
    base = base_url(selector.root, url)
    picked = selector.css(css) if css else selector.xpath(xpath or "")
    hrefs: list[str] = []
    for match in picked:
        if isinstance(match.root, str):
            hrefs.append(match.root)
        elif match.root.tag == "a":
            hrefs.append(match.attrib.get("href", ""))
        else:
            hrefs.extend(match.xpath(".//a/@href").getall()[:1])
    return _unique(absolute_url(href, base) for href in hrefs)


def _structured_product_urls(document: HtmlElement, base: str) -> list[str]:
    urls: list[str | None] = []
    for node in all_nodes(read_jsonld(document)):
        if "listitem" in type_names(node):
            item = node.get("item")
            target = item.get("url") or item.get("@id") if isinstance(item, dict) else item
            urls.append(absolute_url(text_value(target) or text_value(node.get("url")), base))
        elif is_product(node) and node.get("url"):
            urls.append(absolute_url(text_value(node.get("url")), base))
    return [url for url in urls if url]


def _card_product_urls(document: HtmlElement, base: str, page_url: str) -> list[str]:
    """Links inside repeated product cards, else links whose path looks like a product's."""
    host = urlsplit(page_url).hostname
    urls = []
    for link in document.xpath("//a[@href]"):
        url = absolute_url(link.get("href"), base)
        if not url or urlsplit(url).hostname != host or in_chrome(link):
            continue
        in_card = any(_CARD.search(t) for a in link.iterancestors(None) for t in class_tokens(a))
        if in_card or _PRODUCT_PATH.search(urlsplit(url).path):
            urls.append(url)
    return urls


def _next_pages(document: HtmlElement, base: str) -> list[str]:
    hrefs = document.xpath("//link[@rel='next']/@href | //a[@rel='next']/@href")
    for link in document.xpath("//a[@href]"):
        label = element_text(link) or link.get("aria-label") or link.get("title") or ""
        tokens = " ".join(class_tokens(link)).lower()
        if _NEXT_TEXT.match(label.strip()) or re.search(r"(?:^|[-_ ])next(?:$|[-_ ])", tokens):
            hrefs.append(link.get("href"))
    return [url for url in (absolute_url(href, base) for href in hrefs) if url]


def _unique(urls: object) -> list[str]:
    seen: dict[str, None] = {}
    for url in urls:  # type: ignore[attr-defined]
        if url:
            seen.setdefault(url, None)
    return list(seen)
