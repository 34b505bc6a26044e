import pytest

from scrapers.extraction.availability import availability_from_schema, availability_from_text


@pytest.mark.parametrize(
    ("value", "state"),
    [
        ("https://schema.org/InStock", "in_stock"),
        ("http://schema.org/InStock", "in_stock"),
        ("InStock", "in_stock"),
        ("schema:InStock", "in_stock"),
        ("https://schema.org/LimitedAvailability", "in_stock"),
        ("OnlineOnly", "in_stock"),
        ("PreOrder", "preorder"),
        ("https://schema.org/PreSale", "preorder"),
        ("http://schema.org/BackOrder", "backorder"),
        ("Discontinued", "discontinued"),
        ("https://schema.org/SoldOut", "out_of_stock"),
        ("OutOfStock", "out_of_stock"),
        ("instock", "in_stock"),
        ("out of stock", "out_of_stock"),
        ("sometimes", None),
        (None, None),
    ],
)
def test_schema_org_values(value: str | None, state: str | None) -> None:
    assert availability_from_schema(value) == state


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("In stock", "in_stock"),
        ("Auf Lager \u2013 Lieferzeit 1-3 Tage", "in_stock"),
        ("En stock", "in_stock"),
        ("Disponible", "in_stock"),
        ("Disponibile", "in_stock"),
        ("Op voorraad", "in_stock"),
        ("Em estoque", "in_stock"),
        ("Out of stock", "out_of_stock"),
        ("Ausverkauft", "out_of_stock"),
        ("Rupture de stock", "out_of_stock"),
        ("Agotado", "out_of_stock"),
        ("Esaurito", "out_of_stock"),
        ("Uitverkocht", "out_of_stock"),
        ("Esgotado", "out_of_stock"),
        ("Indisponible", "out_of_stock"),
        ("Nicht auf Lager", "out_of_stock"),
        ("Pre-order now", "preorder"),
        ("Vorbestellen", "preorder"),
        ("Available on backorder", "backorder"),
        ("Ce produit n'est plus disponible", "discontinued"),
        ("Free delivery over 50", None),
    ],
)
def test_wording_in_several_languages(text: str, state: str | None) -> None:
    assert availability_from_text(text) == state
