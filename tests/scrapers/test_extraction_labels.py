"""Identifiers and brand read from "label: value" lines, and the cheap check that skips them."""

import pytest

from scrapers.extraction.labels import LABELLED_FIELDS, fields_labelled_in, labelled_values

LABELLED_LINES = [
    ["SKU: AB-123"],
    ["Art.-Nr.: 55123"],
    ["Artikelnummer 9981"],
    ["Item #: 88-12345"],
    ["Réf. : LN-2201"],
    ["RÉFÉRENCE: LN-2202"],
    ["Cod. articolo: IT-9981"],
    ["Código: BR-7781"],
    ["Modelo #: M-1"],
    ["EAN-13: 4006381333931"],
    ["GTIN", "4006381333931"],
    ["Barcode: 4006381333931"],
    ["MPN: WX-100"],
    ["Herstellernummer: H-77"],
    ["Manufacturer part number: MP-9"],
    ["Model number: MN-3"],
    ["Marke: Acme"],
    ["VENDOR: Globex"],
]


@pytest.mark.parametrize("lines", LABELLED_LINES)
def test_every_field_read_from_lines_is_one_the_page_text_check_keeps(lines: list[str]) -> None:
    found = {field for field, value in labelled_values(lines).items() if value}
    assert found, lines
    # The check sees the page's text without line breaks, as text_content() gives it.
    assert found <= fields_labelled_in("".join(lines), LABELLED_FIELDS)


def test_page_text_without_label_words_needs_no_lines() -> None:
    text = "Bench Product 7 Feature 1 of this lamp keeps you going. Add to cart"
    assert fields_labelled_in(text, ("gtin", "mpn")) == set()
    assert fields_labelled_in(text + " EAN 4006381333931", ("gtin", "mpn")) == {"gtin"}


def test_only_the_asked_fields_are_read() -> None:
    lines = ["SKU: AB-123", "EAN: 4006381333931"]
    assert labelled_values(lines, ("gtin",)) == {
        "sku": None, "mpn": None, "gtin": "4006381333931", "brand": None,
    }  # fmt: skip
