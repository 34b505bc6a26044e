"""Read identifiers and brand written as "label: value" in visible text ("Art.-Nr.: 123")."""

from __future__ import annotations

import re
from collections.abc import Collection

from scrapers.extraction.gtin import valid_gtin

_SKU_LABEL = (
    r"SKU|Art(?:ikel)?\.?\s?-?\s?(?:Nr|No)\.?|Artikel-?nummer|Bestell-?(?:nr\.?|nummer)"
    r"|Item\s?(?:#|No\.?|number|code)|Product\s?(?:code|ID|no\.?|number|#)|Style\s?(?:#|no\.?)"
    r"|R[ée]f(?:[ée]rence)?\.?|Ref\.?|Referencia|Refer[êe]ncia|C[óo]digo(?:\sdel\sproducto)?"
    r"|C[óo]d(?:ice)?\.?(?:\s(?:articolo|prodotto))?|Artikelcode|Productcode|Art\.\s?code"
    r"|Modelo?\s?(?:#|no\.?)"
)
_GTIN_LABEL = (
    r"EAN(?:-?1[34]|-?8)?(?:-?Code)?|GTIN(?:-?\d{1,2})?|UPC|ISBN(?:-?1[03])?|Barcode|Strichcode"
)
_MPN_LABEL = (
    r"MPN|Hersteller-?(?:nr\.?|nummer|artikelnummer)|Manufacturer\s?(?:part\s?)?(?:#|no\.?|number)"
    r"|Part\s?(?:#|no\.?|number)|Model\s?number"
)
_BRAND_LABEL = (
    r"Brand|Marke|Hersteller|Manufacturer|Marque|Fabricant|Marca|Merk|Fabricante|Produttore|Vendor"
)

_SEPARATOR = r"\s*[:#]?\s*"
_CODE = r"([A-Za-z0-9][A-Za-z0-9._/\-]{1,39})"


def _pattern(label: str, value: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w.])(?:{label})(?!\w){_SEPARATOR}{value}", re.IGNORECASE)


_SKU = _pattern(_SKU_LABEL, _CODE)
_MPN = _pattern(_MPN_LABEL, _CODE)
_GTIN = _pattern(_GTIN_LABEL, r"(\d[\d\s-]{6,17}\d)")
_BRAND = _pattern(_BRAND_LABEL, r"(\S.{0,39}?)\s*(?:$|[|•·,;])")
_LABEL_ONLY = {
    "sku": re.compile(rf"^(?:{_SKU_LABEL}){_SEPARATOR}$", re.I),
    "mpn": re.compile(rf"^(?:{_MPN_LABEL}){_SEPARATOR}$", re.I),
    "gtin": re.compile(rf"^(?:{_GTIN_LABEL}){_SEPARATOR}$", re.I),
    "brand": re.compile(rf"^(?:{_BRAND_LABEL}){_SEPARATOR}$", re.I),
}
_FIELD_PATTERNS = {"sku": _SKU, "mpn": _MPN, "gtin": _GTIN, "brand": _BRAND}
LABELLED_FIELDS = tuple(_FIELD_PATTERNS)
# Every match of a field's pattern, or of a label-only line, contains one of the labels
# standing alone: lines without any label (most of a page) are ruled out in one search, of
# the case-folded line by the lower-cased labels (re.IGNORECASE is several times slower).
_ANY_LABEL = re.compile(
    rf"(?<![\w.])(?:{_SKU_LABEL}|{_MPN_LABEL}|{_GTIN_LABEL}|{_BRAND_LABEL})(?!\w)".lower()
)
_LABELS = {"sku": _SKU_LABEL, "mpn": _MPN_LABEL, "gtin": _GTIN_LABEL, "brand": _BRAND_LABEL}


def _stems(label: str) -> frozenset[str]:
    """The literal letters each top-level alternative of `label` starts with, case-folded
    ("Art(?:ikel)?" -> "art", "Modelo?" -> "model"): text holding none of them holds no
    such label."""
    alternatives, depth, start = [], 0, 0
    for index, char in enumerate(label):
        depth += (char in "([") - (char in ")]")
        if char == "|" and depth == 0:
            alternatives.append(label[start:index])
            start = index + 1
    alternatives.append(label[start:])
    stems = set()
    for alternative in alternatives:
        stem = re.match(r"[A-Za-z]*", alternative).group(0)  # type: ignore[union-attr]
        if alternative[len(stem) : len(stem) + 1] in ("?", "*", "{"):
            stem = stem[:-1]  # the last letter is optional
        stems.add(stem.casefold())
    return frozenset(stems)


_STEMS = {field: _stems(label) for field, label in _LABELS.items()}
_STRIP_LABEL = re.compile(
    rf"^(?:{_SKU_LABEL}|{_GTIN_LABEL}|{_MPN_LABEL}|{_BRAND_LABEL}|UGS)(?!\w){_SEPARATOR}", re.I
)


def labelled_values(
    lines: list[str], fields: Collection[str] = LABELLED_FIELDS
) -> dict[str, str | None]:
    """sku, mpn, gtin and brand from "label: value" lines, or a label line then a value line.

    Only `fields` are looked for; the others stay None.
    """
    found: dict[str, str | None] = dict.fromkeys(_FIELD_PATTERNS)
    patterns = [(field, _FIELD_PATTERNS[field]) for field in LABELLED_FIELDS if field in fields]
    for index, line in enumerate(lines):
        if not patterns or not _ANY_LABEL.search(line.casefold()):
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        for field, pattern in patterns:
            if found[field]:
                continue
            found[field] = _accept(field, _value_on(line, following, field, pattern))
    return found


def fields_labelled_in(text: str, fields: Collection[str]) -> set[str]:
    """Of `fields`, those whose labels may occur in `text` (an element's whole text, such as
    ``text_content()``); `labelled_values` finds none of the others, so a caller can skip
    laying out lines when this is empty. A label split by a script or style inside it would
    be missed here, which no page does."""
    folded = text.casefold()
    return {field for field in fields if any(stem in folded for stem in _STEMS[field])}


def strip_label(text: str) -> str:
    """`text` without a leading identifier or brand label ("Marca: Acme" -> "Acme")."""
    return _STRIP_LABEL.sub("", text).strip()


def _value_on(line: str, following: str, field: str, pattern: re.Pattern[str]) -> str | None:
    if _LABEL_ONLY[field].match(line):
        match = pattern.match(f"{line.rstrip(':# ')}: {following}")
    else:
        match = pattern.search(line)
    return match.group(1).strip() if match else None


def _accept(field: str, value: str | None) -> str | None:
    if not value:
        return None
    if field == "gtin":
        return valid_gtin(value)
    if field in ("sku", "mpn") and not re.search(r"\d", value) and not value.isupper():
        # A code without digits in mixed case is usually a word caught after the label.
        return None
    return value
