"""Decode fetched bytes with the charset the page declares or the one its bytes suggest."""

from __future__ import annotations

from w3lib.encoding import html_to_unicode


def decode_html(body: str | bytes, *, encoding: str | None = None) -> str:
    """Return the page as text.

    `encoding` is the charset from the HTTP Content-Type header, if any; a BOM wins over it and
    it wins over `<meta charset>`, as in browsers.
    """
    if isinstance(body, str):
        return body
    content_type = f"text/html; charset={encoding}" if encoding else None
    _, text = html_to_unicode(content_type, body)
    return text
