"""Parse the JSON found in `<script type="application/ld+json">` the way lenient consumers do.

Shops ship JSON-LD with trailing commas, comments, raw newlines inside strings, HTML entities,
CDATA or comment wrappers, several objects in one script, or cut off at the end. Search engines
still read most of these, so we repair what can be repaired instead of dropping the product.
"""

from __future__ import annotations

import html
import json
import re

_WRAPPERS = re.compile(r"<!\[CDATA\[|\]\]>|<!--|-->|^\s*//.*$", re.MULTILINE)
_CLOSERS = {"{": "}", "[": "]"}


def parse_lenient_json(text: str) -> list[object]:
    """Return every JSON value in `text`; an empty list when nothing could be recovered."""
    cleaned = _WRAPPERS.sub("", text).strip()
    if not cleaned:
        return []
    values = _decode_all(cleaned)
    if values:
        return values
    repaired = repair_json(cleaned)
    values = _decode_all(repaired)
    if not values and "&" in repaired:
        values = _decode_all(repair_json(html.unescape(cleaned)))
    return values


def _decode_all(text: str) -> list[object]:
    """Decode consecutive values (`{..}{..}` or `{..},{..}`); [] if the text is not all JSON."""
    decoder = json.JSONDecoder(strict=False)
    values: list[object] = []
    position = 0
    while True:
        position = _skip_separators(text, position)
        if position >= len(text):
            return values
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return []
        values.append(value)


def _skip_separators(text: str, position: int) -> int:
    while position < len(text) and (text[position].isspace() or text[position] in ",;"):
        position += 1
    return position


def repair_json(text: str) -> str:
    """Drop comments and trailing commas, escape raw control characters in strings, and close
    brackets and strings left open by a truncated document."""
    out: list[str] = []
    stack: list[str] = []
    in_string = False
    index = 0
    while index < len(text):
        char = text[index]
        if in_string:
            index = _copy_string_char(text, index, out)
            in_string = char != '"'
            continue
        if text.startswith("//", index):
            index = _end_of_line(text, index)
            continue
        if text.startswith("/*", index):
            end = text.find("*/", index + 2)
            index = len(text) if end == -1 else end + 2
            continue
        if char in "}]":
            _drop_trailing_comma(out)
            if stack:
                stack.pop()
        elif char in "{[":
            stack.append(_CLOSERS[char])
        elif char == '"':
            in_string = True
        out.append(char)
        index += 1
    if in_string:
        out.append('"')
    _drop_trailing_comma(out)
    out.extend(reversed(stack))
    return "".join(out)


def _copy_string_char(text: str, index: int, out: list[str]) -> int:
    """Copy one character of a string literal, escaping raw control characters."""
    char = text[index]
    if char == "\\" and index + 1 < len(text):
        out.append(text[index : index + 2])
        return index + 2
    if char in "\n\r\t":
        out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char])
    else:
        out.append(char)
    return index + 1


def _end_of_line(text: str, index: int) -> int:
    end = text.find("\n", index)
    return len(text) if end == -1 else end


def _drop_trailing_comma(out: list[str]) -> None:
    position = len(out) - 1
    while position >= 0 and out[position].isspace():
        position -= 1
    if position >= 0 and out[position] == ",":
        del out[position]
