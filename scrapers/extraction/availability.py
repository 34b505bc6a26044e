"""Map schema.org availability values and shop wording in several languages to our six states."""

from __future__ import annotations

import re

# schema.org ItemAvailability members, compared lower-case without the vocabulary prefix.
_SCHEMA_VALUES: dict[str, str] = {
    "instock": "in_stock",
    "instoreonly": "in_stock",
    "onlineonly": "in_stock",
    "limitedavailability": "in_stock",
    "madetoorder": "backorder",
    "backorder": "backorder",
    "preorder": "preorder",
    "presale": "preorder",
    "outofstock": "out_of_stock",
    "soldout": "out_of_stock",
    "discontinued": "discontinued",
    # Non-standard values seen in OpenGraph product:availability and shop feeds.
    "in stock": "in_stock",
    "available for order": "backorder",
    "out of stock": "out_of_stock",
    "pending": "preorder",
    "available": "in_stock",
    "oos": "out_of_stock",
}

# Phrases, checked in this order: negative and special states first, because "not in stock"
# and "nicht auf Lager" contain the positive phrase.
_PHRASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "discontinued",
        (
            "discontinued",
            "no longer available",
            "nicht mehr erhältlich",
            "auslaufartikel",
            "plus disponible",
            "n'est plus disponible",
            "descatalogado",
            "fuori produzione",
            "niet meer leverbaar",
            "descontinuado",
            "fora de linha",
        ),
    ),
    (
        "preorder",
        (
            "pre-order",
            "preorder",
            "pre order",
            "vorbestellen",
            "vorbestellung",
            "précommande",
            "précommander",
            "pré-commande",
            "reserva",
            "preventa",
            "preordina",
            "prenota",
            "pre-ordine",
            "vooruitbestellen",
            "pré-venda",
            "pré-encomenda",
            "coming soon",
        ),
    ),
    (
        "out_of_stock",
        (
            "out of stock",
            "sold out",
            "currently unavailable",
            "not in stock",
            "not available",
            "unavailable",
            "ausverkauft",
            "nicht auf lager",
            "nicht verfügbar",
            "nicht lieferbar",
            "vergriffen",
            "rupture de stock",
            "épuisé",
            "indisponible",
            "en rupture",
            "agotado",
            "sin stock",
            "sin existencias",
            "no disponible",
            "esaurito",
            "non disponibile",
            "uitverkocht",
            "niet op voorraad",
            "niet leverbaar",
            "esgotado",
            "indisponível",
            "sem estoque",
            "fora de estoque",
        ),
    ),
    (
        "backorder",
        (
            "backorder",
            "back-order",
            "back order",
            "available to order",
            "on backorder",
            "nachbestellt",
            "sur commande",
            "en réapprovisionnement",
            "bajo pedido",
            "su ordinazione",
            "in bestelling",
            "sob encomenda",
        ),
    ),
    (
        "in_stock",
        (
            "in stock",
            "in-stock",
            "available now",
            "ready to ship",
            "auf lager",
            "sofort lieferbar",
            "lieferbar",
            "verfügbar",
            "en stock",
            "disponible",
            "en existencia",
            "disponibile",
            "op voorraad",
            "leverbaar",
            "em estoque",
            "em stock",
            "disponível",
        ),
    ),
)

_WHITESPACE = re.compile(r"\s+")


def _phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    # Word boundaries keep "disponible" from matching inside "indisponible".
    alternatives = "|".join(re.escape(phrase) for phrase in phrases)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


# One pattern per state, in _PHRASES order, and one for any phrase at all: most text lines
# name no state, and a single search rules them out.
_STATE_PATTERNS = tuple((state, _phrase_pattern(phrases)) for state, phrases in _PHRASES)
_ANY_PHRASE = _phrase_pattern(tuple(phrase for _, phrases in _PHRASES for phrase in phrases))


def availability_from_schema(value: object) -> str | None:
    """Read a schema.org availability (URL, CURIE or bare name) or an OpenGraph value."""
    if not isinstance(value, str) or not value.strip():
        return None
    name = value.strip().rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    key = _WHITESPACE.sub(" ", name.replace("_", " ")).lower()
    return _SCHEMA_VALUES.get(key) or _SCHEMA_VALUES.get(key.replace(" ", ""))


def availability_from_text(text: str | None) -> str | None:
    """Read availability from visible wording ("Auf Lager", "Rupture de stock", ...)."""
    if not text:
        return None
    lowered = _WHITESPACE.sub(" ", text).lower()
    if not _ANY_PHRASE.search(lowered):
        return None
    for state, pattern in _STATE_PATTERNS:
        if pattern.search(lowered):
            return state
    return None
