"""Absolute and canonical URLs for a fetched page."""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from lxml import etree
from lxml.html import HtmlElement
from w3lib.url import canonicalize_url

# Query parameters that only say where a visitor came from; they never select a product.
_TRACKING_PREFIXES = ("utm_",)
_TRACKING_PARAMS = frozenset(
    {"gclid", "fbclid", "msclkid", "dclid", "gbraid", "wbraid", "yclid", "mc_cid", "mc_eid",
     "_ga", "_gl", "igshid", "ref_src", "srsltid"}
)  # fmt: skip


_SPECIAL_IN_PATH = re.compile(r"[?#;\x00-\x20\x7f]")
_BASE_HREFS = etree.XPath("//head/base/@href | //base/@href")
_CANONICAL_HREFS = etree.XPath(
    "//link[contains(concat(' ', normalize-space(@rel), ' '), ' canonical ')]/@href"
)


def base_url(document: HtmlElement, page_url: str) -> str:
    """The URL relative links resolve against: `<base href>` when present, else the page URL."""
    for href in _BASE_HREFS(document):
        if href.strip():
            return urljoin(page_url, href.strip())
    return page_url


def absolute_url(href: object, base: str) -> str | None:
    """Resolve `href` against `base`; None for empty, `javascript:` or `data:` values."""
    if not isinstance(href, str) or not href.strip():
        return None
    href = href.strip()
    origin = _http_origin(base)
    if origin and _is_plain_rooted_path(href):
        return origin + href  # what urljoin gives for such a path, five times faster
    resolved = urljoin(base, href)
    if urlsplit(resolved).scheme not in ("http", "https"):
        return None
    return resolved


@lru_cache(maxsize=64)
def _http_origin(base: str) -> str | None:
    """ "scheme://host[:port]" of an http(s) base URL, else None."""
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def _is_plain_rooted_path(href: str) -> bool:
    """A path from the root that urljoin would leave as it is: no query, fragment, params,
    empty or dot segments, whitespace or control characters."""
    return (
        href[:1] == "/"
        and "//" not in href
        and "/." not in href
        and not _SPECIAL_IN_PATH.search(href)
    )


def strip_tracking(url: str) -> str:
    """Drop the fragment and tracking parameters (utm_*, gclid, fbclid, ...) from `url`."""
    parts = urlsplit(url)
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key.lower() not in _TRACKING_PARAMS and not key.lower().startswith(_TRACKING_PREFIXES)
    ]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def canonical_url(document: HtmlElement, page_url: str) -> str:
    """`<link rel=canonical>` made absolute, else the fetched URL canonicalised."""
    for href in _CANONICAL_HREFS(document):
        resolved = absolute_url(href, base_url(document, page_url))
        if resolved:
            return strip_tracking(resolved)
    return canonicalize_url(strip_tracking(page_url))
