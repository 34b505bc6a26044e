import pytest

from scrapers.extraction.gtin import valid_gtin


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("4006381333931", "4006381333931"),  # GTIN-13
        ("96385074", "96385074"),  # GTIN-8
        ("036000291452", "036000291452"),  # GTIN-12 (UPC-A)
        ("10036000291459", "10036000291459"),  # GTIN-14
        ("400-6381-333931", "4006381333931"),
        (9780201379624, "9780201379624"),
        ("4006381333932", None),  # wrong check digit
        ("123456789", None),  # no GTIN length
        ("ABC4006381333", None),
        (None, None),
    ],
)
def test_gtin_check_digit(value: object, expected: str | None) -> None:
    assert valid_gtin(value) == expected
