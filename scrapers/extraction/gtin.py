"""Validate GTIN-8/12/13/14 codes by their check digit."""

from __future__ import annotations

import re

from stdnum import ean
from stdnum.exceptions import ValidationError

_GTIN_LENGTHS = frozenset({8, 12, 13, 14})


def valid_gtin(value: object) -> str | None:
    """Return the digits of a valid GTIN, or None for anything whose check digit fails.

    An invalid code is dropped rather than stored: a wrong GTIN matches the wrong product.
    """
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        return None
    digits = re.sub(r"[\s-]", "", value)
    if digits.lower().startswith(("gtin", "ean", "upc", "isbn")):
        digits = re.sub(r"^\D+", "", digits)
    if not digits.isdigit() or len(digits) not in _GTIN_LENGTHS:
        return None
    try:
        return ean.validate(digits)
    except ValidationError:
        return None
