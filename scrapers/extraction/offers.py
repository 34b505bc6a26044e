"""Read price, currency and availability from schema.org `offers` in all their shapes."""

from __future__ import annotations

from dataclasses import dataclass

from scrapers.extraction.availability import availability_from_schema
from scrapers.extraction.prices import parse_price
from scrapers.extraction.schema_nodes import first_value, text_value, type_names

# priceSpecification entries that describe a reference price, not what the buyer pays now.
_REFERENCE_PRICE_TYPES = ("strikethrough", "listprice", "srp", "msrp", "invoice", "minimum")


@dataclass(frozen=True)
class OfferTerms:
    price: str | None = None
    currency: str | None = None
    availability: str | None = None
    sku: str | None = None
    gtin_candidates: tuple[object, ...] = ()


def offer_terms(offers: object, page_url: str) -> OfferTerms:
    """The terms of the offer a shopper sees first.

    A list of offers yields its first in-stock offer with a price, else its first priced offer;
    an AggregateOffer yields its lowPrice (the "from" price shops display).
    """
    candidates = [_terms_of(offer, page_url) for offer in _flatten(offers)]
    priced = [terms for terms in candidates if terms.price is not None]
    for terms in priced:
        if terms.availability == "in_stock":
            return terms
    if priced:
        return priced[0]
    return candidates[0] if candidates else OfferTerms()


def _flatten(offers: object) -> list[dict]:
    """Offer dicts in page order; an AggregateOffer counts once, before the offers it holds."""
    items = offers if isinstance(offers, list) else [offers]
    flat: list[dict] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        flat.append(item)
        if "aggregateoffer" in type_names(item) and isinstance(item.get("offers"), list | dict):
            flat.extend(_flatten(item["offers"]))
    return flat


def _terms_of(offer: dict, page_url: str) -> OfferTerms:
    raw_price, raw_currency = _raw_price(offer)
    parsed = parse_price(raw_price, currency_hint=raw_currency, page_url=page_url)
    gtins = tuple(
        offer[key] for key in ("gtin13", "gtin", "gtin12", "gtin14", "gtin8") if key in offer
    )
    return OfferTerms(
        price=parsed.amount,
        currency=parsed.currency,
        availability=availability_from_schema(text_value(offer.get("availability"))),
        sku=text_value(offer.get("sku")),
        gtin_candidates=gtins,
    )


def _raw_price(offer: dict) -> tuple[object, str | None]:
    currency = text_value(offer.get("priceCurrency"))
    price = first_value(offer.get("price"))
    if price in (None, ""):
        price = first_value(offer.get("lowPrice"))
    if price in (None, ""):
        spec = _current_price_specification(offer.get("priceSpecification"))
        if spec:
            price = first_value(spec.get("price", spec.get("minPrice")))
            currency = currency or text_value(spec.get("priceCurrency"))
    if isinstance(price, dict):
        price = price.get("@value")
    return price, currency


def _current_price_specification(specs: object) -> dict | None:
    items = [
        spec for spec in (specs if isinstance(specs, list) else [specs]) if isinstance(spec, dict)
    ]
    for spec in items:
        price_type = (text_value(spec.get("priceType")) or "").lower()
        if not any(marker in price_type for marker in _REFERENCE_PRICE_TYPES):
            return spec
    return items[0] if items else None
