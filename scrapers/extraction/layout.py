"""Where things sit on a page: the product's title, its buy button, chrome, and product grids."""

from __future__ import annotations

import re

from lxml import etree
from lxml.html import HtmlElement

from scrapers.extraction.plain_text import element_text

# Not <aside>: many product pages put the buy box with the price in one.
_CHROME_TAGS = frozenset({"header", "footer", "nav"})
_CHROME_TOKENS = re.compile(
    r"^(?:site-?header|header|site-?footer|footer|nav|navbar|navigation|menu|breadcrumbs?)$"
    r"|related|recommend|upsell|up-sell|cross-?sell|similar|recently|carousel|mini-?cart"
    r"|cart-drawer|also-?bought|you-may|newsletter|cookie",
    re.IGNORECASE,
)
_CART_TEXT = re.compile(
    r"add to (?:cart|basket|bag)|buy now|in den (?:warenkorb|einkaufswagen)|jetzt kaufen"
    r"|ajouter au panier|acheter|añadir al carrito|añadir a la cesta|comprar|aggiungi al carrello"
    r"|acquista|in (?:de )?winkelwagen|bestellen|adicionar ao carrinho|sold out|ausverkauft"
    r"|pre-?order|vorbestellen|précommander",
    re.IGNORECASE,
)
_LINKS = etree.XPath(".//a[@href]")
_HEADINGS = etree.XPath("//h1")
_CLICKABLES = etree.XPath("//button | //input[@type='submit'] | //a[@href]")
_CART_ATTR = re.compile(r"add[-_ ]?to[-_ ]?(?:cart|basket|bag)|addtocart|buy[-_]?button|cart", re.I)


def class_tokens(element: HtmlElement) -> list[str]:
    """The class names and id of an element."""
    return (element.get("class") or "").split() + ([element.get("id")] if element.get("id") else [])


def is_hidden(element: HtmlElement) -> bool:
    for node in element.iterancestors(None):
        if _hides(node):
            return True
    return _hides(element)


def _hides(node: HtmlElement) -> bool:
    style = (node.get("style") or "").replace(" ", "").lower()
    return node.get("hidden") is not None or "display:none" in style or node.tag == "template"


def in_chrome(element: HtmlElement) -> bool:
    """Inside the site header, footer, navigation, or a related-products block."""
    for node in [element, *element.iterancestors(None)]:
        if node.tag in _CHROME_TAGS:
            return True
        if any(_CHROME_TOKENS.search(token) for token in class_tokens(node)):
            return True
    return False


def in_repeated_card(element: HtmlElement, max_levels: int = 7) -> bool:
    """Inside a block repeated side by side with links, as in a product grid."""
    for level, node in enumerate(element.iterancestors(None)):
        if level >= max_levels or node.tag in ("body", "html"):
            return False
        parent = node.getparent()
        if parent is None or not _LINKS(node):
            continue
        twins = [s for s in parent if s.tag == node.tag and s.get("class") == node.get("class")]
        if len(twins) >= 3:
            return True
    return False


def title_element(document: HtmlElement) -> HtmlElement | None:
    """The product's title: the first visible h1 with text outside the site chrome."""
    for heading in _HEADINGS(document):
        if element_text(heading) and not in_chrome(heading) and not is_hidden(heading):
            return heading
    return None


def cart_buttons(document: HtmlElement) -> list[HtmlElement]:
    """Buttons that put the product in a cart, outside grids and chrome."""
    buttons = []
    for element in _CLICKABLES(document):
        text = element_text(element) or element.get("value") or ""
        attrs = " ".join([*class_tokens(element), element.get("name") or ""])
        says_cart = (_CART_TEXT.search(text) and len(text) < 40) or _CART_ATTR.search(attrs)
        if says_cart and not in_chrome(element) and not in_repeated_card(element):
            buttons.append(element)
    return buttons


def document_positions(document: HtmlElement) -> dict[HtmlElement, int]:
    """Each element's position in document order, to measure how far apart two things are."""
    return {element: index for index, element in enumerate(document.iter())}
